package rotation

import (
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Observer is told about finished runs and steps, for metrics. The engine
// calls it synchronously on the run's goroutine, so it must be cheap and
// must not block; it must be safe for concurrent use. It never sees a
// value. Options.Observer nil means none.
type Observer interface {
	// RunFinished is called once a run's terminal state is committed.
	RunFinished(RunFinished)
	// StepFinished is called when a step of a run ends, ok or not.
	StepFinished(StepFinished)
}

// RunFinished describes a run that reached a terminal state.
type RunFinished struct {
	CredentialID string
	Trigger      store.Trigger
	// State is the terminal state: succeeded, rolled_back or failed.
	State State
	// Duration is from the run's start (or creation) to its end.
	Duration time.Duration
	// SchedulerLag is how late a scheduled run started after its
	// credential was due; Scheduled is false (and SchedulerLag 0) for runs
	// not started by the scheduler.
	SchedulerLag time.Duration
	Scheduled    bool
}

// Succeeded reports whether the run succeeded.
func (r RunFinished) Succeeded() bool { return r.State == StateSucceeded }

// StepFinished describes one step of a run.
type StepFinished struct {
	// Name is the step (mint, activate, verify, stage, cutover, ...).
	Name string
	// Outcome is ok, failed or skipped.
	Outcome  string
	Duration time.Duration
}

// observeRun tells the observer about a finished run.
func (x *execution) observeRun() {
	o := x.e.opts.Observer
	if o == nil {
		return
	}
	start := x.run.StartedAt
	if start.IsZero() {
		start = x.run.CreatedAt
	}
	ev := RunFinished{CredentialID: x.run.CredentialID, Trigger: x.run.Trigger, State: State(x.run.State),
		Duration: x.run.FinishedAt.Sub(start)}
	if due := runOptions(x.run).DueAt; !due.IsZero() && !x.run.StartedAt.IsZero() {
		ev.Scheduled, ev.SchedulerLag = true, max(0, x.run.StartedAt.Sub(due))
	}
	o.RunFinished(ev)
}
