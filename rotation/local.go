package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Local executes runs in this process, without the job queue's workers:
// what the CLI does when no service runs on the database. It takes every
// run it executes to where the caller asked: through retries of failed
// attempts (new runs, after the engine's backoff) and, with WaitRetired,
// through the grace period to the retirement of the previous version.
//
// It holds a lease on each run it executes (Store.ClaimRuns), renewed while
// it works, so that a service started meanwhile leaves those runs alone
// until the lease ends; a Local that dies stops renewing, and its runs go
// back to the queue within LeaseTTL.
type Local struct {
	E *Engine
	// Concurrency is how many runs execute at once (default 50).
	Concurrency int
	// Deadline bounds the waiting: a retry or a retirement due after it is
	// left to the service (or to 'rotator runs resume').
	Deadline time.Time
	// WaitRetired waits through grace periods and retires previous
	// versions; otherwise a run is left at cut_over.
	WaitRetired bool
	// Retry starts a new run after a failed attempt, at the time the
	// engine's backoff sets, while the credential has attempts left.
	Retry bool
	// Progress receives what happens, for display; may be nil. It is
	// called from several goroutines, one at a time.
	Progress func(Progress)

	mu   sync.Mutex
	held map[string]bool
}

// LeaseTTL is how long a run stays leased to a Local without a renewal.
const LeaseTTL = 15 * time.Second

// ProgressKind names a Progress report.
type ProgressKind string

// Progress kinds.
const (
	// ProgressAttemptFailed: an attempt rolled back; At is the next one.
	ProgressAttemptFailed ProgressKind = "attempt_failed"
	// ProgressRetrying: the next attempt started (Run is the new run).
	ProgressRetrying ProgressKind = "retrying"
	// ProgressWaitingRetire: the run cut over; the previous version is
	// retired at At.
	ProgressWaitingRetire ProgressKind = "waiting_retire"
	// ProgressFinished: the credential's outcome is known.
	ProgressFinished ProgressKind = "finished"
	// ProgressTransient: executing hit an error outside the run (the
	// database); it is tried again at At.
	ProgressTransient ProgressKind = "transient"
)

// Progress is one report of a Local.
type Progress struct {
	Kind       ProgressKind
	Credential string
	Run        string
	State      State
	At         time.Time
	Error      string
	Attempt    int
}

// Result is where a credential's runs ended.
type Result struct {
	Credential string
	// Run is the credential's last run as it ended (or stands).
	Run store.Run
	// Attempts lists every run executed for the credential, in order.
	Attempts []string
	// NextAttempt is when a failed credential's next attempt is due (left
	// to the service or 'rotator runs resume'); zero when none is.
	NextAttempt time.Time
	// Err is an error outside the run (the database) that stopped it.
	Err error
}

func (l *Local) report(p Progress) {
	if l.Progress == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Progress(p)
}

// Drive executes the given runs to their end (see Local) and returns one
// Result per run, in order. Interrupted by ctx, it stops at committed
// steps, releases its leases and returns what it has.
func (l *Local) Drive(ctx context.Context, runIDs []string) []Result {
	if l.Concurrency <= 0 {
		l.Concurrency = 50
	}
	l.mu.Lock()
	l.held = map[string]bool{}
	l.mu.Unlock()
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		l.renew(renewCtx)
	}()
	defer func() {
		stopRenew()
		<-renewed
		if err := l.E.store.ReleaseRuns(context.WithoutCancel(ctx), l.E.executor, nil); err != nil {
			l.E.log.Warn("releasing run leases failed; they expire on their own", slog.String("error", err.Error()))
		}
	}()
	out := make([]Result, len(runIDs))
	sem := make(chan struct{}, l.Concurrency)
	var wg sync.WaitGroup
	for i, id := range runIDs {
		wg.Add(1)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Done()
			out[i] = l.current(context.WithoutCancel(ctx), id, ctx.Err())
			continue
		}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = l.drive(ctx, id)
		}()
	}
	wg.Wait()
	return out
}

// current returns a run as it stands, for a Result.
func (l *Local) current(ctx context.Context, id string, err error) Result {
	r, gerr := l.E.store.GetRun(ctx, id)
	if gerr != nil && err == nil {
		err = gerr
	}
	return Result{Credential: r.CredentialID, Run: r, Attempts: []string{id}, Err: err}
}

func (l *Local) hold(id string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.held[id] = true
	} else {
		delete(l.held, id)
	}
}

// renew extends the leases of the runs being executed until ctx ends.
func (l *Local) renew(ctx context.Context) {
	t := time.NewTicker(LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		ids := make([]string, 0, len(l.held))
		for id := range l.held {
			ids = append(ids, id)
		}
		l.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		now := l.E.now()
		if _, err := l.E.store.ClaimRuns(ctx, ids, l.E.executor, now, now.Add(LeaseTTL)); err != nil && ctx.Err() == nil {
			l.E.log.Warn("renewing run leases failed", slog.String("error", err.Error()))
		}
	}
}

// sleepUntil waits until t or ctx's end; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// drive takes one credential's run (and its retries) to the end.
func (l *Local) drive(ctx context.Context, id string) Result {
	e := l.E
	res := Result{Attempts: []string{id}}
	transient := 0
	for {
		now := e.now()
		claimed, err := e.store.ClaimRuns(ctx, []string{id}, e.executor, now, now.Add(LeaseTTL))
		if err == nil && len(claimed) == 0 {
			// Another process holds the lease, or the run ended: follow it.
			r, err := e.store.GetRun(ctx, id)
			if err != nil {
				res.Err = err
				return l.finish(ctx, res, id)
			}
			if State(r.State).Terminal() {
				return l.afterEnd(ctx, res, r)
			}
			if !sleepUntil(ctx, time.Now().Add(time.Second)) {
				res.Err = ctx.Err()
				return l.finish(ctx, res, id)
			}
			continue
		}
		var outcome Outcome
		var at time.Time
		if err == nil {
			l.hold(id, true)
			outcome, at, err = e.Execute(ctx, id)
		}
		if err != nil {
			l.hold(id, false)
			if ctx.Err() != nil {
				res.Err = ctx.Err()
				return l.finish(context.WithoutCancel(ctx), res, id)
			}
			transient++
			next := time.Now().Add(min(time.Duration(1<<min(transient, 5))*time.Second, 30*time.Second))
			if transient > 8 || next.After(l.Deadline) {
				res.Err = err
				return l.finish(ctx, res, id)
			}
			l.report(Progress{Kind: ProgressTransient, Run: id, At: next, Error: e.opts.Redactor.Scrub(err.Error())})
			if !sleepUntil(ctx, next) {
				res.Err = ctx.Err()
				return l.finish(context.WithoutCancel(ctx), res, id)
			}
			continue
		}
		transient = 0
		switch outcome {
		case RetireLater:
			r, _ := e.store.GetRun(context.WithoutCancel(ctx), id)
			l.report(Progress{Kind: ProgressWaitingRetire, Credential: r.CredentialID, Run: id, State: State(r.State), At: at})
			if l.WaitRetired && !at.After(l.Deadline) {
				if !sleepUntil(ctx, at) {
					res.Err = ctx.Err()
					return l.finish(context.WithoutCancel(ctx), res, id)
				}
				continue
			}
			return l.finish(ctx, res, id)
		case Leased:
			l.hold(id, false)
			if !sleepUntil(ctx, at) {
				res.Err = ctx.Err()
				return l.finish(context.WithoutCancel(ctx), res, id)
			}
			continue
		case Done:
		}
		l.hold(id, false)
		// The run's commits outlive a cancellation (execution.commit): read
		// how it ended even when ctx is cancelled meanwhile.
		r, err := e.store.GetRun(context.WithoutCancel(ctx), id)
		if err != nil {
			res.Err = err
			return l.finish(ctx, res, id)
		}
		if !State(r.State).Terminal() {
			// Another executor advanced it (ErrRunMoved): follow.
			if !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
				res.Err = ctx.Err()
				return l.finish(context.WithoutCancel(ctx), res, id)
			}
			continue
		}
		next, ok := l.retryDue(ctx, r)
		if !ok {
			return l.afterEnd(ctx, res, r)
		}
		l.report(Progress{Kind: ProgressAttemptFailed, Credential: r.CredentialID, Run: r.ID, State: State(r.State), At: next,
			Error: r.Error, Attempt: r.Attempt})
		if !sleepUntil(ctx, next) {
			res.Run, res.Err, res.Credential = r, ctx.Err(), r.CredentialID
			res.NextAttempt = next
			return res
		}
		st, err := e.Retry(ctx, r)
		if err != nil {
			res.Run, res.Err, res.Credential = r, err, r.CredentialID
			return res
		}
		id = st.RunID
		res.Attempts = append(res.Attempts, id)
		l.report(Progress{Kind: ProgressRetrying, Credential: r.CredentialID, Run: id, Attempt: r.Attempt + 1})
	}
}

// retryDue returns when a run that ended should be attempted again, if
// this Local is to do it: the run rolled back (not cancelled), its
// credential is failing with attempts left, and the attempt is due before
// the deadline.
func (l *Local) retryDue(ctx context.Context, r store.Run) (time.Time, bool) {
	if !l.Retry || State(r.State) != StateRolledBack || IsCancelled(r) {
		return time.Time{}, false
	}
	c, err := l.E.store.GetCredential(ctx, r.CredentialID)
	if err != nil || c.State.Status != store.StatusFailing || c.State.NextRotationAt.IsZero() {
		return time.Time{}, false
	}
	next := c.State.NextRotationAt
	if next.After(l.Deadline) {
		return time.Time{}, false
	}
	return next, true
}

// IsCancelled reports whether a run ended because it was cancelled (runs
// cancel, or an emergency taking over).
func IsCancelled(r store.Run) bool { return strings.HasPrefix(r.Error, "cancelled by ") }

// afterEnd completes the Result of a run that ended. Its read is made
// even when ctx is cancelled: it reports what happened.
func (l *Local) afterEnd(ctx context.Context, res Result, r store.Run) Result {
	ctx = context.WithoutCancel(ctx)
	res.Run, res.Credential = r, r.CredentialID
	if State(r.State) == StateRolledBack && !IsCancelled(r) {
		if c, err := l.E.store.GetCredential(ctx, r.CredentialID); err == nil && c.State.Status == store.StatusFailing {
			res.NextAttempt = c.State.NextRotationAt
		}
	}
	l.report(Progress{Kind: ProgressFinished, Credential: r.CredentialID, Run: r.ID, State: State(r.State), Error: r.Error, Attempt: r.Attempt})
	return res
}

// finish completes the Result of a run that stopped, ended or not. Its
// reads are made even when ctx is cancelled: it reports where the run
// stands.
func (l *Local) finish(ctx context.Context, res Result, id string) Result {
	ctx = context.WithoutCancel(ctx)
	l.hold(id, false)
	r, err := l.E.store.GetRun(ctx, id)
	if err == nil {
		res.Run, res.Credential = r, r.CredentialID
		if State(r.State).Terminal() {
			return l.afterEnd(ctx, res, r)
		}
	}
	l.report(Progress{Kind: ProgressFinished, Credential: res.Credential, Run: id, State: State(res.Run.State), At: runOptions(res.Run).RetireAfter})
	return res
}

// Retry starts the next attempt of a run that rolled back: a new run of
// the same credential with the same trigger, actor, reason and options.
// When the credential has an active run already (a service's scheduler
// started one), that run is returned, Skipped.
func (e *Engine) Retry(ctx context.Context, prev store.Run) (Started, error) {
	if e.queue == nil {
		return Started{}, errors.New("rotation engine has no queue; start a Runner first")
	}
	c, err := e.store.GetCredential(ctx, prev.CredentialID)
	if err != nil {
		return Started{}, fmt.Errorf("credential %s: %w", prev.CredentialID, err)
	}
	o := runOptions(prev)
	opts := RunOptions{Emergency: o.Emergency, RevokeFirst: o.RevokeFirst && c.Current != nil}
	reason := prev.Reason
	if reason == "" {
		reason = fmt.Sprintf("retry after %d failed run(s)", c.State.FailureCount)
	}
	r := e.newRun(c, prev.Trigger, prev.Actor, reason, max(prev.Priority, 1), opts)
	started, err := e.enqueue(ctx, []store.Run{r})
	if err != nil {
		return Started{}, err
	}
	return started[0], nil
}

// Due returns the runs 'rotator runs resume' (or a CLI about to rotate)
// should execute now for the given credentials (all when ids is empty):
// active runs nobody works on (no live lease; the caller checked that no
// service runs) that are not waiting out a grace period, and new attempts
// for failing credentials whose retry is due.
func (e *Engine) Due(ctx context.Context, ids []string) ([]string, error) {
	now := e.now()
	var active []store.Run
	var err error
	if len(ids) == 0 {
		active, err = e.store.ListRuns(ctx, store.RunFilter{ActiveOnly: true})
	} else {
		for i := 0; i < len(ids) && err == nil; i += 500 {
			var part []store.Run
			part, err = e.store.ListRuns(ctx, store.RunFilter{ActiveOnly: true, CredentialIDs: ids[i:min(i+500, len(ids))]})
			active = append(active, part...)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing active runs: %w", err)
	}
	var out []string
	busy := map[string]bool{}
	for _, r := range active {
		busy[r.CredentialID] = true
		if r.Executor != "" && r.Executor != e.executor && r.LeaseUntil.After(now) {
			continue
		}
		if s := State(r.State); (s == StateCutOver || s == StateRetiringPrevious) && runOptions(r).RetireAfter.After(now) {
			continue
		}
		out = append(out, r.ID)
	}
	f := store.CredentialFilter{IDs: ids, DueBefore: now}
	creds, err := e.store.ListCredentials(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("listing credentials: %w", err)
	}
	for _, c := range creds {
		if busy[c.ID] || c.State.Status != store.StatusFailing {
			continue
		}
		last, err := e.store.ListRuns(ctx, store.RunFilter{CredentialID: c.ID, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(last) == 0 {
			continue
		}
		st, err := e.Retry(ctx, last[0])
		if err != nil {
			return nil, err
		}
		out = append(out, st.RunID)
	}
	return out, nil
}

// ErrAmbiguousRun is returned by ResolveRun when a prefix names several runs.
var ErrAmbiguousRun = errors.New("the run id prefix is ambiguous")

// ResolveRun turns what a user typed for a run into its id: a full id or a
// unique prefix of one, in any case, or "latest" (the newest run).
func ResolveRun(ctx context.Context, st store.Reader, arg string) (string, error) {
	s := strings.ToUpper(strings.TrimSpace(arg))
	if s == "LATEST" {
		runs, err := st.ListRuns(ctx, store.RunFilter{Limit: 1})
		if err != nil {
			return "", err
		}
		if len(runs) == 0 {
			return "", fmt.Errorf("no run exists yet: %w", store.ErrNotFound)
		}
		return runs[0].ID, nil
	}
	if s == "" || strings.Trim(s, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") != "" {
		return "", fmt.Errorf("run %q %w: run ids are ULIDs (digits and letters but I, L, O and U), or 'latest'", arg, store.ErrNotFound)
	}
	if len(s) == 26 {
		if _, err := st.GetRun(ctx, s); err != nil {
			return "", fmt.Errorf("run %q %w", arg, store.ErrNotFound)
		}
		return s, nil
	}
	runs, err := st.ListRuns(ctx, store.RunFilter{IDPrefix: s, Limit: 6})
	if err != nil {
		return "", err
	}
	switch len(runs) {
	case 0:
		return "", fmt.Errorf("run %q %w", arg, store.ErrNotFound)
	case 1:
		return runs[0].ID, nil
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return "", fmt.Errorf("run %q matches %s: %w; type more of it", arg, strings.Join(ids, ", "), ErrAmbiguousRun)
}
