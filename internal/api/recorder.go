package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/rotatorhq/rotator/internal/store"
)

// maxBatch bounds the audit events one transaction of the recorder writes.
const maxBatch = 512

// recorder writes the API's audit events with group commit: requests that
// arrive while a transaction is running are written together in the next
// one, so a burst of reads costs a few transactions, not one each. Each
// caller waits until its event is committed (a value is never handed out
// unrecorded). The sealer of the running service chains them.
type recorder struct {
	st     store.Store
	logger *slog.Logger

	mu      sync.Mutex
	pending []pendingEvent
	closed  bool
	kick    chan struct{}
	done    chan struct{}
}

type pendingEvent struct {
	ev   store.AuditEvent
	done chan error
}

func newRecorder(st store.Store, logger *slog.Logger) *recorder {
	r := &recorder{st: st, logger: logger, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

var errRecorderClosed = errors.New("the service is stopping")

// record writes ev and returns when it is committed (or failed).
func (r *recorder) record(ctx context.Context, ev store.AuditEvent) error {
	done := make(chan error, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errRecorderClosed
	}
	r.pending = append(r.pending, pendingEvent{ev: ev, done: done})
	select {
	case r.kick <- struct{}{}:
	default: // a kick is pending: the writer will take this event too
	}
	r.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The event may still be written; the value is not sent.
		return ctx.Err()
	}
}

func (r *recorder) run() {
	defer close(r.done)
	for range r.kick {
		r.drain()
	}
	r.drain()
}

// drain writes pending events, a batch per transaction, until none is left.
func (r *recorder) drain() {
	for {
		r.mu.Lock()
		n := min(len(r.pending), maxBatch)
		batch := r.pending[:n:n]
		r.pending = r.pending[n:]
		r.mu.Unlock()
		if n == 0 {
			return
		}
		evs := make([]store.AuditEvent, n)
		for i, p := range batch {
			evs[i] = p.ev
		}
		ctx := context.Background()
		err := r.st.InTx(ctx, func(tx store.Tx) error { return tx.InsertAuditEvents(ctx, evs...) })
		if err != nil {
			r.logger.Error("writing audit events failed", slog.Int("events", n), slog.Any("error", err))
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

// close writes what is pending and stops.
func (r *recorder) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.kick)
	}
	r.mu.Unlock()
	<-r.done
}
