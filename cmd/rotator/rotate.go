package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

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
	dryRun, wait  bool
	concurrency   int
	actor, output string
	timeout       time.Duration
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
  rotator rotate --consumer mcp-server-github --emergency --revoke-first --reason "token posted publicly" --wait -o json`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.rotate(cmd.Context(), args, f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.selectors, "selector", nil, "rotate credentials whose labels match key=value (repeatable, comma-separated)")
	fl.StringVar(&f.consumer, "consumer", "", "rotate every credential of this MCP server or client")
	fl.BoolVar(&f.all, "all", false, "rotate every credential")
	fl.BoolVar(&f.emergency, "emergency", false, "emergency rotation: top priority, no windows, previous retired at once (needs --reason)")
	fl.StringVar(&f.reason, "reason", "", "why (recorded in the audit log; required with --emergency)")
	fl.BoolVar(&f.revokeFirst, "revoke-first", false, "revoke the current value before minting (downtime until cutover)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fl.BoolVar(&f.wait, "wait", false, "execute the runs in this process and wait for them; exit 1 if any failed")
	fl.IntVar(&f.concurrency, "concurrency", 50, "rotations executed at once with --wait")
	fl.StringVar(&f.actor, "actor", "", "who is rotating, for the audit log (default: the OS user)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "with --wait, give up waiting after this long")
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
	if err := checkOutput(f.output, "text", "json"); err != nil {
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
	setup, err := a.newEngine(ctx, "")
	if err != nil {
		return err
	}
	defer setup.store.Close()
	e := setup.engine

	creds, err := e.Select(ctx, sel)
	if err != nil {
		return usageError{err}
	}
	if len(creds) == 0 {
		return fmt.Errorf("the selection matches no credential; see 'rotator credentials list'")
	}
	if f.dryRun {
		return a.printPlan(ctx, e, creds, f)
	}

	if !f.wait {
		// Queued runs are executed by a running service; without one they
		// would wait, so execute them here.
		running, err := rotation.ServiceRunning(ctx, setup.store)
		if err != nil || !running {
			why := "no 'rotator serve' is running on this database"
			if err != nil {
				why = fmt.Sprintf("cannot tell whether a 'rotator serve' is running (%v)", err)
			}
			fmt.Fprintf(a.stderr, "%s: executing the runs in this process, as with --wait\n", why)
			f.wait = true
		}
	}
	if f.wait {
		gctune.Apply() // executing runs here, like serve
	}
	runner, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: f.concurrency, Scheduler: false})
	if err != nil {
		return err
	}
	if f.wait {
		if err := runner.Start(ctx); err != nil {
			return fmt.Errorf("starting workers: %w", err)
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = runner.Stop(stopCtx)
		}()
	}
	trigger := store.TriggerManual
	started, err := e.Rotate(ctx, rotation.Request{
		Selection: rotation.Selection{IDs: credIDs(creds)}, Trigger: trigger, Actor: actor(f.actor), Reason: f.reason,
		Emergency: f.emergency, RevokeFirst: f.revokeFirst,
	})
	if err != nil {
		return err
	}
	if !f.wait {
		return a.printStarted(started, f.output)
	}
	return a.waitRuns(ctx, setup.store, started, f)
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
	if f.output == "json" {
		return writeJSON(a.stdout, map[string]any{"plan": plan, "emergency": f.emergency, "revoke_first": f.revokeFirst, "reason": f.reason})
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

type startedView struct {
	Credential string `json:"credential"`
	Run        string `json:"run"`
	State      string `json:"state"`
	Skipped    bool   `json:"skipped,omitempty"`
	Note       string `json:"note,omitempty"`
	Error      string `json:"error,omitempty"`
}

func (a *app) printStarted(started []rotation.Started, output string) error {
	views := make([]startedView, 0, len(started))
	for _, s := range started {
		v := startedView{Credential: s.CredentialID, Run: s.RunID, State: string(rotation.StatePlanned)}
		if s.Skipped {
			v.Skipped, v.Note, v.State = true, s.Reason, ""
		}
		views = append(views, v)
	}
	if output == "json" {
		return writeJSON(a.stdout, map[string]any{"runs": views})
	}
	t := newTable(a.stdout, "CREDENTIAL", "RUN", "STATUS")
	for _, v := range views {
		status := "queued"
		if v.Skipped {
			status = "skipped: " + v.Note
		}
		t.row(v.Credential, orDash(v.Run), status)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "Queued for a running 'rotator serve'. Use --wait to execute them here and wait.")
	return nil
}

// waitRuns polls the runs until each has ended or cut over (a cut-over run
// waits for its grace period, which the service finishes), printing progress.
func (a *app) waitRuns(ctx context.Context, st store.Store, started []rotation.Started, f rotateFlags) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	ids := make([]string, 0, len(started))
	for _, s := range started {
		if s.RunID != "" {
			ids = append(ids, s.RunID)
		}
	}
	final := map[string]store.Run{}
	begin := time.Now()
	lastReport := time.Time{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for len(final) < len(ids) {
		pending := make([]string, 0, len(ids)-len(final))
		for _, id := range ids {
			if _, ok := final[id]; !ok {
				pending = append(pending, id)
			}
		}
		for i := 0; i < len(pending); i += 500 {
			runs, err := st.ListRuns(ctx, store.RunFilter{IDs: pending[i:min(i+500, len(pending))]})
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				return fmt.Errorf("watching runs: %w", err)
			}
			for _, r := range runs {
				// cut_over is final here only while the previous value waits
				// out its grace period; otherwise (no previous value, an
				// emergency, no grace) the worker retires it at once.
				s := rotation.State(r.State)
				if s.Terminal() || (s == rotation.StateCutOver && rotation.OptionsOf(r).RetireAfter.After(time.Now())) {
					final[r.ID] = r
				}
			}
		}
		failed := 0
		for _, r := range final {
			if r.State != string(rotation.StateSucceeded) && r.State != string(rotation.StateCutOver) {
				failed++
			}
		}
		if time.Since(lastReport) > time.Second || len(final) == len(ids) {
			fmt.Fprintf(a.stderr, "rotating: %d/%d done, %d failed (%s)\n", len(final), len(ids), failed, time.Since(begin).Round(100*time.Millisecond))
			lastReport = time.Now()
		}
		if len(final) == len(ids) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting after %s: %d of %d runs still in progress (they continue; see 'rotator runs list')", f.timeout, len(ids)-len(final), len(ids))
		case <-tick.C:
		}
	}
	views := make([]startedView, 0, len(started))
	failed := 0
	for _, s := range started {
		v := startedView{Credential: s.CredentialID, Run: s.RunID}
		if s.Skipped {
			v.Skipped, v.Note = true, s.Reason
		}
		if r, ok := final[s.RunID]; ok && !s.Skipped {
			v.State, v.Error = r.State, r.Error
			if r.State != string(rotation.StateSucceeded) && r.State != string(rotation.StateCutOver) {
				failed++
			}
			if r.State == string(rotation.StateCutOver) {
				v.Note = "cut over; previous version retired after grace by 'rotator serve'"
			}
		}
		views = append(views, v)
	}
	if f.output == "json" {
		if err := writeJSON(a.stdout, map[string]any{"runs": views}); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout, "CREDENTIAL", "RUN", "STATE", "DETAIL")
		for _, v := range views {
			detail := v.Error
			if detail == "" {
				detail = v.Note
			}
			state := v.State
			if v.Skipped {
				state = "skipped"
			}
			t.row(v.Credential, orDash(v.Run), state, orDash(detail))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	a.logger.Debug("rotation finished", slog.Int("runs", len(ids)), slog.Int("failed", failed))
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", errRunsFailed, failed, len(ids))
	}
	return nil
}
