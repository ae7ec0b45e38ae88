package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
)

// Options configure an Engine.
type Options struct {
	Store    store.Store
	Keyring  secret.Keyring
	Resolver *secret.Resolver
	// Redactor learns every value the engine handles, so the log handler
	// and error scrubbing can remove them.
	Redactor *secret.Redactor
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Notifier receives needs-attention and failure events; may be nil.
	Notifier notify.Notifier
	// NotifyKinds says which event kinds the engine writes to the
	// notification outbox (notes.go); nil writes the kinds for people
	// (failures, rollbacks, needs_attention, emergencies) and not the
	// machine kinds (staged, cut_over, retired), which serve asks for when a
	// route of its notify: section names them.
	NotifyKinds func(notify.Kind) bool
	// RunbookDir is where relative runbook paths are resolved (the config
	// file's directory); the working directory when empty.
	RunbookDir string
	// MaxAttempts is how many consecutive failed runs make a credential
	// needs_attention (default 5).
	MaxAttempts int
	// BackoffBase and BackoffMax bound the delay before the next attempt
	// after a failed run (defaults 30s and 1h).
	BackoffBase, BackoffMax time.Duration
	// StepTimeout bounds each provider or target call (default 2m).
	StepTimeout time.Duration
	// LogRuns logs one line per finished run (credential, run, outcome,
	// duration, next due), as the service does.
	LogRuns bool
	// Observer is told about finished runs and steps (metrics); nil
	// means none.
	Observer Observer
}

// Engine drives rotations. It is safe for concurrent use; several engines
// (in several processes) may work on one database.
type Engine struct {
	opts    Options
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	plugins *plugins
	// runbooks caches resolved runbook references (runbook_cache.go).
	runbooks runbookCache
	// enqueue inserts rotate jobs in a transaction; set by the Runner.
	queue queue
	// executor names this process in run leases (Store.ClaimRuns).
	executor string
	// suspects are the jobs takeOver saw running without their run lock.
	suspectsMu sync.Mutex
	suspects   map[int64]suspect
}

// New returns an Engine.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil || opts.Keyring.ActiveKeyID() == "" {
		return nil, errors.New("rotation engine needs a store and a keyring")
	}
	return newEngine(opts), nil
}

// newEngine fills opts' defaults and builds the Engine.
func newEngine(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Redactor == nil {
		opts.Redactor = &secret.Redactor{}
	}
	if opts.Resolver == nil {
		opts.Resolver = &secret.Resolver{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 30 * time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = time.Hour
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 2 * time.Minute
	}
	// Times are kept at the store's precision (microseconds), so a value
	// read back compares equal to the one written.
	e := &Engine{opts: opts, store: opts.Store, log: opts.Logger, now: func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) },
		executor: ProcessID()}
	e.plugins = newPlugins(e)
	return e
}

// RunOptions are the per-run options stored with a run.
type RunOptions struct {
	Emergency   bool `json:"emergency,omitempty"`
	RevokeFirst bool `json:"revoke_first,omitempty"`
	// RetireAfter is when the previous version may be retired (cut-over
	// time plus grace); set at cutover.
	RetireAfter time.Time `json:"retire_after,omitzero"`
	// DueAt is when a scheduled run was due (its scheduling lag is
	// started_at − due_at).
	DueAt time.Time `json:"due_at,omitzero"`
}

// OptionsOf returns the options a run was started with.
func OptionsOf(r store.Run) RunOptions { return runOptions(r) }

func runOptions(r store.Run) RunOptions {
	var o RunOptions
	if len(r.Options) > 0 {
		_ = json.Unmarshal(r.Options, &o)
	}
	return o
}

func (o RunOptions) raw() json.RawMessage {
	b, _ := json.Marshal(o)
	return b
}

// Priorities of rotate jobs (River: 1 is the highest).
const (
	PriorityEmergency = 1
	PriorityManual    = 2
	PrioritySchedule  = 3
)

// Request asks for rotations of selected credentials now.
type Request struct {
	Selection   Selection
	Trigger     store.Trigger
	Actor       string
	Reason      string
	Emergency   bool
	RevokeFirst bool
}

// Selection chooses credentials.
type Selection struct {
	IDs      []string
	Labels   map[string]string
	Consumer string
	All      bool
}

// Empty reports whether the selection names nothing.
func (s Selection) Empty() bool {
	return len(s.IDs) == 0 && len(s.Labels) == 0 && s.Consumer == "" && !s.All
}

// ErrEmptySelection is returned when a rotation request selects nothing.
var ErrEmptySelection = errors.New("no credentials selected: name ids, or use --selector, --consumer or --all")

// Select returns the credentials a selection names. Unknown ids are an error.
func (e *Engine) Select(ctx context.Context, sel Selection) ([]store.Credential, error) {
	if sel.Empty() {
		return nil, ErrEmptySelection
	}
	f := store.CredentialFilter{IDs: sel.IDs, Labels: sel.Labels, Consumer: sel.Consumer}
	creds, err := e.store.ListCredentials(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("selecting credentials: %w", err)
	}
	if len(sel.IDs) > 0 {
		found := map[string]bool{}
		for _, c := range creds {
			found[c.ID] = true
		}
		for _, id := range sel.IDs {
			if !found[id] {
				return nil, fmt.Errorf("credential %q: %w", id, store.ErrNotFound)
			}
		}
	}
	return creds, nil
}

// Started is the outcome of requesting one credential's rotation.
type Started struct {
	CredentialID string
	// RunID is the new run, or the run already active when Skipped.
	RunID   string
	Skipped bool
	Reason  string
	// ActiveState is the state of the active run that made the request
	// skip, and RetireAfter when that run retires its previous version
	// (a run in its grace period).
	ActiveState State
	RetireAfter time.Time
	// Preempted is the routine run this emergency rotation cancelled.
	Preempted string
}

// InGrace reports whether the credential was skipped because its active run
// cut over and waits out the previous version's grace period.
func (s Started) InGrace() bool {
	return s.Skipped && (s.ActiveState == StateCutOver || s.ActiveState == StateRetiringPrevious)
}

// Rotate creates runs for the selected credentials and enqueues them. A
// credential that already has an active run is skipped (reported with that
// run's id and state): the database allows one active run per credential.
// An emergency takes over instead: a routine run that has not cut over is
// cancelled (rolled back) and the emergency run replaces it; one in its
// grace period retires its previous version now.
func (e *Engine) Rotate(ctx context.Context, req Request) ([]Started, error) {
	if e.queue == nil {
		return nil, errors.New("rotation engine has no queue; start a Runner first")
	}
	if req.Emergency && req.Reason == "" {
		return nil, errors.New("an emergency rotation needs a reason")
	}
	creds, err := e.Select(ctx, req.Selection)
	if err != nil {
		return nil, err
	}
	out, err := e.start(ctx, creds, req)
	// A credential is skipped when it has an active run at the insert. That
	// run may have ended right after (the report then names no run): the
	// credential is idle, and is tried again. An emergency also takes over
	// the routine runs that slipped in between its pre-emption and its
	// insert (the scheduler started one, or the run it pre-empted had just
	// ended and another began). A few rounds at most, with the credentials
	// read afresh.
	for round := 1; round < startRounds && err == nil; round++ {
		at := map[string]int{}
		var ids []string
		for i, st := range out {
			if st.Skipped && (req.Emergency || st.RunID == "") {
				at[st.CredentialID] = i
				ids = append(ids, st.CredentialID)
			}
		}
		if len(ids) == 0 {
			break
		}
		again, serr := e.Select(ctx, Selection{IDs: ids})
		if serr != nil {
			// A credential removed meanwhile, say: the skips stand.
			e.log.Warn("could not try again the credentials found rotating", slog.String("error", e.opts.Redactor.Scrub(serr.Error())))
			break
		}
		var more []Started
		more, err = e.start(ctx, again, req)
		for _, st := range more {
			out[at[st.CredentialID]] = st
		}
	}
	if req.Emergency {
		e.noteEmergency(ctx, req, out)
	}
	return out, err
}

// startRounds bounds how often Rotate tries the credentials it found
// rotating.
const startRounds = 3

// start pre-empts (in an emergency) and enqueues the runs of creds.
func (e *Engine) start(ctx context.Context, creds []store.Credential, req Request) ([]Started, error) {
	preempted := map[string]string{}
	var err error
	if req.Emergency {
		if preempted, err = e.preempt(ctx, creds, req); err != nil {
			return nil, err
		}
		if err := e.expediteGrace(ctx, creds); err != nil {
			return nil, err
		}
	}
	trigger := req.Trigger
	priority := PriorityManual
	if req.Emergency {
		trigger, priority = store.TriggerEmergency, PriorityEmergency
	}
	opts := RunOptions{Emergency: req.Emergency, RevokeFirst: req.RevokeFirst}
	var out []Started
	const batch = 500
	for i := 0; i < len(creds); i += batch {
		part := creds[i:min(i+batch, len(creds))]
		runs := make([]store.Run, 0, len(part))
		for _, c := range part {
			runs = append(runs, e.newRun(c, trigger, req.Actor, req.Reason, priority, opts))
		}
		started, err := e.enqueue(ctx, runs)
		if err != nil {
			return out, err
		}
		for i := range started {
			started[i].Preempted = preempted[started[i].CredentialID]
		}
		out = append(out, started...)
	}
	return out, nil
}

// preempt cancels the routine runs of the given credentials that have not
// cut over, so that an emergency run can start at once. It returns the
// cancelled run of each credential.
func (e *Engine) preempt(ctx context.Context, creds []store.Credential, req Request) (map[string]string, error) {
	ids := make([]string, len(creds))
	for i, c := range creds {
		ids[i] = c.ID
	}
	var victims []store.Run
	for i := 0; i < len(ids); i += 500 {
		active, err := e.store.ListRuns(ctx, store.RunFilter{ActiveOnly: true, CredentialIDs: ids[i:min(i+500, len(ids))]})
		if err != nil {
			return nil, fmt.Errorf("listing active runs: %w", err)
		}
		for _, r := range active {
			if s := State(r.State); (s.BeforeCutover() || s == StatePlanned) && !runOptions(r).Emergency {
				victims = append(victims, r)
			}
		}
	}
	out := make(map[string]string, len(victims))
	if len(victims) == 0 {
		return out, nil
	}
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	reason := "pre-empted by an emergency rotation: " + req.Reason
	for _, r := range victims {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := e.Cancel(ctx, r.ID, req.Actor, reason)
			switch {
			case err == nil:
				mu.Lock()
				out[r.CredentialID] = r.ID
				mu.Unlock()
			case errors.Is(err, ErrFinished), errors.Is(err, ErrCutOver):
				// It ended or cut over meanwhile: the enqueue below starts
				// the emergency run, or expediteGrace ends its grace.
			default:
				e.log.Warn("an emergency could not pre-empt a routine run; it is reported as skipped",
					slog.String("run", r.ID), slog.String("credential", r.CredentialID), slog.String("error", e.opts.Redactor.Scrub(err.Error())))
			}
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}

// expediteGrace ends the grace period of runs that already cut over for
// the given credentials: in an emergency the previous value must not stay
// valid, and its run must end so that the emergency run can start. The
// runs are retired expediteConcurrency at a time: each may revoke at its
// provider, and the emergency runs wait for all of them.
func (e *Engine) expediteGrace(ctx context.Context, creds []store.Credential) error {
	ids := make([]string, len(creds))
	for i, c := range creds {
		ids[i] = c.ID
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, expediteConcurrency)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	for i := 0; i < len(ids) && !failed() && ctx.Err() == nil; i += 500 {
		active, err := e.store.ListRuns(ctx, store.RunFilter{ActiveOnly: true, CredentialIDs: ids[i:min(i+500, len(ids))]})
		if err != nil {
			fail(fmt.Errorf("listing active runs: %w", err))
			break
		}
		for _, r := range active {
			if s := State(r.State); s != StateCutOver && s != StateRetiringPrevious {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil || failed() {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := e.endGrace(ctx, r); err != nil {
					fail(err)
				}
			}()
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Each run stopped at a committed step: some previous versions are
		// retired, the rest still in their grace period.
		return fmt.Errorf("interrupted while ending the grace periods of previous versions, before any emergency run was started (run the command again): %w", context.Cause(ctx))
	}
	return firstErr
}

// expediteConcurrency is how many grace periods expediteGrace ends at once.
const expediteConcurrency = 16

// endGrace ends the grace period of r, a run that cut over, and retires
// its previous version here.
func (e *Engine) endGrace(ctx context.Context, r store.Run) error {
	opts := runOptions(r)
	opts.RetireAfter = e.now()
	r.Options = opts.raw()
	prevUpdated := r.UpdatedAt
	r.UpdatedAt = e.now()
	err := e.store.InTx(ctx, func(tx store.Tx) error {
		err := tx.AdvanceRun(ctx, store.RunAdvance{Run: r, FromState: r.State, FromUpdatedAt: prevUpdated})
		if errors.Is(err, store.ErrConflict) {
			return ErrRunMoved
		}
		return err
	})
	if errors.Is(err, ErrRunMoved) {
		// The run's own job woke at the same moment and retires the
		// previous version itself.
		return nil
	}
	if err != nil {
		return fmt.Errorf("ending the grace period of run %s: %w", r.ID, err)
	}
	if _, _, err := e.Execute(ctx, r.ID); err != nil && !errors.Is(err, ErrRunMoved) {
		return fmt.Errorf("retiring the previous version of %s: %w", r.CredentialID, err)
	}
	return nil
}

func (e *Engine) newRun(c store.Credential, trigger store.Trigger, actor, reason string, priority int, opts RunOptions) store.Run {
	now := e.now()
	r := store.Run{
		ID:           NewID(now),
		CredentialID: c.ID,
		Trigger:      trigger,
		Actor:        actor,
		Reason:       reason,
		State:        string(StatePlanned),
		Active:       true,
		Attempt:      c.State.FailureCount + 1,
		Priority:     priority,
		Options:      opts.raw(),
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if c.Current != nil {
		r.OldVersionID = c.Current.ID
	}
	r.Runbook = e.runbookRef(c.Runbook, c.RunbookFile)
	return r
}

// runbookRef resolves a credential's runbook for a run: the file apply
// resolved (file, recorded absolute), else ref relative to RunbookDir or
// the working directory. The run records the path as written, the anchor
// and the file's digest.
func (e *Engine) runbookRef(ref, file string) store.RunbookRef {
	if ref == "" {
		return store.RunbookRef{}
	}
	if r, ok := e.runbooks.get(ref + "\x00" + file); ok {
		return r
	}
	dir := e.opts.RunbookDir
	if dir == "" {
		dir = "."
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	lookup := ref
	if file != "" {
		if _, anchor, ok := cutAnchor(ref); ok {
			lookup = file + "#" + anchor
		} else {
			lookup = file
		}
		if _, err := os.Stat(file); err != nil {
			lookup = ref
		}
	}
	rb, err := runbook.Resolve(dir, lookup)
	if err != nil {
		path, anchor, _ := cutAnchor(ref)
		e.log.Warn("runbook not found; the run records its path without a digest", slog.String("runbook", ref), slog.String("error", err.Error()))
		return store.RunbookRef{Path: path, Anchor: anchor}
	}
	path, _, _ := cutAnchor(ref)
	r := store.RunbookRef{Path: path, Anchor: rb.Anchor, Digest: rb.Digest}
	e.runbooks.put(ref+"\x00"+file, rb.File, r)
	return r
}

func cutAnchor(ref string) (string, string, bool) {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == '#' {
			return ref[:i], ref[i+1:], true
		}
	}
	return ref, "", false
}

// enqueue inserts runs (skipping credentials with an active run), marks
// their credentials rotating and inserts their jobs, in one transaction.
func (e *Engine) enqueue(ctx context.Context, runs []store.Run) ([]Started, error) {
	var out []Started
	err := e.store.InTx(ctx, func(tx store.Tx) error {
		out = out[:0]
		inserted, err := tx.InsertRunsIfIdle(ctx, runs)
		if err != nil {
			return fmt.Errorf("creating runs: %w", err)
		}
		ok := map[string]bool{}
		ids := make([]string, 0, len(inserted))
		jobs := make([]job, 0, len(inserted))
		events := make([]store.AuditEvent, 0, len(inserted))
		for _, r := range inserted {
			ok[r.ID] = true
			ids = append(ids, r.CredentialID)
			jobs = append(jobs, job{RunID: r.ID, CredentialID: r.CredentialID, Priority: r.Priority})
			data, _ := json.Marshal(map[string]any{"trigger": r.Trigger, "reason": r.Reason, "attempt": r.Attempt, "runbook": r.Runbook})
			events = append(events, store.AuditEvent{OccurredAt: r.CreatedAt, Actor: r.Actor, Action: "run.planned", CredentialID: r.CredentialID, RunID: r.ID, Data: data})
		}
		if len(ids) > 0 {
			if err := tx.SetCredentialStatus(ctx, ids, store.StatusRotating); err != nil {
				return fmt.Errorf("marking credentials rotating: %w", err)
			}
			if err := tx.InsertAuditEvents(ctx, events...); err != nil {
				return fmt.Errorf("recording runs: %w", err)
			}
			if err := e.queue.insertRotate(ctx, tx, jobs); err != nil {
				return fmt.Errorf("enqueueing runs: %w", err)
			}
		}
		var skipped []string
		for _, r := range runs {
			if !ok[r.ID] {
				skipped = append(skipped, r.CredentialID)
			}
		}
		active := map[string]store.Run{}
		if len(skipped) > 0 {
			act, err := tx.ListRuns(ctx, store.RunFilter{ActiveOnly: true, CredentialIDs: skipped})
			if err != nil {
				return fmt.Errorf("listing active runs: %w", err)
			}
			for _, r := range act {
				active[r.CredentialID] = r
			}
		}
		for _, r := range runs {
			if ok[r.ID] {
				out = append(out, Started{CredentialID: r.CredentialID, RunID: r.ID})
				continue
			}
			a := active[r.CredentialID]
			st := Started{CredentialID: r.CredentialID, RunID: a.ID, Skipped: true, ActiveState: State(a.State),
				RetireAfter: runOptions(a).RetireAfter}
			switch {
			case a.ID == "":
				st.Reason = "already rotating"
			case st.InGrace():
				st.Reason = fmt.Sprintf("run %s cut over; its previous version is valid until %s (grace); rotate with --emergency to end it now",
					a.ID, st.RetireAfter.UTC().Format(time.RFC3339))
			default:
				st.Reason = fmt.Sprintf("already rotating: run %s is %s", a.ID, a.State)
			}
			out = append(out, st)
		}
		return nil
	})
	return out, err
}

// EnqueueDue starts runs for up to limit credentials whose next rotation is
// due, and returns how many it started. The scheduler calls it on the
// leader only.
func (e *Engine) EnqueueDue(ctx context.Context, limit int) (int, error) {
	now := e.now()
	creds, err := e.store.ListCredentials(ctx, store.CredentialFilter{
		DueBefore: now, Limit: limit, OrderByDue: true, Idle: true,
		ExcludeStatuses: store.SchedulerExcludes,
	})
	if err != nil {
		return 0, fmt.Errorf("listing due credentials: %w", err)
	}
	if len(creds) == 0 {
		return 0, nil
	}
	runs := make([]store.Run, 0, len(creds))
	for _, c := range creds {
		trigger, reason := store.TriggerSchedule, ""
		switch plan, err := Schedule(c, now); {
		case c.State.FailureCount > 0:
			reason = fmt.Sprintf("retry after %d failed run(s)", c.State.FailureCount)
		case err == nil && (plan.Reason == "expiry" || plan.Reason == "max_age"):
			trigger = store.TriggerExpiry
		}
		runs = append(runs, e.newRun(c, trigger, "scheduler", reason, PrioritySchedule, RunOptions{DueAt: c.State.NextRotationAt}))
	}
	started, err := e.enqueue(ctx, runs)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range started {
		if !s.Skipped {
			n++
		}
	}
	return n, nil
}

// NewID returns a new sortable id (a ULID).
func NewID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}

// backoff returns when the next attempt after the n-th consecutive failure
// should start: exponential with ±20% jitter, at most BackoffMax, and
// before the credential's expiry when one is known.
func (e *Engine) backoff(n int, now, expiry time.Time) time.Time {
	d := e.opts.BackoffBase
	for i := 1; i < n && d < e.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, e.opts.BackoffMax)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	next := now.Add(d)
	if !expiry.IsZero() && next.After(expiry) && expiry.After(now) {
		next = now.Add(expiry.Sub(now) / 2)
	}
	return next
}
