package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/gctune"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// executor says who executes runs for a command: a running service, or
// this process (and then how).
type executor struct {
	setup   *engineSetup
	service rotation.Process
	running bool
}

// newExecutor builds the engine and finds out, once and for the whole
// command, who executes its runs: the running 'rotator serve' when there is
// one, else this process. It says which on stderr.
func (a *app) newExecutor(ctx context.Context, quiet bool) (*executor, error) {
	setup, err := a.newEngine(ctx, "")
	if err != nil {
		return nil, err
	}
	svc, running, err := rotation.RunningService(ctx, setup.store)
	if err != nil {
		_ = setup.store.Close()
		return nil, err
	}
	// Not started: it gives the engine its queue (runs get jobs, and a
	// running job can be cancelled).
	if _, err := rotation.NewRunner(setup.engine, rotation.RunnerOptions{Workers: 1}); err != nil {
		_ = setup.store.Close()
		return nil, err
	}
	x := &executor{setup: setup, service: svc, running: running}
	if !quiet {
		if running {
			fmt.Fprintf(a.stderr, "the running service on %s executes the runs; waiting on their state\n", svc)
		} else {
			fmt.Fprintln(a.stderr, "executing here: no 'rotator serve' is running on this database")
		}
	}
	return x, nil
}

func (x *executor) close() { _ = x.setup.store.Close() }

func (x *executor) by() string {
	if x.running {
		return "service " + x.service.String()
	}
	return "here"
}

// follow takes runs to where f asks: executed here (with retries, and
// through grace with --wait=retired) when no service runs, else followed
// as the service executes them.
func (a *app) follow(ctx context.Context, x *executor, ids []string, f rotateFlags, deadline time.Time) []rotation.Result {
	if x.running {
		return rotation.Watch(ctx, x.setup.store, ids, deadline, f.wait == waitRetired, a.progressPrinter(f, len(ids)))
	}
	gctune.Apply()
	defer a.sealAfterRuns(ctx, x.setup.store)
	local := &rotation.Local{E: x.setup.engine, Concurrency: f.concurrency, Deadline: deadline,
		WaitRetired: f.wait == waitRetired, Retry: true, Progress: a.progressPrinter(f, len(ids))}
	return local.Drive(ctx, ids)
}

// resolveRuns resolves run arguments (ids in any case, unique prefixes,
// "latest").
func resolveRuns(ctx context.Context, st store.Reader, args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		id, err := rotation.ResolveRun(ctx, st, a)
		if errors.Is(err, rotation.ErrAmbiguousRun) {
			return nil, usageError{err}
		}
		if err != nil {
			return nil, notFound(fmt.Errorf("%w; see 'rotator runs list'", err))
		}
		out = append(out, id)
	}
	return out, nil
}

// startedFor describes existing runs as the outcome of a request, for
// printResults.
func startedFor(ctx context.Context, st store.Reader, ids []string) []rotation.Started {
	out := make([]rotation.Started, 0, len(ids))
	for _, id := range ids {
		r, err := st.GetRun(ctx, id)
		if err != nil {
			continue
		}
		out = append(out, rotation.Started{CredentialID: r.CredentialID, RunID: r.ID})
	}
	return out
}

func addWaitFlags(cmd *cobra.Command, f *rotateFlags, defaultWait string) {
	fl := cmd.Flags()
	fl.StringVar(&f.wait, "until", defaultWait, "wait until cutover, or until retired (through the grace period)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "stop waiting (and retrying here) after this long")
	fl.IntVar(&f.concurrency, "concurrency", 50, "runs executed at once when executed here")
	outputFlag(cmd, &f.output, formatText, formatText, formatJSON, formatYAML)
}

func checkWaitFlags(f rotateFlags) error {
	if err := checkOutput(f.output, formatText, formatJSON, formatYAML); err != nil {
		return err
	}
	if f.wait != waitCutover && f.wait != waitRetired {
		return usagef("--until=%s: use cutover or retired", f.wait)
	}
	if f.concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	return nil
}

func (a *app) runsWaitCommand() *cobra.Command {
	var f rotateFlags
	cmd := &cobra.Command{
		Use:   "wait RUN...",
		Short: "Wait for runs to cut over (or retire the previous version); executes them if needed",
		Long: `Wait until each run has cut over (--until cutover, the default) or has retired
the previous version (--until retired), and print where each ended. A failed
attempt is followed into its retry while one is due before --timeout.

When a 'rotator serve' runs on the database, it executes the runs and this
command follows their state. When none runs, the runs are executed here, as
'rotator rotate --wait' would. RUN is a run id, in any case, a unique prefix of
one, or 'latest'. Exit code 1 when a run failed or did not get as far as asked.`,
		Example: `  rotator runs wait latest
  rotator runs wait 01jq3k --until retired`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkWaitFlags(f); err != nil {
				return err
			}
			ctx := cmd.Context()
			x, err := a.newExecutor(ctx, false)
			if err != nil {
				return err
			}
			defer x.close()
			ids, err := resolveRuns(ctx, x.setup.store, args)
			if err != nil {
				return err
			}
			deadline := time.Now().Add(f.timeout)
			ctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			results := a.follow(ctx, x, ids, f, deadline)
			return a.printResults(startedFor(ctx, x.setup.store, ids), results, f, x.by())
		},
	}
	addWaitFlags(cmd, &f, waitCutover)
	a.addRetryFlag(cmd)
	return cmd
}

func (a *app) runsCancelCommand() *cobra.Command {
	var reason, actorName, output string
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run that has not cut over: roll it back, keeping the current value",
		Long: `Cancel a run before its cutover: the pending value is revoked (where the
provider can) and discarded, consumers keep the current value, and the run
ends rolled_back with "cancelled by ACTOR: REASON". A cancellation does not
count as a failed attempt; the credential is rotated again at its next due
time, and not within the retry backoff from now.

A run that has cut over cannot be cancelled (its new value is current and
consumers use it): rotate the credential again to replace it. A run that the
service is executing is stopped at its next committed step first.`,
		Example: `  rotator runs cancel 01jq3k --reason "wrong window"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			ctx := cmd.Context()
			x, err := a.newExecutor(ctx, true)
			if err != nil {
				return err
			}
			defer x.close()
			ids, err := resolveRuns(ctx, x.setup.store, args)
			if err != nil {
				return err
			}
			r, err := x.setup.engine.Cancel(ctx, ids[0], actor(actorName), reason)
			switch {
			case errors.Is(err, rotation.ErrCutOver), errors.Is(err, rotation.ErrFinished):
				return usageError{err}
			case err != nil:
				return err
			}
			a.sealAfterRuns(ctx, x.setup.store)
			if isData(output) {
				return writeData(a.stdout, output, map[string]any{"runs": []startedView{{Credential: r.CredentialID, Run: r.ID, State: r.State, Error: r.Error}}})
			}
			fmt.Fprintf(a.stdout, "Run %s of %s cancelled: %s (%s).\n", r.ID, r.CredentialID, r.State, r.Error)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the run and the audit log)")
	cmd.Flags().StringVar(&actorName, "actor", "", "who is cancelling, for the audit log (default: the OS user)")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	return cmd
}

func (a *app) runsRetryCommand() *cobra.Command {
	var f rotateFlags
	cmd := &cobra.Command{
		Use:   "retry RUN",
		Short: "Start a new attempt of a run that failed or rolled back",
		Long: `Start a new run of the credential of a run that failed, rolled back or was
cancelled, with the same trigger, actor, reason and options (an emergency
stays an emergency). With --wait it waits as 'rotator rotate --wait' does; when
no service runs, it is executed here either way.`,
		Example: `  rotator runs retry latest --wait`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			if f.wait != "" && f.wait != waitCutover && f.wait != waitRetired {
				return usagef("--wait=%s: use --wait or --wait=retired", f.wait)
			}
			ctx := cmd.Context()
			x, err := a.newExecutor(ctx, false)
			if err != nil {
				return err
			}
			defer x.close()
			ids, err := resolveRuns(ctx, x.setup.store, args)
			if err != nil {
				return err
			}
			prev, err := x.setup.store.GetRun(ctx, ids[0])
			if err != nil {
				return err
			}
			if !rotation.State(prev.State).Terminal() {
				return usagef("run %s is still %s; wait for it ('rotator runs wait %s') or cancel it", prev.ID, prev.State, prev.ID)
			}
			if prev.State == string(rotation.StateSucceeded) {
				return usagef("run %s succeeded; to rotate %s again use 'rotator rotate %s'", prev.ID, prev.CredentialID, prev.CredentialID)
			}
			st, err := x.setup.engine.Retry(ctx, prev)
			if err != nil {
				return err
			}
			started := []rotation.Started{st}
			if x.running && f.wait == "" {
				return a.printStarted(started, f.output)
			}
			deadline := time.Now().Add(f.timeout)
			ctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			return a.printResults(started, a.follow(ctx, x, driveIDs(started), f, deadline), f, x.by())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.wait, "wait", "", "wait until cutover (--wait) or until the previous version is retired (--wait=retired)")
	fl.Lookup("wait").NoOptDefVal = waitCutover
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "stop waiting (and retrying here) after this long")
	outputFlag(cmd, &f.output, formatText, formatText, formatJSON, formatYAML)
	f.concurrency = 1
	a.addRetryFlag(cmd)
	return cmd
}

func (a *app) runsResumeCommand() *cobra.Command {
	var (
		f         rotateFlags
		selectors []string
		consumer  string
	)
	cmd := &cobra.Command{
		Use:   "resume [CREDENTIAL...]",
		Short: "Finish what is due with no service running: retirements, interrupted runs, retries",
		Long: `Execute here what a running 'rotator serve' would do for runs already started:
retire previous versions whose grace period has ended, resume runs that were
interrupted (a CLI stopped with Ctrl-C, a crash), and start the next attempt of
failing credentials whose retry is due. New rotations that are merely due on
schedule are not started (that is the service's scheduler).

Meant for cron on hosts where no service runs, for example every minute:
  * * * * *  rotator runs resume --timeout 50s
When a service runs on the database, it does all this itself and the command
only says so. Exit code 1 when a run failed.`,
		Example: `  rotator runs resume
  rotator runs resume --selector team=platform -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			labels, err := parseSelector(selectors)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			x, err := a.newExecutor(ctx, true)
			if err != nil {
				return err
			}
			defer x.close()
			if x.running {
				fmt.Fprintf(a.stderr, "the running service on %s executes due runs itself; nothing to do here\n", x.service)
				if isData(f.output) {
					return writeData(a.stdout, f.output, map[string]any{"runs": []startedView{}})
				}
				return nil
			}
			var ids []string
			sel := rotation.Selection{IDs: args, Labels: labels, Consumer: consumer}
			if !sel.Empty() {
				creds, err := x.setup.engine.Select(ctx, sel)
				if err != nil {
					return selectionError(err)
				}
				if ids = credIDs(creds); len(ids) == 0 {
					return notFound(errors.New("the selection matches no credential; see 'rotator credentials list'"))
				}
			}
			due, err := x.setup.engine.Due(ctx, ids)
			if err != nil {
				return err
			}
			if len(due) == 0 {
				fmt.Fprintln(a.stderr, "nothing is due")
				if isData(f.output) {
					return writeData(a.stdout, f.output, map[string]any{"runs": []startedView{}})
				}
				return nil
			}
			fmt.Fprintf(a.stderr, "executing here %d due run(s): no 'rotator serve' is running on this database\n", len(due))
			deadline := time.Now().Add(f.timeout)
			ctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			gctune.Apply()
			defer a.sealAfterRuns(ctx, x.setup.store)
			local := &rotation.Local{E: x.setup.engine, Concurrency: f.concurrency, Deadline: deadline, Progress: a.progressPrinter(f, len(due))}
			results := local.Drive(ctx, due)
			return a.printResults(startedFor(ctx, x.setup.store, due), results, f, "here")
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&selectors, "selector", nil, "only credentials whose labels match key=value (repeatable, comma-separated)")
	fl.StringVar(&consumer, "consumer", "", "only credentials of this MCP server or client")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "stop after this long (runs stop at a committed step)")
	fl.IntVar(&f.concurrency, "concurrency", 50, "runs executed at once")
	outputFlag(cmd, &f.output, formatText, formatText, formatJSON, formatYAML)
	a.addRetryFlag(cmd)
	return cmd
}
