package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// errAuditBroken reports a broken audit chain (exit code 1).
var errAuditBroken = errors.New("the audit chain is broken")

// sealerBatchesPerSlice bounds how many batches of 1,000 events the leader
// seals per scheduler slice (about 2s), so a backlog never delays the
// scheduler for long.
const sealerBatchesPerSlice = 20

// leaderTasks are the service's leader-only background tasks: the audit
// sealer (DESIGN.md §4).
func (a *app) leaderTasks(st store.Store) []func(ctx context.Context) error {
	sealer := audit.NewSealer(st, audit.SealerOptions{Logger: a.logger.With(slog.String("component", "audit-sealer"))})
	return []func(ctx context.Context) error{sealer.Task(sealerBatchesPerSlice)}
}

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and list the tamper-evident audit log",
		Long: `Every change rotator makes (apply, each run step, emergency rotations, key
operations) is recorded as an audit event in the same transaction as the change.
The service's leader then chains committed events: each gets the next sequence
number and hash = sha256(prev_hash || canonical event), so that editing,
deleting, inserting or reordering a sealed event breaks the chain.
See docs/audit.md.`,
	}
	cmd.AddCommand(a.auditVerifyCommand(), a.auditListCommand())
	return cmd
}

func (a *app) auditVerifyCommand() *cobra.Command {
	var (
		output, since string
		seal          bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chain; name the first modified, deleted, inserted or reordered event",
		Long: `Recompute the hash chain of the sealed audit events and report the first break:
the event whose content no longer matches its hash (modified), a gap in the
sequence (deleted), an event the next one links past (inserted), or an intact
event linked from the wrong place (reordered). Exit code 1 when the chain is
broken.

Events not yet sealed are counted, not checked: 'rotator serve' seals them on
its leader every few seconds. Without a running service (a single-process
SQLite setup), --seal seals them first.

Record the reported head (seq and hash) outside the database, for example in
your ticket system: a history rewritten or truncated later no longer has that
hash at that seq.`,
		Example: `  rotator audit verify
  rotator audit verify --since 30d -o json
  rotator audit verify --seal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			opts := audit.VerifyOptions{}
			if since != "" {
				t, err := parseTimeFlag("--since", since, time.Now())
				if err != nil {
					return err
				}
				opts.Since = t
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if seal {
				n, err := audit.NewSealer(st, audit.SealerOptions{}).Seal(ctx, 0)
				if err != nil {
					return fmt.Errorf("sealing audit events: %w", err)
				}
				if output == formatText && n > 0 {
					fmt.Fprintf(a.stdout, "Sealed %d pending event(s).\n", n)
				}
			}
			opts.Parallel = verifyParallelism(st)
			rep, err := audit.Verify(ctx, st, opts)
			if err != nil {
				return err
			}
			if isData(output) {
				if err := writeData(a.stdout, output, map[string]any{"audit_chain": rep}); err != nil {
					return err
				}
			} else {
				printVerify(a.stdout, rep)
			}
			if !rep.OK {
				a.noteChainBroken(ctx, st, rep.Problem.Seq, rep.Problem.EventID, rep.Problem.Message)
				return fmt.Errorf("%w at seq %d (event %d): %s", errAuditBroken, rep.Problem.Seq, rep.Problem.EventID, rep.Problem.Message)
			}
			return unsealedWithoutService(ctx, st, rep)
		},
	}
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	cmd.Flags().StringVar(&since, "since", "", "check only events from this time on: a duration back from now (30d, 12h) or a date/time (2026-01-31, RFC 3339)")
	cmd.Flags().BoolVar(&seal, "seal", false, "seal pending events first (when no 'rotator serve' is running to do it)")
	return cmd
}

func printVerify(w io.Writer, rep audit.Report) {
	scope := "the whole chain"
	if rep.Since != nil {
		scope = "events since " + rep.Since.Format(time.RFC3339)
	}
	if rep.OK {
		if rep.Checked == 0 {
			fmt.Fprintf(w, "Audit chain OK: no sealed events in %s.\n", scope)
		} else {
			fmt.Fprintf(w, "Audit chain OK: %d event(s) checked in %s (seq %d..%d).\n", rep.Checked, scope, rep.FirstSeq, rep.HeadSeq)
			fmt.Fprintf(w, "Head:     seq %d, hash %s\n", rep.HeadSeq, rep.HeadHash)
		}
	} else {
		p := rep.Problem
		fmt.Fprintf(w, "Audit chain BROKEN: %s event at seq %d (event id %d).\n", p.Kind, p.Seq, p.EventID)
		fmt.Fprintf(w, "Detail:   %s\n", p.Message)
		fmt.Fprintf(w, "Checked:  %d intact event(s) before the break.\n", rep.Checked)
	}
	fmt.Fprintf(w, "Unsealed: %d event(s) not yet chained", rep.Unsealed)
	if rep.Unsealed > 0 {
		fmt.Fprint(w, " (the service seals them; or run with --seal)")
	}
	fmt.Fprintln(w)
}

func (a *app) auditListCommand() *cobra.Command {
	var (
		lo                            listOutput
		credential, run, since, until string
		limit                         int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events in chain order (sealed first, then those not yet sealed)",
		Long: `List audit events in chain order: sealed events by sequence number, then the
events not yet sealed in the order they were recorded. --limit N shows the
newest N events that match (still in chain order); without it every matching
event is streamed.`,
		Example: `  rotator audit list --credential github-mcp-token --since 7d
  rotator audit list --limit 20
  rotator audit list --run 01J9Z3K4ZQ6W7X8Y9A0B1C2D3E -o json
  rotator audit list --since 2026-01-01 --until 2026-02-01 -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lo.check(); err != nil {
				return err
			}
			if limit < 0 {
				return usagef("--limit %d: use 0 (no limit) or a positive number", limit)
			}
			now := time.Now()
			f := store.AuditFilter{CredentialID: credential, RunID: run, Limit: limit, Newest: true}
			var err error
			if since != "" {
				if f.Since, err = parseTimeFlag("--since", since, now); err != nil {
					return err
				}
			}
			if until != "" {
				if f.Until, err = parseTimeFlag("--until", until, now); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			switch lo.format {
			case formatJSON:
				return streamEventsJSON(ctx, a.stdout, st, f)
			case formatYAML:
				return streamEventsYAML(ctx, a.stdout, st, f)
			}
			return a.streamEventsTable(ctx, lo, st, f)
		},
	}
	addListFlags(cmd, &lo)
	cmd.Flags().StringVar(&credential, "credential", "", "only events about this credential")
	cmd.Flags().StringVar(&run, "run", "", "only events of this run")
	cmd.Flags().StringVar(&since, "since", "", "only events from this time on: a duration back from now (7d) or a date/time")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time: a duration back from now or a date/time")
	cmd.Flags().IntVar(&limit, "limit", 0, "only the newest N events, in chain order (0: all, streamed)")
	return cmd
}

// streamEventsJSON writes {"events": [...]} as the events are read, so a
// long log never sits in memory.
func streamEventsJSON(ctx context.Context, out io.Writer, st store.Reader, f store.AuditFilter) error {
	w := bufio.NewWriter(out)
	if _, err := w.WriteString("{\n  \"events\": ["); err != nil {
		return err
	}
	n := 0
	err := st.ScanAuditEvents(ctx, f, func(ev store.AuditEvent) error {
		b, err := json.MarshalIndent(audit.NewRecord(ev), "    ", "  ")
		if err != nil {
			return fmt.Errorf("encoding audit event %d: %w", ev.ID, err)
		}
		sep := ",\n    "
		if n == 0 {
			sep = "\n    "
		}
		n++
		if _, err := w.WriteString(sep); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("listing audit events: %w", err)
	}
	end := "\n  ]\n}\n"
	if n == 0 {
		end = "]\n}\n"
	}
	if _, err := w.WriteString(end); err != nil {
		return err
	}
	return w.Flush()
}

// streamEventsYAML writes the object of streamEventsJSON in YAML, an event
// at a time.
func streamEventsYAML(ctx context.Context, out io.Writer, st store.Reader, f store.AuditFilter) error {
	w := bufio.NewWriter(out)
	n := 0
	err := st.ScanAuditEvents(ctx, f, func(ev store.AuditEvent) error {
		b, err := toYAML(audit.NewRecord(ev))
		if err != nil {
			return fmt.Errorf("encoding audit event %d: %w", ev.ID, err)
		}
		if n == 0 {
			if _, err := w.WriteString("events:\n"); err != nil {
				return err
			}
		}
		n++
		for i, line := range strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") {
			prefix := "    "
			if i == 0 {
				prefix = "  - "
			}
			if _, err := w.WriteString(prefix + line); err != nil {
				return err
			}
		}
		return w.WriteByte('\n')
	})
	if err != nil {
		return fmt.Errorf("listing audit events: %w", err)
	}
	if n == 0 {
		if _, err := w.WriteString("events: []\n"); err != nil {
			return err
		}
	}
	return w.Flush()
}

// streamEventsTable writes aligned rows, flushing every few hundred so the
// output starts at once.
func (a *app) streamEventsTable(ctx context.Context, lo listOutput, st store.Reader, f store.AuditFilter) error {
	const flushEvery = 500
	t := a.newListTable(lo, column{name: "ID", wide: true, id: true}, column{name: "SEQ"}, column{name: "OCCURRED"},
		column{name: "ACTOR", flex: true}, column{name: "ACTION", flex: true}, column{name: "CREDENTIAL", flex: true},
		column{name: "RUN", flex: true, wide: true}, column{name: "DATA", flex: true})
	n := 0
	err := st.ScanAuditEvents(ctx, f, func(ev store.AuditEvent) error {
		r := audit.NewRecord(ev)
		seq := "unsealed"
		if r.Seq != nil {
			seq = fmt.Sprint(*r.Seq)
		}
		data := ""
		if string(r.Data) != "null" {
			data = string(r.Data)
		}
		t.row(fmt.Sprint(r.ID), seq, r.OccurredAt.Format(time.RFC3339), orDash(r.Actor), r.Action, orDashPtr(r.Credential),
			orDashPtr(r.Run), orDash(data))
		n++
		if n%flushEvery == 0 {
			return t.flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing audit events: %w", err)
	}
	return t.flush()
}

// verifyParallelism is how many ranges of the chain are checked at once:
// Postgres serves them on separate connections; SQLite has one.
func verifyParallelism(st store.Store) int {
	if st.Dialect() == store.DialectPostgres {
		return 4
	}
	return 1
}

// parseTimeFlag reads a time flag: a duration back from now (Go syntax
// plus d for days: 30d, 12h), a date (2026-01-31, midnight UTC) or an
// RFC 3339 time.
func parseTimeFlag(name, value string, now time.Time) (time.Time, error) {
	v := strings.TrimSpace(value)
	if d, err := duration.Parse(v); err == nil {
		return now.Add(-d).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, usagef("%s %q: use a duration back from now (30d, 12h), a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)", name, value)
}

// unsealedAge is how long an event may wait for the sealer before audit
// verify calls it a problem (the service's leader seals every few seconds).
const unsealedAge = time.Minute

// unsealedWithoutService fails when events older than unsealedAge are not
// sealed and no service runs to seal them: until sealed, an event can be
// edited without the chain showing it.
func unsealedWithoutService(ctx context.Context, st store.Store, rep audit.Report) error {
	if rep.Unsealed == 0 {
		return nil
	}
	var old int64
	err := st.ScanAuditEvents(ctx, store.AuditFilter{Unsealed: true, Until: time.Now().Add(-unsealedAge)}, func(store.AuditEvent) error {
		old++
		return nil
	})
	if err != nil || old == 0 {
		return err
	}
	// Without River's tables no service ever ran here.
	if running, err := rotation.ServiceRunning(ctx, st); err == nil && running {
		return nil
	}
	return fmt.Errorf("%d event(s) older than %s are not sealed and no 'rotator serve' is running to seal them; "+
		"until sealed they can be edited without detection: run 'rotator audit verify --seal'", old, unsealedAge)
}
