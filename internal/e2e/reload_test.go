package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// reloadExtra is a second credential appended to lockConfig.
const reloadExtra = `  - id: reload-key
    consumer: mcp-server-reload
    provider: gen
    max_age: 30d
    runbook: runbooks/e2e.md#rotation
`

// reloadBroken has three problems, each on its own line.
const reloadBroken = `  - id: broken-provider
    consumer: mcp-server-x
    provider: no-such-provider
    max_age: 30d
    runbook: runbooks/e2e.md#rotation
  - id: broken-runbook
    consumer: mcp-server-y
    provider: gen
    max_age: 30d
    runbook: runbooks/missing.md#rotation
  - id: broken-duration
    consumer: mcp-server-z
    provider: gen
    max_age: soon
    runbook: runbooks/e2e.md#rotation
`

// SIGHUP applies the -f file again: a broken file changes nothing and
// every problem is logged (as JSON lines with --log-format json); a good
// one is used by the scheduler's next pass (its new credential rotates).
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteDB, 0)
	config := filepath.Join(h.dir, "rotator.yaml")
	base := fmt.Sprintf(lockConfig, "run/mcp.env")
	writeFile(t, config, base)
	p := h.serve("serve", config, "--log-format", "json")
	waitServing(t, p)
	creds := func() []string {
		list, err := h.st.ListCredentials(t.Context(), store.CredentialFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		return ids
	}
	hup := func() {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	writeFile(t, config, base+reloadBroken)
	hup()
	waitFor(t, 30*time.Second, "the refused reload to be logged", func() (bool, error) {
		return strings.Contains(p.log(), "configuration not reloaded"), nil
	})
	var problems []string
	for _, line := range strings.Split(p.log(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("--log-format json wrote a line that is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "configuration problem" {
			problems = append(problems, fmt.Sprint(rec["problem"]))
		}
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{"no-such-provider", "runbooks/missing.md", "soon"} {
		if !strings.Contains(all, want) {
			t.Errorf("no logged problem names %q; logged:\n%s", want, all)
		}
	}
	if got := creds(); strings.Join(got, ",") != "lock-key" {
		t.Errorf("after a broken reload the credentials are %v, want [lock-key] unchanged", got)
	}
	if p.exited() {
		t.Fatalf("serve exited after a broken reload: %v", p.err)
	}

	writeFile(t, config, base+reloadExtra)
	hup()
	waitFor(t, 30*time.Second, "the good reload", func() (bool, error) {
		return strings.Contains(p.log(), "configuration reloaded"), nil
	})
	waitFor(t, 60*time.Second, "the reloaded credential to be rotated by the scheduler", func() (bool, error) {
		runs, err := h.runs("reload-key")
		if err != nil {
			return false, err
		}
		for _, r := range runs {
			if r.State == string(rotation.StateSucceeded) && r.Trigger != store.TriggerManual {
				return true, nil
			}
		}
		return false, nil
	})
	if err := p.stop(30 * time.Second); err != nil {
		t.Errorf("stop: %v\n%s", err, tail(p.log(), 30))
	}
}
