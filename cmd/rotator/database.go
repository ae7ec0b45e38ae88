package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/filelock"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
)

// annCreatesDatabase marks the commands that may create the database they
// are pointed at (apply, migrate, serve). Every other command fails on an
// SQLite file that does not exist, instead of creating an empty one and
// showing its emptiness as the truth.
const annCreatesDatabase = "rotator/creates-database"

// createsDatabase returns the annotation for a command that may create
// its database.
func createsDatabase() map[string]string { return map[string]string{annCreatesDatabase: "true"} }

// prepare runs before every command (the root's persistent pre-run): it
// notes whether the command may create its database and checks the master
// key variables, which are configuration (exit 2) whatever the command.
func (a *app) prepare(cmd *cobra.Command) error {
	a.createsDB = cmd.Annotations[annCreatesDatabase] == "true"
	// ErrNoMasterKey is no configuration error: commands that need no
	// values run without a key, and the others say so when they need one.
	if _, _, err := secret.LoadMasterKey(secret.MasterKeyOptions{}); err != nil && !errors.Is(err, secret.ErrNoMasterKey) {
		return usageError{err}
	}
	return nil
}

// database resolves the database the command works on, once: --database,
// else ROTATOR_DATABASE_URL, else ./rotator.db.
func (a *app) database() (storeopen.Database, error) {
	if a.db.URL == "" {
		db, err := storeopen.Resolve(a.databaseFlag)
		if err != nil {
			return storeopen.Database{}, usageError{err}
		}
		a.db = db
	}
	return a.db, nil
}

// openDatabase opens the database without migrating it: creating an SQLite
// file that does not exist only for the commands annotated as creating it.
func (a *app) openDatabase(ctx context.Context) (store.Store, error) {
	db, err := a.database()
	if err != nil {
		return nil, err
	}
	if a.createsDB {
		return db.Open(ctx)
	}
	st, err := db.OpenExisting(ctx)
	if errors.Is(err, storeopen.ErrNoDatabase) {
		named := "named by " + db.From
		if db.From == storeopen.NamedByDefault {
			named = "the default when neither --database nor " + storeopen.EnvURL + " is set"
		}
		return nil, usageError{messageError{err: err, msg: fmt.Sprintf("no database at %s (%s); nothing was created. "+
			"Create it with 'rotator apply -f FILE' (or 'rotator migrate'), "+
			"or point --database or %s at the right database", db.Path, named, storeopen.EnvURL)}}
	}
	return st, err
}

// lockServe takes the lock that keeps a second `rotator serve` off an
// SQLite database (<file>.lock), for the life of the process: the kernel
// drops it when the process ends, however it ends. Postgres databases need
// none: several serve replicas share one. The CLI never takes it.
func (a *app) lockServe() (*filelock.Lock, error) {
	db, err := a.database()
	if err != nil {
		return nil, err
	}
	path := db.LockFile()
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	l, err := filelock.Acquire(path, filelock.Self())
	var held *filelock.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("another 'rotator serve' is running on the database %s: %s (lock file %s). "+
			"Run one serve per SQLite database (stop that one first, or use Postgres for several replicas); "+
			"the CLI (rotate, runs, credentials) works beside it", db.Path, held.Holder, path)
	}
	return l, err
}
