package outbox_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// seedCredential creates a credential (and its provider) with a current
// version and the given state.
func seedCredential(t *testing.T, st store.Store, id string, state store.CredentialState, now time.Time) {
	t.Helper()
	err := st.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.UpsertProvider(t.Context(), store.Provider{Name: "gen", Type: "generated", Settings: settings.Map{}, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		c := store.Credential{ID: id, Consumer: "mcp-server-x", Provider: "gen", Labels: map[string]string{"env": "prod"},
			Policy: store.Policy{MaxAge: time.Hour}, Runbook: "runbooks/generated.md#rotation", State: store.CredentialState{Status: store.StatusHealthy},
			CreatedAt: now, UpdatedAt: now}
		if err := tx.UpsertCredentialSpec(t.Context(), c); err != nil {
			return err
		}
		v := store.Version{ID: "v-" + id, CredentialID: id, Stage: store.StageCurrent, Sealed: []byte("x"), KeyID: "k", Fingerprint: "0123456789abcdef", CreatedAt: now}
		if err := tx.InsertVersion(t.Context(), v); err != nil {
			return err
		}
		state.CurrentVersionID = v.ID
		return tx.UpdateCredentialState(t.Context(), id, state)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func events(t *testing.T, st store.Store, kind notify.Kind) []notify.Event {
	t.Helper()
	rows, err := st.ListNotifyEvents(t.Context(), string(kind), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]notify.Event, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Payload, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestCheck: overdue and expiring credentials raise their events once per
// repeat interval; a finished emergency gets one summary naming its
// failures.
func TestCheck(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			b := setup(t, dialect)
			now := b.clk.Now()
			// Due two hours ago, expires in an hour: overdue and expiring.
			seedCredential(t, b.st, "late", store.CredentialState{Status: store.StatusHealthy, NextRotationAt: now.Add(-2 * time.Hour),
				ExpiresAt: now.Add(time.Hour), LastRotatedAt: now.Add(-3 * time.Hour)}, now)
			// Due in a day: nothing.
			seedCredential(t, b.st, "fine", store.CredentialState{Status: store.StatusHealthy, NextRotationAt: now.Add(24 * time.Hour),
				ExpiresAt: now.Add(48 * time.Hour)}, now)
			for i := 0; i < 5; i++ { // five minutes of checks
				if err := b.d.Check(t.Context()); err != nil {
					t.Fatal(err)
				}
				b.clk.Add(time.Minute)
			}
			over, exp := events(t, b.st, notify.KindOverdue), events(t, b.st, notify.KindExpiring)
			if len(over) != 1 || over[0].CredentialID != "late" || over[0].OldVersion.Fingerprint != "0123456789abcdef" {
				t.Fatalf("overdue events %+v", over)
			}
			if len(exp) != 1 || exp[0].CredentialID != "late" {
				t.Fatalf("expiring events %+v", exp)
			}

			// An emergency over "late" and "fine": started, then its runs end.
			start := notify.Event{ID: rotation.NewID(b.clk.Now()), Kind: notify.KindEmergency, Time: b.clk.Now(), Phase: "started",
				Credentials: []string{"fine", "late"}, Reason: "leak", Summary: "emergency started"}
			if err := rotation.WriteEvents(t.Context(), b.st, start); err != nil {
				t.Fatal(err)
			}
			runAt := b.clk.Now().Add(time.Second)
			for _, c := range []string{"fine", "late"} {
				r := store.Run{ID: "R-" + c, CredentialID: c, Trigger: store.TriggerEmergency, Actor: "oncall", Reason: "leak",
					State: string(rotation.StatePlanned), Active: true, Attempt: 1, CreatedAt: runAt, UpdatedAt: runAt}
				if err := b.st.InTx(t.Context(), func(tx store.Tx) error { return tx.InsertRun(t.Context(), r) }); err != nil {
					t.Fatal(err)
				}
			}
			b.clk.Add(time.Minute)
			if err := b.d.Check(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := len(events(t, b.st, notify.KindEmergency)); n != 1 {
				t.Fatalf("%d emergency events while its runs are active, want the start only", n)
			}
			for c, state := range map[string]rotation.State{"fine": rotation.StateSucceeded, "late": rotation.StateRolledBack} {
				r, err := b.st.GetRun(t.Context(), "R-"+c)
				if err != nil {
					t.Fatal(err)
				}
				r.State, r.Active, r.FinishedAt = string(state), false, b.clk.Now()
				if err := b.st.InTx(t.Context(), func(tx store.Tx) error { return tx.UpdateRun(t.Context(), r) }); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				b.clk.Add(time.Minute)
				if err := b.d.Check(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			evs := events(t, b.st, notify.KindEmergency)
			if len(evs) != 2 || evs[1].Phase != "summary" || evs[1].ID != start.ID+"-summary" {
				t.Fatalf("emergency events %+v", evs)
			}
			if s := evs[1].Summary; !strings.Contains(s, "1 succeeded, 1 failed: late") {
				t.Fatalf("summary %q", s)
			}
		})
	}
}
