package api

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/store"
)

// hub tells long polls when a credential's current version changes. One
// goroutine polls, once per interval, the current versions of every
// credential someone waits on, in one query: the store sees one read per
// interval however many clients wait.
type hub struct {
	st     store.Store
	poll   time.Duration
	logger *slog.Logger
	// changed is told of each credential whose version the poller saw
	// change.
	changed func(id string)

	mu      sync.Mutex
	watched map[string]*watchEntry
	stop    context.CancelFunc
	done    chan struct{}
	// stopped is closed by close: waiters give up.
	stopped chan struct{}
	// polls counts the store queries of the poller.
	polls atomic.Int64
}

type watchEntry struct {
	// version is the current version last seen ("" for none; delivery.GoneVersion once
	// the credential is gone).
	version string
	ch      chan struct{}
	waiters int
}

func newHub(st store.Store, poll time.Duration, logger *slog.Logger, changed func(id string)) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{st: st, poll: poll, logger: logger, changed: changed, watched: map[string]*watchEntry{},
		stop: cancel, done: make(chan struct{}), stopped: make(chan struct{})}
	go h.run(ctx)
	return h
}

// subscribe registers a waiter on credential id, which it saw at version
// seen. It returns a channel closed at the next change and the version the
// hub knows: when that is not seen, the change already happened (the
// caller reads again).
func (h *hub) subscribe(id, seen string) (<-chan struct{}, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.watched[id]
	if !ok {
		e = &watchEntry{version: seen, ch: make(chan struct{})}
		h.watched[id] = e
	}
	e.waiters++
	return e.ch, e.version
}

func (h *hub) unsubscribe(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.watched[id]; ok {
		if e.waiters--; e.waiters <= 0 {
			delete(h.watched, id)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	select {
	case <-h.stopped:
	default:
		close(h.stopped)
	}
	h.mu.Unlock()
	h.stop()
	<-h.done
}

func (h *hub) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		ids := slices.Sorted(maps.Keys(h.watched))
		h.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		h.polls.Add(1)
		now, err := delivery.CurrentVersions(ctx, h.st, ids, max(h.poll, 5*time.Second))
		if err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("polling watched credentials failed; trying again", slog.Any("error", err))
			}
			continue
		}
		h.mu.Lock()
		for id, v := range now {
			if e, ok := h.watched[id]; ok && e.version != v {
				h.changed(id)
				close(e.ch)
				e.ch, e.version = make(chan struct{}), v
			}
		}
		h.mu.Unlock()
	}
}
