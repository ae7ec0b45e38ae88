package rotation_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// outbox returns the notification events of a run, decoded, in order.
func (b *bundle) outbox(t *testing.T, runID string, kinds ...notify.Kind) []notify.Event {
	t.Helper()
	var out []notify.Event
	for _, k := range kinds {
		rows, err := b.st.ListNotifyEvents(t.Context(), string(k), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			var ev notify.Event
			if err := json.Unmarshal(r.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.RunID == runID {
				if r.RunID != runID || r.CredentialID != ev.CredentialID || r.ID != ev.ID {
					t.Errorf("outbox row %+v does not match its payload %+v", r, ev)
				}
				out = append(out, ev)
			}
		}
	}
	return out
}

// TestOutboxEvents: the run's commits write its notification events (with
// version ids and fingerprints, never the value): a success the machine
// kinds, a failure rolled_back.
func TestOutboxEvents(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		creds := credYAML("api", "gen", "max_age: 1h", "out=API_KEY") + credYAML("stuck", "gen", "max_age: 1h", "blocked=KEY")
		b := setup(t, st, creds, setupOpts{engine: func(o *rotation.Options) {
			o.NotifyKinds = func(notify.Kind) bool { return true } // as serve with a route for the machine kinds
		}})
		run := b.rotateOK(t, "api")
		evs := b.outbox(t, run.ID, notify.KindStaged, notify.KindCutOver, notify.KindRetired)
		var kinds []string
		for _, ev := range evs {
			kinds = append(kinds, string(ev.Kind))
		}
		if !slices.Equal(kinds, []string{"rotation.staged", "rotation.cut_over", "rotation.retired"}) {
			t.Fatalf("events of a successful first rotation: %v", kinds)
		}
		v := b.version(t, run.NewVersionID)
		value := b.env(t, "out.env")["API_KEY"]
		for _, ev := range evs {
			if ev.CredentialID != "api" || ev.Consumer != "mcp-server-api" || ev.NewVersion == nil || ev.NewVersion.ID != v.ID ||
				ev.NewVersion.Fingerprint != v.Fingerprint || ev.Runbook != "runbooks/generated.md#rotation" || ev.Trigger != "manual" {
				t.Errorf("event %+v", ev)
			}
			if b, _ := json.Marshal(ev); value == "" || strings.Contains(string(b), value) {
				t.Fatalf("the event carries the value (or none was published): %s", b)
			}
		}
		// A second rotation names the first version as the old one.
		run2 := b.rotateOK(t, "api")
		cut := b.outbox(t, run2.ID, notify.KindCutOver)
		if len(cut) != 1 || cut[0].OldVersion == nil || cut[0].OldVersion.ID != v.ID || cut[0].OldVersion.Fingerprint != v.Fingerprint {
			t.Fatalf("second cut_over %+v", cut)
		}

		failed := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("stuck")}))
		if failed.State != string(rotation.StateRolledBack) {
			t.Fatalf("stuck: %s", failed.State)
		}
		rb := b.outbox(t, failed.ID, notify.KindRolledBack, notify.KindCutOver, notify.KindStaged)
		if len(rb) != 1 || rb[0].Kind != notify.KindRolledBack || !strings.Contains(rb[0].Reason, "stage") && !strings.Contains(rb[0].Reason, "blocker") {
			t.Fatalf("events of a rolled-back run: %+v", rb)
		}
	})
}

// TestOutboxDefaultKinds: without NotifyKinds the engine writes the kinds
// for people only: a success writes no row.
func TestOutboxDefaultKinds(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("api", "gen", "max_age: 1h", "out=API_KEY")+credYAML("stuck", "gen", "max_age: 1h", "blocked=KEY"), setupOpts{})
		run := b.rotateOK(t, "api")
		if evs := b.outbox(t, run.ID, notify.KindStaged, notify.KindCutOver, notify.KindRetired); len(evs) != 0 {
			t.Fatalf("machine kinds written by default: %+v", evs)
		}
		failed := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("stuck")}))
		if evs := b.outbox(t, failed.ID, notify.KindRolledBack); len(evs) != 1 {
			t.Fatalf("rolled_back events: %+v", evs)
		}
	})
}
