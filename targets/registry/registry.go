// Package registry lists every built-in target type in one literal map. It
// lives beside the contract (package targets) rather than in it because each
// target package imports the contract.
package registry

import (
	"maps"
	"slices"

	"github.com/rotatorhq/rotator/targets"
	"github.com/rotatorhq/rotator/targets/awssm"
	"github.com/rotatorhq/rotator/targets/file"
)

var factories = map[string]targets.Factory{
	file.Type:  file.Factory(),
	awssm.Type: awssm.Factory(),
}

// Lookup returns the factory of a target type.
func Lookup(typ string) (targets.Factory, bool) {
	f, ok := factories[typ]
	return f, ok
}

// Types returns the registered target type names, sorted.
func Types() []string { return slices.Sorted(maps.Keys(factories)) }
