// Package registry lists every built-in provider type in one literal map. It
// lives beside the contract (package providers) rather than in it because
// each provider package imports the contract.
package registry

import (
	"maps"
	"slices"

	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/awsiam"
	"github.com/rotatorhq/rotator/providers/execplugin"
	"github.com/rotatorhq/rotator/providers/faulty"
	"github.com/rotatorhq/rotator/providers/generated"
	"github.com/rotatorhq/rotator/providers/githubapp"
	"github.com/rotatorhq/rotator/providers/mysqluser"
	"github.com/rotatorhq/rotator/providers/oauth2cc"
	"github.com/rotatorhq/rotator/providers/oauth2pkjwt"
	"github.com/rotatorhq/rotator/providers/oauth2refresh"
	"github.com/rotatorhq/rotator/providers/postgres"
	"github.com/rotatorhq/rotator/providers/redisacl"
)

var factories = map[string]providers.Factory{
	generated.Type:     generated.Factory(),
	githubapp.Type:     githubapp.Factory(),
	oauth2cc.Type:      oauth2cc.Factory(),
	oauth2refresh.Type: oauth2refresh.Factory(),
	oauth2pkjwt.Type:   oauth2pkjwt.Factory(),
	postgres.Type:      postgres.Factory(),
	redisacl.Type:      redisacl.Factory(),
	mysqluser.Type:     mysqluser.Factory(),
	awsiam.Type:        awsiam.Factory(),
	execplugin.Type:    execplugin.Factory(),
	// faulty is for testing rotator; it refuses to start unless enabled.
	faulty.Type: faulty.Factory(),
}

// Lookup returns the factory of a provider type.
func Lookup(typ string) (providers.Factory, bool) {
	f, ok := factories[typ]
	return f, ok
}

// Types returns the registered provider type names, sorted.
func Types() []string { return slices.Sorted(maps.Keys(factories)) }
