package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"errors"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/rotation"
)

// keyring loads the master key. On the embedded SQLite default with no key
// configured, a key file is generated beside the database (with a warning);
// Postgres deployments must configure one.
func (a *app) keyring(st store.Store) (secret.Keyring, error) {
	opts := secret.MasterKeyOptions{}
	if st.Dialect() == store.DialectSQLite {
		if path := sqlitePath(storeopen.FromEnv()); path != "" {
			opts.GenerateAt = path + ".key"
		}
	}
	kr, src, err := secret.LoadMasterKey(opts)
	if errors.Is(err, secret.ErrNoMasterKey) {
		return kr, usageError{err}
	}
	if err != nil {
		return kr, usageError{err}
	}
	if src.Generated {
		a.logger.Warn("generated a master key beside the database; back it up (without it the stored values cannot be read) and configure ROTATOR_MASTER_KEY_FILE in production",
			slog.String("path", src.Path), slog.String("key_id", src.ActiveKeyID))
	}
	return kr, nil
}

// sqlitePath returns the database file of a sqlite:// URL ("" for memory).
func sqlitePath(url string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite://"), "file:")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" || strings.Contains(p, ":memory:") {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// engineSetup opens the store, migrates it (with River's tables), loads the
// master key and builds the engine.
type engineSetup struct {
	store  store.Store
	engine *rotation.Engine
}

func (a *app) newEngine(ctx context.Context, runbookDir string) (*engineSetup, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	if err := rotation.MigrateQueue(ctx, st); err != nil {
		_ = st.Close()
		return nil, err
	}
	kr, err := a.keyring(st)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	e, err := rotation.New(rotation.Options{
		Store: st, Keyring: kr, Redactor: a.redactor, Logger: a.logger, RunbookDir: runbookDir,
		BackoffBase: a.retryBackoff, LogRuns: a.logRuns,
	})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &engineSetup{store: st, engine: e}, nil
}

// addRetryFlag registers --retry-backoff on a command that executes runs.
func (a *app) addRetryFlag(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&a.retryBackoff, "retry-backoff", 30*time.Second,
		"delay before a failed rotation is attempted again; doubles with each failure, at most 1h")
}
