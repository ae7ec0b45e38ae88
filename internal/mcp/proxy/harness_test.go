package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/mcp/proxy"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/rotation"
)

// repoRoot is where runbooks/ lives (tests run in internal/mcp/proxy).
var repoRoot, _ = filepath.Abs("../../..")

// inventoryYAML declares generated credentials; %s is each one's grace.
const inventoryYAML = `
providers:
  gen:
    type: generated
    length: 40
    prefix: "canary_"
credentials:
  - id: api
    consumer: mcp-server-api
    provider: gen
    runbook: runbooks/generated.md#rotation
    max_age: 1h
    grace: %[1]s
  - id: other
    consumer: mcp-server-other
    provider: gen
    runbook: runbooks/generated.md#rotation
    max_age: 1h
    grace: %[1]s
`

// world is a real SQLite store holding generated credentials, the real
// engine to rotate them, and a Local delivery source over them.
type world struct {
	st store.Store
	// check is a second handle on the database, as another system has:
	// the test upstreams read the valid values through it, so that they
	// do not queue on the engine's connection.
	check store.Store
	kr    secret.Keyring
	e     *rotation.Engine
	src   *delivery.Local
	red   *secret.Redactor
	logs  *testlog.Buffer
	log   *slog.Logger

	mu     sync.Mutex
	values map[string]bool   // every value opened (the canaries)
	opened map[string]string // version id -> value
}

// newWorld applies the inventory, rotates every credential once (so each
// has a current value) and opens a Local source polling every poll.
func newWorld(t testing.TB, grace string, poll time.Duration) *world {
	t.Helper()
	ctx := t.Context()
	dbPath := filepath.Join(t.TempDir(), "rotator.db")
	st, err := sqlite.Open(ctx, "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := rotation.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	check, err := sqlite.Open(ctx, "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = check.Close() })
	// The proxy reads through a handle of its own, as `rotator proxy` (a
	// process of its own) does, not through the engine's connection.
	srcStore, err := sqlite.Open(ctx, "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srcStore.Close() })
	doc := fmt.Sprintf(inventoryYAML, grace)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "rotator.yaml"), []byte(doc), config.Options{BaseDir: repoRoot})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{st: st, check: check, kr: kr, red: &secret.Redactor{}, logs: &testlog.Buffer{}, values: map[string]bool{}, opened: map[string]string{}}
	w.log = slog.New(secret.NewHandler(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}), w.red))
	w.e, err = rotation.New(rotation.Options{Store: st, Keyring: kr, Redactor: w.red, Logger: w.log, RunbookDir: repoRoot, StepTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The runner gives the engine its queue; rotation.Local executes.
	if _, err := rotation.NewRunner(w.e, rotation.RunnerOptions{Workers: 1, Logger: w.log}); err != nil {
		t.Fatal(err)
	}
	w.src, err = delivery.NewLocal(delivery.LocalOptions{Store: srcStore, Keyring: kr, Reader: "uid:0 (test)", Poll: poll, Logger: w.log})
	if err != nil {
		t.Fatal(err)
	}
	w.rotate(t, "api")
	w.rotate(t, "other")
	return w
}

// rotate rotates a credential through to the retirement of its previous
// version and fails the test unless the run succeeded.
func (w *world) rotate(t testing.TB, id string) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	started, err := w.e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{id}}, Trigger: store.TriggerManual, Actor: "test"})
	if err != nil {
		t.Fatalf("rotate %s: %v", id, err)
	}
	if len(started) != 1 || started[0].Skipped {
		t.Fatalf("rotate %s: %+v", id, started)
	}
	l := &rotation.Local{E: w.e, Concurrency: 1, Deadline: time.Now().Add(time.Minute), WaitRetired: true}
	res := l.Drive(ctx, []string{started[0].RunID})
	if len(res) != 1 || res[0].Err != nil || rotation.State(res[0].Run.State) != rotation.StateSucceeded {
		t.Fatalf("rotation of %s did not succeed: %+v", id, res)
	}
	w.current(t, id) // remembered as a canary
}

// valid returns the values of a credential a server with grace accepts:
// its current version and its previous one while that is not retired. It
// reads the store at each call (one query; a version's value, which never
// changes, is opened once).
func (w *world) valid(ctx context.Context, id string) (map[string]bool, error) {
	vs, err := w.check.ListVersions(ctx, id, store.StageCurrent, store.StagePrevious)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, v := range vs {
		w.mu.Lock()
		val, ok := w.opened[v.ID]
		w.mu.Unlock()
		if !ok {
			if val, err = w.open(ctx, v.ID); err != nil {
				return nil, err
			}
		}
		if val != "" { // retired (its value wiped) since it was listed
			out[val] = true
		}
	}
	return out, nil
}

// open returns the value of a version (ListVersions leaves values out).
func (w *world) open(ctx context.Context, versionID string) (string, error) {
	v, err := w.check.GetVersion(ctx, versionID)
	if err != nil || len(v.Sealed) == 0 {
		return "", err
	}
	val, err := w.kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
	if err != nil {
		return "", err
	}
	w.mu.Lock()
	w.values[val.RevealString()] = true
	w.opened[v.ID] = val.RevealString()
	w.mu.Unlock()
	return val.RevealString(), nil
}

// current returns the current value of a credential, from the store.
func (w *world) current(t testing.TB, id string) string {
	t.Helper()
	c, err := w.check.GetCredential(t.Context(), id)
	if err != nil || c.Current == nil {
		t.Fatalf("credential %s: %v", id, err)
	}
	v, err := w.open(context.WithoutCancel(t.Context()), c.Current.ID)
	if err != nil || v == "" {
		t.Fatalf("opening the current value of %s: %v", id, err)
	}
	return v
}

// everyValue returns every value of the credentials the test has seen
// (all of them: the test opens each current value after its rotation):
// the canaries that must appear in no log line or error.
func (w *world) everyValue(t testing.TB, ids ...string) []string {
	t.Helper()
	for _, id := range ids {
		w.current(t, id)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.values))
	for v := range w.values {
		out = append(out, v)
	}
	return out
}

// noCanary fails the test if any value of the credentials appears in text.
func (w *world) noCanary(t *testing.T, what, text string, ids ...string) {
	t.Helper()
	for _, v := range w.everyValue(t, ids...) {
		if strings.Contains(text, v) {
			t.Errorf("%s hold a credential value", what)
		}
	}
	if vs := w.everyValue(t, ids...); len(vs) == 0 || !strings.HasPrefix(vs[0], "canary_") {
		t.Fatal("the canary values lost their prefix; the check above proves nothing")
	}
}

// seen records what an upstream received.
type seen struct {
	mu      sync.Mutex
	auth    []string // every Authorization header value
	headers []http.Header
	rejects int
	took    map[string]bool // Authorization values accepted
}

func (s *seen) add(r *http.Request, rejected bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Values("Authorization")...)
	h := r.Header.Clone()
	h.Set("X-Test-Method", r.Method) // not a header anyone sent: the method, for the checks
	s.headers = append(s.headers, h)
	if rejected {
		s.rejects++
	} else {
		if s.took == nil {
			s.took = map[string]bool{}
		}
		for _, a := range r.Header.Values("Authorization") {
			s.took[a] = true
		}
	}
}

// accepted reports whether the upstream accepted a request bearing auth.
func (s *seen) accepted(auth string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.took[auth]
}

func (s *seen) snapshot() ([]string, []http.Header, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...), append([]http.Header(nil), s.headers...), s.rejects
}

// requireBearer wraps next in the check a real MCP server makes: the
// request carries exactly one Authorization header, "Bearer V", with V a
// value the credential holds now (valid returns them).
func requireBearer(next http.Handler, rec *seen, valid func(ctx context.Context) (map[string]bool, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Authorization")
		ok := false
		if len(vals) == 1 && strings.HasPrefix(vals[0], "Bearer ") {
			set, err := valid(r.Context())
			if err != nil {
				http.Error(w, "reading the valid set: "+err.Error(), http.StatusInternalServerError)
				return
			}
			ok = set[strings.TrimPrefix(vals[0], "Bearer ")]
		}
		rec.add(r, !ok)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="test"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// startProxy runs the proxy on a free loopback port until the test ends
// and returns its URL.
func startProxy(t testing.TB, p *proxy.Proxy) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	ready := make(chan []proxy.Listening, 1)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(l []proxy.Listening) { ready <- l }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy run: %v", err)
		}
	})
	select {
	case l := <-ready:
		return l[0].URL
	case err := <-done:
		t.Fatalf("proxy did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("proxy did not start within 30s")
	}
	return ""
}

// addHeader is a client-side RoundTripper that sets a header on every
// request, as an MCP client configured with headers does.
type addHeader struct {
	name, value string
	base        http.RoundTripper
}

func (a addHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(a.name, a.value)
	return a.base.RoundTrip(r)
}
