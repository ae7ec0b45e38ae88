package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
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

// POST /v1/config/reload runs the SIGHUP reload for an admin token and
// answers with its outcome: 422 listing every problem of a broken file
// (nothing changes), 200 with the counts of a good one. A rotate token may
// not reload, and starts a rotation that the service's workers execute.
func TestReloadOverAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteDB, 0)
	config := filepath.Join(h.dir, "rotator.yaml")
	base := fmt.Sprintf(lockConfig, "run/mcp.env")
	writeFile(t, config, base)
	tokens := apitoken.NewService(h.st, nil, nil)
	mk := func(name, scope string) string {
		c, err := tokens.Create(t.Context(), apitoken.CreateRequest{Name: name, Scopes: []string{scope}, Actor: "e2e"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Token
	}
	admin, oncall := mk("deploy", "admin"), mk("oncall", "rotate")
	p := h.serve("serve", config, "--log-format", "json")
	waitServing(t, p)
	var addr string
	for _, line := range strings.Split(p.log(), "\n") {
		var rec struct{ Msg, Listen string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "rotator serving" {
			addr = rec.Listen
		}
	}
	if addr == "" {
		t.Fatalf("serve logged no listen address:\n%s", tail(p.log(), 10))
	}
	post := func(path, tok, body string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	writeFile(t, config, base+reloadBroken)
	code, body := post("/v1/config/reload", admin, "")
	var prob struct {
		Code   string   `json:"code"`
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal([]byte(body), &prob)
	all := strings.Join(prob.Errors, "\n")
	if code != http.StatusUnprocessableEntity || prob.Code != "config-invalid" {
		t.Errorf("a broken reload: %d %s; want 422 config-invalid", code, body)
	}
	for _, want := range []string{"no-such-provider", "runbooks/missing.md", "soon"} {
		if !strings.Contains(all, want) {
			t.Errorf("the 422 lists no problem naming %q: %s", want, body)
		}
	}
	if list, err := h.st.ListCredentials(t.Context(), store.CredentialFilter{}); err != nil || len(list) != 1 {
		t.Errorf("after a broken reload: %d credentials, %v; want lock-key alone", len(list), err)
	}
	if !strings.Contains(p.log(), "configuration problem") {
		t.Errorf("the refused reload's problems were not logged")
	}
	if code, body := post("/v1/config/reload", oncall, ""); code != http.StatusForbidden {
		t.Errorf("a rotate token reloads: %d %s", code, body)
	}

	writeFile(t, config, base+reloadExtra)
	code, body = post("/v1/config/reload", admin, "")
	if code != http.StatusOK || !strings.Contains(body, `"created":1`) {
		t.Errorf("a good reload: %d %s", code, body)
	}
	if _, err := h.st.GetCredential(t.Context(), "reload-key"); err != nil {
		t.Errorf("the reloaded credential: %v", err)
	}

	code, body = post("/v1/credentials/lock-key/rotate", oncall, "")
	var started struct{ Runs []struct{ Run string } }
	if err := json.Unmarshal([]byte(body), &started); err != nil || code != http.StatusAccepted || len(started.Runs) != 1 {
		t.Fatalf("rotate over the API: %d %s", code, body)
	}
	waitFor(t, 60*time.Second, "the API's rotation to be executed by the service", func() (bool, error) {
		r, err := h.st.GetRun(t.Context(), started.Runs[0].Run)
		if err != nil {
			return false, err
		}
		if r.Actor != "token:oncall" || r.Trigger != store.TriggerAPI {
			return false, fmt.Errorf("run actor %q trigger %q", r.Actor, r.Trigger)
		}
		return r.State == string(rotation.StateSucceeded) || r.State == string(rotation.StateCutOver), nil
	})
	for _, tok := range []string{admin, oncall} {
		if strings.Contains(p.log(), tok) {
			t.Errorf("serve logged a token")
		}
	}
	if err := p.stop(30 * time.Second); err != nil {
		t.Errorf("stop: %v\n%s", err, tail(p.log(), 30))
	}
}
