package awssm

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testaws"
	"github.com/rotatorhq/rotator/targets"
)

// TestTargetsShareClient: 20 targets (20 secrets) built by the factory with
// the same region, endpoint and credentials share one client, so staging
// and promoting a value in each reuses the client's connections instead of
// opening one or more per target; targets with other credentials get a
// client of their own.
func TestTargetsShareClient(t *testing.T) {
	t.Parallel()
	fake := testaws.NewSecretsManager(t)
	build := func(i int, secretKey string) *Target {
		t.Helper()
		name := fmt.Sprintf("mcp/shared-%02d", i)
		fake.AddSecret(name)
		tg, err := Factory().New(t.Context(), targets.Env{Name: name, Settings: settings.Map{
			"secret_id": name, "region": "us-east-1", "endpoint": fake.URL(),
			"access_key_id": secret.NewString("AKIDFAKE"), "secret_access_key": secret.NewString(secretKey),
		}})
		if err != nil {
			t.Fatal(err)
		}
		return tg.(*Target)
	}
	const n = 20
	tgs := make([]*Target, n)
	for i := range n {
		tgs[i] = build(i, "fake-secret-access-key")
	}
	for i, tg := range tgs {
		if tg.sm != tgs[0].sm {
			t.Fatalf("target %d has a client of its own", i)
		}
		req := targets.Common{CredentialID: fmt.Sprintf("c%02d", i), VersionID: "v1", IdempotencyKey: "r/stage", Value: value(i)}
		if err := tg.Stage(t.Context(), targets.StageRequest{Common: req}); err != nil {
			t.Fatal(err)
		}
		if err := tg.Promote(t.Context(), targets.PromoteRequest{Common: req}); err != nil {
			t.Fatal(err)
		}
	}
	// One client keeps its connection between calls; Go's transport may
	// still dial a second one when a request starts before the previous
	// response's connection is back in the idle pool. A client per target
	// needs at least one connection per target.
	c := fake.Conns()
	t.Logf("%d targets, %d requests: %d connections", n, 4*n, c)
	if c >= n {
		t.Fatalf("%d targets opened %d connections, want fewer than one per target", n, c)
	}
	if other := build(n, "another-secret-access-key"); other.sm == tgs[0].sm {
		t.Fatal("a target with other credentials shares the client")
	}
	if sharedClients.len() == 0 {
		t.Fatal("the cache is empty")
	}
}

// TestSharedClientIsReleased: the cache does not keep a client alive once
// no target uses it.
func TestSharedClientIsReleased(t *testing.T) {
	t.Parallel()
	cfg := Config{SecretID: "x", Region: "eu-west-1", Endpoint: "http://127.0.0.1:1/released-" + t.Name()}
	k := keyOf(cfg)
	func() {
		tg, err := Factory().New(t.Context(), targets.Env{Name: "x", Settings: settings.Map{"secret_id": "x", "region": cfg.Region, "endpoint": cfg.Endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		if tg.(*Target).sm == nil {
			t.Fatal("no client")
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		sharedClients.mu.Lock()
		_, ok := sharedClients.m[k]
		sharedClients.mu.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache still holds the client of a target that is gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
