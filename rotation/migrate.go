package rotation

import (
	"context"

	"github.com/rotatorhq/rotator/internal/store"
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
