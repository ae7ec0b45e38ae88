package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// ProblemKind says how the chain was broken.
type ProblemKind string

// Kinds of problems Verify reports.
const (
	// ProblemModified: an event's content or hash was changed after it was
	// sealed.
	ProblemModified ProblemKind = "modified"
	// ProblemDeleted: one or more sealed events are missing.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemInserted: an event was added to the chain after sealing (or a
	// seq appears twice).
	ProblemInserted ProblemKind = "inserted"
	// ProblemReordered: intact events are in the wrong chain order.
	ProblemReordered ProblemKind = "reordered"
)

// Problem locates the first break in the chain.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Seq is the chain position of the first bad event; for deleted events
	// it is the first missing position.
	Seq int64 `json:"seq"`
	// EventID is the first bad event's id; for deleted events, the id of
	// the event that follows the gap.
	EventID int64 `json:"event_id"`
	// Message says what is wrong, naming the events involved.
	Message string `json:"message"`
}

// Report is the outcome of Verify.
type Report struct {
	// OK is true when every checked event is intact and in place.
	OK bool `json:"ok"`
	// Checked counts the sealed events read until the first problem (all of
	// them when OK).
	Checked int64 `json:"checked"`
	// Unsealed counts events not yet chained (the sealer runs on the
	// service's leader); they are not covered by the check.
	Unsealed int64 `json:"unsealed"`
	// FirstSeq and HeadSeq are the first and last seq checked; HeadHash is
	// the hash at HeadSeq. Record the head outside the database to detect
	// a rewritten or truncated history later.
	FirstSeq int64  `json:"first_seq"`
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// Since is the lower bound asked for, if any.
	Since *time.Time `json:"since,omitempty"`
	// Problem is the first break found (nil when OK).
	Problem *Problem `json:"problem"`
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Since starts the check at the first sealed event that occurred at or
	// after Since, trusting its prev_hash; zero checks the whole chain from
	// seq 1.
	Since time.Time
	// Visit, when set, is called with every event Verify reads: the sealed
	// events in chain order (all of them, even after a problem), then the
	// unsealed ones. The report uses it to collect policy events in the
	// same pass. With Parallel > 1 it is called from several goroutines
	// (never at once) and not in chain order.
	Visit func(store.AuditEvent)
	// Parallel splits the chain into this many ranges of seq checked at
	// once, each on its own connection, and then checks that the ranges
	// join up; worth it on Postgres, whose pool serves the ranges in
	// parallel (SQLite's single connection serializes them). If any range
	// is broken, the chain is verified again sequentially to locate and
	// classify the first problem exactly as a sequential check would. 0 or
	// 1: sequential.
	Parallel int
}

// link is what Verify remembers of an intact event.
type link struct {
	seq    int64
	id     int64
	action string
	hash   string
}

// verifier checks a stream of sealed events in seq order, holding one
// event back so that a break can be told apart by the event after it.
type verifier struct {
	ctx  context.Context
	r    store.Reader
	rep  *Report
	hs   hasher
	from int64 // the first seq expected (1, or the since anchor)

	started      bool
	prev, prev2  *link  // the last two intact events (prev2 before prev)
	expected     string // the hash the next event must link to
	pending      *store.AuditEvent
	problemFound bool
}

var errStop = errors.New("stop scanning")

// Verify streams the sealed audit events in chain order, recomputes each
// hash and link, and reports the first break precisely: a modified event
// (its hash no longer matches its content), deleted events (a seq gap, or
// a link to an event that is not in the log), an inserted event (the next
// event links past it, or a seq is used twice) or reordered events (an
// intact event links to one that is elsewhere in the chain). It also
// counts unsealed events. A broken chain is reported in Report, not as an
// error; errors are failures to read.
//
// Verify reads in pages and keeps O(1) state, so it runs in constant memory
// however long the log; locating a reordering takes a second pass.
func Verify(ctx context.Context, r store.Reader, opts VerifyOptions) (Report, error) {
	if opts.Parallel > 1 {
		rep, ok, err := verifyParallel(ctx, r, opts)
		if err != nil || ok {
			return rep, err
		}
		// Broken: locate and classify the problem sequentially (every
		// event was visited already).
		opts.Visit, opts.Parallel = nil, 0
		unsealed := rep.Unsealed
		rep, err = Verify(ctx, r, opts)
		rep.Unsealed = unsealed
		return rep, err
	}
	rep := Report{HeadHash: Genesis}
	v := &verifier{ctx: ctx, r: r, rep: &rep, from: 1}
	after := int64(0)
	if !opts.Since.IsZero() {
		since := opts.Since.UTC()
		rep.Since = &since
		first, found, err := firstSince(ctx, r, since)
		if err != nil {
			return rep, err
		}
		if !found {
			n, err := countUnsealed(ctx, r, opts.Visit)
			rep.Unsealed, rep.OK, rep.HeadHash = n, true, ""
			return rep, err
		}
		after, v.from = first-1, first
	}
	err := r.ScanAuditEvents(ctx, store.AuditFilter{AfterSeq: after}, func(ev store.AuditEvent) error {
		if opts.Visit != nil {
			opts.Visit(ev)
		}
		if ev.Seq == 0 {
			rep.Unsealed++
			return nil
		}
		if v.problemFound {
			if opts.Visit == nil {
				return errStop
			}
			return nil
		}
		err := v.push(&ev)
		if errors.Is(err, errStop) && opts.Visit != nil {
			return nil // keep visiting
		}
		return err
	})
	if err != nil && !errors.Is(err, errStop) {
		return rep, fmt.Errorf("verifying the audit chain: %w", err)
	}
	if !v.problemFound {
		if err := v.push(nil); err != nil && !errors.Is(err, errStop) {
			return rep, fmt.Errorf("verifying the audit chain: %w", err)
		}
	}
	if after > 0 {
		n, err := countUnsealed(ctx, r, opts.Visit)
		if err != nil {
			return rep, err
		}
		rep.Unsealed = n
	}
	rep.OK = rep.Problem == nil
	return rep, nil
}

// firstSince returns the seq of the first sealed event (in chain order)
// that occurred at or after since.
func firstSince(ctx context.Context, r store.Reader, since time.Time) (int64, bool, error) {
	var seq int64
	err := r.ScanAuditEvents(ctx, store.AuditFilter{Since: since, Limit: 1}, func(ev store.AuditEvent) error {
		seq = ev.Seq
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("finding the first audit event since %s: %w", since.Format(time.RFC3339), err)
	}
	return seq, seq > 0, nil
}

func countUnsealed(ctx context.Context, r store.Reader, visit func(store.AuditEvent)) (int64, error) {
	var n int64
	err := r.ScanAuditEvents(ctx, store.AuditFilter{Unsealed: true}, func(ev store.AuditEvent) error {
		n++
		if visit != nil {
			visit(ev)
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("counting unsealed audit events: %w", err)
	}
	return n, nil
}

// push checks the pending event with ev as its successor (nil at the end)
// and makes ev the pending one.
func (v *verifier) push(ev *store.AuditEvent) error {
	cur := v.pending
	v.pending = ev
	if cur == nil {
		return nil
	}
	if err := v.check(cur, ev); err != nil {
		return err
	}
	if v.problemFound {
		return errStop
	}
	return nil
}

func (v *verifier) fail(kind ProblemKind, seq, id int64, format string, args ...any) {
	v.problemFound = true
	v.rep.Problem = &Problem{Kind: kind, Seq: seq, EventID: id, Message: fmt.Sprintf(format, args...)}
}

// seqRange says which positions are missing.
func seqRange(from, to int64) string {
	if from == to {
		return fmt.Sprintf("the event at seq %d was", from)
	}
	return fmt.Sprintf("the %d events at seq %d..%d were", to-from+1, from, to)
}

func describe(l *link) string {
	return fmt.Sprintf("seq %d (event %d, %s)", l.seq, l.id, l.action)
}

func describeEvent(ev *store.AuditEvent) string {
	return fmt.Sprintf("seq %d (event %d, %s)", ev.Seq, ev.ID, ev.Action)
}

// check verifies cur, given the event after it (nil if none).
func (v *verifier) check(cur, next *store.AuditEvent) error {
	if !v.started {
		v.started = true
		v.rep.FirstSeq = cur.Seq
		if v.from == 1 {
			v.expected = Genesis
			if cur.Seq != 1 {
				v.fail(ProblemDeleted, 1, cur.ID, "%s deleted: the chain starts at %s", seqRange(1, cur.Seq-1), describeEvent(cur))
				return nil
			}
		} else {
			// Checking from a point in time: trust where the first event
			// links to.
			v.expected = cur.PrevHash
		}
	} else {
		switch {
		case cur.Seq == v.prev.seq:
			v.fail(ProblemInserted, cur.Seq, cur.ID, "seq %d is used twice, by events %d and %d: one of them was inserted", cur.Seq, v.prev.id, cur.ID)
			return nil
		case cur.Seq > v.prev.seq+1:
			v.fail(ProblemDeleted, v.prev.seq+1, cur.ID, "%s deleted: the chain jumps from %s to %s", seqRange(v.prev.seq+1, cur.Seq-1), describe(v.prev), describeEvent(cur))
			return nil
		case cur.Seq < v.prev.seq:
			v.fail(ProblemReordered, cur.Seq, cur.ID, "%s comes after seq %d", describeEvent(cur), v.prev.seq)
			return nil
		}
	}
	self, err := v.hs.hash(cur.PrevHash, *cur)
	if err != nil {
		// Data that is not JSON can only come from outside rotator.
		v.fail(ProblemModified, cur.Seq, cur.ID, "%s was modified: its data is not valid JSON (%v)", describeEvent(cur), err)
		return nil
	}
	selfOK := self == cur.Hash
	linked := cur.PrevHash == v.expected
	switch {
	case linked && selfOK:
		v.advance(cur)
		return nil
	case linked:
		if next != nil && next.PrevHash == v.expected && next.PrevHash != cur.Hash {
			v.fail(ProblemInserted, cur.Seq, cur.ID, "%s was inserted: its hash does not match its content and the next event, %s, links past it", describeEvent(cur), describeEvent(next))
			return nil
		}
		if next == nil {
			v.fail(ProblemModified, cur.Seq, cur.ID, "%s, the last event, does not match its hash: it was modified, or appended by hand", describeEvent(cur))
			return nil
		}
		v.fail(ProblemModified, cur.Seq, cur.ID, "%s was modified: its content no longer matches its hash", describeEvent(cur))
		return nil
	case selfOK:
		return v.misplaced(cur)
	}
	// Neither its hash nor its link is right.
	if next != nil && next.PrevHash == v.expected {
		v.fail(ProblemInserted, cur.Seq, cur.ID, "%s was inserted: it does not link to %s and the next event, %s, links past it", describeEvent(cur), v.prevText(), describeEvent(next))
		return nil
	}
	v.fail(ProblemModified, cur.Seq, cur.ID, "%s was modified: its content no longer matches its hash and its prev_hash does not match %s", describeEvent(cur), v.prevText())
	return nil
}

func (v *verifier) prevText() string {
	if v.prev == nil {
		if v.from == 1 {
			return "the start of the chain"
		}
		return "the event before it"
	}
	return describe(v.prev)
}

func (v *verifier) advance(cur *store.AuditEvent) {
	v.prev2, v.prev = v.prev, &link{seq: cur.Seq, id: cur.ID, action: cur.Action, hash: cur.Hash}
	v.expected = cur.Hash
	v.rep.Checked++
	v.rep.HeadSeq, v.rep.HeadHash = cur.Seq, cur.Hash
}

// misplaced handles an intact event (its hash matches its content) that
// does not link to the event before it.
func (v *verifier) misplaced(cur *store.AuditEvent) error {
	if v.prev2 != nil && cur.PrevHash == v.prev2.hash {
		// It links to the event two back: the one in between was inserted
		// (with a hash an attacker computed).
		v.fail(ProblemInserted, v.prev.seq, v.prev.id, "%s was inserted: %s links past it to %s", describe(v.prev), describeEvent(cur), describe(v.prev2))
		return nil
	}
	target, err := v.findByHash(cur.PrevHash)
	if err != nil {
		return err
	}
	if target != nil {
		where := "after " + v.prevText()
		if v.prev == nil && v.from == 1 {
			where = "at the start of the chain"
		}
		v.fail(ProblemReordered, cur.Seq, cur.ID, "events were reordered: %s links to %s but sits %s", describeEvent(cur), describeEvent(target), where)
		return nil
	}
	if v.prev == nil {
		v.fail(ProblemDeleted, cur.Seq, cur.ID, "%s links to an event that is not in the log: the events before it were deleted", describeEvent(cur))
		return nil
	}
	v.fail(ProblemDeleted, v.prev.seq+1, cur.ID, "the chain breaks between %s and %s, which links to an event that is not in the log: an event between them was deleted (and later seqs renumbered), or %s was modified and re-hashed",
		describe(v.prev), describeEvent(cur), describe(v.prev))
	return nil
}

// findByHash scans the chain for the sealed event whose hash is h.
func (v *verifier) findByHash(h string) (*store.AuditEvent, error) {
	var found *store.AuditEvent
	err := v.r.ScanAuditEvents(v.ctx, store.AuditFilter{AfterSeq: max(v.from-1, 0)}, func(ev store.AuditEvent) error {
		if ev.Seq > 0 && ev.Hash == h {
			found = &ev
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("locating the event with hash %s: %w", h, err)
	}
	return found, nil
}
