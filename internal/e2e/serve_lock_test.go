package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lockConfig is one credential on the generated provider, published to a
// dotenv file.
const lockConfig = `providers:
  gen:
    type: generated
    length: 32
targets:
  env:
    type: file
    path: %q
    format: dotenv
credentials:
  - id: lock-key
    consumer: mcp-server-lock
    provider: gen
    owner: e2e
    max_age: 30d
    runbook: runbooks/e2e.md#rotation
    targets:
      - {target: env, key: LOCK_KEY}
`

// waitServing waits until a serve process logs that it serves.
func waitServing(t *testing.T, p *proc) {
	t.Helper()
	waitFor(t, 30*time.Second, p.name+" to serve", func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		return strings.Contains(p.log(), "rotator serving"), nil
	})
}

// A second `rotator serve` on the same SQLite file refuses to start and
// names the running one; the CLI works beside the running one; a serve
// killed with SIGKILL does not block the next.
func TestOneServePerSQLiteFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteDB, 0)
	config := filepath.Join(h.dir, "rotator.yaml")
	writeFile(t, config, fmt.Sprintf(lockConfig, "run/mcp.env"))

	first := h.serve("serve-1", config)
	waitServing(t, first)

	second := h.start("serve-2", "serve", "--listen", "127.0.0.1:0")
	select {
	case <-second.done:
	case <-time.After(15 * time.Second):
		t.Fatal("a second serve on the same SQLite file is still running after 15s")
	}
	var ee *exec.ExitError
	if !errors.As(second.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second serve ended with %v, want exit code 1", second.err)
	}
	host, _ := os.Hostname()
	log := second.log()
	for _, want := range []string{"another 'rotator serve' is running", filepath.Join(h.dir, "rotator.db"),
		fmt.Sprintf("pid %d", first.pid()), "on host " + host, "started 20"} {
		if !strings.Contains(log, want) {
			t.Errorf("the second serve does not say %q:\n%s", want, log)
		}
	}
	if first.exited() {
		t.Fatalf("the first serve exited: %v", first.err)
	}

	// The CLI does not take the lock.
	if out, err := h.cli("rotate", "lock-key", "--wait"); err != nil {
		t.Fatalf("rotate beside a running serve: %v\n%s", err, out)
	}

	// Killed outright, the first serve leaves its record but not its lock.
	first.kill()
	third := h.serve("serve-3", config)
	waitServing(t, third)
	if err := third.stop(30 * time.Second); err != nil {
		t.Errorf("stopping serve-3: %v", err)
	}
}
