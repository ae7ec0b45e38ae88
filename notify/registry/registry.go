// Package registry lists every built-in notification receiver type in one
// literal map. It lives beside the contract (package notify) because each
// receiver package imports the contract.
package registry

import (
	"maps"
	"slices"

	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/email"
	"github.com/rotatorhq/rotator/notify/slack"
	"github.com/rotatorhq/rotator/notify/webhook"
)

var factories = map[string]notify.Factory{
	webhook.Type: webhook.Factory(),
	slack.Type:   slack.Factory(),
	email.Type:   email.Factory(),
}

// Lookup returns the factory of a receiver type.
func Lookup(typ string) (notify.Factory, bool) {
	f, ok := factories[typ]
	return f, ok
}

// Types returns the registered receiver type names, sorted.
func Types() []string { return slices.Sorted(maps.Keys(factories)) }
