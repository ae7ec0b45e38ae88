package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/outbox"
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

// TestDispatcherTest: `rotator notify test` sends through the retry stage
// bounded by its MaxAttempts, reports every attempt as it is stored (its
// error scrubbed), and settles its delivery whatever happens: a cancel or
// a receiver that cannot be built leaves it failed, never pending (no job
// would ever send it).
func TestDispatcherTest(t *testing.T) {
	t.Parallel()
	// progress collects the attempts a Test reports.
	type progress struct {
		mu sync.Mutex
		as []notify.Attempt
	}
	collect := func(p *progress) func(notify.Attempt) {
		return func(a notify.Attempt) { p.mu.Lock(); p.as = append(p.as, a); p.mu.Unlock() }
	}
	delivery := func(t *testing.T, b *bundle, id string) store.NotifyDelivery {
		t.Helper()
		dl, err := b.st.GetNotifyDelivery(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return dl
	}
	t.Run("MaxAttempts bounds the tries, each reported", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite") // its retry stage makes at most 3 attempts
		b.hook.status = []int{500, 500, 500, 500}
		var p progress
		id, err := b.d.Test(t.Context(), "hook", outbox.TestOptions{Actor: "alice", MaxAttempts: 2, Progress: collect(&p)})
		if err == nil || !strings.Contains(err.Error(), "failed") {
			t.Fatalf("Test: %v, want a failed delivery", err)
		}
		if n := len(b.hook.requests()); n != 2 {
			t.Fatalf("hook got %d requests, want 2", n)
		}
		if len(p.as) != 2 || p.as[0].N != 1 || p.as[0].Status != notify.AttemptRetry || p.as[0].Wait <= 0 ||
			p.as[1].N != 2 || p.as[1].Status != notify.AttemptFailed || !strings.Contains(p.as[1].Error, "500") {
			t.Fatalf("progress %+v", p.as)
		}
		if dl := delivery(t, b, id); dl.State != store.DeliveryFailed || dl.Attempts != 2 {
			t.Fatalf("delivery %+v", dl)
		}
	})
	t.Run("MaxAttempts 1 sends once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite")
		b.hook.status = []int{503, 200}
		var p progress
		if _, err := b.d.Test(t.Context(), "hook", outbox.TestOptions{MaxAttempts: 1, Progress: collect(&p)}); err == nil {
			t.Fatal("Test: delivered, want failed after one attempt")
		}
		if n := len(b.hook.requests()); n != 1 || len(p.as) != 1 || p.as[0].Status != notify.AttemptFailed {
			t.Fatalf("%d requests, progress %+v; want one failed attempt", n, p.as)
		}
	})
	t.Run("delivered after a retry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite")
		b.hook.status = []int{503}
		var p progress
		id, err := b.d.Test(t.Context(), "hook", outbox.TestOptions{Progress: collect(&p)})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.as) != 2 || p.as[0].Status != notify.AttemptRetry || p.as[1].Status != notify.AttemptDelivered || p.as[1].Error != "" {
			t.Fatalf("progress %+v", p.as)
		}
		if dl := delivery(t, b, id); dl.State != store.DeliveryDelivered || dl.Attempts != 2 {
			t.Fatalf("delivery %+v", dl)
		}
	})
	t.Run("errors are scrubbed as stored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite")
		b.hook.status = []int{500, 500}
		// rotator:ignore: test fixture (canary)
		canary := "tok-CANARY-6d1e0c9a"
		red := &secret.Redactor{}
		red.Register(secret.NewString(canary))
		// A careless receiver that names its secret URL in its error.
		url := b.hook.srv.URL + "/hook?token=" + canary
		careless := notify.ReceiverFunc(func(ctx context.Context, msg notify.Message) (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(msg.DeliveryID))
			if err != nil {
				return false, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return true, err
			}
			_ = resp.Body.Close()
			return true, fmt.Errorf("POST %s: status %d", url, resp.StatusCode)
		})
		d, err := outbox.New(outbox.Options{Store: b.st, Config: b.cfg.Notify, Now: b.clk.Now, Redactor: red,
			Receivers: map[string]notify.Receiver{"hook": careless}, Retrier: notify.Retrier{Sleep: noSleep}})
		if err != nil {
			t.Fatal(err)
		}
		var p progress
		id, err := d.Test(t.Context(), "hook", outbox.TestOptions{MaxAttempts: 2, Progress: collect(&p)})
		if err == nil {
			t.Fatal("Test: delivered, want failed")
		}
		if len(p.as) != 2 {
			t.Fatalf("progress %+v", p.as)
		}
		as, lerr := b.st.ListNotifyAttempts(t.Context(), []string{id})
		if lerr != nil || len(as) != 2 {
			t.Fatalf("attempts %+v, %v", as, lerr)
		}
		for i, a := range p.as {
			if strings.Contains(a.Error, "CANARY") || !strings.Contains(a.Error, "[REDACTED]") || a.Error != as[i].Error {
				t.Fatalf("progress error %q, stored %q: want the stored, scrubbed error", a.Error, as[i].Error)
			}
		}
		if strings.Contains(err.Error(), "CANARY") {
			t.Fatalf("Test's error names the secret: %v", err)
		}
	})
	t.Run("a cancel settles it failed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite")
		b.hook.status = []int{500, 500, 500}
		ctx, cancel := context.WithCancelCause(t.Context())
		defer cancel(nil)
		var p progress
		id, err := b.d.Test(ctx, "hook", outbox.TestOptions{Progress: func(a notify.Attempt) {
			collect(&p)(a)
			cancel(errors.New("operator pressed ctrl-c")) // while the stage would wait
		}})
		if err == nil || !strings.Contains(err.Error(), "cancelled: operator pressed ctrl-c") {
			t.Fatalf("Test: %v", err)
		}
		if n := len(b.hook.requests()); n != 1 || len(p.as) != 1 {
			t.Fatalf("%d requests, progress %+v; want one attempt", n, p.as)
		}
		dl := delivery(t, b, id)
		if dl.State != store.DeliveryFailed || dl.Attempts != 1 || dl.LastError != "cancelled: operator pressed ctrl-c" || dl.FinishedAt.IsZero() {
			t.Fatalf("delivery %+v, want failed with the cancel", dl)
		}
	})
	t.Run("a receiver that cannot be built settles it failed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite")
		// No environment: the receiver's references do not resolve.
		d, err := outbox.New(outbox.Options{Store: b.st, Config: b.cfg.Notify, Now: b.clk.Now,
			Resolver: &secret.Resolver{LookupEnv: func(string) (string, bool) { return "", false }}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := d.Test(t.Context(), "hook", outbox.TestOptions{})
		if err == nil || id == "" {
			t.Fatalf("Test: %q, %v", id, err)
		}
		if dl := delivery(t, b, id); dl.State != store.DeliveryFailed || !strings.Contains(dl.LastError, "${env:HOOK_") {
			t.Fatalf("delivery %+v, want failed naming the unresolved reference", dl)
		}
	})
	t.Run("an unknown receiver", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "sqlite")
		if _, err := b.d.Test(t.Context(), "nobody", outbox.TestOptions{}); !errors.Is(err, outbox.ErrUnknownReceiver) {
			t.Fatalf("Test: %v, want ErrUnknownReceiver", err)
		}
	})
}
