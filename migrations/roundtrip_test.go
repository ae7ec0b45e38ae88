package migrations_test

import (
	"database/sql"
	"io/fs"
	"path/filepath"
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
	for _, tc := range []struct {
		name    string
		dialect goose.Dialect
		driver  string
		dsn     func(t *testing.T) string
		fsys    fs.FS
	}{
		{"postgres", goose.DialectPostgres, "pgx", func(t *testing.T) string { return testpg.New(t) }, migrations.Postgres},
		{"sqlite", goose.DialectSQLite3, "sqlite", func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "m.db") + "?_pragma=foreign_keys(1)"
		}, migrations.SQLite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := sql.Open(tc.driver, tc.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			p, err := goose.NewProvider(tc.dialect, db, tc.fsys, goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
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
