package dashboard_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/dashboard"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers/faulty"
	"github.com/rotatorhq/rotator/rotation"
)

// testConfig: four credentials of the generated provider and one whose
// provider fails at mint.
const testConfig = `
providers:
  gen:
    type: generated
    length: 40
    prefix: "rtr_"
  flt:
    type: faulty
    control_file: "{{dir}}/control.json"
credentials:
  - id: github-mcp-token
    consumer: mcp-server-github
    provider: gen
    owner: platform-team
    scope: [repo:read, issues:write]
    max_age: 24h
    renew_before: 4h
    runbook: runbooks/generated.md#rotation
  - id: slack-bot-token
    consumer: mcp-server-slack
    provider: gen
    owner: chat-team
    max_age: 1h
    runbook: runbooks/generated.md#rotation
  - id: linear-api-key
    consumer: mcp-server-linear
    provider: gen
    owner: product
    max_age: 720h
    runbook: runbooks/generated.md#rotation
  - id: notion-integration
    consumer: claude-desktop
    provider: gen
    owner: docs-team
    max_age: 168h
    runbook: runbooks/generated.md#rotation
  - id: reports-db-password
    consumer: mcp-server-postgres
    provider: flt
    owner: data-team
    scope: [SELECT on reporting.*]
    max_age: 720h
    runbook: runbooks/generated.md#rotation
`

// failingID is the credential whose rotation fails.
const failingID = "reports-db-password"

type bundle struct {
	st      store.Store
	kr      secret.Keyring
	e       *rotation.Engine
	tokens  *apitoken.Service
	h       *dashboard.Handler
	srv     *httptest.Server
	logs    *testlog.Buffer
	failRun string
	okRun   string
}

type setupOpts struct {
	tls bool
	// rotateAll runs a rotation of every credential but linear-api-key
	// (never rotated) before the server starts.
	rotateAll bool
	// ahead runs the dashboard's clock ahead of the engine's, so the
	// credentials rotated at setup have aged.
	ahead time.Duration
}

func setup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	t.Setenv(faulty.EnableEnv, "1")
	ctx := t.Context()
	// Not t.TempDir(): its name, in control_file, would look like a
	// literal secret to the config loader.
	dir, err := os.MkdirTemp("", "rotator-dashboard-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	st, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "rotator.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := rotation.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "control.json"), []byte(`{"fail":["mint"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	doc := strings.ReplaceAll(testConfig, "{{dir}}", dir)
	cfg, err := config.Parse(filepath.Join(root, "rotator.yaml"), []byte(doc), config.Options{BaseDir: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := rotation.New(rotation.Options{Store: st, Keyring: kr, RunbookDir: root, MaxAttempts: 3, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	// A runner that is never started: Rotate enqueues, the test executes.
	if _, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	b := &bundle{st: st, kr: kr, e: e, logs: logs, tokens: apitoken.NewService(st, nil, logger)}
	if o.rotateAll {
		for _, id := range []string{"github-mcp-token", "slack-bot-token", "notion-integration", failingID} {
			run := b.rotate(t, id, "initial rotation")
			if id == failingID {
				b.failRun = run
			} else {
				b.okRun = run
			}
		}
	}
	b.h, err = dashboard.New(dashboard.Options{Store: st, Tokens: b.tokens, Rotator: e, Logger: logger, RunbookDir: root,
		Now: func() time.Time { return time.Now().Add(o.ahead) }})
	if err != nil {
		t.Fatal(err)
	}
	// Mounted as serve mounts it: beside the API and the probes.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("/", b.h)
	if o.tls {
		b.srv = httptest.NewTLSServer(mux)
	} else {
		b.srv = httptest.NewServer(mux)
	}
	t.Cleanup(b.srv.Close)
	return b
}

// rotate runs one manual rotation of id to its end and returns the run id.
func (b *bundle) rotate(t *testing.T, id, reason string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	started, err := b.e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{id}}, Trigger: store.TriggerManual, Actor: "test", Reason: reason})
	if err != nil || len(started) != 1 {
		t.Fatalf("rotate %s: %v %+v", id, err, started)
	}
	if _, _, err := b.e.Execute(ctx, started[0].RunID); err != nil {
		t.Fatalf("execute %s: %v", id, err)
	}
	return started[0].RunID
}

// token creates an API token with the given scopes.
func (b *bundle) token(t *testing.T, name string, scopes ...string) string {
	t.Helper()
	c, err := b.tokens.Create(t.Context(), apitoken.CreateRequest{Name: name, Scopes: scopes, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Token
}

// client returns an HTTP client with a cookie jar that does not follow
// redirects.
func (b *bundle) client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := b.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// secrets returns every value the store holds sealed, opened: what no page
// or log line may contain.
func (b *bundle) secrets(t *testing.T) []string {
	t.Helper()
	creds, err := b.st.ListCredentials(t.Context(), store.CredentialFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range creds {
		vs, err := b.st.ListVersions(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if len(v.Sealed) == 0 {
				continue
			}
			val, err := b.kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(val.Reveal()))
		}
	}
	return out
}
