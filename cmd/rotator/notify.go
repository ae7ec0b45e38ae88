package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/outbox"
	"github.com/rotatorhq/rotator/rotation"
)

func (a *app) notifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Inspect and test notification deliveries (webhooks, Slack, email)",
		Long: `rotator writes notification events (a rotation failed or rolled back, a
credential needs attention, is overdue or expiring, an emergency started, the
audit chain broke, and opt-in cut-over events for machines) in the same
transaction as the change they describe. 'rotator serve -f FILE' routes them by
the file's notify: section, groups bursts, and delivers them with retries; every
attempt is recorded. See docs/notifications.md.`,
	}
	cmd.AddCommand(a.notifyListCommand(), a.notifyTestCommand())
	return cmd
}

func (a *app) notifyListCommand() *cobra.Command {
	var (
		lo                   listOutput
		receiver, state, run string
		limit                int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List notification deliveries, newest first, with their attempts",
		Example: `  rotator notify list
  rotator notify list --state failed -o wide
  rotator notify list --run 01JEXAMPLE -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lo.check(); err != nil {
				return err
			}
			switch state {
			case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
			default:
				return usagef("--state %q: use pending, delivered or failed", state)
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			views, err := outbox.List(cmd.Context(), st, store.DeliveryFilter{Receiver: receiver, State: state, RunID: run, Limit: limit})
			if err != nil {
				return fmt.Errorf("listing deliveries: %w", err)
			}
			if isData(lo.format) {
				return writeData(a.stdout, lo.format, map[string]any{"deliveries": views})
			}
			return a.printDeliveries(lo, views, time.Now())
		},
	}
	addListFlags(cmd, &lo)
	cmd.Flags().StringVar(&receiver, "receiver", "", "only deliveries to this receiver")
	cmd.Flags().StringVar(&state, "state", "", "only deliveries in this state: pending, delivered or failed")
	cmd.Flags().StringVar(&run, "run", "", "only deliveries carrying an event of this run")
	cmd.Flags().IntVar(&limit, "limit", 200, "at most this many deliveries (0: all)")
	return cmd
}

func (a *app) printDeliveries(lo listOutput, views []outbox.DeliveryView, now time.Time) error {
	t := a.newListTable(lo, column{name: "ID", flex: true, id: true}, column{name: "RECEIVER"}, column{name: "STATE", colour: stateColour},
		column{name: "EVENTS"}, column{name: "KINDS", flex: true}, column{name: "ATTEMPTS"}, column{name: "CREATED"},
		column{name: "CREDENTIALS", wide: true, flex: true}, column{name: "LAST ERROR", flex: true})
	for _, v := range views {
		created := v.CreatedAt
		t.row(v.ID, v.Receiver, v.State, fmt.Sprint(v.Events), strings.Join(v.Kinds, ","), fmt.Sprint(len(v.Attempts)),
			relTime(&created, now), orDash(strings.Join(v.Credentials, ",")), orDashPtr(v.LastError))
	}
	return t.flush()
}

// Bounds of notify test --attempts.
const (
	minTestAttempts = 1
	maxTestAttempts = 100
)

func (a *app) notifyTestCommand() *cobra.Command {
	var (
		file     string
		output   string
		attempts int
	)
	cmd := &cobra.Command{
		Use:   "test RECEIVER -f FILE",
		Short: "Send a test notification to one receiver now",
		Long: `Send a notify.test event to RECEIVER, configured under notify.receivers in
FILE, from this process, and record it as a delivery (rotator notify list
shows it with every attempt).

It goes through the retry stage: at most --attempts tries (default 8), 1s
doubling to 1m apart, within 10 minutes; a 4xx other than 429 is not
retried. After every attempt one line on stderr says how it went and when
the next one comes, in every output format; stdout holds only the result
(with -o json or -o yaml, only the document). Errors are shown as they are
stored: without the receiver's URL, secrets redacted.

Ctrl-C stops the test at once: the delivery is recorded failed, with the
attempts made and "cancelled" as its error. It is not left pending, since
nothing else would send it: rotator serve delivers only the notifications
it routes itself, never a test.

Exits 0 when delivered, 1 when the delivery failed or was cancelled, 2 on a
bad flag, 3 when FILE has no such receiver.`,
		Example: `  rotator notify test oncall-slack -f rotator.yaml
  rotator notify test deploy-hook -f rotator.yaml --attempts 1
  rotator notify test deploy-hook -f rotator.yaml -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			if attempts < minTestAttempts || attempts > maxTestAttempts {
				return usagef("--attempts %d: use a number from %d to %d", attempts, minTestAttempts, maxTestAttempts)
			}
			if file == "" {
				return usagef("-f FILE is required: the configuration whose notify: section names the receiver")
			}
			cfg, err := loadConfig(file, config.DefaultMaxFileSize)
			if err != nil {
				return err
			}
			if cfg.Notify == nil {
				return usagef("%s has no notify: section", file)
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			// The retry stage does not log failed attempts: printAttempt
			// reports every one.
			d, err := a.dispatcher(st, cfg.Notify, notify.Retrier{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			id, err := d.Test(ctx, args[0], outbox.TestOptions{Actor: "cli", MaxAttempts: attempts, Progress: a.printAttempt})
			if errors.Is(err, outbox.ErrUnknownReceiver) {
				return notFoundf("no receiver %q under notify.receivers in %s", args[0], file)
			}
			// The result is printed after a Ctrl-C, too.
			views, lerr := outbox.List(context.WithoutCancel(ctx), st, store.DeliveryFilter{IDs: []string{id}})
			if lerr == nil && len(views) == 1 {
				if isData(output) {
					if werr := writeData(a.stdout, output, map[string]any{"deliveries": views}); werr != nil {
						return werr
					}
				} else {
					fmt.Fprintf(a.stdout, "Delivery %s to %s: %s after %d attempt(s).\n", id, args[0], views[0].State, len(views[0].Attempts))
				}
			}
			if err != nil {
				return fmt.Errorf("test notification to %s: %w", args[0], err)
			}
			return lerr
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file with the notify: section")
	cmd.Flags().IntVar(&attempts, "attempts", notify.DefaultMaxAttempts,
		fmt.Sprintf("at most this many attempts, %d to %d (1: send once, no retry)", minTestAttempts, maxTestAttempts))
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	return cmd
}

// printAttempt prints one line on stderr per attempt of notify test. The
// error is the stored one, scrubbed by the dispatcher.
func (a *app) printAttempt(at notify.Attempt) {
	switch at.Status {
	case notify.AttemptDelivered:
		fmt.Fprintf(a.stderr, "attempt %d delivered\n", at.N)
	case notify.AttemptRetry:
		fmt.Fprintf(a.stderr, "attempt %d failed: %s; next attempt in %s\n", at.N, at.Error, at.Wait.Round(100*time.Millisecond))
	default:
		fmt.Fprintf(a.stderr, "attempt %d failed: %s; giving up\n", at.N, at.Error)
	}
}

// dispatcher builds the notification dispatcher of a notify: section,
// with the retry stage r (its zero value: the defaults).
func (a *app) dispatcher(st store.Store, cfg *notify.Config, r notify.Retrier) (*outbox.Dispatcher, error) {
	return outbox.New(outbox.Options{Store: st, Config: cfg, Resolver: &secret.Resolver{}, Redactor: a.redactor,
		Logger: a.logger.With(slog.String("component", "notify")), Retrier: r})
}

// noteChainBroken writes audit.chain_broken to the notification outbox; a
// failure to write it is logged (the verification's own error is what the
// command reports).
func (a *app) noteChainBroken(ctx context.Context, st store.Store, seq, eventID int64, msg string) {
	now := time.Now().UTC()
	ev := notify.Event{ID: rotation.NewID(now), Kind: notify.KindChainBroken, Time: now, Reason: msg,
		Summary: fmt.Sprintf("the audit chain is broken at seq %d (event %d): %s", seq, eventID, msg)}
	if err := rotation.WriteEvents(context.WithoutCancel(ctx), st, ev); err != nil {
		a.logger.Error("writing the audit.chain_broken notification failed", slog.String("error", err.Error()))
	}
}
