package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/registry"
	"github.com/rotatorhq/rotator/targets"
	treg "github.com/rotatorhq/rotator/targets/registry"
)

// TestNewErrorsLeaveTheNameToTheEngine: the engine puts "provider NAME:"
// (or "target NAME:") before a factory's error, so a factory's error must
// not name the instance again. Every registered type is built from
// settings it refuses (an unknown setting's value of the wrong kind).
func TestNewErrorsLeaveTheNameToTheEngine(t *testing.T) {
	const name = "name-canary-7f3a"
	bad := settings.Map{"length": "not a number", "admin_dsn": 42, "command": 42, "token_url": 42, "path": 42, "region": 42}
	var refused []string
	for _, typ := range registry.Types() {
		f, _ := registry.Lookup(typ)
		_, err := f.New(context.Background(), providers.Env{Name: name, Settings: bad})
		if err == nil {
			continue
		}
		refused = append(refused, typ)
		if strings.Contains(err.Error(), name) {
			t.Errorf("provider type %s: New's error names the instance: %v", typ, err)
		}
	}
	for _, typ := range treg.Types() {
		f, _ := treg.Lookup(typ)
		_, err := f.New(context.Background(), targets.Env{Name: name, Settings: bad})
		if err == nil {
			continue
		}
		refused = append(refused, "target "+typ)
		if strings.Contains(err.Error(), name) {
			t.Errorf("target type %s: New's error names the instance: %v", typ, err)
		}
	}
	t.Logf("refused: %v", refused)
	if len(refused) == 0 {
		t.Fatal("no type refused the settings: the test checks nothing")
	}
}
