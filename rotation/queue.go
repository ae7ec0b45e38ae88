package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/rotatorhq/rotator/internal/store"
)

// Queue names.
const (
	QueueRotation  = "rotation"
	QueueScheduler = "scheduler"
)

// RotateArgs is the River job that executes one run.
type RotateArgs struct {
	RunID        string `json:"run_id"`
	CredentialID string `json:"credential_id"`
}

// Kind implements river.JobArgs.
func (RotateArgs) Kind() string { return "rotator.rotate" }

// TickArgs is the leader-only River job that enqueues due credentials.
type TickArgs struct{}

// Kind implements river.JobArgs.
func (TickArgs) Kind() string { return "rotator.tick" }

type job struct {
	RunID        string
	CredentialID string
	Priority     int
}

// queue inserts jobs in the caller's transaction.
type queue interface {
	insertRotate(ctx context.Context, tx store.Tx, jobs []job) error
	// cancelJob cancels a queued job, or asks the worker running it to
	// stop (its context is cancelled; it stops at a committed step).
	cancelJob(ctx context.Context, jobID int64) error
}

// MigrateQueue applies River's own migrations to the store's database.
func MigrateQueue(ctx context.Context, st store.Store) error {
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		return migrateRiver(ctx, riverpgxv5.New(h))
	case *sql.DB:
		return migrateRiver(ctx, riversqlite.New(h))
	}
	return fmt.Errorf("no River driver for store %s", st.Dialect())
}

func migrateRiver[TTx any](ctx context.Context, d riverdriver.Driver[TTx]) error {
	m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// RunnerOptions configure the workers of a process.
type RunnerOptions struct {
	// Workers is the number of runs executed at once (default 50).
	Workers int
	// Scheduler makes this process take part in leader election and run
	// the leader-only tick that enqueues due credentials (serve does; the
	// CLI's emergency rotation does not).
	Scheduler bool
	// TickInterval is how often the scheduler polls for due credentials
	// (default 200ms).
	TickInterval time.Duration
	// SchedulerBatch is how many due credentials one poll enqueues at most
	// (default 1000).
	SchedulerBatch int
	// JobTimeout bounds one execution of a run (default 4m); RescueAfter is
	// when a run whose worker vanished is resumed elsewhere (default 5m,
	// must exceed JobTimeout).
	JobTimeout, RescueAfter time.Duration
	// FetchPollInterval is how often idle workers poll for jobs when no
	// notification arrives (default 100ms on Postgres, 1s on SQLite).
	// Jobs inserted through River (by this process, another replica or the
	// CLI) wake the workers by a notification on both stores
	// (TestInsertedRunsWakeIdleWorkers); the poll finds the rest. On
	// Postgres that includes the jobs the reconciler puts back after a
	// replica died (makeJobAvailable), which must resume within seconds,
	// and on both stores the jobs River snoozes for at most its
	// scheduler's interval (5s: a run locked by another process, a short
	// grace period): River makes them available at once with a later
	// scheduled_at and sends no notification, so they start up to one
	// poll interval after they are due.
	// SQLite has one process, and River delivers its notifications through
	// an outbox it polls every 50ms, so there the poll is only a fallback;
	// at 100ms it was the largest part of an idle service's CPU (each poll
	// prepares River's fetch statement anew).
	FetchPollInterval time.Duration
	Logger            *slog.Logger
	// ReconcileAfter is how long an active run must have been left alone
	// before the leader's reconciler looks for its job (default 30s), and
	// ReconcileEvery how often it looks (default 5s); the same pass puts
	// back in the queue, on Postgres, the runs of workers that died.
	ReconcileAfter, ReconcileEvery time.Duration
	// MaxJobAttempts is how often a run's job is attempted before the run
	// is given up (default 25; a job fails only for infrastructure
	// reasons: run failures are rolled back and retried as new runs).
	MaxJobAttempts int
	// LeaderTasks run on the scheduler leader only, one after another, once
	// per scheduler slice (about every 2s), after due credentials are
	// enqueued; the audit sealer is one. Each should bound its own work.
	// An error is logged and the task runs again next slice.
	LeaderTasks []func(ctx context.Context) error
	// Deliverer, when set, works the notification delivery jobs
	// (deliver.go) on NotifyWorkers workers (default 4).
	Deliverer     Deliverer
	NotifyWorkers int
}

// Runner runs the engine's River workers (and, optionally, the scheduler)
// in this process.
type Runner struct {
	e     *Engine
	opts  RunnerOptions
	locks *runLocks
	// stopTakeover ends the takeover loop Start began.
	stopTakeover func()
	startFn      func(context.Context) error
	stopFn       func(context.Context) error
	// insertDeliver inserts notification delivery jobs (deliver.go).
	insertDeliver func(ctx context.Context, tx store.Tx, ids []string) error
	// quiet logs the warnings that repeat every second while the database
	// is unreachable, holding back repeats (quietRepeats).
	quiet *slog.Logger
}

// NewRunner builds the River client for the engine's store and attaches it
// to the engine, so Rotate and EnqueueDue can insert jobs.
func NewRunner(e *Engine, opts RunnerOptions) (*Runner, error) {
	if opts.Workers <= 0 {
		opts.Workers = 50
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = 200 * time.Millisecond
	}
	if opts.SchedulerBatch <= 0 {
		opts.SchedulerBatch = 1000
	}
	if opts.JobTimeout <= 0 {
		opts.JobTimeout = 4 * time.Minute
	}
	if opts.RescueAfter <= opts.JobTimeout {
		opts.RescueAfter = opts.JobTimeout + time.Minute
	}
	if opts.FetchPollInterval <= 0 {
		opts.FetchPollInterval = 100 * time.Millisecond
		if e.store.Dialect() == store.DialectSQLite {
			opts.FetchPollInterval = time.Second
		}
	}
	if opts.ReconcileAfter <= 0 {
		opts.ReconcileAfter = 30 * time.Second
	}
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = 5 * time.Second
	}
	if opts.MaxJobAttempts <= 0 {
		opts.MaxJobAttempts = 25
	}
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	if opts.NotifyWorkers <= 0 {
		opts.NotifyWorkers = 4
	}
	r := &Runner{e: e, opts: opts, locks: newRunLocks(e.store, opts.Logger),
		quiet: slog.New(newQuietRepeats(e.log.Handler(), riverRepeatWindow))}
	if opts.Scheduler {
		rec := &reconciler{e: e, minAge: opts.ReconcileAfter, every: opts.ReconcileEvery}
		opts.LeaderTasks = append([]func(context.Context) error{rec.task}, opts.LeaderTasks...)
		r.opts = opts
	}
	var err error
	switch h := e.store.Handle().(type) {
	case *pgxpool.Pool:
		err = setupRiver[pgx.Tx](r, riverpgxv5.New(h))
	case *sql.DB:
		err = setupRiver[*sql.Tx](r, riversqlite.New(h))
	default:
		err = fmt.Errorf("no River driver for store %s", e.store.Dialect())
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

type riverQueue[TTx any] struct {
	client      *river.Client[TTx]
	maxAttempts int
}

func (q *riverQueue[TTx]) insertRotate(ctx context.Context, tx store.Tx, jobs []job) error {
	raw, ok := tx.Raw().(TTx)
	if !ok {
		return fmt.Errorf("store transaction %T is not a %T", tx.Raw(), raw)
	}
	params := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		params[i] = river.InsertManyParams{
			Args:       RotateArgs{RunID: j.RunID, CredentialID: j.CredentialID},
			InsertOpts: &river.InsertOpts{Queue: QueueRotation, Priority: j.Priority, MaxAttempts: q.maxAttempts},
		}
	}
	_, err := q.client.InsertManyFastTx(ctx, raw, params)
	return err
}

func (q *riverQueue[TTx]) cancelJob(ctx context.Context, jobID int64) error {
	_, err := q.client.JobCancel(ctx, jobID)
	return err
}

func setupRiver[TTx any](r *Runner, driver riverdriver.Driver[TTx]) error {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &rotateWorker{e: r.e, timeout: r.opts.JobTimeout, locks: r.locks}); err != nil {
		return err
	}
	cfg := &river.Config{
		ID:                     r.e.executor,
		Queues:                 map[string]river.QueueConfig{QueueRotation: {MaxWorkers: r.opts.Workers}},
		Workers:                workers,
		JobTimeout:             r.opts.JobTimeout,
		RescueStuckJobsAfter:   r.opts.RescueAfter,
		FetchCooldown:          5 * time.Millisecond,
		FetchPollInterval:      r.opts.FetchPollInterval,
		LeaderElectionDisabled: !r.opts.Scheduler,
		// River logs job counts at info every 5s; operators need only its warnings.
		Logger: slog.New(minLevel{h: newQuietRepeats(r.opts.Logger.Handler(), riverRepeatWindow), min: slog.LevelWarn}).
			With(slog.String("component", "river")),
		CompletedJobRetentionPeriod: time.Hour,
	}
	if r.opts.Scheduler {
		if err := river.AddWorkerSafely(workers, &tickWorker{e: r.e, quiet: r.quiet, interval: r.opts.TickInterval, batch: r.opts.SchedulerBatch, slice: 2 * time.Second, tasks: r.opts.LeaderTasks}); err != nil {
			return err
		}
		cfg.Queues[QueueScheduler] = river.QueueConfig{MaxWorkers: 1}
		cfg.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(
			river.PeriodicInterval(2*time.Second),
			func() (river.JobArgs, *river.InsertOpts) {
				return TickArgs{}, &river.InsertOpts{Queue: QueueScheduler, MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByPeriod: 2 * time.Second}}
			},
			&river.PeriodicJobOpts{RunOnStart: true},
		)}
	}
	if err := addDeliverer(r, workers, cfg); err != nil {
		return err
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return fmt.Errorf("starting River: %w", err)
	}
	r.insertDeliver = insertDeliverFunc(client)
	r.e.queue = &riverQueue[TTx]{client: client, maxAttempts: r.opts.MaxJobAttempts}
	r.startFn = client.Start
	r.stopFn = client.Stop
	return nil
}

// Start starts the workers (and the scheduler).
func (r *Runner) Start(ctx context.Context) error {
	if err := r.startFn(ctx); err != nil {
		return err
	}
	if r.locks != nil {
		// Every replica looks for runs of dead workers (the leader may be
		// the one that died, and electing another takes longer).
		tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		r.stopTakeover = func() { cancel(); <-done }
		go func() {
			defer close(done)
			t := time.NewTicker(takeoverEvery)
			defer t.Stop()
			for {
				select {
				case <-tctx.Done():
					return
				case <-t.C:
				}
				if _, err := r.e.takeOver(tctx, takeoverMinAge); err != nil && tctx.Err() == nil {
					r.quiet.Warn("looking for runs of vanished workers failed", slog.String("error", err.Error()))
				}
			}
		}()
	}
	return nil
}

// A running job whose run lock has been free for takeoverMinAge is put
// back in the queue; replicas look every takeoverEvery.
const (
	takeoverEvery  = time.Second
	takeoverMinAge = 2 * time.Second
)

// Stop stops fetching new jobs and waits for running ones to finish or
// reach a committed boundary, until ctx ends.
func (r *Runner) Stop(ctx context.Context) error {
	if r.stopTakeover != nil {
		r.stopTakeover()
	}
	err := r.stopFn(ctx)
	r.locks.close()
	return err
}

type rotateWorker struct {
	river.WorkerDefaults[RotateArgs]
	e       *Engine
	timeout time.Duration
	locks   *runLocks
}

func (w *rotateWorker) Timeout(*river.Job[RotateArgs]) time.Duration { return w.timeout }

func (w *rotateWorker) Work(ctx context.Context, j *river.Job[RotateArgs]) error {
	unlock, ok := w.locks.lock(ctx, j.Args.RunID)
	if !ok {
		// Another live process executes this run (a job put back by a
		// takeover while its first worker was only slow): leave it.
		return river.JobSnooze(5 * time.Second)
	}
	defer unlock()
	outcome, at, err := w.e.Execute(ctx, j.Args.RunID)
	if err != nil {
		// The last attempt failed, by an error or by the job timeout (not
		// by a shutdown or a cancellation, after which the run resumes).
		if !errors.Is(ctx.Err(), context.Canceled) && j.Attempt >= j.MaxAttempts {
			// River discards the job after this: the run must not stay
			// active without one.
			why := fmt.Sprintf("gave up after %d attempts of its job: %s", j.Attempt, w.e.opts.Redactor.Scrub(err.Error()))
			if gerr := w.e.GiveUp(ctx, j.Args.RunID, why); gerr != nil {
				w.e.log.Error("giving up on a run failed; the reconciler retries", slog.String("run", j.Args.RunID),
					slog.String("error", w.e.opts.Redactor.Scrub(gerr.Error())))
				return err
			}
			return nil
		}
		return err
	}
	switch outcome {
	case RetireLater:
		// The job comes back when the grace period ends (a scheduled job).
		return river.JobSnooze(max(time.Until(at), time.Second))
	case Leased:
		// A CLI executes the run itself; come back when its lease ends.
		return river.JobSnooze(max(time.Until(at), 0) + time.Second)
	case Done:
	}
	return nil
}

// NextRetryAt for rotate jobs: a job only fails for infrastructure reasons
// (the database, a crash); run-level failures are handled by rollback and
// the credential's own backoff.
func (w *rotateWorker) NextRetry(j *river.Job[RotateArgs]) time.Time {
	d := time.Duration(1<<min(j.Attempt, 8)) * time.Second
	return time.Now().Add(d)
}

type tickWorker struct {
	river.WorkerDefaults[TickArgs]
	e               *Engine
	quiet           *slog.Logger // Runner.quiet
	interval, slice time.Duration
	batch           int
	tasks           []func(ctx context.Context) error
}

// Work polls for due credentials every interval for one slice; the next
// periodic tick job takes over. Only the leader inserts tick jobs.
//
// The leader tasks (the audit sealer) run once per slice beside the polls,
// not between them: a task that takes a second (sealing thousands of
// events) must not hold due credentials back for that second. The slice
// ends once its time is up and the tasks are done.
func (w *tickWorker) Work(ctx context.Context, _ *river.Job[TickArgs]) error {
	deadline := time.Now().Add(w.slice)
	tasksDone := make(chan struct{})
	go func() {
		defer close(tasksDone)
		w.runTasks(ctx)
	}()
	defer func() { <-tasksDone }()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		for {
			n, err := w.e.EnqueueDue(ctx, w.batch)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.quiet.Warn("scheduler tick failed", slog.String("error", w.e.opts.Redactor.Scrub(err.Error())))
				break
			}
			if n < w.batch {
				break
			}
		}
		if time.Now().After(deadline) {
			select {
			case <-tasksDone:
				return nil
			default:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// runTasks runs the leader tasks once, one after another, logging failures.
func (w *tickWorker) runTasks(ctx context.Context) {
	for i, task := range w.tasks {
		if err := task(ctx); err != nil && ctx.Err() == nil {
			w.e.log.Warn("leader task failed", slog.Int("task", i), slog.String("error", w.e.opts.Redactor.Scrub(err.Error())))
		}
	}
}

var _ = errors.New

// minLevel drops records below min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(a), min: m.min}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{h: m.h.WithGroup(n), min: m.min} }

// riverRepeatWindow is how long River's repeats of one message are held
// back: while the database is unreachable, River's fetch loop alone logs
// an error every 100 ms.
const riverRepeatWindow = 30 * time.Second

// quietRepeats passes a record on unless a record with the same level and
// message was passed on less than window ago; it counts those it holds
// back and adds their number, as "repeated", to the next one it passes on.
// Handlers derived with WithAttrs and WithGroup share the counts.
type quietRepeats struct {
	h      slog.Handler
	window time.Duration
	shared *repeatCounts
}

type repeatCounts struct {
	mu   sync.Mutex
	now  func() time.Time
	seen map[repeatKey]*repeatState
}

type repeatKey struct {
	level slog.Level
	msg   string
}

type repeatState struct {
	passed time.Time // when the last record was passed on
	held   int       // records held back since
}

func newQuietRepeats(h slog.Handler, window time.Duration) quietRepeats {
	return quietRepeats{h: h, window: window, shared: &repeatCounts{now: time.Now, seen: map[repeatKey]*repeatState{}}}
}

func (q quietRepeats) Enabled(ctx context.Context, l slog.Level) bool { return q.h.Enabled(ctx, l) }

func (q quietRepeats) Handle(ctx context.Context, r slog.Record) error {
	c := q.shared
	c.mu.Lock()
	now := c.now()
	k := repeatKey{r.Level, r.Message}
	st := c.seen[k]
	if st != nil && now.Sub(st.passed) < q.window {
		st.held++
		c.mu.Unlock()
		return nil
	}
	if st == nil {
		if len(c.seen) >= 1000 { // bounded, whatever River logs
			clear(c.seen)
		}
		st = &repeatState{}
		c.seen[k] = st
	}
	held := st.held
	st.held, st.passed = 0, now
	c.mu.Unlock()
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", held), slog.Duration("repeated_within", q.window))
	}
	return q.h.Handle(ctx, r)
}

func (q quietRepeats) WithAttrs(a []slog.Attr) slog.Handler {
	return quietRepeats{h: q.h.WithAttrs(a), window: q.window, shared: q.shared}
}

func (q quietRepeats) WithGroup(n string) slog.Handler {
	return quietRepeats{h: q.h.WithGroup(n), window: q.window, shared: q.shared}
}
