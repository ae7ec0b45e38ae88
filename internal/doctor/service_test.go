package doctor_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/doctor"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

// setup returns a migrated database of the kind and a store on it (closed
// at the test's end), its master key, and doctor's options for it.
func setup(t *testing.T, kind string) (store.Store, secret.Keyring, doctor.Options) {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "rotator.db")
	if kind == "postgres" {
		url = testpg.New(t)
	}
	ctx := t.Context()
	st, err := storeopen.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := rotation.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return st, kr, doctor.Options{
		Database:   kind,
		Open:       func(ctx context.Context) (store.Store, error) { return storeopen.Open(ctx, url) },
		MasterKey:  func(context.Context, store.Store) (secret.Keyring, error) { return kr, nil },
		RunbookDir: t.TempDir(),
	}
}

// serviceChecks returns the service component's checks by name.
func serviceChecks(t *testing.T, rep doctor.Report) map[string]doctor.Check {
	t.Helper()
	out := map[string]doctor.Check{}
	for _, c := range rep.Checks {
		if c.Component == doctor.ComponentService {
			out[c.Name] = c
		}
	}
	return out
}

// riverExecutor is River's own driver on the store's database.
func riverExecutor(t *testing.T, st store.Store) riverdriver.Executor {
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		return riverpgxv5.New(h).GetExecutor()
	case *sql.DB:
		return riversqlite.New(h).GetExecutor()
	}
	t.Fatalf("no River driver for %T", st.Handle())
	return nil
}

// TestServiceLeader, on SQLite and Postgres: nobody leading is broken
// (the report fails), and so is a leader whose leadership expired (a
// serve that died: River's row stays until another is elected), named
// with when; a real elector (a scheduler Runner, as serve starts) leading
// is OK and named.
func TestServiceLeader(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			st, kr, opts := setup(t, kind)
			ctx := t.Context()

			rep := doctor.Run(ctx, opts)
			c := serviceChecks(t, rep)[doctor.CheckLeader]
			if c.Status != doctor.Broken || !strings.Contains(c.Detail, "no rotator serve process is leading") ||
				!strings.Contains(c.Fix, "start 'rotator serve'") || rep.OK() {
				t.Fatalf("no leader: %+v (report ok: %v)", c, rep.OK())
			}

			// What River's elector leaves behind when its process dies: its
			// row, expired. River's driver writes it.
			now := time.Now().UTC()
			elected, expired := now.Add(-2*time.Hour), now.Add(-time.Hour)
			if _, err := riverExecutor(t, st).LeaderInsert(ctx, &riverdriver.LeaderInsertParams{
				LeaderID: "db-host-1/pid-4242/01JDEAD", ElectedAt: &elected, ExpiresAt: &expired, TTL: 15 * time.Second,
			}); err != nil {
				t.Fatal(err)
			}
			c = serviceChecks(t, doctor.Run(ctx, opts))[doctor.CheckLeader]
			for _, want := range []string{"no rotator serve process is leading", "the last leader, db-host-1 (pid 4242)",
				"elected " + elected.Truncate(time.Second).Format(time.RFC3339), "expire at " + expired.Truncate(time.Second).Format(time.RFC3339), "(1h ago)"} {
				if c.Status != doctor.Broken || !strings.Contains(c.Detail, want) {
					t.Errorf("expired leader: detail lacks %q: %+v", want, c)
				}
			}

			// The real elector: a Runner with the scheduler, as serve runs.
			e, err := rotation.New(rotation.Options{Store: st, Keyring: kr})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			r, err := rotation.NewRunner(e, rotation.RunnerOptions{Scheduler: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
					defer cancel()
					if err := r.Stop(sctx); err != nil {
						t.Errorf("stopping the runner: %v", err)
					}
				}
			}
			defer stop()
			me, _ := rotation.ParseProcess(rotation.ProcessID())
			deadline := time.Now().Add(30 * time.Second)
			for {
				rep := doctor.Run(ctx, opts)
				c = serviceChecks(t, rep)[doctor.CheckLeader]
				if c.Status == doctor.OK {
					if !strings.Contains(c.Detail, me.String()+" leads, elected ") {
						t.Errorf("leading: %+v, want %s named", c, me)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the runner did not lead within 30s: %+v", c)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Stopping resigns: nobody leads again.
			stop()
			if c = serviceChecks(t, doctor.Run(ctx, opts))[doctor.CheckLeader]; c.Status != doctor.Broken {
				t.Errorf("after the runner stopped: %+v", c)
			}
		})
	}
}

// TestServiceBacklogs, on SQLite and Postgres: each backlog of the
// leader's work is OK while its oldest item is at most BacklogAge old
// (5 minutes by default) and a warning past it, naming the count and the
// age; with no leader, the fix says to start one.
func TestServiceBacklogs(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			st, _, opts := setup(t, kind)
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Second)
			opts.Now = func() time.Time { return now }

			c := serviceChecks(t, doctor.Run(ctx, opts))
			for _, name := range []string{doctor.CheckNotifications, doctor.CheckAuditSealing, doctor.CheckScheduling} {
				if c[name].Status != doctor.OK || c[name].Detail != "nothing waiting" {
					t.Errorf("empty database: %s = %+v", name, c[name])
				}
			}

			events := make([]notify.Event, 3)
			for i := range events {
				at := now.Add(-5 * time.Minute)
				events[i] = notify.Event{ID: rotation.NewID(at), Kind: notify.KindRunFailed, Time: at, CredentialID: "db", Summary: "failed"}
			}
			row, err := rotation.OutboxRow(events...)
			if err != nil {
				t.Fatal(err)
			}
			err = st.InTx(ctx, func(tx store.Tx) error {
				if err := tx.InsertNotifyOutbox(ctx, row); err != nil {
					return err
				}
				if err := tx.UpsertProvider(ctx, store.Provider{Name: "gen", Type: "generated", SpecHash: "h", CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
				if err := tx.UpsertCredentialSpec(ctx, store.Credential{ID: "db", Consumer: "mcp-db", Provider: "gen", Policy: store.Policy{MaxAge: time.Hour},
					State: store.CredentialState{Status: store.StatusOverdue, NextRotationAt: now.Add(-26 * time.Hour)}, CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
				return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "credential.created", OccurredAt: now.Add(-2 * time.Hour)},
					store.AuditEvent{Action: "credential.created", OccurredAt: now.Add(-time.Minute)})
			})
			if err != nil {
				t.Fatal(err)
			}
			check := func(what, name string, status doctor.Status, detail string, fixes ...string) {
				t.Helper()
				ch := serviceChecks(t, doctor.Run(ctx, opts))[name]
				if ch.Status != status || !strings.Contains(ch.Detail, detail) {
					t.Errorf("%s: %s = %+v\nwant %s with %q", what, name, ch, status, detail)
				}
				for _, f := range fixes {
					if !strings.Contains(ch.Fix, f) {
						t.Errorf("%s: %s's fix lacks %q: %q", what, name, f, ch.Fix)
					}
				}
			}
			check("5 minutes old", doctor.CheckNotifications, doctor.OK,
				"3 notification event(s) waiting to be routed (3 in 1 notify_outbox row(s), 0 in notify_events), the oldest 5m old")
			check("2 hours old", doctor.CheckAuditSealing, doctor.Warn,
				"2 audit event(s) not sealed into the hash chain, the oldest since "+stamp(now.Add(-2*time.Hour))+" (2h ago, more than 5m)",
				"no rotator serve process is leading", "start 'rotator serve'")
			check("due 26 hours ago", doctor.CheckScheduling, doctor.Warn,
				"1 credential(s) due with no run started, the oldest since "+stamp(now.Add(-26*time.Hour))+" (26h ago, more than 5m)",
				"start 'rotator serve'", "rotator rotate ID --wait")

			now = now.Add(time.Second)
			check("5 minutes and a second old", doctor.CheckNotifications, doctor.Warn,
				"3 notification event(s) waiting to be routed (3 in 1 notify_outbox row(s), 0 in notify_events), the oldest since "+
					stamp(now.Add(-5*time.Minute-time.Second))+" (5m1s ago, more than 5m)",
				"start 'rotator serve'", "notify: section")

			opts.BacklogAge = 3 * time.Hour
			check("BacklogAge 3h", doctor.CheckNotifications, doctor.OK, "the oldest 5m1s old")
			check("BacklogAge 3h", doctor.CheckAuditSealing, doctor.OK, "the oldest 2h old")
		})
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
