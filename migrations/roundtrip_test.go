package migrations_test

import (
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pressly/goose/v3"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/migrations"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

// TestUpDownUp applies every migration, reverts them one at a time to none,
// and applies them again: every Down must work on a schema its Up made, and
// leave one its Up can make again.
func TestUpDownUp(t *testing.T) {
	for _, tc := range []dbCase{pgCase, sqliteCase} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, p := tc.open(t)
			ctx := t.Context()
			up, err := p.Up(ctx)
			if err != nil {
				t.Fatalf("up: %v", err)
			}
			if len(up) == 0 {
				t.Fatal("no migration applied")
			}
			for v := len(up); v > 0; v-- {
				if _, err := p.Down(ctx); err != nil {
					t.Fatalf("down from version %d: %v", v, err)
				}
			}
			if cur, err := p.GetDBVersion(ctx); err != nil || cur != 0 {
				t.Fatalf("version after reverting all = %d (%v), want 0", cur, err)
			}
			again, err := p.Up(ctx)
			if err != nil {
				t.Fatalf("up again: %v", err)
			}
			if len(again) != len(up) {
				t.Fatalf("applied %d migrations again, want %d", len(again), len(up))
			}
		})
	}
}

// TestAuditPendingMoves checks 00011 on a log with sealed and unsealed
// events: the unsealed ones move to audit_pending and back, and new events
// take ids after every id given before.
func TestAuditPendingMoves(t *testing.T) {
	for _, tc := range []struct {
		dbCase
		now string
	}{{pgCase, "now()"}, {sqliteCase, "0"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, p := tc.open(t)
			ctx := t.Context()
			exec := func(q string) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			ids := func(q string) []int64 {
				t.Helper()
				rows, err := db.QueryContext(ctx, q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				defer rows.Close()
				var out []int64
				for rows.Next() {
					var id int64
					if err := rows.Scan(&id); err != nil {
						t.Fatal(err)
					}
					out = append(out, id)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if _, err := p.UpTo(ctx, 9); err != nil {
				t.Fatalf("up to 9: %v", err)
			}
			// Ids 1..5: 1, 2 and 4 sealed, 3 and 5 not; 6 was given and
			// deleted (a rolled-back insert leaves such a gap too).
			for i := 1; i <= 6; i++ {
				exec(fmt.Sprintf(`INSERT INTO audit_events (occurred_at, action, data) VALUES (%s, 'a%d', '{"n":%d}')`, tc.now, i, i))
			}
			exec(`DELETE FROM audit_events WHERE id = 6`)
			exec(`UPDATE audit_events SET seq = CASE id WHEN 1 THEN 1 WHEN 2 THEN 2 ELSE 3 END, prev_hash = 'p', hash = 'h', sealed_at = ` + tc.now + ` WHERE id IN (1, 2, 4)`)
			if _, err := p.UpTo(ctx, 11); err != nil {
				t.Fatalf("up to 11: %v", err)
			}
			if got := ids(`SELECT id FROM audit_events ORDER BY id`); !slices.Equal(got, []int64{1, 2, 4}) {
				t.Errorf("sealed after up: %v", got)
			}
			if got := ids(`SELECT id FROM audit_pending ORDER BY id`); !slices.Equal(got, []int64{3, 5}) {
				t.Errorf("pending after up: %v", got)
			}
			exec(fmt.Sprintf(`INSERT INTO audit_pending (occurred_at, action) VALUES (%s, 'new')`, tc.now))
			if got := ids(`SELECT id FROM audit_pending WHERE action = 'new'`); len(got) != 1 || got[0] <= 6 {
				t.Errorf("a new event's id is %v, want one after 6", got)
			}
			if _, err := p.DownTo(ctx, 9); err != nil {
				t.Fatalf("down to 9: %v", err)
			}
			if got := ids(`SELECT id FROM audit_events WHERE seq IS NULL ORDER BY id`); len(got) != 3 || got[0] != 3 || got[1] != 5 {
				t.Errorf("unsealed after down: %v", got)
			}
			exec(fmt.Sprintf(`INSERT INTO audit_events (occurred_at, action) VALUES (%s, 'newer')`, tc.now))
			if got := ids(`SELECT id FROM audit_events WHERE action = 'newer'`); len(got) != 1 || got[0] <= 7 {
				t.Errorf("after down, a new event's id is %v, want one after 7", got)
			}
		})
	}
}

// dbCase is a database of one dialect for the migration tests.
type dbCase struct {
	name    string
	dialect goose.Dialect
	driver  string
	dsn     func(t *testing.T) string
	fsys    fs.FS
}

var (
	pgCase     = dbCase{"postgres", goose.DialectPostgres, "pgx", func(t *testing.T) string { return testpg.New(t) }, migrations.Postgres}
	sqliteCase = dbCase{"sqlite", goose.DialectSQLite3, "sqlite", func(t *testing.T) string {
		return "file:" + filepath.Join(t.TempDir(), "m.db") + "?_pragma=foreign_keys(1)"
	}, migrations.SQLite}
)

// open makes a new database of the case, and a goose provider of its
// migrations on it; both are closed when the test ends.
func (c dbCase) open(t *testing.T) (*sql.DB, *goose.Provider) {
	t.Helper()
	db, err := sql.Open(c.driver, c.dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	p, err := goose.NewProvider(c.dialect, db, c.fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}
