package api

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
// it writes the event only if the credential's current version is still
// the one the check names, with the labels it was authorised by. Where
// the store tracks changes (store.ChangeTracker), the transaction first
// takes the store's ChangeMark: a check whose cache entry was confirmed
// under the same mark needs no read, since nothing that could change a
// credential committed since (on Postgres, where the mark sees only this
// process's commits, only if that confirmation is also at most maxStale
// old). The other checks of a batch are one credential query, so a burst
// of cached reads costs at most one query and one insert per
// transaction.
type recorder struct {
	st     store.Store
	logger *slog.Logger
	// tracker is st's change tracking (nil: every check reads the
	// credential); exact is tracker.ChangesExact().
	tracker store.ChangeTracker
	exact   bool
	// maxStale bounds the age of a confirmation on a store whose marks
	// miss other processes' commits (<= 0: read every time).
	maxStale time.Duration

	// txs, events and reads count the transactions, the events they
	// committed or refused, and the credential queries of checks.
	txs, events, reads atomic.Int64

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
// Confirmed, Mark and At are those of the cache entry (cachedValue).
type versionCheck struct {
	CredentialID string
	VersionID    string
	Labels       map[string]string
	Confirmed    bool
	Mark         store.ChangeMark
	At           time.Time
}

// recorded is the outcome of one event: its error, and for a checked
// event that read the credential, the credential as the transaction read
// it, with the mark and time taken before that read (fresh is nil when
// the check needed no read).
type recorded struct {
	err   error
	fresh *store.Credential
	mark  store.ChangeMark
	at    time.Time
}

// errStale: a checked event's credential is no longer at the version (or
// with the labels) the check names, or is gone; the event was not written.
var errStale = errors.New("the cached version is not current")

// postgresWriters is how many transactions of audit events the recorder
// runs at once on Postgres. A transaction spends most of its time waiting
// for the server, so one writer alone leaves the readers waiting in line;
// SQLite has one writer at a time anyway.
const postgresWriters = 4

func newRecorder(st store.Store, logger *slog.Logger, maxStale time.Duration) *recorder {
	r := &recorder{st: st, logger: logger, maxStale: maxStale, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if t, ok := st.(store.ChangeTracker); ok {
		r.tracker, r.exact = t, t.ChangesExact()
	}
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
// credential is as check says; the result holds the credential if it was
// read there. When it is not as check says, nothing is written and the
// error is errStale.
func (r *recorder) recordChecked(ctx context.Context, ev store.AuditEvent, check versionCheck) (recorded, error) {
	return r.submit(ctx, ev, &check)
}

func (r *recorder) submit(ctx context.Context, ev store.AuditEvent, check *versionCheck) (recorded, error) {
	done := make(chan recorded, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return recorded{}, errRecorderClosed
	}
	r.pending = append(r.pending, pendingEvent{ev: ev, check: check, done: done})
	select {
	case r.kick <- struct{}{}:
	default: // a kick is pending: the writer will take this event too
	}
	r.mu.Unlock()
	select {
	case res := <-done:
		return res, res.err
	case <-ctx.Done():
		// The event may still be written; the value is not sent.
		return recorded{}, ctx.Err()
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
		// Let the goroutines that are ready to run (requests on their way
		// to submit) go first, so that they join this transaction rather
		// than each wait for one of its own: with 16 concurrent readers
		// this took SQLite's transactions from ~2 events to ~5.5, at the
		// cost of one yield (nothing to wait for when no one else runs).
		runtime.Gosched()
		r.mu.Lock()
		n := min(len(r.pending), maxBatch)
		batch := r.pending[:n:n]
		r.pending = r.pending[n:]
		r.mu.Unlock()
		if n == 0 {
			return
		}
		results := make([]recorded, n)
		r.txs.Add(1)
		r.events.Add(int64(n))
		ctx := context.Background()
		var err error
		// Pipelined: on Postgres a check's query is one round trip, the
		// insert and the commit another (or the only one).
		if r.tracker != nil {
			err = r.tracker.InAuditTx(ctx, func(tx store.AuditTx) error { return r.write(ctx, tx, batch, results) })
		} else {
			err = r.st.InPipelinedTx(ctx, func(tx store.Tx) error { return r.write(ctx, auditTx{tx}, batch, results) })
		}
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

// auditTx is a store.Tx as a store.AuditTx, for a store without change
// tracking (the recorder never asks it for a mark).
type auditTx struct{ store.Tx }

func (auditTx) ChangeMark(context.Context) (store.ChangeMark, error) {
	return store.ChangeMark{}, errors.New("the store tracks no changes")
}

// write is the transaction of a batch: it decides each checked event
// (reading the credentials of the checks that need it, in one query) and
// inserts the events that stand. It may run again (a serialization
// failure): it decides every event afresh.
func (r *recorder) write(ctx context.Context, tx store.AuditTx, batch []pendingEvent, results []recorded) error {
	clear(results)
	var mark store.ChangeMark
	var at time.Time
	marked := false
	if r.tracker != nil && slices.ContainsFunc(batch, func(p pendingEvent) bool { return p.check != nil }) {
		var err error
		if mark, err = tx.ChangeMark(ctx); err != nil {
			return err
		}
		at, marked = time.Now(), true
	}
	// A check needs a read unless its entry was confirmed under this very
	// mark (and, where the mark misses other processes, recently enough).
	needsRead := func(c *versionCheck) bool {
		return !marked || !c.Confirmed || c.Mark != mark ||
			(!r.exact && (r.maxStale <= 0 || at.Sub(c.At) > r.maxStale))
	}
	read, err := checkVersions(ctx, tx, batch, results, needsRead)
	if err != nil {
		return err
	}
	if read {
		r.reads.Add(1)
	}
	for i := range results {
		if results[i].fresh != nil {
			results[i].mark, results[i].at = mark, at // zero when not marked
		}
	}
	evs := make([]store.AuditEvent, 0, len(batch))
	for i, p := range batch {
		if results[i].err == nil {
			evs = append(evs, p.ev)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	return tx.InsertAuditEvents(ctx, evs...)
}

// checkVersions reads, in one query, the credentials of the batch's
// checked events that needsRead selects, and marks stale those whose
// credential is gone, at another version or with other labels. A checked
// event that needs no read stands as it is (fresh nil). read tells whether
// it queried.
func checkVersions(ctx context.Context, tx store.Reader, batch []pendingEvent, results []recorded, needsRead func(*versionCheck) bool) (read bool, err error) {
	var ids []string
	seen := map[string]bool{}
	for _, p := range batch {
		if p.check != nil && needsRead(p.check) && !seen[p.check.CredentialID] {
			seen[p.check.CredentialID] = true
			ids = append(ids, p.check.CredentialID)
		}
	}
	if len(ids) == 0 {
		return false, nil
	}
	creds, err := tx.ListCredentials(ctx, store.CredentialFilter{IDs: ids})
	if err != nil {
		return true, err
	}
	byID := make(map[string]store.Credential, len(creds))
	for _, c := range creds {
		byID[c.ID] = c
	}
	for i, p := range batch {
		if p.check == nil || !seen[p.check.CredentialID] {
			continue
		}
		c, ok := byID[p.check.CredentialID]
		if !ok || c.Current == nil || c.Current.ID != p.check.VersionID || !maps.Equal(c.Labels, p.check.Labels) {
			results[i] = recorded{err: errStale}
			continue
		}
		results[i] = recorded{fresh: &c}
	}
	return true, nil
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
