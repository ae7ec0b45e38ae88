package delivery

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// poller tells a Local source's watches when a credential's current
// version changes. One goroutine, running while anything is watched, reads
// the current versions of every watched credential in one query per
// interval: a process watching many credentials (exec with several --env,
// a proxy with several upstreams) costs the store one read a second, not
// one per credential.
type poller struct {
	st     store.Reader
	every  time.Duration
	logger *slog.Logger

	mu      sync.Mutex
	watched map[string]*pollEntry
	// stop ends the running goroutine (nil when none runs).
	stop chan struct{}
	// polls counts the store queries.
	polls atomic.Int64
}

type pollEntry struct {
	// version is the current version last seen ("" for none; GoneVersion
	// once the credential is gone).
	version string
	ch      chan struct{}
	waiters int
}

// GoneVersion is what CurrentVersions gives for a credential the store no
// longer lists (no version id can be it).
const GoneVersion = "\x00"

// CurrentVersions reads, in one query bounded by timeout, the current
// version id of each of ids: "" for a credential with none, GoneVersion
// for one the store does not list. Watch pollers (the Local source's, the
// consume API's) compare it with what they last saw.
func CurrentVersions(ctx context.Context, st store.Reader, ids []string, timeout time.Duration) (map[string]string, error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	creds, err := st.ListCredentials(qctx, store.CredentialFilter{IDs: ids})
	if err != nil {
		return nil, err
	}
	now := make(map[string]string, len(ids))
	for _, id := range ids {
		now[id] = GoneVersion
	}
	for _, c := range creds {
		now[c.ID] = ""
		if c.Current != nil {
			now[c.ID] = c.Current.ID
		}
	}
	return now, nil
}

func newPoller(st store.Reader, every time.Duration, logger *slog.Logger) *poller {
	return &poller{st: st, every: every, logger: logger, watched: map[string]*pollEntry{}}
}

// subscribe registers a watch of credential id, which its caller read at
// version seen. It returns a channel closed at the next change after seen.
// Call unsubscribe once done with it.
func (p *poller) subscribe(id, seen string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.watched[id]
	switch {
	case !ok:
		e = &pollEntry{version: seen, ch: make(chan struct{})}
		p.watched[id] = e
	case e.version != seen:
		// The caller read another version than the poller knows: wake
		// the other watches to read again, and wait from seen on.
		close(e.ch)
		e.ch, e.version = make(chan struct{}), seen
	}
	e.waiters++
	if p.stop == nil {
		p.stop = make(chan struct{})
		go p.run(p.stop)
	}
	return e.ch
}

func (p *poller) unsubscribe(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.watched[id]; ok {
		if e.waiters--; e.waiters <= 0 {
			delete(p.watched, id)
		}
	}
	if len(p.watched) == 0 && p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
}

func (p *poller) run(stop chan struct{}) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		ids := slices.Sorted(maps.Keys(p.watched))
		p.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		p.polls.Add(1)
		now, err := CurrentVersions(ctx, p.st, ids, max(p.every, 5*time.Second))
		if err != nil {
			if ctx.Err() == nil {
				p.logger.Warn("polling the watched credentials failed; trying again", slog.Any("error", err))
			}
			continue
		}
		p.mu.Lock()
		for id, v := range now {
			if e, ok := p.watched[id]; ok && e.version != v {
				close(e.ch)
				e.ch, e.version = make(chan struct{}), v
			}
		}
		p.mu.Unlock()
	}
}
