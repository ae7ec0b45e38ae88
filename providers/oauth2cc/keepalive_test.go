package oauth2cc_test

import (
	"io"
	"sync"
	"testing"

	"github.com/rotatorhq/rotator/providers"
)

// TestConnectionsReused: 40 rotations (mint, verify with a JWKS check and
// introspection, revoke), 8 at a time, open at most 8 connections to the
// authorization server, not one per request: the provider keeps one HTTP
// transport with keep-alive, keeps as many idle connections per host as
// calls run at once, and reads every response to the end.
func TestConnectionsReused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, nil, map[string]any{"verify": f.verify(jwks, introspection)})
	const workers, each = 8, 5
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := p.Mint(t.Context(), providers.MintRequest{Common: common(declared)})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := verify(p, declared, resp.Value, resp.Metadata); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
				if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: common(declared), Value: resp.Value}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := f.as.conns.Load(); n > workers {
		t.Fatalf("%d rotations, %d at a time (%d requests), opened %d connections to the authorization server, want at most %d",
			workers*each, workers, 4*workers*each, n, workers)
	}
	t.Logf("%d rotations, %d at a time: %d connections", workers*each, workers, f.as.conns.Load())
	// Close releases the idle connections; the provider stays usable.
	c, ok := p.(io.Closer)
	if !ok {
		t.Fatal("the provider is not an io.Closer")
	}
	before := f.as.conns.Load()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mint(t, p, declared)
	if n := f.as.conns.Load(); n != before+1 {
		t.Fatalf("after Close, a mint opened %d new connections, want 1 (the idle ones were not closed)", n-before)
	}
}
