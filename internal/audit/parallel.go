package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rotatorhq/rotator/internal/store"
)

// minRange is the fewest events a range of a parallel check covers; a
// shorter chain is checked in fewer ranges. (The tests lower it.)
var minRange int64 = 20_000

// segment is what one worker of a parallel check found in its range.
type segment struct {
	from, to  int64 // seq range, inclusive; to < 0: open-ended
	count     int64
	firstSeq  int64
	firstPrev string
	lastSeq   int64
	lastHash  string
	broken    bool
}

// verifyParallel checks the chain in ranges at once. ok is true when every
// range is intact and the ranges join up; the report is then final. When
// ok is false the report only carries Unsealed, and the caller verifies
// again sequentially. Every event is visited exactly once either way.
func verifyParallel(ctx context.Context, r store.Reader, opts VerifyOptions) (Report, bool, error) {
	rep := Report{HeadHash: Genesis}
	start := int64(1)
	anchored := false // the first event's prev_hash is trusted (Since)
	if !opts.Since.IsZero() {
		since := opts.Since.UTC()
		rep.Since = &since
		first, found, err := firstSince(ctx, r, since)
		if err != nil {
			return rep, false, err
		}
		if !found {
			n, err := countUnsealed(ctx, r, opts.Visit)
			rep.Unsealed, rep.OK, rep.HeadHash = n, true, ""
			return rep, err == nil, err
		}
		start, anchored = first, true
	}
	head, err := FindHead(ctx, r)
	if err != nil {
		return rep, false, err
	}
	n := opts.Parallel
	if span := head.Seq - start + 1; span < int64(n)*minRange {
		n = int(max(span/minRange, 1))
	}
	segs := make([]segment, n)
	span := (head.Seq - start + 1) / int64(n)
	for i := range segs {
		segs[i].from = start + int64(i)*span
		segs[i].to = segs[i].from + span - 1
	}
	segs[n-1].to = -1 // events sealed since FindHead belong to the last range

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // serializes Visit
		errs  = make([]error, n)
		visit func(store.AuditEvent)
	)
	if opts.Visit != nil {
		visit = func(ev store.AuditEvent) {
			mu.Lock()
			defer mu.Unlock()
			opts.Visit(ev)
		}
	}
	for i := range segs {
		wg.Go(func() { errs[i] = checkRange(ctx, r, &segs[i], visit) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return rep, false, fmt.Errorf("verifying the audit chain: %w", err)
	}
	if rep.Unsealed, err = countUnsealed(ctx, r, visit); err != nil {
		return rep, false, err
	}
	// The ranges must join up: consecutive seqs, each linking to the last
	// hash of the one before.
	expectSeq, expectPrev := start, Genesis
	first := true
	for _, sg := range segs {
		if sg.broken {
			return rep, false, nil
		}
		if sg.count == 0 {
			continue
		}
		if first && anchored {
			expectPrev = sg.firstPrev
		}
		if sg.firstSeq != expectSeq || sg.firstPrev != expectPrev {
			return rep, false, nil
		}
		if first {
			rep.FirstSeq = sg.firstSeq
			first = false
		}
		expectSeq, expectPrev = sg.lastSeq+1, sg.lastHash
		rep.Checked += sg.count
		rep.HeadSeq, rep.HeadHash = sg.lastSeq, sg.lastHash
	}
	rep.OK = true
	return rep, true, nil
}

// checkRange checks the events of one range: consecutive seqs, each
// linking to the one before and matching its own hash. On the first
// problem it marks the range broken and, unless it must visit every event,
// stops.
func checkRange(ctx context.Context, r store.Reader, sg *segment, visit func(store.AuditEvent)) error {
	var hs hasher
	err := r.ScanAuditEvents(ctx, store.AuditFilter{AfterSeq: sg.from - 1}, func(ev store.AuditEvent) error {
		if ev.Seq == 0 {
			return errStop // unsealed events follow when from is 1; counted apart
		}
		if sg.to >= 0 && ev.Seq > sg.to {
			return errStop
		}
		if visit != nil {
			visit(ev)
		}
		if sg.broken {
			if visit == nil {
				return errStop
			}
			return nil
		}
		if sg.count == 0 {
			sg.firstSeq, sg.firstPrev = ev.Seq, ev.PrevHash
		} else if ev.Seq != sg.lastSeq+1 || ev.PrevHash != sg.lastHash {
			sg.broken = true
			return nil
		}
		h, err := hs.hash(ev.PrevHash, ev)
		if err != nil || h != ev.Hash {
			sg.broken = true
			return nil
		}
		sg.count++
		sg.lastSeq, sg.lastHash = ev.Seq, ev.Hash
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("seq %d..: %w", sg.from, err)
	}
	return nil
}
