// Package testpg gives tests a Postgres of their own on a shared server: a
// database per test binary, created in TestMain and dropped (WITH (FORCE))
// at its end, and a schema per New call, dropped at the test's cleanup.
// Tests using it run in parallel and beside anything else on the server.
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }
//
//	url := testpg.New(t) // postgres://...?search_path=t_1a2b3c...
//
// The server is ROTATOR_TEST_DATABASE_URL, by default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; its user
// must be allowed to create databases. An unreachable server fails the
// test binary, in CI and out of it: a skipped test is not a passed one.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotatorhq/rotator/internal/store/sqlstore"
)

// EnvURL is the environment variable naming the Postgres server for tests.
const EnvURL = "ROTATOR_TEST_DATABASE_URL"

// DefaultURL is the server used when EnvURL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// startHint tells how to start the local server.
const startHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start " +
	"(or point " + EnvURL + " at a server whose user may create databases)"

var current struct {
	sync.Mutex
	url string // the test binary's database, "" outside Run
}

// Main runs a test binary's tests inside a database of its own.
type Main struct{ m *testing.M }

// M wraps the tests of a binary; pass it to goleak.VerifyTestMain, or call
// os.Exit(testpg.M(m).Run()).
func M(m *testing.M) Main { return Main{m: m} }

// Run creates the database, runs the tests, drops the database and returns
// the exit code. It fails (code 1, with a message saying how to start
// Postgres) if the server cannot be reached.
func (x Main) Run() int {
	admin := ServerURL()
	name := "rotator_test_" + fmt.Sprint(os.Getpid()) + "_" + randomHex(4)
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testpg: %s: %v\n", EnvURL, err)
		return 1
	}
	dropOrphans(admin)
	if err := adminExec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		fmt.Fprintf(os.Stderr, "testpg: cannot create a test database on Postgres at %s: %v\n%s\n",
			sqlstore.RedactURL(admin), err, startHint)
		return 1
	}
	current.Lock()
	current.url = dbURL
	current.Unlock()

	code := x.m.Run()

	current.Lock()
	current.url = ""
	current.Unlock()
	if err := adminExec(admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "testpg: drop test database %s: %v\n", name, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// dropOrphans drops the test databases of test binaries that died before
// dropping theirs (killed, or stopped by a debugger), so that a shared
// server does not collect them. The database name carries the creator's
// pid, which means something only on the same host: on a server that is
// not on a loopback address nothing is dropped. Failures are ignored; the
// next run tries again.
func dropOrphans(admin string) {
	u, err := url.Parse(admin)
	if err != nil {
		return
	}
	switch host := u.Hostname(); host {
	case "127.0.0.1", "::1", "localhost", "":
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close(ctx) }()
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'rotator\_test\_%'`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		if pid, ok := creatorPID(name); ok && !processExists(pid) {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
	}
}

// creatorPID reads the pid out of a name rotator_test_<pid>_<hex>.
func creatorPID(name string) (int, bool) {
	parts := strings.Split(name, "_")
	if len(parts) != 4 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[2])
	return pid, err == nil && pid > 0
}

// processExists reports whether pid is a live process (EPERM: it is, and
// belongs to someone else).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ServerURL returns the Postgres server for tests: ROTATOR_TEST_DATABASE_URL
// or DefaultURL.
func ServerURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// New creates an empty schema in the test binary's database and returns a
// URL whose connections use it (search_path); the schema is dropped when
// the test ends, after cleanups registered later (such as closing a store).
// TestMain must run the tests through M.
func New(t testing.TB) string {
	t.Helper()
	current.Lock()
	dbURL := current.url
	current.Unlock()
	if dbURL == "" {
		t.Fatal("testpg.New: the test binary has no database; write func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }")
	}
	schema := "t_" + randomHex(8)
	if err := adminExec(dbURL, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testpg: create schema %s: %v\n%s", schema, err, startHint)
	}
	t.Cleanup(func() {
		if err := adminExec(dbURL, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("testpg: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// withDatabase returns server URL raw with its database replaced by name.
func withDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("want a postgres:// URL, got %q", sqlstore.RedactURL(raw))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// adminExec runs one statement on its own connection.
func adminExec(connURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
