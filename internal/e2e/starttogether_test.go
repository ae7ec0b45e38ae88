package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/internal/testpg"
)

// startTogether is how many processes each round starts at once, and
// startRounds how many rounds run, each on a new database (all five take
// about 15 s on the 2-core test machine, so they run in the normal suite).
const (
	startTogether = 4
	startRounds   = 5
)

// startConfig is a small configuration every replica applies at start.
const startConfig = `providers:
  keys:
    type: generated
    length: 32
targets:
  env:
    type: file
    path: %q
    format: dotenv
credentials:
  - id: start-a
    consumer: mcp-server-start
    provider: keys
    owner: e2e
    max_age: 30d
    runbook: runbooks/e2e.md#rotation
    targets:
      - {target: env, key: START_A}
  - id: start-b
    consumer: mcp-server-start
    provider: keys
    owner: e2e
    max_age: 30d
    runbook: runbooks/e2e.md#rotation
    targets:
      - {target: env, key: START_B}
`

// newEmptyHarness is a harness on a new, empty database: nothing migrated,
// no store opened by the test.
func newEmptyHarness(t *testing.T, kind string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), kind: kind}
	switch kind {
	case sqliteDB:
		h.url = "sqlite://" + filepath.Join(h.dir, "rotator.db")
	case postgresDB:
		// A new schema: for rotator and River an empty database.
		h.url = withQuery(t, testpg.New(t), "pool_max_conns", "4")
	default:
		t.Fatalf("unknown database kind %q", kind)
	}
	writeFile(t, filepath.Join(h.dir, "runbooks", "e2e.md"), "# End-to-end tests\n\n## Rotation\n\nNothing to do by hand.\n")
	return h
}

// TestStartTogether starts 4 processes at once on an empty database, in
// 5 rounds, each on a new database: `rotator serve -f` replicas on
// Postgres must all become ready (/readyz), and `rotator migrate` runs on
// Postgres and SQLite must all succeed and leave both rotator's and River's
// tables. Before migrations ran under one lock, River's ran outside it and
// a replica could exit with "duplicate key ... river_migration" or
// "table river_notification already exists".
func TestStartTogether(t *testing.T) {
	t.Parallel()
	for round := 1; round <= startRounds; round++ {
		t.Run(fmt.Sprintf("serve/postgres/%d", round), func(t *testing.T) {
			pgSlots <- struct{}{}
			defer func() { <-pgSlots }()
			h := newEmptyHarness(t, postgresDB)
			config := filepath.Join(h.dir, "rotator.yaml")
			writeFile(t, config, fmt.Sprintf(startConfig, filepath.Join(h.dir, "run", "mcp.env")))
			procs := make([]*proc, startTogether)
			for i := range procs {
				procs[i] = h.serve(fmt.Sprintf("serve-%d", i+1), config, "--workers", "2")
			}
			var wg sync.WaitGroup
			for _, p := range procs {
				wg.Go(func() { waitReady(t, p, 90*time.Second) })
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			for _, p := range procs {
				if err := p.stop(30 * time.Second); err != nil {
					t.Errorf("stopping %s: %v", p.name, err)
				}
			}
		})
		for _, kind := range databases {
			t.Run(fmt.Sprintf("migrate/%s/%d", kind, round), func(t *testing.T) {
				h := newEmptyHarness(t, kind)
				errs := make(chan error, startTogether)
				procs := make([]*proc, startTogether)
				for i := range procs {
					procs[i] = h.start(fmt.Sprintf("migrate-%d", i+1), "migrate")
				}
				for _, p := range procs {
					go func() {
						select {
						case <-p.done:
							if p.err != nil {
								errs <- fmt.Errorf("%s: %v\n%s", p.name, p.err, tail(p.log(), 10))
							} else {
								errs <- nil
							}
						case <-time.After(90 * time.Second):
							errs <- fmt.Errorf("%s did not finish within 90s", p.name)
						}
					}()
				}
				for range procs {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
				assertMigrated(t, h.url)
			})
		}
	}
}

var listenRE = regexp.MustCompile(`msg="rotator serving" listen=(\S+)`)

// waitReady waits until p logs its listen address and answers /readyz
// with 200, failing the test if p exits first or timeout passes.
func waitReady(t *testing.T, p *proc, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if p.exited() {
			t.Errorf("%s exited before it was ready: %v\n%s", p.name, p.err, tail(p.log(), 10))
			return
		}
		if m := listenRE.FindStringSubmatch(p.log()); m != nil {
			resp, err := client.Get("http://" + m[1] + "/readyz")
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s not ready within %s\n%s", p.name, timeout, tail(p.log(), 10))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertMigrated checks that the database at url has rotator's tables and
// River's.
func assertMigrated(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	st, err := storeopen.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ListCredentials(ctx, store.CredentialFilter{}); err != nil {
		t.Errorf("rotator's tables: %v", err)
	}
	const q = `SELECT count(*) FROM river_migration`
	var n int
	switch db := st.Handle().(type) {
	case *pgxpool.Pool:
		err = db.QueryRow(ctx, q).Scan(&n)
	case *sql.DB:
		err = db.QueryRowContext(ctx, q).Scan(&n)
	default:
		t.Fatalf("unknown store handle %T", db)
	}
	if err != nil {
		t.Errorf("River's tables: %v", err)
	} else if n == 0 {
		t.Error("river_migration is empty: River's migrations did not run")
	}
}
