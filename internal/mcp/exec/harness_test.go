package exec_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/rotation"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case roleServer:
		os.Exit(runServer())
	case roleExec:
		os.Exit(runExec())
	}
	goleak.VerifyTestMain(m)
}

// credID is the credential every test delivers.
const credID = "notes-token"

// harness is an inventory on a real SQLite file with the generated
// provider, a master key, and an engine that rotates in this process.
type harness struct {
	dir    string
	db     string
	keyB64 string
	st     store.Store
	kr     secret.Keyring
	e      *rotation.Engine
}

// newHarness applies one credential with the given grace period and
// rotates it once, so that it has a current value.
func newHarness(t testing.TB, grace string) *harness {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	h := &harness{dir: dir, db: filepath.Join(dir, "rotator.db")}
	st, err := sqlite.Open(ctx, "sqlite://"+h.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rotation.MigrateQueue(ctx, st); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`
providers:
  gen:
    type: generated
    length: 40
    prefix: "cnry_"
credentials:
  - id: %s
    consumer: mcp-server-notes
    provider: gen
    runbook: runbooks/generated.md#rotation
    max_age: 24h
    grace: %s
`, credID, grace)
	cfg, err := config.Parse(filepath.Join(dir, "rotator.yaml"), []byte(doc), config.Options{BaseDir: root})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, secret.KeySize)
	_, _ = rand.Read(raw)
	key, err := secret.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	h.keyB64 = base64.StdEncoding.EncodeToString(raw)
	if h.kr, err = secret.NewKeyring(key); err != nil {
		t.Fatal(err)
	}
	h.e, err = rotation.New(rotation.Options{Store: st, Keyring: h.kr, RunbookDir: root, StepTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: it gives the engine its queue; rotate executes here.
	if _, err := rotation.NewRunner(h.e, rotation.RunnerOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	h.st = st
	h.rotate(t)
	return h
}

// rotate executes one rotation to its cutover (the previous version then
// stays valid for the grace period) and returns the new current version.
func (h *harness) rotate(t testing.TB) store.Version {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	started, err := h.e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{credID}}, Trigger: store.TriggerManual, Actor: "test"})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if len(started) != 1 || started[0].Skipped {
		t.Fatalf("rotate: %+v", started)
	}
	local := &rotation.Local{E: h.e, Deadline: time.Now().Add(30 * time.Second)}
	res := local.Drive(ctx, []string{started[0].RunID})
	if st := rotation.State(res[0].Run.State); st != rotation.StateCutOver && st != rotation.StateSucceeded {
		t.Fatalf("rotation ended in %s: %s", st, res[0].Run.Error)
	}
	c, err := h.st.GetCredential(ctx, credID)
	if err != nil || c.Current == nil {
		t.Fatalf("credential after rotation: %v", err)
	}
	return *c.Current
}

// current returns the current version.
func (h *harness) current(t testing.TB) store.Version {
	t.Helper()
	c, err := h.st.GetCredential(context.WithoutCancel(t.Context()), credID)
	if err != nil || c.Current == nil {
		t.Fatalf("credential: %v", err)
	}
	return *c.Current
}

// value opens a version (the test compares fingerprints, and greps output
// for the values: the canary).
func (h *harness) value(t testing.TB, v store.Version) []byte {
	t.Helper()
	val, err := h.kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	return val.Reveal()
}

// allValues returns every value the credential has had.
func (h *harness) allValues(t testing.TB) [][]byte {
	t.Helper()
	vs, err := h.st.ListVersions(context.WithoutCancel(t.Context()), credID)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, v := range vs {
		out = append(out, h.value(t, v))
	}
	return out
}

// execCmd returns the test binary as `rotator exec` with spec, and the
// buffer its stderr (exec's and the server's) goes to.
func (h *harness) execCmd(t testing.TB, spec execSpec) (*osexec.Cmd, *testlog.Buffer) {
	t.Helper()
	spec.Database = h.db
	if spec.Poll == 0 {
		spec.Poll = 20 * time.Millisecond
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envRole+"="+roleExec, envSpec+"="+string(b), secret.EnvMasterKey+"="+h.keyB64,
		"GORACE=halt_on_error=1 atexit_sleep_ms=0")
	stderr := &testlog.Buffer{}
	cmd.Stderr = stderr
	return cmd, stderr
}

// connect starts exec under the SDK client over stdio.
func (h *harness) connect(t *testing.T, spec execSpec, protocol string) (*mcp.ClientSession, *osexec.Cmd, *testlog.Buffer) {
	t.Helper()
	return h.connectWith(t, spec, protocol, &mcp.ClientOptions{})
}

// connectWith is connect with client options.
func (h *harness) connectWith(t *testing.T, spec execSpec, protocol string, opts *mcp.ClientOptions) (*mcp.ClientSession, *osexec.Cmd, *testlog.Buffer) {
	t.Helper()
	cmd, stderr := h.execCmd(t, spec)
	// A list-changed handler makes the client open a long-lived
	// subscriptions/listen stream under the stateless revision.
	opts.ToolListChangedHandler = func(context.Context, *mcp.ToolListChangedRequest) {}
	client := mcp.NewClient(&mcp.Implementation{Name: "exec-test-client", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 10 * time.Second}, &mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		t.Fatalf("connect: %v\nstderr:\n%s", err, stderr)
	}
	return cs, cmd, stderr
}

// call calls a tool and decodes its structured answer.
func call(ctx context.Context, cs *mcp.ClientSession, tool string, args any) (whoami, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return whoami{}, err
	}
	if res.IsError {
		return whoami{}, fmt.Errorf("tool %s failed: %v", tool, res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return whoami{}, err
	}
	var w whoami
	return w, json.Unmarshal(b, &w)
}

// canary fails the test if any value of the credential appears in out.
func (h *harness) canary(t *testing.T, what, out string) {
	t.Helper()
	for _, v := range h.allValues(t) {
		if bytes.Contains([]byte(out), v) {
			t.Errorf("a value of %s appears in %s", credID, what)
		}
	}
	if !strings.Contains(string(h.allValues(t)[0]), "cnry_") {
		t.Errorf("the canary values do not have the expected prefix: the canary check would prove nothing")
	}
}

// caller calls whoami every interval until stopped, recording results.
type caller struct {
	mu      sync.Mutex
	results []whoami
	errs    []error
	stop    chan struct{}
	done    chan struct{}
}

func startCaller(ctx context.Context, cs *mcp.ClientSession, every time.Duration) *caller {
	c := &caller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			w, err := call(ctx, cs, "whoami", nil)
			c.mu.Lock()
			if err != nil {
				c.errs = append(c.errs, err)
			} else {
				c.results = append(c.results, w)
			}
			c.mu.Unlock()
			select {
			case <-c.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return c
}

// saw reports whether a call has answered with fingerprint fp.
func (c *caller) saw(fp string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.results {
		if r.Fingerprint == fp {
			return true
		}
	}
	return false
}

func (c *caller) finish() ([]whoami, []error) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results, c.errs
}

// waitFor polls cond for up to 30 s; stderr is shown on failure.
func waitFor(t *testing.T, what string, stderr *testlog.Buffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *osexec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil && !strings.Contains(err.Error(), "Wait was already called") {
		t.Fatalf("wait: %v", err)
	}
	if cmd.ProcessState == nil {
		t.Fatal("no process state")
	}
	return cmd.ProcessState.ExitCode()
}
