package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
)

// Errors of Cancel.
var (
	// ErrFinished: the run already reached a terminal state.
	ErrFinished = errors.New("the run has already finished")
	// ErrCutOver: the run already cut over, so the new value is current and
	// there is nothing to roll back to; rotate again to replace it.
	ErrCutOver = errors.New("the run already cut over: the new value is current and consumers use it; rotate the credential again to replace it")
)

// ExecutingError says that another process holds a run's lease (a CLI
// executing it) and is working on it now.
type ExecutingError struct {
	Run        string
	Executor   Process
	LeaseUntil time.Time
}

func (e *ExecutingError) Error() string {
	return fmt.Sprintf("run %s is being executed by %s (lease until %s); stop that process or wait for it",
		e.Run, e.Executor, e.LeaseUntil.UTC().Format(time.RFC3339))
}

// Cancel rolls back a run that has not cut over: the pending value is
// revoked (where the provider can) and discarded, targets keep the current
// value, and the run ends rolled_back with "cancelled by ACTOR: REASON".
// A cancellation is not counted as a failed attempt. A run that a service
// worker is executing is stopped first (its job is cancelled; the worker
// stops at a committed step). It returns the run as it ended.
func (e *Engine) Cancel(ctx context.Context, runID, actor, reason string) (store.Run, error) {
	msg := "cancelled by " + actor
	if reason != "" {
		msg += ": " + reason
	}
	askedJob := int64(0)
	for attempt := 0; ; attempt++ {
		w, err := e.store.GetRunWork(ctx, runID)
		if err != nil {
			return store.Run{}, err
		}
		run := w.Run
		s := State(run.State)
		switch {
		case s.Terminal():
			if attempt > 0 && run.Error == msg {
				return run, nil
			}
			return run, fmt.Errorf("run %s ended %s: %w", run.ID, run.State, ErrFinished)
		case !s.BeforeCutover() && s != StatePlanned:
			return run, fmt.Errorf("run %s is %s: %w", run.ID, run.State, ErrCutOver)
		case run.Executor != "" && run.Executor != e.executor && run.LeaseUntil.After(e.now()):
			p, _ := ParseProcess(run.Executor)
			return run, &ExecutingError{Run: run.ID, Executor: p, LeaseUntil: run.LeaseUntil}
		}
		if attempt > 600 {
			return run, fmt.Errorf("run %s: the worker executing it did not stop within a minute", run.ID)
		}
		if e.queue != nil {
			jobs, err := runJobs(ctx, e.store, []string{run.ID})
			if err != nil {
				return run, err
			}
			if j, ok := jobs[run.ID]; ok && j.live() {
				if askedJob != j.ID {
					if err := e.queue.cancelJob(ctx, j.ID); err != nil {
						return run, fmt.Errorf("cancelling the job of run %s: %w", run.ID, err)
					}
					askedJob = j.ID
					// A worker may have taken the job since it was read:
					// read the run and the job again, and wait for that
					// worker to stop before rolling anything back.
					continue
				}
				if j.State == "running" {
					// Wait for the worker to stop at a committed step.
					select {
					case <-ctx.Done():
						return run, ctx.Err()
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
			}
		}
		x, err := e.newExecution(ctx, w)
		if err != nil {
			return run, err
		}
		if w.Credential == nil {
			err = x.abandon(ctx, msg+" (credential was removed from the inventory)")
			x.forget()
			if err != nil {
				return run, err
			}
			continue
		}
		x.cancelled, x.resumed = true, true
		if err := x.loadPlugins(ctx); err != nil {
			x.logger().Warn("cancelling without the provider: the pending value cannot be revoked", slog.String("error", x.scrub(err)))
		}
		if err := x.loadValues(ctx); err != nil {
			x.logger().Warn("cancelling without the pending value: it cannot be revoked", slog.String("error", x.scrub(err)))
		}
		x.event("run.cancelled", map[string]any{"actor": actor, "reason": reason})
		x.logger().Info("cancelling run", slog.String("actor", actor))
		err = x.rollback(ctx, msg)
		x.forget()
		if errors.Is(err, ErrRunMoved) {
			// Its worker moved it after the read above (it ended, cut
			// over, or went on): read it again.
			continue
		}
		if err != nil {
			return run, err
		}
	}
}

// GiveUp ends a run for good because it cannot go on (its job exhausted its
// attempts, or a value cannot be opened): before cutover it is rolled back,
// after cutover it ends failed; either way the credential needs attention,
// with why, and a needs-attention notification is sent.
func (e *Engine) GiveUp(ctx context.Context, runID, why string) error {
	ctx = context.WithoutCancel(ctx)
	w, err := e.store.GetRunWork(ctx, runID)
	if err != nil {
		return err
	}
	if State(w.Run.State).Terminal() {
		return nil
	}
	x, err := e.newExecution(ctx, w)
	if err != nil {
		return err
	}
	defer x.forget()
	if w.Credential == nil {
		return x.abandon(ctx, why)
	}
	x.giveUp = true
	x.logger().Error("giving up on run; the credential needs attention", slog.String("error", x.scrub(errors.New(why))))
	if err := x.loadPlugins(ctx); err == nil {
		_ = x.loadValues(ctx)
	}
	switch s := State(x.run.State); {
	case s.BeforeCutover() || s == StatePlanned:
		return x.rollback(ctx, why)
	case s == StateCuttingOver:
		_, _, err := x.failAtCutover(ctx, errors.New(why))
		return err
	default:
		return x.failAfterCutover(ctx, why)
	}
}

// failAfterCutover ends a run that cut over but could not retire the
// previous version: the new version stays current, the previous one stays
// previous (still sealed, so a later run can retire it), and the
// credential needs attention.
func (x *execution) failAfterCutover(ctx context.Context, why string) error {
	x.run.Error = why
	st := x.cred.State
	st.Status = store.StatusNeedsAttention
	x.event("run.failed", map[string]any{"error": why})
	x.event("credential.needs_attention", map[string]any{"error": why})
	x.note(notify.KindRunFailed, x.e.now(), why, fmt.Sprintf("rotation of %s failed after cutover: %s", x.cred.ID, why))
	x.note(notify.KindNeedsAttention, x.e.now(), why, fmt.Sprintf("credential %s needs attention: %s", x.cred.ID, why))
	err := x.commit(ctx, StateFailed, func(ctx context.Context, tx store.Tx) error {
		return tx.UpdateCredentialState(ctx, x.cred.ID, st)
	})
	if err != nil {
		if errors.Is(err, ErrRunMoved) {
			return nil
		}
		return err
	}
	x.notifyAttention(ctx, why)
	return nil
}

// notifyAttention sends the credential.needs_attention notification.
func (x *execution) notifyAttention(ctx context.Context, why string) {
	if x.e.opts.Notifier == nil {
		return
	}
	ev := notify.Event{
		Kind: notify.KindNeedsAttention, Time: x.e.now(), CredentialID: x.cred.ID, Consumer: x.cred.Consumer,
		RunID: x.run.ID, Runbook: x.cred.Runbook, Labels: x.cred.Labels,
		Summary: fmt.Sprintf("credential %s needs attention: %s", x.cred.ID, why),
	}
	if _, err := x.e.opts.Notifier.Notify(context.WithoutCancel(ctx), ev); err != nil {
		x.logger().Error("notifying needs_attention failed", slog.String("error", x.scrub(err)))
	}
}
