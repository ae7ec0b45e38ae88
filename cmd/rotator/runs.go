package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
	"github.com/rotatorhq/rotator/rotation"
)

func (a *app) runsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "runs",
		Aliases: []string{"run"},
		Short:   "Inspect rotation runs",
	}
	cmd.AddCommand(a.runsListCommand(), a.runsShowCommand(), a.runsWaitCommand(), a.runsCancelCommand(),
		a.runsRetryCommand(), a.runsResumeCommand())
	return cmd
}

func (a *app) runsListCommand() *cobra.Command {
	var (
		lo                       listOutput
		credential, state, since string
		limit                    int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Example: `  rotator runs list
  rotator runs list --credential github-mcp-token --since 7d
  rotator runs list --state rolled_back -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lo.check(); err != nil {
				return err
			}
			f := store.RunFilter{CredentialID: credential, Limit: limit}
			if state != "" {
				if _, err := rotation.ParseState(state); err != nil {
					return usageError{err}
				}
				f.State = state
			}
			if since != "" {
				d, err := duration.Parse(since)
				if err != nil {
					return usagef("--since: %v", err)
				}
				f.Since = time.Now().Add(-d)
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			runs, err := st.ListRuns(cmd.Context(), f)
			if err != nil {
				return fmt.Errorf("listing runs: %w", err)
			}
			views := make([]view.Run, 0, len(runs))
			for _, r := range runs {
				views = append(views, view.NewRun(r, nil))
			}
			if isData(lo.format) {
				return writeData(a.stdout, lo.format, map[string]any{"runs": views})
			}
			return a.printRunList(lo, views, time.Now())
		},
	}
	addListFlags(cmd, &lo)
	cmd.Flags().StringVar(&credential, "credential", "", "only runs of this credential")
	cmd.Flags().StringVar(&state, "state", "", "only runs in this state (e.g. succeeded, rolled_back, cut_over)")
	cmd.Flags().StringVar(&since, "since", "", "only runs created within this duration (e.g. 24h, 7d)")
	cmd.Flags().IntVar(&limit, "limit", 200, "at most this many runs (0: all)")
	return cmd
}

func (a *app) printRunList(lo listOutput, views []view.Run, now time.Time) error {
	t := a.newListTable(lo, column{name: "ID", flex: true, id: true}, column{name: "CREDENTIAL", flex: true},
		column{name: "TRIGGER"}, column{name: "STATE", colour: stateColour}, column{name: "ACTOR", wide: true},
		column{name: "ATTEMPT", wide: true}, column{name: "CREATED"}, column{name: "DURATION", wide: true},
		column{name: "ERROR", flex: true}, column{name: "REASON", wide: true})
	for _, v := range views {
		dur := "-"
		if v.DurationSec != nil {
			dur = (time.Duration(*v.DurationSec * float64(time.Second))).Round(time.Millisecond).String()
		}
		errText := "-"
		if v.Error != nil {
			errText = *v.Error
		}
		created := v.CreatedAt
		t.row(v.ID, v.Credential, v.Trigger, v.State, orDash(v.Actor), fmt.Sprint(v.Attempt), relTime(&created, now), dur, errText, orDash(v.Reason))
	}
	return t.flush()
}

func (a *app) runsShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show RUN",
		Short: "Show one run with every step: start, end, outcome and error",
		Long: `Show one run with every step: start, end, outcome and error. RUN is a run id,
in any case, a unique prefix of one, or 'latest'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML, "md"); err != nil {
				return err
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ids, err := resolveRuns(cmd.Context(), st, args)
			if err != nil {
				return err
			}
			r, err := st.GetRun(cmd.Context(), ids[0])
			if err != nil {
				return fmt.Errorf("reading run %s: %w", args[0], err)
			}
			steps, err := st.ListSteps(cmd.Context(), r.ID)
			if err != nil {
				return fmt.Errorf("reading steps of run %s: %w", r.ID, err)
			}
			v := view.NewRun(r, steps)
			switch output {
			case formatJSON, formatYAML:
				return writeData(a.stdout, output, map[string]any{"run": v})
			case "md":
				return a.printRunMarkdown(v)
			}
			return a.printRunText(v)
		},
	}
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML, "md")
	return cmd
}

func (a *app) printRunText(v view.Run) error {
	w := a.stdout
	fmt.Fprintf(w, "Run:          %s\n", v.ID)
	fmt.Fprintf(w, "Credential:   %s\n", v.Credential)
	fmt.Fprintf(w, "Trigger:      %s\n", v.Trigger)
	fmt.Fprintf(w, "Actor:        %s\n", orDash(v.Actor))
	if v.Reason != "" {
		fmt.Fprintf(w, "Reason:       %s\n", v.Reason)
	}
	fmt.Fprintf(w, "State:        %s (attempt %d)\n", v.State, v.Attempt)
	fmt.Fprintf(w, "Started:      %s\n", fmtTime(v.StartedAt))
	fmt.Fprintf(w, "Finished:     %s\n", fmtTime(v.FinishedAt))
	fmt.Fprintf(w, "Old version:  %s\n", orDashPtr(v.OldVersion))
	fmt.Fprintf(w, "New version:  %s\n", orDashPtr(v.NewVersion))
	fmt.Fprintf(w, "Runbook:      %s\n", runbookText(v.Runbook))
	if v.Error != nil {
		fmt.Fprintf(w, "Error:        %s\n", *v.Error)
	}
	fmt.Fprintln(w, "Steps:")
	t := a.newTextTable(column{name: "  #"}, column{name: "STEP"}, column{name: "OUTCOME", colour: stateColour},
		column{name: "STARTED"}, column{name: "DURATION"}, column{name: "DETAIL", flex: true})
	for i, s := range v.Steps {
		detail := evidenceText(s.Evidence)
		if s.Error != nil {
			detail = *s.Error
		}
		t.row(fmt.Sprintf("  %d", i+1), s.Name, s.State, s.StartedAt.Format(time.RFC3339Nano), s.FinishedAt.Sub(s.StartedAt).Round(time.Microsecond).String(), orDash(detail))
	}
	return t.flush()
}

func (a *app) printRunMarkdown(v view.Run) error {
	w := a.stdout
	fmt.Fprintf(w, "# Rotation run %s\n\n", v.ID)
	fmt.Fprintf(w, "| Field | Value |\n|---|---|\n")
	fmt.Fprintf(w, "| Credential | `%s` |\n| Trigger | %s |\n| Actor | %s |\n| Reason | %s |\n| State | **%s** (attempt %d) |\n",
		v.Credential, v.Trigger, mdEscape(orDash(v.Actor)), mdEscape(orDash(v.Reason)), v.State, v.Attempt)
	fmt.Fprintf(w, "| Started | %s |\n| Finished | %s |\n| Old version | %s |\n| New version | %s |\n",
		fmtTime(v.StartedAt), fmtTime(v.FinishedAt), orDashPtr(v.OldVersion), orDashPtr(v.NewVersion))
	fmt.Fprintf(w, "| Runbook followed | %s |\n", mdEscape(runbookText(v.Runbook)))
	if v.Error != nil {
		fmt.Fprintf(w, "| Error | %s |\n", mdEscape(*v.Error))
	}
	fmt.Fprintf(w, "\n## Steps\n\n| # | Step | Outcome | Started | Duration | Evidence / error |\n|---|---|---|---|---|---|\n")
	for i, s := range v.Steps {
		detail := evidenceText(s.Evidence)
		if s.Error != nil {
			detail = *s.Error
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", i+1, s.Name, s.State, s.StartedAt.Format(time.RFC3339Nano),
			s.FinishedAt.Sub(s.StartedAt).Round(time.Microsecond), mdEscape(orDash(detail)))
	}
	return nil
}

func runbookText(r store.RunbookRef) string {
	if r.Path == "" {
		return "-"
	}
	s := r.Path
	if r.Anchor != "" {
		s += "#" + r.Anchor
	}
	if r.Digest != "" {
		s += " (" + r.Digest + ")"
	}
	return s
}

func evidenceText(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedStrings(mapKeys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orDashPtr(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
