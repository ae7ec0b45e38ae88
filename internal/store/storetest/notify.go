package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testNotifyOutbox walks an event through the notification tables: written
// in a pipelined transaction, routed to a group, flushed into a delivery,
// attempted twice.
func testNotifyOutbox(t *testing.T, s store.Store, ctx context.Context) {
	t0 := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	evs := []store.NotifyEvent{
		{ID: "01EV1", Kind: "rotation.rolled_back", OccurredAt: t0, CredentialID: "c1", RunID: "R1", Payload: json.RawMessage(`{"kind":"rotation.rolled_back","credential":"c1"}`)},
		{ID: "01EV2", Kind: "audit.chain_broken", OccurredAt: t0.Add(time.Second), Payload: json.RawMessage(`{"kind":"audit.chain_broken"}`)},
	}
	if err := s.InPipelinedTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyEvents(ctx, evs...) }); err != nil {
		t.Fatal(err)
	}
	err := s.InPipelinedTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyEvents(ctx, evs[0]) })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate event id: %v, want ErrConflict", err)
	}
	got, err := s.ListUnroutedNotifyEvents(ctx, 10)
	if err != nil || len(got) != 2 || got[0].ID != "01EV1" || got[0].RunID != "R1" || !got[0].OccurredAt.Equal(t0) || got[1].CredentialID != "" {
		t.Fatalf("unrouted = %+v, %v", got, err)
	}
	if byKind, err := s.ListNotifyEvents(ctx, "audit.chain_broken", t0); err != nil || len(byKind) != 1 || byKind[0].ID != "01EV2" {
		t.Fatalf("by kind = %+v, %v", byKind, err)
	}
	if all, err := s.ListNotifyEvents(ctx, "rotation.rolled_back", time.Time{}); err != nil || len(all) != 1 {
		t.Fatalf("since zero = %+v, %v", all, err)
	}
	if later, err := s.ListNotifyEvents(ctx, "rotation.rolled_back", t0.Add(time.Second)); err != nil || len(later) != 0 {
		t.Fatalf("since = %+v, %v", later, err)
	}
	var payload map[string]string
	if err := json.Unmarshal(got[0].Payload, &payload); err != nil || payload["credential"] != "c1" {
		t.Fatalf("payload %s: %v", got[0].Payload, err)
	}
	items := []store.NotifyItem{
		{EventID: "01EV1", Receiver: "hook", GroupKey: "g1", Kind: "rotation.rolled_back", CredentialID: "c1", CreatedAt: t0},
		{EventID: "01EV2", Receiver: "hook", GroupKey: "g1", Kind: "audit.chain_broken", CreatedAt: t0},
	}
	if err := s.InTx(ctx, func(tx store.Tx) error { return tx.RouteNotifyEvents(ctx, t0, []string{"01EV1", "01EV2"}, items) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListUnroutedNotifyEvents(ctx, 10); len(got) != 0 {
		t.Fatalf("still unrouted: %+v", got)
	}
	for _, c := range []struct {
		kind, cred string
		since      time.Time
		want       bool
	}{{"rotation.rolled_back", "c1", t0, true}, {"rotation.rolled_back", "c1", t0.Add(time.Second), false},
		{"audit.chain_broken", "", t0, true}, {"rotation.rolled_back", "c2", t0, false}} {
		if ok, err := s.NotifiedSince(ctx, "hook", c.kind, c.cred, c.since); err != nil || ok != c.want {
			t.Fatalf("NotifiedSince(%s, %q, %s) = %v, %v", c.kind, c.cred, c.since, ok, err)
		}
	}
	groups, err := s.ListNotifyGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Waiting != 2 || !groups[0].FirstAt.Equal(t0) || !groups[0].LastSentAt.IsZero() {
		t.Fatalf("groups = %+v, %v", groups, err)
	}
	waiting, err := s.ListWaitingNotifyEvents(ctx, "hook", "g1", 1)
	if err != nil || len(waiting) != 1 || waiting[0].ID != "01EV1" {
		t.Fatalf("waiting = %+v, %v", waiting, err)
	}
	dl := store.NotifyDelivery{ID: "D1", Receiver: "hook", GroupKey: "g1", Events: json.RawMessage(`[{"id":"01EV1"}]`), EventCount: 1, CreatedAt: t0.Add(time.Minute)}
	if err := s.InTx(ctx, func(tx store.Tx) error { return tx.CreateNotifyDelivery(ctx, dl, []string{"01EV1"}) }); err != nil {
		t.Fatal(err)
	}
	groups, _ = s.ListNotifyGroups(ctx)
	if len(groups) != 1 || groups[0].Waiting != 1 || !groups[0].LastSentAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("groups after a delivery = %+v", groups)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertNotifyAttempts(ctx, store.NotifyAttempt{DeliveryID: "D1", Attempt: 1, At: t0, Status: "retry", Error: "503"},
			store.NotifyAttempt{DeliveryID: "D1", Attempt: 2, At: t0, Status: "delivered"}); err != nil {
			return err
		}
		dl.State, dl.Attempts, dl.FinishedAt = store.DeliveryDelivered, 2, t0.Add(2*time.Minute)
		return tx.UpdateNotifyDelivery(ctx, dl)
	})
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.GetNotifyDelivery(ctx, "D1")
	if err != nil || back.State != store.DeliveryDelivered || back.Attempts != 2 || back.EventCount != 1 || !back.FinishedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("delivery = %+v, %v", back, err)
	}
	if _, err := s.GetNotifyDelivery(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing delivery: %v", err)
	}
	if ds, err := s.ListNotifyDeliveries(ctx, store.DeliveryFilter{RunID: "R1"}); err != nil || len(ds) != 1 {
		t.Fatalf("by run: %+v, %v", ds, err)
	}
	if ds, _ := s.ListNotifyDeliveries(ctx, store.DeliveryFilter{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}); len(ds) != 1 {
		t.Fatalf("in [t0+1m, t0+2m): %+v", ds)
	}
	if ds, _ := s.ListNotifyDeliveries(ctx, store.DeliveryFilter{Until: t0.Add(time.Minute)}); len(ds) != 0 {
		t.Fatalf("before t0+1m: %+v", ds)
	}
	if ds, _ := s.ListNotifyDeliveries(ctx, store.DeliveryFilter{State: store.DeliveryPending}); len(ds) != 0 {
		t.Fatalf("pending: %+v", ds)
	}
	as, err := s.ListNotifyAttempts(ctx, []string{"D1"})
	if err != nil || len(as) != 2 || as[0].Error != "503" || as[1].Status != "delivered" {
		t.Fatalf("attempts = %+v, %v", as, err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertNotifyAttempts(ctx, store.NotifyAttempt{DeliveryID: "D1", Attempt: 2, At: t0, Status: "x"})
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a taken attempt number: %v", err)
	}
	// Pruning: nothing is old enough at first; later the delivered D1 goes
	// with its item and attempts and event 01EV1, while 01EV2 still waits
	// in its group.
	prune := func(before time.Time) (int, int) {
		var dn, en int
		err := s.InTx(ctx, func(tx store.Tx) error {
			var err error
			dn, en, err = tx.PruneNotify(ctx, before, 100)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return dn, en
	}
	if dn, en := prune(t0.Add(time.Minute)); dn != 0 || en != 0 {
		t.Fatalf("pruned %d deliveries, %d events too early", dn, en)
	}
	if dn, en := prune(t0.Add(time.Hour)); dn != 1 || en != 1 {
		t.Fatalf("pruned %d deliveries, %d events; want 1 and 1", dn, en)
	}
	if _, err := s.GetNotifyDelivery(ctx, "D1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("D1 after pruning: %v", err)
	}
	if as, _ := s.ListNotifyAttempts(ctx, []string{"D1"}); len(as) != 0 {
		t.Fatalf("attempts after pruning: %+v", as)
	}
	if w, _ := s.ListWaitingNotifyEvents(ctx, "hook", "g1", 10); len(w) != 1 || w[0].ID != "01EV2" {
		t.Fatalf("waiting after pruning: %+v", w)
	}
}
