package oauth2cc_test

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/providers"
)

// TestConnectionsReused: rotations (mint, verify with a JWKS check and
// introspection, revoke), 8 at a time, reuse their connections to the
// authorization server instead of opening one per request: the provider
// keeps one HTTP transport with keep-alive, keeps as many idle connections
// per host as calls run at once, and reads every response to the end.
func TestConnectionsReused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, nil, map[string]any{"verify": f.verify(jwks, introspection)})
	const workers, each = 8, 5
	burst := func() {
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
	}
	burst()
	// One connection per worker, and a few more: net/http dials when a
	// request finds no idle connection, and a connection whose response was
	// just read may not be back in the idle pool yet (the dialed one is
	// kept too). Without reuse it would be one per request (160).
	first := f.as.conns.Load()
	if most := int64(workers + workers/2); first > most {
		t.Fatalf("%d rotations, %d at a time (%d requests), opened %d connections to the authorization server, want at most %d",
			workers*each, workers, 4*workers*each, first, most)
	}
	// The second burst finds the first one's connections idle: all of them
	// were kept (Go keeps 2 per host by default, and the other 6 would be
	// opened again). The same race may add one or two.
	time.Sleep(50 * time.Millisecond)
	burst()
	if n := f.as.conns.Load() - first; n > workers/4 {
		t.Fatalf("a second burst of %d rotations, %d at a time, opened %d new connections after the first had opened %d, want at most %d: idle connections were closed",
			workers*each, workers, n, first, workers/4)
	}
	t.Logf("%d rotations, %d at a time, twice: %d connections", workers*each, workers, f.as.conns.Load())
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
