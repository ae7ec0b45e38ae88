package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/report"
)

func (a *app) reportCommand() *cobra.Command {
	var (
		since, until, format, legacyFormat, out, runbookDir, baseURL, title string
		selectors                                                           []string
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write an audit report: inventory, runs, emergencies, violations and the audit chain",
		Long: `Write an audit report of the inventory and its history for a period:

  - inventory compliance: every credential's consumer, declared and granted
    scope, age against max age, last and next rotation, status and flags
    (overdue, expiring, failing, needs_attention, over_scoped);
  - the runs of the period: trigger, actor, reason, outcome, duration and
    failed step, flagged when the runbook changed since the run followed it;
  - emergency rotations with their reasons, and policy violations;
  - the audit chain's integrity (as 'rotator audit verify' checks it).

Every row links its runbook section. Formats: md (Markdown), html (one
self-contained page with charts that prints well), json (valid against
docs/report-schema.json) and csv (one record per row, the first column naming
its section). The report is streamed, so it needs little memory whatever the
size of the inventory. It never contains a secret value.

A broken audit chain is shown in the report and warned about on stderr; the
command still exits 0 (use 'rotator audit verify' to fail on it).`,
		Example: `  rotator report -o html --out report.html
  rotator report --since 90d --selector env=prod -o md
  rotator report --since 2026-01-01 --until 2026-04-01 -o json --out q1.json
  rotator report -o csv --runbook-base-url https://github.com/acme/ops/blob/main/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("format") {
				if cmd.Flags().Changed("output") && legacyFormat != format {
					return usagef("--format %s and -o %s disagree: --format is an old name of -o; give only -o", legacyFormat, format)
				}
				format = legacyFormat
				fmt.Fprintln(a.stderr, "warning: --format is deprecated: use -o FORMAT (and --out FILE to name the file)")
			}
			f, err := report.ParseFormat(format)
			if err != nil {
				if strings.ContainsAny(format, "./") {
					return usagef("-o %q: -o is the report format (md, html, json or csv); write to a file with --out %s", format, format)
				}
				return usagef("-o %q: use md, html, json or csv", format)
			}
			labels, err := parseSelector(selectors)
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			opts := report.Options{Format: f, Selector: labels, Now: now, Title: title, RunbookDir: runbookDir, RunbookBaseURL: baseURL}
			if opts.Since, err = parseTimeFlag("--since", since, now); err != nil {
				return err
			}
			if until != "" {
				if opts.Until, err = parseTimeFlag("--until", until, now); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			opts.Database = string(st.Dialect())
			opts.Parallel = verifyParallelism(st)

			w, commit, err := outputFile(out, a.stdout)
			if err != nil {
				return err
			}
			stats, err := report.Write(ctx, st, w, opts)
			if err != nil {
				_ = commit(false)
				if errors.Is(err, report.ErrBadOptions) {
					return usageError{err}
				}
				return fmt.Errorf("writing the report: %w", err)
			}
			if err := commit(true); err != nil {
				return err
			}
			if !stats.Audit.OK {
				p := stats.Audit.Problem
				fmt.Fprintf(a.stderr, "warning: the audit chain is broken: %s event at seq %d (event %d); see the report's audit section\n", p.Kind, p.Seq, p.EventID)
			}
			if out != "" {
				fmt.Fprintf(a.stderr, "Wrote %s: %d credentials, %d runs, %d emergency rotations, %d violations.\n",
					out, stats.Credentials, stats.Runs, stats.Emergencies, stats.Violations)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "30d", "start of the period: a duration back from now (30d) or a date/time (2026-01-01, RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "end of the period (exclusive): a duration back from now or a date/time (default: now)")
	cmd.Flags().StringSliceVar(&selectors, "selector", nil, "only credentials whose labels match key=value (repeatable, comma-separated)")
	outputFlag(cmd, &format, "md", "md", "html", "json", "csv")
	cmd.Flags().StringVar(&out, "out", "", "write the report to this file, replaced only when complete (default: standard output)")
	cmd.Flags().StringVar(&legacyFormat, "format", "", "old name of -o")
	// Deprecated: warned about on stderr (cobra's own notice goes to stdout,
	// into the report).
	_ = cmd.Flags().MarkHidden("format")
	cmd.Flags().StringVar(&runbookDir, "runbook-dir", ".", "directory relative runbook paths are resolved from (to detect runbooks changed since a run)")
	cmd.Flags().StringVar(&baseURL, "runbook-base-url", "", "prefix of runbook links, e.g. https://github.com/acme/ops/blob/main/ (default: relative links)")
	cmd.Flags().StringVar(&title, "title", "", "title of the report (default: rotator audit report)")
	return cmd
}

// outputFile returns where to write: standard output, or a temporary file
// beside path that commit(true) renames into place (commit(false) removes
// it), so a failed report never leaves a truncated file.
func outputFile(path string, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if path == "" || path == "-" {
		return stdout, func(bool) error { return nil }, nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+strings.TrimPrefix(filepath.Base(path), ".")+".tmp-*")
	if err != nil {
		return nil, nil, usagef("--out %s: %v", path, err)
	}
	commit := func(ok bool) error {
		if !ok {
			_ = f.Close()
			_ = os.Remove(f.Name())
			return nil
		}
		if err := f.Chmod(0o640); err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			_ = os.Remove(f.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(f.Name(), path); err != nil {
			_ = os.Remove(f.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	}
	return f, commit, nil
}
