package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
)

// purpose is recorded in the value.read audit events of the proxy's reads.
const purpose = "proxy"

// Backoff of a watch that failed (the store or the service unreachable):
// the cached value keeps serving meanwhile.
const (
	watchBackoffMin = time.Second
	watchBackoffMax = 30 * time.Second
)

// rereadGap is the least time between two re-reads of a credential after
// an upstream's 401 that found the same version: an upstream that rejects
// every request does not turn each one into a read of the store.
const rereadGap = time.Second

// cred caches one credential's current value. Requests read it from
// memory; a watch (Source.Watch) replaces it in the background, and a 401
// from an upstream re-reads it (Source.Read) at once.
type cred struct {
	id  string
	src delivery.Source
	red *secret.Redactor
	log *slog.Logger

	cur atomic.Pointer[delivery.Current]

	// rereadMu serialises re-reads: concurrent 401s share one.
	rereadMu sync.Mutex
	// fruitless is the version a re-read last found still current, and
	// when; guarded by rereadMu.
	fruitless struct {
		version string
		at      time.Time
	}
	rereads atomic.Int64
}

// load reads the credential for the first time.
func (c *cred) load(ctx context.Context) error {
	cur, err := c.src.Read(ctx, delivery.ReadRequest{CredentialID: c.id, Purpose: purpose})
	if err != nil {
		return err
	}
	c.swap(nil, &cur)
	return nil
}

// swap replaces old by next when old is still the cached version, and
// keeps the redactor aware of the values in use. It reports whether it
// did.
func (c *cred) swap(old, next *delivery.Current) bool {
	if !c.cur.CompareAndSwap(old, next) {
		return false
	}
	if c.red != nil {
		c.red.Register(next.Value)
		if old != nil {
			c.red.Forget(old.Value)
		}
	}
	return true
}

// watch keeps the cached value current until ctx ends.
func (c *cred) watch(ctx context.Context) {
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		held := c.cur.Load()
		next, err := c.src.Watch(ctx, delivery.WatchRequest{CredentialID: c.id, AfterVersionID: held.VersionID, Purpose: purpose})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("watching the credential failed; the proxy keeps injecting the value it holds and tries again",
				slog.String("credential", c.id), slog.String("version", held.VersionID),
				slog.Duration("retry_in", backoff), slog.String("error", c.scrub(err)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, watchBackoffMax)
			continue
		}
		backoff = watchBackoffMin
		if c.swap(held, &next) {
			c.log.Info("picked up the credential's new version", slog.String("credential", c.id),
				slog.String("version", next.VersionID), slog.String("fingerprint", next.Fingerprint))
		}
	}
}

// reread reads the credential again after an upstream rejected the value
// of version used. It returns the version to retry with and whether it
// differs from used. Concurrent calls share one read; a read that found
// used still current is not repeated for used within rereadGap.
func (c *cred) reread(ctx context.Context, used *delivery.Current) (*delivery.Current, bool) {
	c.rereadMu.Lock()
	defer c.rereadMu.Unlock()
	held := c.cur.Load()
	if held.VersionID != used.VersionID {
		return held, true // a watch or another re-read already has a newer one
	}
	if c.fruitless.version == used.VersionID && time.Since(c.fruitless.at) < rereadGap {
		return held, false
	}
	c.rereads.Add(1)
	next, err := c.src.Read(ctx, delivery.ReadRequest{CredentialID: c.id, Purpose: purpose})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.log.Warn("re-reading the credential after the upstream's 401 failed", slog.String("credential", c.id),
				slog.String("error", c.scrub(err)))
		}
		return held, false
	}
	if next.VersionID == held.VersionID {
		c.fruitless.version, c.fruitless.at = held.VersionID, time.Now()
		return held, false
	}
	if c.swap(held, &next) {
		c.log.Info("picked up the credential's new version after the upstream's 401", slog.String("credential", c.id),
			slog.String("version", next.VersionID), slog.String("fingerprint", next.Fingerprint))
		return &next, true
	}
	return c.cur.Load(), true
}

// scrub renders err without any value the proxy holds.
func (c *cred) scrub(err error) string {
	msg := err.Error()
	if c.red != nil {
		msg = c.red.Scrub(msg)
	}
	if cur := c.cur.Load(); cur != nil {
		msg = secret.ScrubError(errors.New(msg), cur.Value).Error()
	}
	return msg
}
