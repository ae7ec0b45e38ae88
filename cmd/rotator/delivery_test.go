package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const deliveryConfig = `
providers:
  gen:
    type: generated
    length: 32
    prefix: "dlvcanary_"
targets:
  env:
    type: file
    path: ./run/mcp.env
    format: dotenv
credentials:
  - id: github-mcp
    consumer: mcp-server-github
    provider: gen
    labels: {team: platform}
    max_age: 720h
    runbook: runbooks/generated.md#rotation
    targets: [{target: env, key: GITHUB_TOKEN}]
  - id: notes-key
    consumer: mcp-server-notes
    provider: gen
    max_age: 720h
    runbook: runbooks/generated.md#rotation
    targets: [{target: env, key: NOTES_KEY}]
  - id: fresh
    consumer: mcp-server-fresh
    provider: gen
    max_age: 720h
    runbook: runbooks/generated.md#rotation
delivery:
  allow:
    - uid: %d
      credentials: ["team=platform"]
`

// deliveryCLI applies deliveryConfig and rotates two of its credentials;
// it returns their values as the file target published them.
func deliveryCLI(t *testing.T, store string, env ...string) (*cli, map[string]string) {
	t.Helper()
	c := newCLI(t, store, env...)
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), fmt.Sprintf(deliveryConfig, os.Getuid()))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "github-mcp", "notes-key", "--wait")
	data, err := os.ReadFile(c.path("run", "mcp.env"))
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	for l := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			vals[k] = strings.Trim(v, `"`)
		}
	}
	if !strings.HasPrefix(vals["GITHUB_TOKEN"], "dlvcanary_") || !strings.HasPrefix(vals["NOTES_KEY"], "dlvcanary_") {
		t.Fatalf("the file target holds no values: %q", data)
	}
	return c, vals
}

func TestHeadersLocal(t *testing.T) {
	t.Parallel()
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c, vals := deliveryCLI(t, store)
			r := c.must(t, 0, "headers", "--header", "Authorization=Bearer {github-mcp}", "--header", "x-notes={notes-key}:{github-mcp}")
			var got map[string]string
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("headers output is not a JSON object: %v\n%s", err, r)
			}
			want := map[string]string{"Authorization": "Bearer " + vals["GITHUB_TOKEN"], "X-Notes": vals["NOTES_KEY"] + ":" + vals["GITHUB_TOKEN"]}
			if len(got) != 2 || got["Authorization"] != want["Authorization"] || got["X-Notes"] != want["X-Notes"] {
				t.Errorf("headers printed other values than the current ones (keys %v)", keysOf(got))
			}
			headersOut := r.stdout

			// A value that cannot be read: no JSON at all, a clear reason.
			for args, want := range map[string]struct {
				code int
				says string
			}{
				"Authorization=Bearer {github-mcp}|X-Missing={no-such}": {exitNotFound, `credential "no-such": credential not found`},
				"Authorization=Bearer {github-mcp}|X-Fresh={fresh}":     {exitFailure, `"fresh": credential has no current value (rotate it once`},
				"Authorization=Bearer github-mcp":                       {exitUsage, "the template names no credential"},
			} {
				var a []string
				for h := range strings.SplitSeq(args, "|") {
					a = append(a, "--header", h)
				}
				r := c.must(t, want.code, append([]string{"headers"}, a...)...)
				if r.stdout != "" || !strings.Contains(r.stderr, want.says) {
					t.Errorf("headers %s: stdout %q, stderr %q; want nothing on stdout and %q", args, r.stdout, r.stderr, want.says)
				}
			}
			c.must(t, exitUsage, "headers")
			c.must(t, exitUsage, "headers", "--header", "A={github-mcp}", "--url", "https://x", "--token-ref", "rtrtok_literal")

			// Every read is audited, by the local uid, without the value.
			a := c.must(t, 0, "audit", "list", "--credential", "github-mcp", "-o", "json")
			if !strings.Contains(a.stdout, `"value.read"`) || !strings.Contains(a.stdout, fmt.Sprintf(`uid:%d`, os.Getuid())) {
				t.Errorf("no value.read event by uid %d:\n%s", os.Getuid(), a.stdout)
			}
			assertValuesOnlyIn(t, c, vals, headersOut)
		})
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// assertValuesOnlyIn checks that no credential value was printed by any
// command but in the allowed outputs.
func assertValuesOnlyIn(t *testing.T, c *cli, vals map[string]string, allowed ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, out := range c.printed {
		if out == "" || contains(allowed, out) {
			continue
		}
		for k, v := range vals {
			if strings.Contains(out, v) {
				t.Errorf("the value of %s was printed outside the headers output:\n%s", k, out)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestTokensCLI(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.must(t, 0, "migrate")
	r := c.must(t, 0, "tokens", "create", "--scope", "consume:github-mcp", "--scope", "consume:team=platform", "--ttl", "30d", "--name", "laptop", "-o", "json")
	o := decodeObject(t, r.stdout, "token", "id", "name", "scopes", "created_by", "created_at", "expires_at", "revoked_at", "last_used_at", "status")
	tok, id := o["token"].(string), o["id"].(string)
	if !strings.HasPrefix(tok, "rtrtok_") || len(tok) != 79 || !strings.HasPrefix(id, "tok_") || o["status"] != "active" {
		t.Fatalf("tokens create -o json: %s", r.stdout)
	}
	l := c.must(t, 0, "tokens", "list", "-o", "json")
	decodeObject(t, l.stdout, "tokens")
	if strings.Contains(l.stdout, tok) || strings.Contains(l.stdout, tok[7:20]) || !strings.Contains(l.stdout, id) {
		t.Errorf("tokens list shows the token, or not its id:\n%s", l.stdout)
	}
	c.must(t, 0, "tokens", "revoke", id)
	l = c.must(t, 0, "tokens", "list", "-o", "json")
	if !strings.Contains(l.stdout, `"status": "revoked"`) {
		t.Errorf("tokens list after revoke:\n%s", l.stdout)
	}
	c.must(t, exitNotFound, "tokens", "revoke", "tok_nope")
	// The management API's scopes.
	r = c.must(t, 0, "tokens", "create", "--scope", "read", "--scope", "rotate", "--scope", "admin", "-o", "json")
	if o := decodeObject(t, r.stdout, "token", "id", "name", "scopes", "created_by", "created_at", "expires_at", "revoked_at", "last_used_at", "status"); fmt.Sprint(o["scopes"]) != "[read rotate admin]" {
		t.Errorf("tokens create --scope read --scope rotate --scope admin: %s", r.stdout)
	}
	for _, bad := range [][]string{
		{"tokens", "create"},
		{"tokens", "create", "--scope", "read:x"},
		{"tokens", "create", "--scope", "write"},
		{"tokens", "create", "--scope", "consume:Bad"},
		{"tokens", "create", "--scope", "consume:x", "--ttl", "soon"},
	} {
		c.must(t, exitUsage, bad...)
	}
	a := c.must(t, 0, "audit", "list", "-o", "json")
	if strings.Contains(a.stdout, tok) || !strings.Contains(a.stdout, "token.created") || !strings.Contains(a.stdout, "token.revoked") {
		t.Errorf("audit after tokens create/revoke:\n%s", a.stdout)
	}
}

// TestHeadersThroughServe runs serve with --socket and --listen and reads
// through both: by uid over the socket, and with a token over TCP.
func TestHeadersThroughServe(t *testing.T) {
	t.Parallel()
	c, vals := deliveryCLI(t, "sqlite")
	r := c.must(t, 0, "tokens", "create", "--scope", "consume:notes-key", "-o", "json")
	var created struct{ Token string }
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatal(err)
	}
	tok := created.Token
	writeFile(t, c.path("token"), tok+"\n")

	sock, addr := startServe(t, c, vals)

	r = c.must(t, 0, "headers", "--socket", sock, "--header", "Authorization=Bearer {github-mcp}")
	if strings.TrimSpace(r.stdout) != fmt.Sprintf(`{"Authorization":"Bearer %s"}`, vals["GITHUB_TOKEN"]) {
		t.Errorf("headers over the socket: %s", r)
	}
	// The delivery: rules allow team=platform only.
	r = c.must(t, exitFailure, "headers", "--socket", sock, "--header", "X={notes-key}")
	if r.stdout != "" || !strings.Contains(r.stderr, "not allowed to read") || !strings.Contains(r.stderr, "delivery.allow") {
		t.Errorf("a forbidden read over the socket: %s", r)
	}
	// Over TCP with the token (consume:notes-key), given by reference.
	url := "http://" + addr
	r = c.must(t, 0, "headers", "--url", url, "--token-ref", "${file:"+c.path("token")+"}", "--header", "X-Notes={notes-key}")
	if strings.TrimSpace(r.stdout) != fmt.Sprintf(`{"X-Notes":"%s"}`, vals["NOTES_KEY"]) {
		t.Errorf("headers over TCP: %s", r)
	}
	r = c.must(t, exitFailure, "headers", "--url", url, "--token-ref", "${file:"+c.path("token")+"}", "--header", "A={github-mcp}")
	if r.stdout != "" || !strings.Contains(r.stderr, "not allowed to read") {
		t.Errorf("a token scoped consume:notes-key reading github-mcp: %s", r)
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, tok) {
			t.Errorf("the token was printed: %s", out)
		}
	}
	a := c.must(t, 0, "audit", "list", "-o", "json")
	for _, want := range []string{`"via": "socket"`, `"via": "api"`, `"value.read.refused"`} {
		if !strings.Contains(a.stdout, want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
	assertValuesOnlyIn(t, c, vals, "{\"Authorization\":\"Bearer "+vals["GITHUB_TOKEN"]+"\"}\n", "{\"X-Notes\":\""+vals["NOTES_KEY"]+"\"}\n")
}

// startServe runs `rotator serve --socket --listen` in c's directory until
// the test ends, and returns the socket's path and the TCP address. At the
// end it checks that serve printed none of vals.
func startServe(t *testing.T, c *cli, vals map[string]string) (sock, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	_ = ln.Close()
	// A socket path must be short (108 bytes): not under t.TempDir().
	sockDir, err := os.MkdirTemp("", "rtrsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	sock = filepath.Join(sockDir, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, rotatorBin, "serve", "-f", "rotator.yaml", "--socket", sock, "--listen", addr)
	serve.Dir, serve.Env = c.dir, c.env
	serveOut := &syncBuffer{}
	serve.Stdout, serve.Stderr = serveOut, serveOut
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	serve.WaitDelay = 10 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = serve.Wait()
		for _, v := range vals {
			if strings.Contains(serveOut.String(), v) {
				t.Errorf("serve logged a value:\n%s", serveOut.String())
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(sock); err == nil {
			if fi.Mode().Perm() != 0o660 {
				t.Errorf("socket mode %v; want 0660", fi.Mode().Perm())
			}
			return sock, addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not create its socket:\n%s", serveOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
