package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// DefaultBatch is how many events one seal transaction chains by default.
const DefaultBatch = 1000

// Sealer chains committed, unsealed audit events: it reads them in
// insertion order, gives each the next Seq after the last sealed event and
// its hash, and seals them (Tx.SealAuditEvents moves them from
// audit_pending into audit_events), one batch per transaction.
//
// One sealer should run at a time (rotator serve runs it on the River
// leader only), but several are safe by design rather than by locking:
// Seq is UNIQUE and SealAuditEvents only seals events that are still
// unsealed, so when two sealers chain the same head the second one's write
// fails with store.ErrConflict, its transaction rolls back, and it reads
// the new head and tries again. No event is ever chained twice or skipped.
//
// A Sealer is safe for concurrent use.
type Sealer struct {
	st     store.Store
	batch  int
	now    func() time.Time
	logger *slog.Logger

	mu sync.Mutex
	// head is the chain head after our last commit, valid when known.
	head  Head
	known bool
}

// Head is the last sealed event of the chain: its seq and hash. An empty
// chain's head is seq 0 with hash Genesis.
type Head struct {
	Seq  int64
	Hash string
}

// SealerOptions configure a Sealer.
type SealerOptions struct {
	// Batch is how many events one transaction seals (default DefaultBatch).
	Batch int
	// Now is the clock for SealedAt (time.Now when nil).
	Now func() time.Time
	// Logger receives conflict retries at debug level (discarded when nil).
	Logger *slog.Logger
}

// NewSealer returns a Sealer of st's audit log.
func NewSealer(st store.Store, opts SealerOptions) *Sealer {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sealer{st: st, batch: opts.Batch, now: opts.Now, logger: opts.Logger}
}

// maxConflicts bounds how often one batch is retried after losing to
// another sealer.
const maxConflicts = 10

// SealBatch seals up to one batch of events in one transaction and returns
// how many it sealed (0 when none were waiting). A conflict with another
// sealer is retried; any other error is returned.
func (s *Sealer) SealBatch(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		n, h, err := s.sealOnce(ctx)
		if err == nil {
			if n > 0 {
				s.head, s.known = h, true
			}
			return n, nil
		}
		s.known = false
		if !errors.Is(err, store.ErrConflict) || attempt >= maxConflicts {
			return 0, err
		}
		s.logger.DebugContext(ctx, "another sealer chained the same events; retrying", slog.Int("attempt", attempt))
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("sealing audit events: %w", context.Cause(ctx))
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
}

// Seal seals batches until no unsealed event is left or max batches were
// sealed (max <= 0: no bound), and returns how many events it sealed. Events
// committed while it runs may be sealed too.
func (s *Sealer) Seal(ctx context.Context, maxBatches int) (int, error) {
	total := 0
	for i := 0; maxBatches <= 0 || i < maxBatches; i++ {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("sealing audit events: %w", context.Cause(ctx))
		}
		n, err := s.SealBatch(ctx)
		total += n
		if err != nil {
			return total, err
		}
		if n < s.batch {
			break
		}
	}
	return total, nil
}

// Task returns a function for the engine's leader-only loop
// (rotation.RunnerOptions.LeaderTasks): each call seals at most maxBatches
// batches, so a large backlog is worked off over several calls without
// delaying the scheduler.
func (s *Sealer) Task(maxBatches int) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n, err := s.Seal(ctx, maxBatches)
		if n > 0 {
			s.logger.DebugContext(ctx, "sealed audit events", slog.Int("events", n))
		}
		return err
	}
}

// sealOnce runs one seal transaction and returns the count and new head.
func (s *Sealer) sealOnce(ctx context.Context) (int, Head, error) {
	var (
		n    int
		next Head
	)
	sealedAt := s.now().UTC().Truncate(time.Microsecond)
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		n, next = 0, Head{}
		h, err := s.currentHead(ctx, tx)
		if err != nil {
			return err
		}
		evs := make([]store.AuditEvent, 0, s.batch)
		err = tx.ScanAuditEvents(ctx, store.AuditFilter{Unsealed: true, Limit: s.batch}, func(ev store.AuditEvent) error {
			evs = append(evs, ev)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading unsealed audit events: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		var hs hasher
		prev, seq := h.Hash, h.Seq
		for i := range evs {
			seq++
			hash, err := hs.hash(prev, evs[i])
			if err != nil {
				return fmt.Errorf("sealing audit event %d: %w", evs[i].ID, err)
			}
			evs[i].Seq, evs[i].PrevHash, evs[i].Hash, evs[i].SealedAt = seq, prev, hash, sealedAt
			prev = hash
		}
		if err := tx.SealAuditEvents(ctx, evs); err != nil {
			return fmt.Errorf("sealing audit events at seq %d..%d: %w", h.Seq+1, seq, err)
		}
		n, next = len(evs), Head{Seq: seq, Hash: prev}
		return nil
	})
	return n, next, err
}

// currentHead returns the last sealed event's seq and hash (0 and Genesis
// for an empty chain). The cached head is checked with one indexed probe
// (is anything sealed after it?); otherwise the head is found by an
// exponential then binary search on "an event is sealed after seq n",
// about 2·log2(seq) probes, so a restart does not read the whole log.
func (s *Sealer) currentHead(ctx context.Context, r store.Reader) (Head, error) {
	if s.known {
		_, found, err := firstAfter(ctx, r, s.head.Seq)
		if err != nil {
			return Head{}, err
		}
		if !found {
			return s.head, nil
		}
	}
	return FindHead(ctx, r)
}

// FindHead returns the seq and hash of the last sealed event, or 0 and
// Genesis when nothing is sealed, in about 2·log2(seq) indexed reads.
func FindHead(ctx context.Context, r store.Reader) (Head, error) {
	first, found, err := firstAfter(ctx, r, 0)
	if err != nil {
		return Head{}, err
	}
	if !found {
		return Head{Hash: Genesis}, nil
	}
	// Invariant: an event is sealed after lo (best is the first one), and
	// none after hi (once hi is found).
	lo, best := int64(0), first
	hi := max(first.Seq, 1)
	for {
		ev, found, err := firstAfter(ctx, r, hi)
		if err != nil {
			return Head{}, err
		}
		if !found {
			break
		}
		lo, best = hi, ev
		hi = max(2*hi, ev.Seq)
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ev, found, err := firstAfter(ctx, r, mid)
		if err != nil {
			return Head{}, err
		}
		if found {
			lo, best = mid, ev
		} else {
			hi = mid
		}
	}
	// best is the first event sealed after lo, and nothing is sealed after
	// lo+1 = hi: best is the last event.
	return Head{Seq: best.Seq, Hash: best.Hash}, nil
}

// firstAfter returns the sealed event with the smallest seq > after.
func firstAfter(ctx context.Context, r store.Reader, after int64) (store.AuditEvent, bool, error) {
	var out store.AuditEvent
	found := false
	f := store.AuditFilter{AfterSeq: after, Limit: 1}
	err := r.ScanAuditEvents(ctx, f, func(ev store.AuditEvent) error {
		// With AfterSeq 0 the scan falls through to unsealed events.
		if ev.Seq > 0 {
			out, found = ev, true
		}
		return nil
	})
	if err != nil {
		return out, false, fmt.Errorf("reading the audit chain after seq %d: %w", after, err)
	}
	return out, found, nil
}
