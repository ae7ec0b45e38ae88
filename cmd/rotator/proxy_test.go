package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envValue returns KEY's value in a dotenv file.
func envValue(t *testing.T, content, key string) string {
	t.Helper()
	for l := range strings.Lines(content) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	t.Fatalf("no %s in:\n%s", key, content)
	return ""
}

// TestProxyCommand runs `rotator proxy` in front of an HTTP server that
// accepts only the value the credential's file target holds now, rotates
// the credential with `rotator rotate` meanwhile, and checks that requests
// carry the current value, never the client's, and that no value is
// printed. It reads values from the local store, and from a running
// `rotator serve --socket` (a long poll tells it of the cutover).
func TestProxyCommand(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"local", "socket"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			testProxyCommand(t, via)
		})
	}
}

func testProxyCommand(t *testing.T, via string) {
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath)+fmt.Sprintf("\ndelivery:\n  allow:\n    - uid: %d\n      credentials: [notes-api-key]\n", os.Getuid()))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "notes-api-key", "--wait")
	current := func() string { return envValue(t, readFile(t, c.path("run", "mcp.env")), "NOTES_API_KEY") }
	first := current()
	args := []string{"proxy", "--listen", "127.0.0.1:0", "--credential", "notes-api-key", "-o", "json"}
	if via == "socket" {
		sock, _ := startServe(t, c, map[string]string{"first": first})
		args = append(args, "--socket", sock)
	}

	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		mu.Lock()
		seen = append(seen, got)
		mu.Unlock()
		if got != "Bearer "+current() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	defer up.Close()

	cmd := exec.CommandContext(t.Context(), rotatorBin, append(args, "--upstream", up.URL+"/mcp")...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Proxies []struct {
			Name, URL, Listen, Upstream string
			Credentials                 []string
		}
	}
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&out); err != nil || len(out.Proxies) != 1 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the proxy's -o json: %v %+v\n%s", err, out, stderr.String())
	}
	pr := out.Proxies[0]
	if pr.Name != "default" || pr.Upstream != up.URL+"/mcp" || len(pr.Credentials) != 1 || pr.Credentials[0] != "notes-api-key" {
		t.Errorf("-o json: %+v", pr)
	}
	post := func() int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, pr.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Authorization", "Bearer client-supplied")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(); got != http.StatusOK {
		t.Fatalf("through the proxy: status %d\n%s", got, stderr.String())
	}
	c.must(t, 0, "rotate", "notes-api-key", "--wait")
	if current() == first {
		t.Fatal("the credential did not rotate")
	}
	if got := post(); got != http.StatusOK {
		t.Fatalf("after the rotation: status %d\n%s", got, stderr.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the proxy ended with %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the proxy did not stop within 20s of SIGTERM")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if s == "Bearer client-supplied" {
			t.Error("the client's Authorization reached the upstream")
		}
	}
	if seen[0] != "Bearer "+first || seen[len(seen)-1] != "Bearer "+current() {
		t.Errorf("the upstream saw %d requests, not the values expected", len(seen))
	}
	if !strings.Contains(stderr.String(), "proxy stopped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	for _, v := range []string{first, current()} {
		if strings.Contains(stderr.String(), v) {
			t.Error("the proxy printed a value")
		}
		for _, p := range c.printed {
			if strings.Contains(p, v) {
				t.Error("a command printed a value")
			}
		}
	}
}

func TestProxyCommandErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	writeFile(t, c.path("proxies.yaml"), "proxies:\n  - name: a\n    listen: 127.0.0.1:7070\n    upstream: http://example.com/mcp\n    credential: notes-api-key\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"proxy"}, 2, "--listen is required"},
		{[]string{"proxy", "--listen", "0.0.0.0:7070", "--upstream", "https://x.example/mcp", "--credential", "notes-api-key"}, 2, "is not a loopback address"},
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--upstream", "https://x.example/mcp", "--header", "X-Key=literal"}, 2, "names no credential"},
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--upstream", "https://x.example/mcp", "--credential", "nope"}, 3, `credential "nope": credential not found`},
		{[]string{"proxy", "--config", "proxies.yaml"}, 2, "proxies.yaml:4: proxies[0].upstream: upstream URL http://example.com is not a loopback address"},
		{[]string{"proxy", "--config", "proxies.yaml", "--listen", "127.0.0.1:1"}, 2, "--listen cannot be combined with --config"},
	} {
		r := c.run(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("want exit %d and %q:\n%s", tc.code, tc.want, r)
		}
	}
}
