// Package storeopen opens the store a database URL names, Postgres or
// SQLite. It lives apart from internal/store because it imports both
// implementations, which import internal/store.
package storeopen

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/store/sqlstore"
)

// EnvURL is the environment variable holding the database URL.
const EnvURL = "ROTATOR_DATABASE_URL"

// DefaultURL is the database used when EnvURL is unset: an SQLite file in
// the working directory.
const DefaultURL = "sqlite://./rotator.db"

// FromEnv returns the database URL from ROTATOR_DATABASE_URL, or DefaultURL
// when it is unset or empty.
func FromEnv() string {
	if u := strings.TrimSpace(os.Getenv(EnvURL)); u != "" {
		return u
	}
	return DefaultURL
}

// Open opens the store at url without migrating it:
//
//	postgres://user:pass@host:5432/db?sslmode=verify-full   (or postgresql://)
//	sqlite://./rotator.db, sqlite:///abs/path.db, file:path.db, sqlite::memory:
//
// Errors never include the URL's password.
func Open(ctx context.Context, url string) (store.Store, error) {
	scheme, _, _ := strings.Cut(url, ":")
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		s, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "sqlite", "file":
		s, err := sqlite.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("open store %q: unknown database URL scheme; valid forms are "+
		"postgres://user:pass@host:5432/db, postgresql://..., sqlite://./rotator.db, "+
		"sqlite:///abs/path.db, sqlite::memory: and file:path.db", sqlstore.RedactURL(url))
}

// Redact returns url with its password replaced by xxxxx, for messages.
func Redact(url string) string { return sqlstore.RedactURL(url) }
