package providertest

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/providers"
)

// ZeroDisruption puts a consumer load beside rotations made in the
// engine's order: rotate (mint, activate, verify), publish the new value,
// wait until no client still uses the old one (the grace period, as a
// consumer's re-read would end it), then revoke the old one. Clients keep
// connecting with whatever value is published.
type ZeroDisruption struct {
	// Rotations after the first version, and concurrent Clients.
	Rotations, Clients int
	// Rotate makes version n ready to publish (n = 0 is the first, with
	// cur nil).
	Rotate func(n int, cur *providers.VersionRef) providers.VersionRef
	// Revoke retires prev after rotation n published its successor.
	Revoke func(n int, prev providers.VersionRef)
	// Use connects once with ref as client number client would.
	Use func(ctx context.Context, client int, ref providers.VersionRef) error
	// AuthFailure tells a refused credential apart from other errors of
	// Use, which fail the test (with the value scrubbed).
	AuthFailure func(error) bool
}

// ZeroDisruptionResult counts the clients' connections.
type ZeroDisruptionResult struct {
	Attempts, AuthFailures int64
	// First and Last are the first and the last published versions.
	First, Last providers.VersionRef
}

// Run runs the rotations and the clients until the last rotation is done.
func (z ZeroDisruption) Run(t *testing.T) ZeroDisruptionResult {
	t.Helper()
	pub := &published{}
	first := z.Rotate(0, nil)
	pub.promote(first)

	var attempts, authFailures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range z.Clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := pub.take()
				err := func() error {
					defer pub.release(v)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					return z.Use(ctx, i, v.ref)
				}()
				attempts.Add(1)
				switch {
				case err == nil:
				case z.AuthFailure(err):
					authFailures.Add(1)
				default:
					t.Errorf("client %d: %s", i, strings.ReplaceAll(err.Error(), v.ref.Value.RevealString(), "[REDACTED]"))
					return
				}
			}
		})
	}

	cur := first
	for n := 1; n <= z.Rotations; n++ {
		next := z.Rotate(n, &cur)
		old := pub.promote(next)
		for !pub.drained(old) {
			time.Sleep(time.Millisecond)
		}
		z.Revoke(n, cur)
		cur = next
	}
	close(stop)
	wg.Wait()
	return ZeroDisruptionResult{Attempts: attempts.Load(), AuthFailures: authFailures.Load(), First: first, Last: cur}
}

// published is what the target publishes, and how many clients still use
// each published value.
type published struct {
	mu  sync.Mutex
	cur *pubValue
}

type pubValue struct {
	ref   providers.VersionRef
	users int
}

func (p *published) take() *pubValue {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur.users++
	return p.cur
}

func (p *published) release(v *pubValue) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v.users--
}

func (p *published) promote(ref providers.VersionRef) *pubValue {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cur
	p.cur = &pubValue{ref: ref}
	return old
}

func (p *published) drained(v *pubValue) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return v.users == 0
}
