package api

import (
	"context"
	"errors"
	"log/slog"
	"maps"
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
//
// An event may carry a check (recordChecked): the transaction that writes
// it first reads the credential, and writes the event only if the version
// read is still the credential's current one, with the labels it was
// authorised by. The reads of a batch are one query, so a burst of cached
// reads costs one credential query and one insert per transaction, not a
// query each.
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
	ev    store.AuditEvent
	check *versionCheck
	done  chan recorded
}

// versionCheck is what a read served from the cache assumed: credential
// CredentialID's current version is VersionID and its labels are Labels.
type versionCheck struct {
	CredentialID string
	VersionID    string
	Labels       map[string]string
}

// recorded is the outcome of one event: its error, and for a checked
// event the credential as the transaction read it.
type recorded struct {
	err   error
	fresh store.Credential
}

// errStale: a checked event's credential is no longer at the version (or
// with the labels) the check names, or is gone; the event was not written.
var errStale = errors.New("the cached version is not current")

// postgresWriters is how many transactions of audit events the recorder
// runs at once on Postgres. A transaction spends most of its time waiting
// for the server, so one writer alone leaves the readers waiting in line;
// SQLite has one writer at a time anyway.
const postgresWriters = 4

func newRecorder(st store.Store, logger *slog.Logger) *recorder {
	r := &recorder{st: st, logger: logger, kick: make(chan struct{}, 1), done: make(chan struct{})}
	writers := 1
	if st.Dialect() == store.DialectPostgres {
		writers = postgresWriters
	}
	var wg sync.WaitGroup
	for range writers {
		wg.Go(r.run)
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return r
}

var errRecorderClosed = errors.New("the service is stopping")

// record writes ev and returns when it is committed (or failed).
func (r *recorder) record(ctx context.Context, ev store.AuditEvent) error {
	_, err := r.submit(ctx, ev, nil)
	return err
}

// recordChecked writes ev if, in the transaction that writes it, the
// credential is as check says; it returns the credential read there. When
// it is not, nothing is written and the error is errStale.
func (r *recorder) recordChecked(ctx context.Context, ev store.AuditEvent, check versionCheck) (store.Credential, error) {
	return r.submit(ctx, ev, &check)
}

func (r *recorder) submit(ctx context.Context, ev store.AuditEvent, check *versionCheck) (store.Credential, error) {
	done := make(chan recorded, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return store.Credential{}, errRecorderClosed
	}
	r.pending = append(r.pending, pendingEvent{ev: ev, check: check, done: done})
	select {
	case r.kick <- struct{}{}:
	default: // a kick is pending: the writer will take this event too
	}
	r.mu.Unlock()
	select {
	case res := <-done:
		return res.fresh, res.err
	case <-ctx.Done():
		// The event may still be written; the value is not sent.
		return store.Credential{}, ctx.Err()
	}
}

func (r *recorder) run() {
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
		results := make([]recorded, n)
		ctx := context.Background()
		// Pipelined: on Postgres the check's query is one round trip, the
		// insert and the commit another.
		err := r.st.InPipelinedTx(ctx, func(tx store.Tx) error {
			// The function may run again (a serialization failure): it
			// decides every event afresh.
			clear(results)
			if err := checkVersions(ctx, tx, batch, results); err != nil {
				return err
			}
			evs := make([]store.AuditEvent, 0, n)
			for i, p := range batch {
				if results[i].err == nil {
					evs = append(evs, p.ev)
				}
			}
			if len(evs) == 0 {
				return nil
			}
			return tx.InsertAuditEvents(ctx, evs...)
		})
		if err != nil {
			r.logger.Error("writing audit events failed", slog.Int("events", n), slog.Any("error", err))
		}
		for i, p := range batch {
			if err != nil {
				results[i] = recorded{err: err}
			}
			p.done <- results[i]
		}
	}
}

// checkVersions reads, in one query, the credentials of the batch's
// checked events, and marks stale those whose credential is gone, at
// another version or with other labels.
func checkVersions(ctx context.Context, tx store.Tx, batch []pendingEvent, results []recorded) error {
	var ids []string
	seen := map[string]bool{}
	for _, p := range batch {
		if p.check != nil && !seen[p.check.CredentialID] {
			seen[p.check.CredentialID] = true
			ids = append(ids, p.check.CredentialID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	creds, err := tx.ListCredentials(ctx, store.CredentialFilter{IDs: ids})
	if err != nil {
		return err
	}
	byID := make(map[string]store.Credential, len(creds))
	for _, c := range creds {
		byID[c.ID] = c
	}
	for i, p := range batch {
		if p.check == nil {
			continue
		}
		c, ok := byID[p.check.CredentialID]
		if !ok || c.Current == nil || c.Current.ID != p.check.VersionID || !maps.Equal(c.Labels, p.check.Labels) {
			results[i] = recorded{err: errStale}
			continue
		}
		results[i] = recorded{fresh: c}
	}
	return nil
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
