package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/targets"
)

// ErrRunMoved is returned when another worker advanced a run between our
// read and our write; the job stops and the other worker carries on.
var ErrRunMoved = errors.New("run was advanced by another worker")

// Outcome tells the queue what to do after Execute.
type Outcome int

// Outcomes of Execute.
const (
	// Done: the run is terminal, or another job owns its next step.
	Done Outcome = iota
	// RetireLater: the run cut over; retire the previous version at the
	// returned time.
	RetireLater
	// Leased: another process (a CLI executing runs itself) holds the
	// run's lease until the returned time; leave the run to it.
	Leased
)

// execution is one pass of a run through the state machine. It collects
// step rows and audit events and commits them with the state they
// describe.
type execution struct {
	e      *Engine
	run    store.Run
	opts   RunOptions
	cred   store.Credential
	prov   providers.Provider
	caps   providers.Capabilities
	tgts   []boundTarget
	steps  []store.Step
	events []store.AuditEvent
	seq    int
	// notes are the notification events of the next commit (notes.go);
	// oldVersion is the version current when the execution began.
	notes      []notify.Event
	oldVersion *store.Version

	newVer *store.Version
	newVal secret.Value
	curVal secret.Value // the value of the version current before cutover
	live   []secret.Value
	// resumed: the run was past planned when this execution began, so an
	// earlier, interrupted attempt may have promoted the new value at some
	// targets without committing the cutover.
	resumed bool
	// pending and previous are the credential's versions in those stages
	// when the execution began; previousRead says previous is still
	// accurate (until this execution's cutover demotes the current one).
	pending, previous []store.Version
	previousRead      bool
	// providerHash and targetHashes are the stored configuration the run
	// read at its start; leases are the plugin instances it uses.
	providerHash string
	targetHashes map[string]string
	leases       []lease
	// giveUp ends the run for good: the credential needs attention at
	// once (attempts exhausted, a value no configured key opens).
	giveUp bool
	// cancelled: the rollback was asked for (runs cancel, an emergency
	// taking over); it is not counted as a failed attempt.
	cancelled bool
	// unrecorded: the pending version newVer was minted by a Local
	// provider and no commit has written it yet (mintDeferred): the commit
	// that ends the run's preparation (cutover or rollback) inserts it.
	unrecorded bool
}

// learn tells the redactor about a value for the duration of this
// execution, so it is scrubbed from every log line and error.
func (x *execution) learn(v secret.Value) {
	x.e.opts.Redactor.Register(v)
	x.live = append(x.live, v)
}

func (x *execution) forget() {
	for _, v := range x.live {
		x.e.opts.Redactor.Forget(v)
	}
	for _, l := range x.leases {
		l.release()
	}
}

type boundTarget struct {
	binding store.TargetBinding
	t       targets.Target
}

// Execute advances a run as far as it can go now: to a terminal state, or
// to cut_over when the previous version must stay valid for a grace period
// (then it returns RetireLater and the time to retire). It is idempotent: a
// run resumed after a crash continues from its last committed state, and
// every provider and target call carries the idempotency key run id + step.
func (e *Engine) Execute(ctx context.Context, runID string) (Outcome, time.Time, error) {
	// The run, its credential and the credential's pending and previous
	// versions, in one round trip on Postgres.
	w, err := e.store.GetRunWork(ctx, runID)
	if err != nil {
		return Done, time.Time{}, err
	}
	run := w.Run
	if State(run.State).Terminal() {
		return Done, time.Time{}, nil
	}
	if run.Executor != "" && run.Executor != e.executor && run.LeaseUntil.After(e.now()) {
		return Leased, run.LeaseUntil, nil
	}
	x, err := e.newExecution(ctx, w)
	if err != nil {
		return Done, time.Time{}, err
	}
	defer x.forget()
	if w.Credential == nil {
		return Done, time.Time{}, x.abandon(ctx, "credential was removed from the inventory")
	}
	return x.proceed(ctx)
}

// newExecution prepares a pass over a run that is not terminal.
func (e *Engine) newExecution(ctx context.Context, w store.RunWork) (*execution, error) {
	run := w.Run
	x := &execution{e: e, run: run, opts: runOptions(run), resumed: State(run.State) != StatePlanned,
		pending: w.Pending, previous: w.Previous, previousRead: true,
		providerHash: w.ProviderHash, targetHashes: w.TargetHashes}
	// Steps are written only by commits, and every commit moves the run out
	// of planned: a planned run has none, and a fresh run (most of them)
	// needs no read to number its steps.
	if State(run.State) != StatePlanned {
		steps, err := e.store.ListSteps(ctx, run.ID)
		if err != nil {
			return nil, fmt.Errorf("run %s: reading steps: %w", run.ID, err)
		}
		x.seq = len(steps)
	}
	if w.Credential != nil {
		x.cred = *w.Credential
		x.oldVersion = x.cred.Current
	}
	return x, nil
}

func (x *execution) logger() *slog.Logger {
	return x.e.log.With(slog.String("run", x.run.ID), slog.String("credential", x.run.CredentialID))
}

// loadPlugins builds (or takes from the cache) the run's provider and
// targets, with the configuration stored now.
func (x *execution) loadPlugins(ctx context.Context) error {
	prov, l, err := x.e.plugins.provider(ctx, x.cred.Provider, x.providerHash)
	if err != nil {
		return err
	}
	x.prov, x.leases = prov, append(x.leases, l)
	x.caps = x.prov.Capabilities()
	for _, b := range x.cred.Targets {
		t, l, err := x.e.plugins.target(ctx, b.Target, x.targetHashes[b.Target])
		if err != nil {
			return err
		}
		x.leases = append(x.leases, l)
		x.tgts = append(x.tgts, boundTarget{binding: b, t: t})
	}
	return nil
}

func (x *execution) proceed(ctx context.Context) (Outcome, time.Time, error) {
	if err := x.loadPlugins(ctx); err != nil {
		return x.failBeforeCutover(ctx, "load", err)
	}
	if err := x.loadValues(ctx); err != nil {
		return Done, time.Time{}, x.failIfSealed(ctx, err)
	}

	state := State(x.run.State)
	switch state {
	case StatePlanned, StateRevokingCurrent, StateMinting:
		if x.opts.RevokeFirst && x.cred.Current != nil {
			if err := x.revokeFirst(ctx); err != nil {
				return x.failBeforeCutover(ctx, "revoke_first", err)
			}
		}
		if err := x.mint(ctx); err != nil {
			return x.failBeforeCutover(ctx, "mint", err)
		}
		fallthrough
	case StateMinted, StateActivating, StateActivated, StateVerifying, StateVerified:
		if err := x.prepare(ctx); err != nil {
			return x.failBeforeCutover(ctx, x.lastStepName(), err)
		}
		fallthrough
	case StateCuttingOver:
		if err := x.cutover(ctx); err != nil {
			return x.failAtCutover(ctx, err)
		}
		if State(x.run.State).Terminal() { // retired at cutover
			return Done, time.Time{}, nil
		}
		if at := x.opts.RetireAfter; at.After(x.e.now()) {
			return RetireLater, at, nil
		}
		fallthrough
	case StateCutOver, StateRetiringPrevious:
		if at := x.opts.RetireAfter; at.After(x.e.now()) {
			return RetireLater, at, nil
		}
		return Done, time.Time{}, x.failIfSealed(ctx, x.retirePrevious(ctx))
	case StateRollingBack:
		return x.failBeforeCutover(ctx, "rollback", errors.New("resumed an interrupted rollback"))
	case StateSucceeded, StateRolledBack, StateFailed:
		return Done, time.Time{}, nil
	}
	return Done, time.Time{}, fmt.Errorf("run %s: unknown state %q", x.run.ID, x.run.State)
}

// loadValues opens the sealed values this run needs: the pending version
// (after mint) and the current one (for rollback re-promotion).
func (x *execution) loadValues(ctx context.Context) error {
	kr := x.e.opts.Keyring
	if id := x.run.NewVersionID; id != "" {
		v, err := x.version(ctx, id)
		if err != nil {
			return fmt.Errorf("run %s: reading version %s: %w", x.run.ID, id, err)
		}
		x.newVer = &v
		if len(v.Sealed) > 0 {
			val, err := kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
			if err != nil {
				return fmt.Errorf("run %s: %w", x.run.ID, err)
			}
			x.newVal = val
			x.learn(val)
		}
	}
	if cur := x.cred.Current; cur != nil && len(cur.Sealed) > 0 {
		val, err := kr.Open(cur.CredentialID, cur.ID, cur.KeyID, cur.Sealed)
		if err != nil {
			return fmt.Errorf("run %s: %w", x.run.ID, err)
		}
		x.curVal = val
		x.learn(val)
	}
	return nil
}

// version returns a version of the credential: from what the execution
// read at its start when it is there, else from the store.
func (x *execution) version(ctx context.Context, id string) (store.Version, error) {
	if cur := x.cred.Current; cur != nil && cur.ID == id {
		return *cur, nil
	}
	for _, vs := range [][]store.Version{x.pending, x.previous} {
		for _, v := range vs {
			if v.ID == id {
				return v, nil
			}
		}
	}
	return x.e.store.GetVersion(ctx, id)
}

// previousVersions returns the credential's previous versions.
func (x *execution) previousVersions(ctx context.Context) ([]store.Version, error) {
	if x.previousRead {
		return x.previous, nil
	}
	return x.e.store.ListVersions(ctx, x.cred.ID, store.StagePrevious)
}

func (x *execution) key(step string) string { return x.run.ID + "/" + step }

func (x *execution) common(step, versionID string) providers.Common {
	return providers.Common{
		CredentialID:   x.cred.ID,
		VersionID:      versionID,
		IdempotencyKey: x.key(step),
		Scope:          x.cred.Scope,
		Settings:       x.cred.Settings,
	}
}

// call runs one plugin call with the step timeout. Errors are scrubbed of
// every value the engine knows. A plugin that panics fails the step with
// an error naming where it panicked, without the panic's message, which
// may quote a value the engine does not know yet (one being minted): left
// to River, the message and its stack would be logged and stored in the
// job's errors, and the run retried as a job rather than failed as a step.
func (x *execution) call(ctx context.Context, step string, fn func(ctx context.Context) error) (err error) {
	cctx, cancel := context.WithTimeoutCause(ctx, x.e.opts.StepTimeout, fmt.Errorf("step %s timed out after %s", step, x.e.opts.StepTimeout))
	defer cancel()
	defer recoverPlugin(step, &err)
	err = fn(cctx)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", context.Cause(cctx), err)
	}
	return err
}

// recoverPlugin, deferred around a plugin call, turns a panic into the
// call's error: where it panicked, without the panic's message.
func recoverPlugin(step string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("step %s: the plugin panicked at %s (the panic's message is withheld: it may hold a secret)", step, panicSite())
	}
}

// panicSite names the function, file and line that panicked, from a
// deferred recover: the first frame below runtime.gopanic.
func panicSite() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(4, pcs)])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf("%s (%s:%d)", f.Function, filepath.Base(f.File), f.Line)
		}
		if !more {
			return "an unknown place"
		}
	}
}

// record appends a step row and its audit event, ok or (with err) failed;
// they are written by the next commit. recordAs (steps.go) records other
// outcomes.
func (x *execution) record(name string, started time.Time, err error, evidence map[string]string) {
	x.recordAs(name, started, StepOK, err, evidence)
}

func (x *execution) event(action string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	b, _ := json.Marshal(data)
	x.events = append(x.events, store.AuditEvent{
		OccurredAt: x.e.now(), Actor: x.run.Actor, Action: action,
		CredentialID: x.run.CredentialID, RunID: x.run.ID, Data: b,
	})
}

func (x *execution) scrub(err error) string { return x.e.opts.Redactor.Scrub(err.Error()) }

func (x *execution) lastStepName() string {
	if len(x.steps) == 0 {
		return string(x.run.State)
	}
	return x.steps[len(x.steps)-1].Name
}

// commitTimeout bounds a commit, which runs on when its caller is
// cancelled (see commit).
const commitTimeout = 15 * time.Second

// commit writes the run (in state s), the recorded steps and events, and
// whatever fn writes, in one transaction. It fails with ErrRunMoved if the
// run changed since this execution read it.
//
// A commit records what already happened outside rotator (a value minted,
// targets switched, a value revoked), so it is not given up when ctx is
// cancelled (Ctrl-C in the CLI, a stopping service, a job timeout): it runs
// with ctx's values but not its cancellation, for at most commitTimeout,
// and fn is handed that context. Without this, an interrupted run would
// forget a value the provider had already minted, and a cutover whose
// targets had all switched would not be recorded. The run stops at its
// next step instead, which sees ctx cancelled.
func (x *execution) commit(ctx context.Context, s State, fn func(ctx context.Context, tx store.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	prevState, prevUpdated := x.run.State, x.run.UpdatedAt
	x.run.State = string(s)
	x.run.UpdatedAt = x.e.now()
	if s.Terminal() {
		x.run.Active = false
		x.run.FinishedAt = x.run.UpdatedAt
	}
	// Pipelined: on Postgres the begin, every write and the commit go in
	// one round trip.
	err := x.e.store.InPipelinedTx(ctx, func(tx store.Tx) error {
		if fn != nil {
			if err := fn(ctx, tx); err != nil {
				return err
			}
		}
		// The run is written, with the steps and events, on the condition
		// that it is still as this execution read it (one statement on
		// Postgres, no read). It comes after fn: on SQLite, inserting a
		// version while the run already points at it (a deferred foreign
		// key pending) makes SQLite scan the tables referring to versions.
		err := tx.AdvanceRun(ctx, store.RunAdvance{Run: x.run, FromState: prevState, FromUpdatedAt: prevUpdated,
			Steps: x.steps, Events: x.events})
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: %w", ErrRunMoved, err)
		}
		if err != nil {
			return err
		}
		// The notification outbox rides in this transaction (notes.go).
		return x.writeNotes(ctx, tx)
	})
	// Notes belong to this commit only: a failed cutover's must not reach
	// the rollback's commit.
	x.notes = nil
	if err != nil {
		x.run.State, x.run.UpdatedAt = prevState, prevUpdated
		x.seq -= len(x.steps)
		return err
	}
	x.steps, x.events = nil, nil
	if s.Terminal() && x.e.opts.LogRuns {
		x.logFinished()
	}
	if s.Terminal() {
		x.observeRun()
	}
	return nil
}

// logFinished writes the one line per finished run that the service logs.
func (x *execution) logFinished() {
	start := x.run.StartedAt
	if start.IsZero() {
		start = x.run.CreatedAt
	}
	attrs := []slog.Attr{
		slog.String("credential", x.run.CredentialID), slog.String("run", x.run.ID),
		slog.String("outcome", x.run.State), slog.String("trigger", string(x.run.Trigger)),
		slog.Duration("duration", x.run.FinishedAt.Sub(start).Round(time.Millisecond)),
	}
	if next := x.cred.State.NextRotationAt; !next.IsZero() {
		attrs = append(attrs, slog.Time("next_due", next))
	}
	level := slog.LevelInfo
	if x.run.Error != "" {
		attrs = append(attrs, slog.String("error", x.run.Error))
		level = slog.LevelWarn
	}
	x.e.log.LogAttrs(context.Background(), level, "run finished", attrs...)
}

func (x *execution) revokeFirst(ctx context.Context) error {
	cur := *x.cred.Current
	if !x.caps.Revocable { // refused unless forced (cmd/rotator): the value stays valid
		x.skipRevoke("revoke_first", cur)
		return nil
	}
	started := x.e.now()
	err := x.call(ctx, "revoke_first", func(ctx context.Context) error {
		return x.prov.Revoke(ctx, providers.RevokeRequest{Common: x.common("revoke_first", cur.ID), Value: x.curVal, Metadata: cur.Metadata})
	})
	x.recordRevoke("revoke_first", started, err, cur)
	if err != nil {
		return err
	}
	cur.Stage, cur.RetiredAt, cur.Sealed = store.StageRetired, x.e.now(), nil
	st := x.cred.State
	st.CurrentVersionID = ""
	if x.run.StartedAt.IsZero() {
		x.run.StartedAt = started
	}
	return x.commit(ctx, StateRevokingCurrent, func(ctx context.Context, tx store.Tx) error {
		if err := tx.UpdateVersion(ctx, cur); err != nil {
			return err
		}
		x.cred.State, x.cred.Current = st, nil
		return tx.UpdateCredentialState(ctx, x.cred.ID, st)
	})
}

// mint asks the provider for a new value and stores it, sealed, as the
// pending version before anything is asked to use it (write-ahead).
func (x *execution) mint(ctx context.Context) error {
	started := x.e.now()
	if x.run.StartedAt.IsZero() {
		x.run.StartedAt = started
	}
	versionID := NewID(started)
	req := providers.MintRequest{Common: x.common("mint", versionID)}
	if cur := x.cred.Current; cur != nil {
		req.Current = &providers.VersionRef{VersionID: cur.ID, Value: x.curVal, Metadata: cur.Metadata}
	}
	state, err := x.providerState(ctx)
	if err != nil {
		x.record("mint", started, err, nil)
		return err
	}
	req.State = state
	var resp providers.MintResponse
	err = x.call(ctx, "mint", func(ctx context.Context) error {
		var err error
		resp, err = x.prov.Mint(ctx, req)
		return err
	})
	if err == nil && resp.Value.IsZero() {
		err = fmt.Errorf("provider %s returned an empty value", x.cred.Provider)
	}
	if err != nil {
		x.record("mint", started, err, nil)
		return err
	}
	x.learn(resp.Value)
	kr := x.e.opts.Keyring
	keyID, sealed, err := kr.Seal(x.cred.ID, versionID, resp.Value)
	if err != nil {
		x.record("mint", started, err, nil)
		return err
	}
	newState, err := x.sealState(resp.State, started)
	if err != nil {
		x.record("mint", started, err, nil)
		return err
	}
	v := store.Version{
		ID: versionID, CredentialID: x.cred.ID, Stage: store.StagePending, Sealed: sealed, KeyID: keyID,
		Fingerprint: kr.Fingerprint(resp.Value), CreatedAt: started, ExpiresAt: resp.ExpiresAt.UTC(),
		GrantedScope: mintedScope(resp), Metadata: versionMetadata(resp),
	}
	if resp.ExpiresAt.IsZero() {
		v.ExpiresAt = time.Time{}
	}
	x.record("mint", started, nil, map[string]string{"version": v.ID, "fingerprint": v.Fingerprint})
	prevNew := x.run.NewVersionID
	x.run.NewVersionID = v.ID
	st := x.cred.State
	st.PendingVersionID = v.ID
	st.Status = store.StatusRotating
	if x.mintDeferred(newState) {
		x.cred.State = st
		x.newVer, x.newVal, x.unrecorded = &v, resp.Value, true
		return nil
	}
	if err := x.commit(ctx, StateMinted, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertVersion(ctx, v); err != nil {
			return err
		}
		if newState != nil {
			if err := tx.PutProviderState(ctx, *newState); err != nil {
				return err
			}
		}
		return tx.UpdateCredentialState(ctx, x.cred.ID, st)
	}); err != nil {
		// The minted value was not recorded: revoke it so it does not
		// linger valid at the resource. Unless the commit took effect all
		// the same (its connection broke after it left): then the store
		// holds the value, and the resumed run activates it.
		if r, rerr := x.storedRun(ctx); rerr == nil && r.NewVersionID == v.ID {
			return err
		}
		// Not recorded: the run must not point at it in the rollback's
		// commit (no such version exists).
		x.run.NewVersionID = prevNew
		x.revokeUnrecorded(ctx, v, resp.Value)
		return err
	}
	x.cred.State = st
	x.newVer, x.newVal = &v, resp.Value
	return nil
}

// mintDeferred reports whether the minted value may go unrecorded until
// the run's next commit: the write-ahead commit after Mint exists so that a
// value known outside rotator is never lost track of, and a value of a
// Local provider (providers.Capabilities: Mint, Activate and Verify touch nothing
// outside rotator) that no target is given before cutover is known to no
// one. A crash before the cutover commit leaves the run planned and the
// value forgotten; the resumed run mints again. One commit fewer per
// rotation: the cutover (or the rollback) inserts the version.
func (x *execution) mintDeferred(newState *store.ProviderState) bool {
	return x.caps.Local && !x.caps.Stateful && newState == nil && len(x.tgts) == 0 &&
		State(x.run.State) == StatePlanned
}

// writeVersion writes v, the run's new version, in a commit: an insert
// when the mint was not recorded (mintDeferred), else an update.
func (x *execution) writeVersion(ctx context.Context, tx store.Tx, v store.Version) error {
	if x.unrecorded && x.newVer != nil && v.ID == x.newVer.ID {
		return tx.InsertVersion(ctx, v)
	}
	return tx.UpdateVersion(ctx, v)
}

func (x *execution) revokeUnrecorded(ctx context.Context, v store.Version, val secret.Value) {
	if x.caps.Local {
		// Known to no one: a Local provider's value exists only in rotator,
		// and nothing was given it yet.
		x.logger().Info("a minted value could not be recorded; it was never given out and is discarded", slog.String("version", v.ID))
		return
	}
	if !x.caps.Revocable {
		x.logger().Warn("a minted value could not be recorded; the provider cannot revoke it", slog.String("version", v.ID), slog.String("reason", stillValid(x.cred.Provider, v)))
		return
	}
	err := x.call(context.WithoutCancel(ctx), "mint_revoke", func(ctx context.Context) error {
		return x.prov.Revoke(ctx, providers.RevokeRequest{Common: x.common("mint_revoke", v.ID), Value: val, Metadata: v.Metadata})
	})
	if err != nil {
		x.logger().Error("revoking a minted value that could not be recorded failed", slog.String("version", v.ID), slog.String("error", x.scrub(err)))
	}
}

// prepare activates the pending value at the resource, stages it at every
// target and verifies it. Nothing here changes what consumers read.
func (x *execution) prepare(ctx context.Context) error {
	v := x.newVer
	if v == nil || x.newVal.IsZero() {
		return fmt.Errorf("run %s has no pending value to activate", x.run.ID)
	}
	started := x.e.now()
	var act providers.ActivateResponse
	err := x.call(ctx, "activate", func(ctx context.Context) error {
		var err error
		act, err = x.prov.Activate(ctx, providers.ActivateRequest{Common: x.common("activate", v.ID), Value: x.newVal, Metadata: v.Metadata, ExpiresAt: v.ExpiresAt})
		return err
	})
	x.record("activate", started, err, nil)
	if err != nil {
		return err
	}
	if act.Metadata != nil {
		if v.Metadata == nil {
			v.Metadata = map[string]string{}
		}
		maps.Copy(v.Metadata, act.Metadata)
	}
	v.ActivatedAt = x.e.now()

	for _, bt := range x.tgts {
		step := "stage:" + bt.binding.Target
		started := x.e.now()
		err := x.call(ctx, step, func(ctx context.Context) error {
			return bt.t.Stage(ctx, targets.StageRequest{Common: x.targetCommon(step, bt.binding, v.ID, x.newVal)})
		})
		if err := x.recordStage(step, started, err); err != nil {
			return err
		}
	}

	started = x.e.now()
	var ver providers.VerifyResponse
	err = x.call(ctx, "verify", func(ctx context.Context) error {
		var err error
		ver, err = x.prov.Verify(ctx, providers.VerifyRequest{Common: x.common("verify", v.ID), Value: x.newVal, Metadata: v.Metadata})
		return err
	})
	if err == nil {
		applyVerifiedScope(v, ver)
	}
	x.record("verify", started, err, ver.Evidence)
	if err == nil {
		x.checkScope(v)
	}
	return err
}

// checkScope records a policy.over_scoped event when the resource granted
// the new version scope that the credential does not declare. The rotation
// goes on (the value works, and refusing it would leave the old one in
// place, as over-scoped); reports list the event as a violation, linked to
// the runbook.
func (x *execution) checkScope(v *store.Version) {
	extra := store.ExtraScope(v.GrantedScope, x.cred.Scope)
	if len(extra) == 0 {
		return
	}
	x.logger().Warn("the new value was granted more scope than the credential declares",
		slog.String("version", v.ID), slog.Any("extra_scope", extra))
	x.event("policy.over_scoped", map[string]any{
		"version": v.ID, "granted": v.GrantedScope, "declared": x.cred.Scope, "extra": extra, "runbook": x.cred.Runbook,
	})
}

func (x *execution) targetCommon(step string, b store.TargetBinding, versionID string, val secret.Value) targets.Common {
	return targets.Common{CredentialID: x.cred.ID, VersionID: versionID, IdempotencyKey: x.key(step), Key: b.Key, Value: val}
}

// cutover promotes the new value at every target and commits: the pending
// version becomes current, the old current becomes previous.
func (x *execution) cutover(ctx context.Context) error {
	if x.newVer == nil || x.newVal.IsZero() {
		return fmt.Errorf("run %s has no pending value to cut over to", x.run.ID)
	}
	// Work on a copy: if the commit fails, x.newVer must still say pending
	// so that the rollback discards it.
	cp := *x.newVer
	v := &cp
	prevID := ""
	if x.cred.Current != nil && x.cred.Current.ID != v.ID {
		prevID = x.cred.Current.ID
	}
	for _, bt := range x.tgts {
		step := "promote:" + bt.binding.Target
		started := x.e.now()
		err := x.call(ctx, step, func(ctx context.Context) error {
			return bt.t.Promote(ctx, targets.PromoteRequest{Common: x.targetCommon(step, bt.binding, v.ID, x.newVal), PreviousVersionID: prevID})
		})
		x.record(step, started, err, nil)
		if err != nil {
			return err
		}
	}
	now := x.e.now()
	if v.ActivatedAt.IsZero() {
		v.ActivatedAt = now
	}
	v.Stage = store.StageCurrent
	grace := x.cred.Policy.Grace
	if x.opts.Emergency || prevID == "" {
		grace = 0
	}
	x.opts.RetireAfter = now.Add(grace)
	x.run.Options = x.opts.raw()

	st := x.cred.State
	st.CurrentVersionID, st.PendingVersionID = v.ID, ""
	st.LastRotatedAt = now
	st.Status = store.StatusHealthy
	st.FailureCount = 0
	cred := x.cred
	cred.Current, cred.State = v, st
	plan, err := Schedule(cred, now)
	if err != nil {
		return err
	}
	st.NextRotationAt, st.ExpiresAt = plan.Due, plan.Expiry
	x.event("run.cut_over", map[string]any{"new_version": v.ID, "fingerprint": v.Fingerprint, "previous_version": prevID, "retire_after": x.opts.RetireAfter})
	x.record("cutover", now, nil, map[string]string{"version": v.ID, "fingerprint": v.Fingerprint})
	var prev *store.Version
	if prevID != "" {
		prev = x.cred.Current
	}
	state := StateCutOver
	nSteps, nEvents := len(x.steps), len(x.events)
	retired, retireNow := x.retireAtCutover(ctx, prev, now)
	if retireNow {
		state = StateSucceeded
		x.run.Error = ""
		x.event("run.succeeded", map[string]any{"retired_versions": len(retired)})
	}
	oldState := x.cred.State
	x.cred.State = st // for the finished-run log line of a run ending here
	x.noteCutover(now, retireNow)
	err = x.commit(ctx, state, func(ctx context.Context, tx store.Tx) error {
		if prev != nil && !retireNow {
			p := *prev
			p.Stage = store.StagePrevious
			if err := tx.UpdateVersion(ctx, p); err != nil {
				return err
			}
		}
		// Retired versions (the old current among them) are demoted before
		// the new one becomes current.
		for _, p := range retired {
			if err := tx.UpdateVersion(ctx, p); err != nil {
				return err
			}
		}
		if err := x.writeVersion(ctx, tx, *v); err != nil {
			return err
		}
		return tx.UpdateCredentialState(ctx, x.cred.ID, st)
	})
	if err != nil {
		x.cred.State = oldState
		if retireNow {
			// Nothing was retired: drop what retireAtCutover recorded, so
			// that the rollback's commit does not claim it.
			x.steps, x.events = x.steps[:nSteps], x.events[:nEvents]
			if nSteps > 0 {
				x.seq = x.steps[nSteps-1].Seq + 1
			}
		}
		return cutoverCommitError{err}
	}
	x.cred.State = st
	x.newVer, x.unrecorded = v, false
	x.previousRead = false // the old current version is previous now
	return nil
}

// retireAtCutover decides whether the previous version is retired in the
// cut-over commit itself, so that the run ends there (one commit fewer):
// when there is no grace period to wait out (an emergency, a first version,
// grace 0) and retiring needs nothing outside the database, because the
// provider cannot revoke values (its Revoke invalidates nothing; it is
// still called, as retirePrevious would) or there is nothing to revoke.
// It returns the versions to retire — prev, the version current before the
// cutover, and any other previous version — with their revoke_previous
// steps recorded. Otherwise, or if a read or a Revoke call fails, it
// records nothing and returns false: the run cuts over alone and
// retirePrevious follows, as it does after a grace period.
func (x *execution) retireAtCutover(ctx context.Context, prev *store.Version, now time.Time) ([]store.Version, bool) {
	if x.opts.RetireAfter.After(now) || (x.caps.Revocable && prev != nil) {
		return nil, false
	}
	others, err := x.previousVersions(ctx)
	if err != nil || (x.caps.Revocable && len(others) > 0) {
		return nil, false
	}
	var prevs []store.Version
	if prev != nil {
		prevs = append(prevs, *prev)
	}
	prevs = append(prevs, others...)
	type revoked struct {
		started, finished time.Time
	}
	calls := make([]revoked, len(prevs))
	for i, p := range prevs {
		val := x.curVal
		if prev == nil || p.ID != prev.ID {
			val = secret.Value{}
			if len(p.Sealed) > 0 {
				if val, err = x.e.opts.Keyring.Open(p.CredentialID, p.ID, p.KeyID, p.Sealed); err != nil {
					return nil, false
				}
				x.learn(val)
			}
		}
		started := x.e.now()
		step := "revoke_previous"
		err := x.call(ctx, step, func(ctx context.Context) error {
			return x.prov.Revoke(ctx, providers.RevokeRequest{Common: x.common(step, p.ID), Value: val, Metadata: p.Metadata})
		})
		if err != nil {
			return nil, false
		}
		calls[i] = revoked{started: started, finished: x.e.now()}
	}
	for i := range prevs {
		p := &prevs[i]
		x.recordRevoke("revoke_previous", calls[i].started, nil, *p)
		p.Stage, p.RetiredAt, p.Sealed = store.StageRetired, calls[i].finished, nil
	}
	return prevs, true
}

// retirePrevious revokes the previous version at the provider and retires
// it; the run succeeds.
func (x *execution) retirePrevious(ctx context.Context) error {
	prevs, err := x.previousVersions(ctx)
	if err != nil {
		return fmt.Errorf("run %s: listing previous versions: %w", x.run.ID, err)
	}
	var retired []store.Version
	for _, p := range prevs {
		started := x.e.now()
		var val secret.Value
		if len(p.Sealed) > 0 {
			val, err = x.e.opts.Keyring.Open(p.CredentialID, p.ID, p.KeyID, p.Sealed)
			if err != nil {
				return fmt.Errorf("run %s: %w", x.run.ID, err)
			}
			x.learn(val)
		}
		step := "revoke_previous"
		err := x.call(ctx, step, func(ctx context.Context) error {
			return x.prov.Revoke(ctx, providers.RevokeRequest{Common: x.common(step, p.ID), Value: val, Metadata: p.Metadata})
		})
		x.recordRevoke(step, started, err, p)
		if err != nil {
			// Keep the run at cut_over so a retry revokes again; the new
			// value is already current, consumers are unaffected.
			if cerr := x.commit(ctx, StateRetiringPrevious, nil); cerr != nil {
				return cerr
			}
			return fmt.Errorf("run %s: revoking previous version %s: %s", x.run.ID, p.ID, x.scrub(err))
		}
		p.Stage, p.RetiredAt, p.Sealed = store.StageRetired, x.e.now(), nil
		retired = append(retired, p)
	}
	x.run.Error = ""
	x.event("run.succeeded", map[string]any{"retired_versions": len(retired)})
	x.note(notify.KindRetired, x.e.now(), "", fmt.Sprintf("the previous value of %s was retired", x.cred.ID))
	return x.commit(ctx, StateSucceeded, func(ctx context.Context, tx store.Tx) error {
		for _, p := range retired {
			if err := tx.UpdateVersion(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// failBeforeCutover rolls a run back: the current version is untouched;
// the pending one is revoked (where the provider can) and discarded. The
// credential is rescheduled with backoff or, after MaxAttempts failures,
// marked needs_attention.
func (x *execution) failBeforeCutover(ctx context.Context, step string, cause error) (Outcome, time.Time, error) {
	if ctx.Err() != nil {
		// Shutting down: stop at the last committed state; the job is
		// retried and resumes from there.
		return Done, time.Time{}, ctx.Err()
	}
	if errors.Is(cause, ErrRunMoved) {
		return Done, time.Time{}, nil
	}
	msg := fmt.Sprintf("%s failed: %s", step, x.scrub(cause))
	if permanent(step, cause) {
		// The provider or target says retrying cannot help (a revoked
		// grant, a refused permission): the credential needs attention now
		// instead of after MaxAttempts backoffs.
		x.giveUp = true
		msg += " (permanent: not retried)"
	}
	x.logger().Warn("rotation failed before cutover; rolling back", slog.String("step", step), slog.String("error", msg))
	return Done, time.Time{}, x.rollback(ctx, msg)
}

// permanent reports whether a failed step's error is one retrying cannot
// fix: a provider or target call that returned an error wrapping
// ErrPermanent (the plugin contract). Building the plugins ("load") is
// retried whatever it says: a reload, or another credential's first value,
// can fix it.
func permanent(step string, err error) bool {
	return step != "load" && (errors.Is(err, providers.ErrPermanent) || errors.Is(err, targets.ErrPermanent))
}

// rollback discards the pending version of a run that has not cut over:
// targets get the current value back (after an interrupted attempt), the
// new value is revoked where the provider can, and the run ends
// rolled_back with msg.
func (x *execution) rollback(ctx context.Context, msg string) error {
	if x.resumed {
		// An interrupted attempt may have switched targets before the
		// crash: give them the current value back before revoking the new.
		x.restoreTargets(context.WithoutCancel(ctx))
	}
	if v := x.newVer; v != nil && v.Stage == store.StagePending {
		if x.caps.Revocable && !x.newVal.IsZero() {
			started := x.e.now()
			err := x.call(context.WithoutCancel(ctx), "rollback_revoke", func(ctx context.Context) error {
				return x.prov.Revoke(ctx, providers.RevokeRequest{Common: x.common("rollback_revoke", v.ID), Value: x.newVal, Metadata: v.Metadata})
			})
			x.recordRevoke("rollback_revoke", started, err, *v)
		} else if !x.caps.Revocable {
			x.skipRevoke("rollback_revoke", *v)
		}
	}
	return x.finishFailed(ctx, msg, nil)
}

// failAtCutover handles a failure while promoting at targets: targets that
// already switched get the previous value back (it is still valid), the new
// version is revoked and discarded, and the run is rolled back.
func (x *execution) failAtCutover(ctx context.Context, cause error) (Outcome, time.Time, error) {
	if ctx.Err() != nil {
		return Done, time.Time{}, ctx.Err()
	}
	if errors.Is(cause, ErrRunMoved) {
		return Done, time.Time{}, nil
	}
	msg := fmt.Sprintf("%s failed: %s", x.lastStepName(), x.scrub(cause))
	if permanent(x.lastStepName(), cause) {
		x.giveUp = true
		msg += " (permanent: not retried)"
	}
	bg := context.WithoutCancel(ctx)
	if errors.As(cause, new(cutoverCommitError)) && !x.beforeCutover(bg) {
		// The commit's connection broke (the database restarted) and the
		// cutover may have taken effect, or the run cannot be read to
		// know. Restoring the targets would hand consumers the value the
		// run retires. Targets keep the new value, which is valid either
		// way, and the run resumes from what the store holds: it cuts over
		// again, or retires the previous value.
		x.logger().Warn("the cutover's commit failed and may have taken effect; targets keep the new value, and the run resumes from what the store holds",
			slog.String("error", x.scrub(cause)))
		return Done, time.Time{}, cause
	}
	x.logger().Warn("cutover failed; restoring the previous value at targets", slog.String("error", msg))
	x.restoreTargets(bg)
	if v := x.newVer; v != nil && x.caps.Revocable && !x.newVal.IsZero() {
		started := x.e.now()
		err := x.call(bg, "rollback_revoke", func(ctx context.Context) error {
			return x.prov.Revoke(ctx, providers.RevokeRequest{Common: x.common("rollback_revoke", v.ID), Value: x.newVal, Metadata: v.Metadata})
		})
		x.recordRevoke("rollback_revoke", started, err, *v)
	} else if v != nil && !x.caps.Revocable {
		x.skipRevoke("rollback_revoke", *v)
	}
	return Done, time.Time{}, x.finishFailed(bg, msg, nil)
}

// cutoverCommitError is the failure of the cutover's commit, after every
// target switched to the new value.
type cutoverCommitError struct{ err error }

func (e cutoverCommitError) Error() string { return e.err.Error() }
func (e cutoverCommitError) Unwrap() error { return e.err }

// beforeCutover reports whether the run is still as this execution last
// committed it (its state and update time), read from the store: then a
// failed cutover commit did not take effect. It is false when the run
// cannot be read.
func (x *execution) beforeCutover(ctx context.Context) bool {
	r, err := x.storedRun(ctx)
	return err == nil && r.State == x.run.State && r.UpdatedAt.Equal(x.run.UpdatedAt)
}

// storedRun reads the run as the store holds it, after a commit failed,
// whether or not ctx is cancelled, within commitTimeout.
func (x *execution) storedRun(ctx context.Context) (store.Run, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	return x.e.store.GetRun(ctx, x.run.ID)
}

// restoreTargets promotes the current value (still valid: nothing was
// retired) at every target, undoing a partial cutover.
func (x *execution) restoreTargets(ctx context.Context) {
	cur := x.cred.Current
	if cur == nil || x.curVal.IsZero() {
		return
	}
	for _, bt := range x.tgts {
		step := "restore:" + bt.binding.Target
		started := x.e.now()
		err := x.call(ctx, step, func(ctx context.Context) error {
			return bt.t.Promote(ctx, targets.PromoteRequest{Common: x.targetCommon(step, bt.binding, cur.ID, x.curVal)})
		})
		x.record(step, started, err, nil)
	}
}

// finishFailed commits a rolled-back run and reschedules the credential.
func (x *execution) finishFailed(ctx context.Context, msg string, extra func(tx store.Tx) error) error {
	now := x.e.now()
	x.run.Error = msg
	st := x.cred.State
	st.PendingVersionID = ""
	if !x.cancelled {
		st.FailureCount++
	}
	attention := st.FailureCount >= x.e.opts.MaxAttempts || x.giveUp
	switch {
	case attention:
		st.Status = store.StatusNeedsAttention
		st.NextRotationAt = time.Time{}
	case x.cancelled && st.FailureCount == 0:
		// The credential is as it was; it is rotated at its next due time,
		// and no sooner than a backoff from now (a due credential's
		// scheduler would otherwise start a new run at once).
		st.Status = store.StatusHealthy
		if st.NextRotationAt.Before(now) {
			st.NextRotationAt = x.e.backoff(1, now, st.ExpiresAt)
		}
	default:
		st.Status = store.StatusFailing
		st.NextRotationAt = x.e.backoff(max(st.FailureCount, 1), now, st.ExpiresAt)
	}
	x.cred.State = st
	x.event("run.rolled_back", map[string]any{"error": msg, "failures": st.FailureCount, "next_attempt": st.NextRotationAt})
	if attention {
		x.event("credential.needs_attention", map[string]any{"failures": st.FailureCount, "error": msg})
	}
	x.note(notify.KindRolledBack, now, msg, fmt.Sprintf("rotation of %s rolled back (failure %d): %s", x.cred.ID, st.FailureCount, msg))
	if attention {
		x.note(notify.KindNeedsAttention, now, msg,
			fmt.Sprintf("credential %s needs attention after %d failed rotations: %s", x.cred.ID, st.FailureCount, msg))
	}
	err := x.commit(ctx, StateRolledBack, func(ctx context.Context, tx store.Tx) error {
		if v := x.newVer; v != nil && v.Stage == store.StagePending {
			d := *v
			d.Stage, d.RetiredAt, d.Sealed = store.StageDiscarded, now, nil
			if err := x.writeVersion(ctx, tx, d); err != nil {
				return err
			}
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.UpdateCredentialState(ctx, x.cred.ID, st)
	})
	if err != nil {
		if errors.Is(err, ErrRunMoved) {
			return nil
		}
		return err
	}
	if attention && x.e.opts.Notifier != nil {
		ev := notify.Event{
			Kind: notify.KindNeedsAttention, Time: now, CredentialID: x.cred.ID, Consumer: x.cred.Consumer,
			RunID: x.run.ID, Runbook: x.cred.Runbook, Labels: x.cred.Labels,
			Summary: fmt.Sprintf("credential %s needs attention after %d failed rotations: %s", x.cred.ID, st.FailureCount, msg),
		}
		if _, err := x.e.opts.Notifier.Notify(context.WithoutCancel(ctx), ev); err != nil {
			x.logger().Error("notifying needs_attention failed", slog.String("error", x.scrub(err)))
		}
	}
	return nil
}

// failIfSealed ends the run failed when err says a value it needs cannot
// be opened: sealed under a master key this process was not given, or not
// authentic. Retrying cannot help, so nothing is retried: the run fails at
// once, with the key id in its error, and the credential needs attention,
// unscheduled until rotated by hand (no version changes). Any other err is
// returned as it is.
func (x *execution) failIfSealed(ctx context.Context, err error) error {
	if !errors.Is(err, secret.ErrUnknownKey) && !errors.Is(err, secret.ErrOpen) {
		return err
	}
	msg := x.scrub(err) + "; see runbooks/master-key-rotation.md"
	x.logger().Error("run failed: a stored value cannot be opened", slog.String("error", msg))
	x.run.Error = msg
	x.event("run.failed", map[string]any{"error": msg})
	x.event("credential.needs_attention", map[string]any{"error": msg})
	bg := context.WithoutCancel(ctx)
	st := x.cred.State
	st.Status, st.NextRotationAt = store.StatusNeedsAttention, time.Time{}
	x.cred.State = st // for the finished-run log line
	x.note(notify.KindRunFailed, x.e.now(), msg, fmt.Sprintf("rotation of %s failed: %s", x.cred.ID, msg))
	x.note(notify.KindNeedsAttention, x.e.now(), msg, fmt.Sprintf("credential %s needs attention: %s", x.cred.ID, msg))
	err = x.commit(bg, StateFailed, func(ctx context.Context, tx store.Tx) error { return tx.UpdateCredentialState(ctx, x.cred.ID, st) })
	if errors.Is(err, ErrRunMoved) {
		return nil
	}
	if err == nil && x.e.opts.Notifier != nil {
		ev := notify.Event{
			Kind: notify.KindNeedsAttention, Time: x.e.now(), CredentialID: x.cred.ID, Consumer: x.cred.Consumer,
			RunID: x.run.ID, Runbook: x.cred.Runbook, Labels: x.cred.Labels,
			Summary: fmt.Sprintf("credential %s needs attention: %s", x.cred.ID, msg),
		}
		if _, nerr := x.e.opts.Notifier.Notify(bg, ev); nerr != nil {
			x.logger().Error("notifying needs_attention failed", slog.String("error", x.scrub(nerr)))
		}
	}
	return err
}

// abandon ends a run whose credential no longer exists.
func (x *execution) abandon(ctx context.Context, why string) error {
	x.run.Error = why
	x.event("run.failed", map[string]any{"error": why})
	x.note(notify.KindRunFailed, x.e.now(), why, fmt.Sprintf("rotation of %s failed: %s", x.run.CredentialID, why))
	err := x.commit(ctx, StateFailed, nil)
	if errors.Is(err, ErrRunMoved) {
		return nil
	}
	return err
}

var _ = slices.Contains[[]string]
