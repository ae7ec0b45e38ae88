package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testNotifyOutboxRows: a commit's events written as one outbox row are
// seen by ListNotifyEvents before they are moved, and ExpandNotifyOutbox
// moves them into notify_events under their own ids, payloads byte for
// byte, leaving an event already there as it was.
func testNotifyOutboxRows(t *testing.T, s store.Store, ctx context.Context) {
	at := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	ev1 := `{"id":"01OB1","kind":"rotation.staged","time":"2026-12-05T13:00:00Z","credential":"db/main","labels":{"team":"\"a\" \u003cb\u003e \\ é"},"run_id":"R9","summary":"s1"}`
	ev2 := `{"id":"01OB2","kind":"rotation.cut_over","time":"2026-12-05T13:00:00.000123Z","credential":"db/main","run_id":"R9","summary":"line\u2028two"}`
	ev3 := `{"id":"01OB3","kind":"rotation.retired","time":"2026-12-05T13:00:00.5Z","summary":"no credential"}`
	ev4 := `{"id":"01OB4","kind":"rotation.failed","time":"2026-12-05T13:00:01Z","credential":"c4","summary":"s4"}`
	rows := []store.NotifyOutbox{
		{ID: "01OB1", OccurredAt: at.Add(500 * time.Millisecond), Events: json.RawMessage("[" + ev1 + "," + ev2 + "," + ev3 + "]")},
		{ID: "01OB4", OccurredAt: at.Add(time.Second), Events: json.RawMessage("[" + ev4 + "]")},
	}
	for _, r := range rows {
		if err := s.InPipelinedTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyOutbox(ctx, r) }); err != nil {
			t.Fatal(err)
		}
	}
	// 01OB3 is in notify_events already: the move leaves it as it is.
	kept := store.NotifyEvent{ID: "01OB3", Kind: "rotation.retired", OccurredAt: at, Payload: json.RawMessage(`{"kept":true}`)}
	if err := s.InTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyEvents(ctx, kept) }); err != nil {
		t.Fatal(err)
	}
	err := s.InPipelinedTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyOutbox(ctx, rows[0]) })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a taken outbox id: %v, want ErrConflict", err)
	}
	for _, bad := range []string{`{"id":"x"}`, `[{"id":"x"}`, ``} {
		err := s.InPipelinedTx(ctx, func(tx store.Tx) error {
			return tx.InsertNotifyOutbox(ctx, store.NotifyOutbox{ID: "bad", OccurredAt: at, Events: json.RawMessage(bad)})
		})
		if err == nil {
			t.Fatalf("events %q were accepted", bad)
		}
	}
	// A rolled-back commit leaves no row.
	boom := errors.New("boom")
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertNotifyOutbox(ctx, store.NotifyOutbox{ID: "01OB0", OccurredAt: at, Events: json.RawMessage(`[{"id":"01OB0","kind":"rotation.cut_over","time":"2026-12-05T13:00:00Z","summary":""}]`)}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("rolled back: %v", err)
	}

	check := func(when string) {
		t.Helper()
		got, err := s.ListNotifyEvents(ctx, "rotation.cut_over", time.Time{})
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: cut_over events = %+v, %v", when, got, err)
		}
		want := store.NotifyEvent{ID: "01OB2", Kind: "rotation.cut_over", OccurredAt: at.Add(123 * time.Microsecond), CredentialID: "db/main", RunID: "R9"}
		g := got[0]
		if g.ID != want.ID || g.Kind != want.Kind || !g.OccurredAt.Equal(want.OccurredAt) || g.CredentialID != want.CredentialID || g.RunID != want.RunID || string(g.Payload) != ev2 {
			t.Fatalf("%s: cut_over event = %+v %s\nwant %+v %s", when, g, g.Payload, want, ev2)
		}
		if got, err := s.ListNotifyEvents(ctx, "rotation.staged", at); err != nil || len(got) != 1 || string(got[0].Payload) != ev1 || got[0].RunID != "R9" {
			t.Fatalf("%s: staged since %s = %+v, %v", when, at, got, err)
		}
		if got, err := s.ListNotifyEvents(ctx, "rotation.staged", at.Add(time.Microsecond)); err != nil || len(got) != 0 {
			t.Fatalf("%s: staged after it happened = %+v, %v", when, got, err)
		}
		// 01OB3 is in both tables until the move: it is listed once, as
		// notify_events has it.
		if got, err := s.ListNotifyEvents(ctx, "rotation.retired", time.Time{}); err != nil || len(got) != 1 || string(got[0].Payload) != `{"kept":true}` {
			t.Fatalf("%s: retired = %+v, %v", when, got, err)
		}
		if got, err := s.ListNotifyEvents(ctx, "rotation.failed", at.Add(time.Second)); err != nil || len(got) != 1 || got[0].ID != "01OB4" || got[0].CredentialID != "c4" {
			t.Fatalf("%s: failed = %+v, %v", when, got, err)
		}
	}
	check("in the outbox")
	if got, err := s.ListUnroutedNotifyEvents(ctx, 10); err != nil || len(got) != 1 || got[0].ID != "01OB3" {
		t.Fatalf("unrouted before the move = %+v, %v", got, err)
	}

	expand := func(limit int) (int, int) {
		t.Helper()
		var rn, en int
		err := s.InTx(ctx, func(tx store.Tx) error {
			var err error
			rn, en, err = tx.ExpandNotifyOutbox(ctx, limit)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return rn, en
	}
	if rn, en := expand(1); rn != 1 || en != 3 {
		t.Fatalf("first move: %d rows, %d events; want 1 and 3", rn, en)
	}
	check("half moved")
	if rn, en := expand(10); rn != 1 || en != 1 {
		t.Fatalf("second move: %d rows, %d events; want 1 and 1", rn, en)
	}
	if rn, en := expand(10); rn != 0 || en != 0 {
		t.Fatalf("third move: %d rows, %d events; want none", rn, en)
	}
	check("moved")
	got, err := s.ListUnroutedNotifyEvents(ctx, 10)
	if err != nil || len(got) != 4 {
		t.Fatalf("unrouted after the move = %+v, %v", got, err)
	}
	for i, want := range []string{ev1, ev2, `{"kept":true}`, ev4} {
		if string(got[i].Payload) != want || !got[i].RoutedAt.IsZero() {
			t.Errorf("unrouted %d = %+v %s, want payload %s", i, got[i], got[i].Payload, want)
		}
	}
	if got[0].Kind != "rotation.staged" || !got[0].OccurredAt.Equal(at) || got[2].Kind != "rotation.retired" || got[2].CredentialID != "" {
		t.Errorf("columns after the move: %+v", got)
	}
}
