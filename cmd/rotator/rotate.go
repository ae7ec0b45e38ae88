package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/gctune"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

type rotateFlags struct {
	selectors     []string
	consumer      string
	all           bool
	emergency     bool
	reason        string
	revokeFirst   bool
	force         bool // --revoke-first even where the provider cannot revoke
	dryRun        bool
	wait          string
	concurrency   int
	actor, output string
	timeout       time.Duration
	// quiet: no progress lines on stderr (errors and warnings still).
	quiet bool
}

func (a *app) rotateCommand() *cobra.Command {
	var f rotateFlags
	cmd := &cobra.Command{
		Use:   "rotate [ID...]",
		Short: "Rotate credentials now (on demand or in an emergency)",
		Long: `Start a rotation of the named credentials, or of every credential a selector,
consumer or --all reaches. Each rotation mints a new value, verifies it, cuts
consumers over and retires the previous value after the credential's grace.

Without --wait the runs are queued for a running 'rotator serve'; when none
is running on the database, they are executed here, as with --wait. With --wait
they are executed here, by this process's own workers on the same queue (so an
emergency rotation works while the service is down), with progress on stderr;
the exit code is 1 if any run failed.

--emergency requires --reason, records the actor (--actor or the OS user), skips
rotation windows, runs at top priority and retires each previous value right
after cutover. --revoke-first also revokes the current value before minting:
use it when a leaked credential must die even at the cost of downtime.

See runbooks/emergency-rotation.md.`,
		Example: `  rotator rotate github-mcp-token --wait
  rotator rotate --selector team=platform --emergency --reason "key leaked in CI log" --dry-run
  rotator rotate --selector team=platform --emergency --reason "key leaked in CI log" --wait
  rotator rotate --consumer mcp-server-github --emergency --revoke-first \
    --reason "token posted publicly" --wait -o json`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.rotate(cmd.Context(), args, f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.selectors, "selector", nil, "rotate credentials whose labels match key=value (repeatable, comma-separated)")
	fl.StringVar(&f.consumer, "consumer", "", "rotate every credential of this MCP server or client")
	fl.BoolVar(&f.all, "all", false, "rotate every credential")
	fl.BoolVar(&f.emergency, "emergency", false, "emergency rotation: top priority, no windows, previous retired at once (needs --reason)")
	fl.StringVar(&f.reason, "reason", "", "why (recorded in the audit log; required with --emergency)")
	fl.BoolVar(&f.revokeFirst, "revoke-first", false, "revoke the current value before minting (downtime until cutover)")
	fl.BoolVar(&f.force, "force", false, "with --revoke-first, rotate even credentials whose provider cannot revoke (their value stays valid until it expires)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fl.StringVar(&f.wait, "wait", "", "wait for the runs: --wait (until cutover) or --wait=retired (through the grace period, until\nthe previous version is retired); exit 1 if any credential was not rotated")
	fl.Lookup("wait").NoOptDefVal = waitCutover
	fl.IntVar(&f.concurrency, "concurrency", 50, "rotations executed at once with --wait")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print no progress on stderr (the result and errors only)")
	fl.StringVar(&f.actor, "actor", "", "who is rotating, for the audit log (default: the OS user)")
	outputFlag(cmd, &f.output, formatText, formatText, formatJSON, formatYAML)
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "stop waiting (and retrying here) after this long")
	a.addRetryFlag(cmd)
	return cmd
}

// planEntry is one credential of a rotation plan.
type planEntry struct {
	Credential   string `json:"credential"`
	Consumer     string `json:"consumer"`
	Provider     string `json:"provider"`
	ProviderType string `json:"provider_type"`
	Overlap      bool   `json:"overlap"`
	Previous     string `json:"previous"`
	Warning      string `json:"warning,omitempty"`
}

func (a *app) rotate(ctx context.Context, ids []string, f rotateFlags) error {
	if err := checkOutput(f.output, formatText, formatJSON, formatYAML); err != nil {
		return err
	}
	labels, err := parseSelector(f.selectors)
	if err != nil {
		return err
	}
	sel := rotation.Selection{IDs: ids, Labels: labels, Consumer: f.consumer, All: f.all}
	if sel.Empty() {
		return usageError{rotation.ErrEmptySelection}
	}
	if f.emergency && f.reason == "" {
		return usagef("--emergency needs --reason: say why, it is recorded in the audit log")
	}
	if f.revokeFirst && !f.emergency {
		return usagef("--revoke-first is only for emergencies; add --emergency --reason ...")
	}
	if f.concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	if f.wait != "" && f.wait != waitCutover && f.wait != waitRetired {
		return usagef("--wait=%s: use --wait (until cutover) or --wait=retired (until the previous version is retired)", f.wait)
	}
	setup, err := a.newEngine(ctx, "")
	if err != nil {
		return err
	}
	defer setup.store.Close()
	e := setup.engine

	creds, err := e.Select(ctx, sel)
	if err != nil {
		return selectionError(err)
	}
	if len(creds) == 0 {
		return notFoundf("the selection matches no credential; see 'rotator credentials list'")
	}
	if err := a.checkRevokeFirst(ctx, e, creds, f); err != nil {
		return err
	}
	if f.dryRun {
		return a.printPlan(ctx, e, creds, f)
	}

	svc, serviceRunning, err := rotation.RunningService(ctx, setup.store)
	if err != nil {
		return err
	}
	// The runner is not started: it gives the engine its queue, so that runs
	// get jobs (a service executes them, or resumes them if this process
	// dies).
	if _, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: 1}); err != nil {
		return err
	}
	deadline := time.Now().Add(f.timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req := rotation.Request{
		Selection: rotation.Selection{IDs: credIDs(creds)}, Trigger: store.TriggerManual, Actor: actor(f.actor), Reason: f.reason,
		Emergency: f.emergency, RevokeFirst: f.revokeFirst,
	}
	if serviceRunning {
		fmt.Fprintf(a.stderr, "queued for the running service on %s\n", svc)
		started, err := e.Rotate(ctx, req)
		if err != nil {
			return err
		}
		if f.wait == "" {
			return a.printStarted(started, f.output)
		}
		ids := driveIDs(started)
		results := rotation.Watch(ctx, setup.store, ids, deadline, f.wait == waitRetired, a.progressPrinter(f, len(ids)))
		return a.printResults(started, results, f, "service "+svc.String())
	}

	fmt.Fprintln(a.stderr, "executing here: no 'rotator serve' is running on this database")
	gctune.Apply() // executing runs here, like serve
	local := &rotation.Local{E: e, Concurrency: f.concurrency, Deadline: deadline, WaitRetired: f.wait == waitRetired,
		Retry: true}
	defer a.sealAfterRuns(ctx, setup.store)
	// What is already due for these credentials (a retirement whose grace
	// ended, an interrupted run, a retry) is done first.
	due, err := e.Due(ctx, credIDs(creds))
	if err != nil {
		return err
	}
	if len(due) > 0 {
		fmt.Fprintf(a.stderr, "finishing %d run(s) already due for these credentials first\n", len(due))
		local.Progress = a.progressPrinter(f, len(due))
		local.Drive(ctx, due)
	}
	started, err := e.Rotate(ctx, req)
	if err != nil {
		return err
	}
	runIDs := driveIDs(started)
	local.Progress = a.progressPrinter(f, len(runIDs))
	results := local.Drive(ctx, runIDs)
	return a.printResults(started, results, f, "here")
}

// driveIDs are the runs to execute or follow for a rotation request: the
// new ones, and the active runs that made a credential skip, unless they
// wait out a grace period (those are not what was asked for).
func driveIDs(started []rotation.Started) []string {
	ids := make([]string, 0, len(started))
	for _, s := range started {
		if s.RunID != "" && !s.InGrace() {
			ids = append(ids, s.RunID)
		}
	}
	return ids
}

// sealAfterRuns seals the audit events of the runs this process executed
// (DESIGN.md §4: sealing is safe beside another sealer), so that an
// emergency rotation with the service down leaves no unsealed record.
func (a *app) sealAfterRuns(ctx context.Context, st store.Store) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	n, err := audit.NewSealer(st, audit.SealerOptions{}).Seal(sctx, 0)
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: sealing the audit events failed (%s); run 'rotator audit verify --seal'\n", a.redactor.Scrub(err.Error()))
		return
	}
	a.logger.Debug("sealed audit events", slog.Int("events", n))
}

func credIDs(creds []store.Credential) []string {
	ids := make([]string, len(creds))
	for i, c := range creds {
		ids[i] = c.ID
	}
	return ids
}

func (a *app) printPlan(ctx context.Context, e *rotation.Engine, creds []store.Credential, f rotateFlags) error {
	plan := make([]planEntry, 0, len(creds))
	for _, c := range creds {
		p := planEntry{Credential: c.ID, Consumer: c.Consumer, Provider: c.Provider}
		caps, typ, err := e.Capabilities(ctx, c.Provider)
		if err != nil {
			p.Warning = err.Error()
		}
		p.ProviderType, p.Overlap = typ, caps.Overlap
		switch {
		case c.Current == nil:
			p.Previous = "none (first value)"
		case f.revokeFirst && !caps.Revocable:
			p.Previous = "NOT revoked (the provider cannot revoke): valid until it expires"
		case f.revokeFirst:
			p.Previous = "revoked before minting (consumers fail until cutover)"
		case f.emergency:
			p.Previous = "retired right after cutover"
		case c.Policy.Grace > 0:
			p.Previous = "valid for grace " + duration.Format(c.Policy.Grace) + ", then retired"
		default:
			p.Previous = "retired right after cutover"
		}
		if !caps.Overlap && err == nil {
			p.Warning = "provider cannot keep old and new valid together: consumers may fail between activation and cutover"
		}
		plan = append(plan, p)
	}
	if isData(f.output) {
		return writeData(a.stdout, f.output, map[string]any{"plan": plan, "emergency": f.emergency, "revoke_first": f.revokeFirst, "reason": f.reason})
	}
	kind := "rotation"
	if f.emergency {
		kind = "EMERGENCY rotation"
	}
	fmt.Fprintf(a.stdout, "Plan: %s of %d credential(s) (dry run, nothing changed)\n", kind, len(plan))
	t := newTable(a.stdout, "CREDENTIAL", "CONSUMER", "PROVIDER", "TYPE", "OVERLAP", "PREVIOUS VERSION")
	for _, p := range plan {
		t.row(p.Credential, p.Consumer, p.Provider, orDash(p.ProviderType), fmt.Sprint(p.Overlap), p.Previous)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, p := range plan {
		if p.Warning != "" {
			fmt.Fprintf(a.stdout, "warning: %s: %s\n", p.Credential, p.Warning)
		}
	}
	return nil
}
