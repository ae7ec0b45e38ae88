package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/migrations"
)

// Migrate is the one migration step of a database: rotator's schema, then
// River's tables (MigrateQueue), under the store's migration lock (a
// session advisory lock on Postgres, a lock file on SQLite). Replicas and
// CLI commands started together on an empty database therefore migrate one
// after another instead of racing each other's CREATE statements. `rotator
// migrate`, `serve` and every command that opens the database call it.
func Migrate(ctx context.Context, st store.Store) error {
	return st.Migrate(ctx, func(ctx context.Context) error { return MigrateQueue(ctx, st) })
}

// MigrationState says how far a database is migrated.
type MigrationState struct {
	// Current is the newest rotator migration applied; 0 when none is.
	Current int64
	// Latest is the newest migration this binary embeds.
	Latest int64
	// Pending counts the rotator migrations not applied yet.
	Pending int
	// Unknown are applied migrations this binary does not embed: the
	// database was migrated by a newer rotator.
	Unknown []int64
	// QueueProblems lists what River's validation found (missing River
	// migrations); empty when River's tables are current.
	QueueProblems []string
}

// UpToDate reports whether nothing is pending.
func (m MigrationState) UpToDate() bool {
	return m.Pending == 0 && len(m.Unknown) == 0 && len(m.QueueProblems) == 0
}

// MigrationStatus reads, without changing anything, which of rotator's and
// River's migrations a database lacks (`rotator doctor`; every command that
// opens the database applies them with Migrate).
func MigrationStatus(ctx context.Context, st store.Store) (MigrationState, error) {
	var (
		db      *sql.DB
		fsys    fs.FS
		closeDB bool
	)
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		db, fsys, closeDB = stdlib.OpenDBFromPool(h), migrations.Postgres, true
	case *sql.DB:
		db, fsys = h, migrations.SQLite
	default:
		return MigrationState{}, fmt.Errorf("no migrations for store %s", st.Dialect())
	}
	if closeDB {
		defer db.Close() // the wrapper, not the pool
	}
	var state MigrationState
	embedded, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return MigrationState{}, err
	}
	applied := map[int64]bool{}
	rows, err := db.QueryContext(ctx, "SELECT version_id, is_applied FROM goose_db_version ORDER BY id")
	switch {
	case err != nil && !tableMissing(err):
		return MigrationState{}, fmt.Errorf("reading the applied migrations: %w", err)
	case err == nil:
		for rows.Next() {
			var (
				v  int64
				ok bool
			)
			if err := rows.Scan(&v, &ok); err != nil {
				_ = rows.Close()
				return MigrationState{}, fmt.Errorf("reading the applied migrations: %w", err)
			}
			applied[v] = ok // the latest row of a version wins, as in goose
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return MigrationState{}, fmt.Errorf("reading the applied migrations: %w", err)
		}
	}
	known := map[int64]bool{}
	for _, name := range embedded {
		v, err := strconv.ParseInt(strings.SplitN(name, "_", 2)[0], 10, 64)
		if err != nil {
			continue
		}
		known[v] = true
		state.Latest = max(state.Latest, v)
		if applied[v] {
			state.Current = max(state.Current, v)
		} else {
			state.Pending++
		}
	}
	for v, ok := range applied {
		if ok && v > 0 && !known[v] {
			state.Unknown = append(state.Unknown, v)
		}
	}
	slices.Sort(state.Unknown)
	if state.QueueProblems, err = queueMigrationProblems(ctx, st); err != nil {
		return state, err
	}
	return state, nil
}

// tableMissing reports whether err says a table does not exist (goose's
// version table in a database never migrated, River's leader table in one
// no serve has run on).
func tableMissing(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "42P01" // undefined_table
	}
	return strings.Contains(err.Error(), "no such table")
}

// queueMigrationProblems validates River's migrations.
func queueMigrationProblems(ctx context.Context, st store.Store) ([]string, error) {
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		return validateRiver(ctx, riverpgxv5.New(h))
	case *sql.DB:
		return validateRiver(ctx, riversqlite.New(h))
	}
	return nil, fmt.Errorf("no River driver for store %s", st.Dialect())
}

func validateRiver[TTx any](ctx context.Context, d riverdriver.Driver[TTx]) ([]string, error) {
	m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	return res.Messages, nil
}
