package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

// bundle is a migrated store plus a way to run raw SQL on it behind the
// store's back, as an attacker with database access would.
type bundle struct {
	st   store.Store
	exec func(t testing.TB, query string)
}

// dialects opens a fresh store of each kind.
var dialects = map[string]func(t testing.TB) bundle{
	"postgres": func(t testing.TB) bundle {
		st, err := postgres.Open(context.Background(), testpg.New(t))
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		return finish(t, st, func(t testing.TB, q string) {
			t.Helper()
			pool, ok := st.Handle().(*pgxpool.Pool)
			if !ok {
				t.Fatalf("postgres handle is %T", st.Handle())
			}
			if _, err := pool.Exec(context.Background(), q); err != nil {
				t.Fatalf("raw SQL %q: %v", q, err)
			}
		})
	},
	"sqlite": func(t testing.TB) bundle {
		st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		return finish(t, st, func(t testing.TB, q string) {
			t.Helper()
			db, ok := st.Handle().(*sql.DB)
			if !ok {
				t.Fatalf("sqlite handle is %T", st.Handle())
			}
			if _, err := db.ExecContext(context.Background(), q); err != nil {
				t.Fatalf("raw SQL %q: %v", q, err)
			}
		})
	},
}

func finish(t testing.TB, st store.Store, exec func(testing.TB, string)) bundle {
	t.Helper()
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return bundle{st: st, exec: exec}
}

// eachDialect runs fn against a fresh store of each dialect, in parallel.
func eachDialect(t *testing.T, fn func(t *testing.T, b bundle)) {
	t.Helper()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// insert appends n events in one transaction, numbered from start: their
// data has unsorted keys and spacing that Postgres jsonb normalizes.
func insert(t testing.TB, st store.Store, start, n int) {
	t.Helper()
	evs := make([]store.AuditEvent, n)
	for i := range evs {
		k := start + i
		evs[i] = store.AuditEvent{
			OccurredAt:   t0.Add(time.Duration(k) * time.Second),
			Actor:        "alice",
			Action:       "run.mint",
			CredentialID: fmt.Sprintf("cred-%d", k%7),
			RunID:        fmt.Sprintf("run-%d", k),
			Data:         json.RawMessage(fmt.Sprintf(`{"step": "mint", "attempt": %d, "evidence": {"z": 1.50, "a": "fp:%04x"}}`, k, k)),
		}
	}
	err := st.InTx(context.Background(), func(tx store.Tx) error { return tx.InsertAuditEvents(context.Background(), evs...) })
	if err != nil {
		t.Fatalf("insert %d events: %v", n, err)
	}
}

func seal(t testing.TB, st store.Store) int {
	t.Helper()
	n, err := audit.NewSealer(st, audit.SealerOptions{}).Seal(context.Background(), 0)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return n
}

// verify verifies sequentially and in parallel, and checks that both give
// the same report and visit the same events.
func verify(t testing.TB, st store.Store, opts audit.VerifyOptions) audit.Report {
	t.Helper()
	visit := opts.Visit
	var seqVisits, parVisits []int64
	opts.Visit = func(ev store.AuditEvent) {
		seqVisits = append(seqVisits, ev.ID)
		if visit != nil {
			visit(ev)
		}
	}
	rep, err := audit.Verify(context.Background(), st, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	opts.Visit = func(ev store.AuditEvent) { parVisits = append(parVisits, ev.ID) }
	opts.Parallel = 4
	par, err := audit.Verify(context.Background(), st, opts)
	if err != nil {
		t.Fatalf("verify in parallel: %v", err)
	}
	if !reflect.DeepEqual(rep, par) {
		t.Fatalf("sequential and parallel verification disagree:\n%+v\n%+v", rep, par)
	}
	slices.Sort(seqVisits)
	slices.Sort(parVisits)
	if !slices.Equal(seqVisits, parVisits) {
		t.Fatalf("sequential verification visited %d events, parallel %d", len(seqVisits), len(parVisits))
	}
	return rep
}

// events returns every event, sealed first in chain order.
func events(t testing.TB, st store.Reader) []store.AuditEvent {
	t.Helper()
	var out []store.AuditEvent
	err := st.ScanAuditEvents(context.Background(), store.AuditFilter{}, func(ev store.AuditEvent) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}
