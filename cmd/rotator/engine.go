package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// runbookMasterKey is where the operator learns to recover or rotate the
// master key.
const runbookMasterKey = "runbooks/master-key-rotation.md"

// keyring loads the master key and checks that it opens every stored
// value: a command that needs values fails at once (exit 1) when the
// database holds values sealed under a key it was not given, naming that
// key, instead of failing run by run. On the embedded SQLite default with
// no key configured, a key file is generated beside the database (with a
// warning), but only for a database that holds no sealed value yet: a new
// key would open none of them. Postgres deployments must configure one.
func (a *app) keyring(ctx context.Context, st store.Store) (secret.Keyring, error) {
	sealed, err := st.SealedKeyIDs(ctx)
	if err != nil {
		return secret.Keyring{}, fmt.Errorf("reading which master keys sealed the stored values: %w", err)
	}
	opts := secret.MasterKeyOptions{}
	if st.Dialect() == store.DialectSQLite {
		if db, err := a.database(); err == nil && db.KeyFile() != "" {
			opts.GenerateAt, opts.NoCreate = db.KeyFile(), len(sealed) > 0 || a.keyNoCreate
		}
	}
	kr, src, err := secret.LoadMasterKey(opts)
	switch {
	case errors.Is(err, secret.ErrNoMasterKey) && len(sealed) > 0:
		where := ""
		if opts.GenerateAt != "" {
			where = ", and its key file " + opts.GenerateAt + " does not exist (a database copied without it?)"
		}
		return kr, fmt.Errorf("the database holds values sealed under master key %s, but no key is configured "+
			"(neither %s nor %s is set)%s.\n"+
			"  A new key is not generated: it would open none of them.\n"+
			"  To fix: restore the key file, or set %s (or %s) to the key with id %s; see %s",
			strings.Join(sealed, ", "), secret.EnvMasterKey, secret.EnvMasterKeyFile, where,
			secret.EnvMasterKey, secret.EnvMasterKeyFile, sealed[0], runbookMasterKey)
	case err != nil:
		return kr, usageError{err}
	}
	if missing := kr.Missing(sealed); len(missing) > 0 {
		return kr, keysMissingError(missing, src)
	}
	if src.Generated {
		a.logger.Warn("generated a master key beside the database; back it up (without it the stored values cannot be read) and configure ROTATOR_MASTER_KEY_FILE in production",
			slog.String("path", src.Path), slog.String("key_id", src.ActiveKeyID))
	}
	return kr, nil
}

// keysMissingError says that stored values were sealed under keys none of
// the configured ones is, which keys are configured, and what to do.
func keysMissingError(missing []string, src secret.MasterKeySource) error {
	origin := map[secret.MasterKeyOrigin]string{
		secret.MasterKeyFromEnv:           secret.EnvMasterKey,
		secret.MasterKeyFromFile:          secret.EnvMasterKeyFile + " " + src.Path,
		secret.MasterKeyFromGeneratedFile: "the key file " + src.Path,
	}[src.Origin]
	previous := "none"
	if len(src.PreviousKeyIDs) > 0 {
		previous = strings.Join(src.PreviousKeyIDs, ", ")
	}
	return fmt.Errorf("the database holds values sealed under master key %s, which no configured key opens.\n"+
		"  Configured: active key %s (from %s); previous keys (%s): %s.\n"+
		"  To fix: set %s (or %s) to the key with id %s, or add it to %s (comma-separated); see %s",
		strings.Join(missing, ", "), src.ActiveKeyID, origin, secret.EnvMasterKeyPrevious, previous,
		secret.EnvMasterKey, secret.EnvMasterKeyFile, missing[0], secret.EnvMasterKeyPrevious, runbookMasterKey)
}

// engineSetup opens the store, migrates it (with River's tables), loads the
// master key and builds the engine.
type engineSetup struct {
	store   store.Store
	engine  *rotation.Engine
	keyring secret.Keyring
}

func (a *app) newEngine(ctx context.Context, runbookDir string) (*engineSetup, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	kr, err := a.keyring(ctx, st)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	e, err := rotation.New(rotation.Options{
		Store: st, Keyring: kr, Redactor: a.redactor, Logger: a.logger, RunbookDir: runbookDir,
		BackoffBase: a.retryBackoff, LogRuns: a.logRuns, NotifyKinds: a.notifyKinds, Observer: a.observer,
	})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &engineSetup{store: st, engine: e, keyring: kr}, nil
}

// addRetryFlag registers --retry-backoff on a command that executes runs.
func (a *app) addRetryFlag(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&a.retryBackoff, "retry-backoff", 30*time.Second,
		"delay before a failed rotation is attempted again; doubles with each failure, at most 1h")
}
