package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecThroughServe runs `rotator exec --socket` against a running
// `rotator serve --socket`: the child gets the current value, and after a
// rotation (seen by exec's long poll, not by polling the store) a new child
// gets the new one. Over --url, the token is taken by reference only.
func TestExecThroughServe(t *testing.T) {
	t.Parallel()
	c, vals := deliveryCLI(t, "sqlite")
	sock, addr := startServe(t, c, vals)

	cmd := exec.CommandContext(t.Context(), rotatorBin, "exec", "--socket", sock, "--env", "TOK=github-mcp", "--",
		"sh", "-c", `printf '%s\n' "$TOK" >> seen; exec sleep 120`)
	cmd.Dir, cmd.Env = c.dir, c.env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe() // the MCP client's side stays open
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("exec did not stop within 20s of SIGTERM")
		}
		_ = stdin.Close()
		for _, v := range append([]string{vals["GITHUB_TOKEN"]}, envValue(t, readFile(t, c.path("run", "mcp.env")), "GITHUB_TOKEN")) {
			if strings.Contains(stderr.String(), v) {
				t.Error("exec printed a value")
			}
		}
	}()
	seen := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			data, _ := os.ReadFile(c.path("seen"))
			if lines := strings.Fields(string(data)); len(lines) >= n {
				return lines
			}
			if time.Now().After(deadline) {
				t.Fatalf("the child did not record value %d within 30s\nexec's stderr:\n%s", n, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := seen(1); got[0] != vals["GITHUB_TOKEN"] {
		t.Fatalf("the child saw another value than the current one\n%s", stderr.String())
	}
	c.must(t, 0, "rotate", "github-mcp", "--wait")
	rotated := envValue(t, readFile(t, c.path("run", "mcp.env")), "GITHUB_TOKEN")
	if rotated == vals["GITHUB_TOKEN"] {
		t.Fatal("the credential did not rotate")
	}
	if got := seen(2); got[1] != rotated {
		t.Errorf("after the rotation the new child saw another value than the rotated one\n%s", stderr.String())
	}
	a := c.must(t, 0, "audit", "list", "--credential", "github-mcp", "-o", "json")
	var events struct {
		Events []struct {
			Action string
			Data   struct{ Via, Purpose string }
		}
	}
	if err := json.Unmarshal([]byte(a.stdout), &events); err != nil {
		t.Fatal(err)
	}
	reads := 0
	for _, e := range events.Events {
		if e.Action == "value.read" && e.Data.Via == "socket" && e.Data.Purpose == "exec" {
			reads++
		}
	}
	if reads < 2 {
		t.Errorf("the audit log has %d value.read events of exec over the socket; want 2 (start and cutover):\n%s", reads, a.stdout)
	}

	// Over TCP: a token by reference works (the token reads github-mcp);
	// the token itself as the flag's value is refused.
	r := c.must(t, 0, "tokens", "create", "--scope", "consume:github-mcp", "-o", "json")
	var created struct{ Token string }
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatal(err)
	}
	writeFile(t, c.path("token"), created.Token+"\n")
	c.must(t, 0, "exec", "--url", "http://"+addr, "--token-ref", "${file:"+c.path("token")+"}", "--env", "TOK=github-mcp", "--",
		"sh", "-c", `printf '%s\n' "$TOK" > seen-url`)
	if got := strings.TrimSpace(readFile(t, c.path("seen-url"))); got != rotated {
		t.Error("exec --url: the child saw another value than the current one")
	}
	r = c.must(t, exitUsage, "exec", "--url", "http://"+addr, "--token-ref", created.Token, "--env", "TOK=github-mcp", "--", "true")
	if !strings.Contains(r.stderr, "--token-ref must be a reference") || strings.Contains(r.stderr, created.Token) {
		t.Errorf("exec --token-ref with a literal token:\n%s", r)
	}
	c.must(t, exitUsage, "exec", "--socket", sock, "--url", "http://"+addr, "--env", "TOK=github-mcp", "--", "true")
	assertValuesOnlyIn(t, c, map[string]string{"old": vals["GITHUB_TOKEN"], "new": rotated})
}
