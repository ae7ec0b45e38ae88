package main

// These tests drive the rotator binary as users and scripts do: TestMain
// builds it once, and every test executes it with a controlled environment
// and working directory, on SQLite (the default ./rotator.db) and on
// Postgres (a fresh schema from internal/testpg), checking exit codes,
// output contracts (DESIGN.md §12) and that no secret value is ever printed.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/testpg"
)

// rotatorBin is the binary built by TestMain.
var rotatorBin string

// buildMain builds the binary (with -race when the tests run with it), then
// runs the tests inside a Postgres database of their own.
type buildMain struct{ m *testing.M }

func (b buildMain) Run() int {
	dir, err := os.MkdirTemp("", "rotator-cli-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "cli test: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "rotator")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "cli test: go build: %v\n", err)
		return 1
	}
	rotatorBin = bin
	return testpg.M(b.m).Run()
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(buildMain{m}) }

// Paths into the repository (tests run in cmd/rotator).
var (
	repoRoot       = mustAbs("../..")
	quickstartPath = filepath.Join(repoRoot, "examples", "quickstart.yaml")
	runbookPath    = filepath.Join(repoRoot, "runbooks", "generated.md")
)

func mustAbs(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return abs
}

// storeKinds are the stores every contract test runs on.
var storeKinds = []string{"sqlite", "postgres"}

// cli runs the rotator binary in one working directory with one
// environment, and remembers everything it printed (for the secret canary).
type cli struct {
	dir string
	env []string

	mu      sync.Mutex
	printed []string
}

// newCLI returns a CLI in an empty temporary directory. On "sqlite"
// ROTATOR_DATABASE_URL and every master key variable are unset, so rotator
// uses ./rotator.db and generates its key beside it; on "postgres" the URL
// names a fresh schema and ROTATOR_MASTER_KEY holds a random key.
func newCLI(t *testing.T, store string, extraEnv ...string) *cli {
	t.Helper()
	dir := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"TZ=UTC",
		// A -race binary otherwise sleeps a second at every exit.
		"GORACE=halt_on_error=1 atexit_sleep_ms=0",
	}
	switch store {
	case "sqlite":
	case "postgres":
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		env = append(env,
			"ROTATOR_DATABASE_URL="+testpg.New(t),
			"ROTATOR_MASTER_KEY="+base64.StdEncoding.EncodeToString(key))
	default:
		t.Fatalf("unknown store %q", store)
	}
	return &cli{dir: dir, env: append(env, extraEnv...)}
}

// result is the outcome of one invocation.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("rotator %s\nexit code: %d\n--- stdout:\n%s--- stderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run executes rotator with args and returns its output and exit code.
func (c *cli) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("rotator %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	if ctx.Err() != nil {
		t.Fatalf("rotator %s: did not finish within 60s\n%s", strings.Join(args, " "), r)
	}
	c.mu.Lock()
	c.printed = append(c.printed, r.stdout, r.stderr)
	c.mu.Unlock()
	return r
}

// must runs rotator and fails the test unless it exits with code.
func (c *cli) must(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := c.run(t, args...)
	if r.code != code {
		t.Fatalf("want exit code %d, got %d:\n%s", code, r.code, r)
	}
	return r
}

// path returns a path inside the working directory.
func (c *cli) path(elem ...string) string { return filepath.Join(append([]string{c.dir}, elem...)...) }

// copyRunbooks puts runbooks/generated.md into the working directory, so
// that configs written there and runs executed there resolve it.
func (c *cli) copyRunbooks(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, c.path("runbooks", "generated.md"), string(data))
}

// listJSON returns `credentials list -o json`, checked to be one object.
func (c *cli) listJSON(t *testing.T) string {
	t.Helper()
	r := c.must(t, 0, "credentials", "list", "-o", "json")
	decodeObject(t, r.stdout, "credentials")
	return r.stdout
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// obj is a decoded JSON object.
type obj = map[string]any

// decodeObject decodes s as exactly one JSON object whose only keys are
// keys (DESIGN.md §12: every -o json output is one object with a named
// array or object).
func decodeObject(t *testing.T, s string, keys ...string) obj {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var o obj
	if err := dec.Decode(&o); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, s)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("output has more than one JSON value:\n%s", s)
	}
	got := slices.Sorted(maps.Keys(o))
	if want := slices.Sorted(slices.Values(keys)); !slices.Equal(got, want) {
		t.Fatalf("top-level keys: got %q, want %q\n%s", got, want, s)
	}
	return o
}

// array returns o[key] as a list of objects.
func array(t *testing.T, o obj, key string) []obj {
	t.Helper()
	raw, ok := o[key].([]any)
	if !ok {
		t.Fatalf("%q is %T, want an array: %v", key, o[key], o[key])
	}
	out := make([]obj, len(raw))
	for i, item := range raw {
		m, ok := item.(obj)
		if !ok {
			t.Fatalf("%s[%d] is %T, want an object", key, i, item)
		}
		out[i] = m
	}
	return out
}

// object returns o[key] as an object.
func object(t *testing.T, o obj, key string) obj {
	t.Helper()
	m, ok := o[key].(obj)
	if !ok {
		t.Fatalf("%q is %T, want an object: %v", key, o[key], o[key])
	}
	return m
}

// requireKeys fails unless o has every key (present, possibly null).
func requireKeys(t *testing.T, what string, o obj, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := o[k]; !ok {
			t.Errorf("%s: field %q is missing; fields are %q", what, k, slices.Sorted(maps.Keys(o)))
		}
	}
}

// str returns o[key] as a string, failing if it is anything else.
func str(t *testing.T, o obj, key string) string {
	t.Helper()
	s, ok := o[key].(string)
	if !ok {
		t.Fatalf("%q is %T (%v), want a string", key, o[key], o[key])
	}
	return s
}

// num returns o[key] as an integer.
func num(t *testing.T, o obj, key string) int64 {
	t.Helper()
	n, ok := o[key].(json.Number)
	if !ok {
		t.Fatalf("%q is %T (%v), want a number", key, o[key], o[key])
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%q: %v", key, err)
	}
	return i
}

// utcTime checks that o[key] is an RFC 3339 time in UTC and returns it.
func utcTime(t *testing.T, o obj, key string) time.Time {
	t.Helper()
	s := str(t, o, key)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%q = %q is not RFC 3339: %v", key, s, err)
	}
	if !strings.HasSuffix(s, "Z") {
		t.Errorf("%q = %q is not in UTC", key, s)
	}
	return ts
}

// byField indexes a list of objects by a string field.
func byField(t *testing.T, items []obj, key string) map[string]obj {
	t.Helper()
	out := make(map[string]obj, len(items))
	for _, it := range items {
		out[str(t, it, key)] = it
	}
	return out
}

// lineOf returns the 1-based line of the first line of content containing sub.
func lineOf(t *testing.T, content, sub string) int {
	t.Helper()
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("no line contains %q", sub)
	return 0
}
