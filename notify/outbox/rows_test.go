package outbox_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/outbox"
	"github.com/rotatorhq/rotator/rotation"
)

// TestOutboxRows: events the engine writes as one outbox row per commit
// are moved into notify_events and delivered, each exactly once under the
// id it was given when noted, across a move rolled back half way, a
// second leader, and more rows than one move takes.
func TestOutboxRows(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			b := setup(t, dialect)
			ctx := t.Context()
			const commits = 25
			noted := map[string]bool{}
			for i := range commits {
				now := b.clk.Now()
				cut := failure(i, now)
				cut.ID, cut.Kind, cut.Summary = rotation.NewID(now), notify.KindCutOver, fmt.Sprintf("cred-%04d cut over <&> \"é\"", i)
				retired := cut
				retired.ID, retired.Kind = rotation.NewID(now), notify.KindRetired
				noted[cut.ID] = true
				row, err := rotation.OutboxRow(cut, retired)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.st.InPipelinedTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyOutbox(ctx, row) }); err != nil {
					t.Fatal(err)
				}
			}
			// A move that fails after it ran (a crash before the commit)
			// leaves the rows where they were.
			crash := errors.New("crash")
			err := b.st.InTx(ctx, func(tx store.Tx) error {
				if n, _, err := tx.ExpandNotifyOutbox(ctx, 10); err != nil || n != 10 {
					return fmt.Errorf("moved %d: %w", n, err)
				}
				return crash
			})
			if !errors.Is(err, crash) {
				t.Fatal(err)
			}
			if got, err := b.st.ListNotifyEvents(ctx, string(notify.KindCutOver), time.Time{}); err != nil || len(got) != commits {
				t.Fatalf("after a rolled-back move: %d cut_over events, %v", len(got), err)
			}
			if got, _ := b.st.ListUnroutedNotifyEvents(ctx, 100); len(got) != 0 {
				t.Fatalf("a rolled-back move left %d events", len(got))
			}
			// A leader that moves 4 rows per transaction, then another
			// (after a restart) that finds nothing left to move.
			d2, err := outbox.New(outbox.Options{Store: b.st, Config: b.cfg.Notify, Now: b.clk.Now, Resolver: b.resolver,
				Retrier: notify.Retrier{Sleep: noSleep, MaxAttempts: 3}, RouteBatch: 4})
			if err != nil {
				t.Fatal(err)
			}
			if err := d2.Route(ctx); err != nil {
				t.Fatal(err)
			}
			b.step(t)
			b.clk.Add(time.Minute)
			b.step(t)
			b.clk.Add(time.Minute)
			b.step(t)
			got := map[string]int{}
			for _, r := range b.hook.requests() {
				var body struct{ Events []notify.Event }
				if err := json.Unmarshal([]byte(r.body), &body); err != nil {
					t.Fatal(err)
				}
				for _, ev := range body.Events {
					if ev.Kind == notify.KindCutOver {
						got[ev.ID]++
					}
				}
			}
			if len(got) != commits {
				t.Fatalf("hook got %d cut_over events, want %d", len(got), commits)
			}
			for id, n := range got {
				if n != 1 || !noted[id] {
					t.Fatalf("event %s delivered %d times (noted: %v)", id, n, noted[id])
				}
			}
		})
	}
}
