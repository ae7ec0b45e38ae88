package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/execplugin"
	"github.com/rotatorhq/rotator/providers/providertest"
	"github.com/rotatorhq/rotator/rotation"
)

// asPlugin makes the test binary act as the plugin: the exec provider runs
// os.Args[0] with this variable in its environment, so the tests exercise
// exactly the code of main, as a separate process, without a build step.
const asPlugin = "ROTATOR_EXAMPLE_AS_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(asPlugin) == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}

func pluginCommand(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// keys reads the key file as the service would.
func keys(t *testing.T, path string) []key {
	t.Helper()
	f, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f.Keys
}

// service is the resource: the API that accepts a key listed, unexpired,
// in the key file.
type service struct{ path string }

func (s service) Accepts(_ context.Context, v providers.VersionRef) (bool, error) {
	f, err := load(s.path)
	if err != nil {
		return false, err
	}
	h := digest(v.Value.RevealString())
	for _, k := range f.Keys {
		if k.SHA256 != h {
			continue
		}
		if k.ExpiresAt == "" {
			return true, nil
		}
		exp, err := time.Parse(time.RFC3339, k.ExpiresAt)
		return err == nil && exp.After(time.Now()), nil
	}
	return false, nil
}

func TestExercise(t *testing.T) {
	t.Parallel()
	exe := pluginCommand(t)
	providertest.Exercise(t, providertest.Harness{
		Factory:  execplugin.Factory(),
		Scope:    []string{"notes:read", "notes:write"},
		Parallel: true,
		New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
			path := filepath.Join(t.TempDir(), "keys.json")
			p, err := execplugin.Factory().New(t.Context(), providers.Env{Name: "apikeys", Logger: logger, Settings: settings.Map{
				"command": []any{exe, "--file", path}, "timeout": "20s", "overlap": true, "revocable": true,
				"env": map[string]any{asPlugin: "1"},
			}})
			if err != nil {
				t.Fatal(err)
			}
			return providertest.Instance{Provider: p, Resource: service{path: path}, Settings: settings.Map{"prefix": "nk_", "ttl": "720h"}}
		},
	})
}

// TestKeyFileHoldsNoKeys: the file the service reads lists hashes only.
func TestKeyFileHoldsNoKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	m, err := mint(request{Settings: map[string]any{"prefix": "nk_"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := activate(path, request{Value: m.Value, CredentialID: "c"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte(m.Value)) || !bytes.Contains(data, []byte(digest(m.Value))) {
		t.Fatalf("key file: %s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "keys.json")
	cases := map[string]struct {
		args []string
		in   string
		want string
	}{
		"no step":        {nil, `{}`, "no step given"},
		"no file":        {[]string{"mint"}, `{"protocol":"rotator.exec/v1","step":"mint"}`, "no key file"},
		"bad argument":   {[]string{"--dir", "x", "mint"}, `{}`, "unknown argument"},
		"bad json":       {[]string{"--file", file, "mint"}, `nope`, "not a JSON request"},
		"old protocol":   {[]string{"--file", file, "mint"}, `{"protocol":"rotator.exec/v0","step":"mint"}`, "unsupported protocol"},
		"step mismatch":  {[]string{"--file", file, "mint"}, `{"protocol":"rotator.exec/v1","step":"verify"}`, "differ"},
		"unknown step":   {[]string{"--file=" + file, "rotate"}, `{"protocol":"rotator.exec/v1","step":"rotate"}`, "unknown step"},
		"bad ttl":        {[]string{"--file", file, "mint"}, `{"protocol":"rotator.exec/v1","step":"mint","settings":{"ttl":"soon"}}`, "settings.ttl"},
		"unknown verify": {[]string{"--file", file, "verify"}, `{"protocol":"rotator.exec/v1","step":"verify","value":"nk_never_issued_0123456789"}`, "is not in"},
	}
	for name, tc := range cases {
		var out, errOut bytes.Buffer
		code := run(tc.args, strings.NewReader(tc.in), &out, &errOut)
		var resp response
		_ = json.Unmarshal(out.Bytes(), &resp)
		if code == 0 || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%s: exit %d, response %s", name, code, out.String())
		}
		if strings.Contains(out.String()+errOut.String(), "nk_never_issued") {
			t.Errorf("%s: the key appears in the output", name)
		}
	}
}

// TestThroughTheEngine writes a configuration that uses the plugin, applies
// it to an SQLite store and rotates the credential with the engine on River
// twice: each run must succeed, publish the new key to the file target, add
// it to the service's key file, and (after a grace period of one second)
// remove the previous key.
func TestThroughTheEngine(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "keys.json")
	envFile := filepath.Join(dir, "run", "notes-mcp.env")
	doc := fmt.Sprintf(`
providers:
  notes-keys:
    type: exec
    command: [%q, --file, %q]
    timeout: 20s
    overlap: true
    revocable: true
    env:
      %s: "1"
targets:
  notes-env:
    type: file
    path: %q
    format: dotenv
credentials:
  - id: notes-api-key
    consumer: mcp-server-notes
    provider: notes-keys
    settings: {prefix: "nk_", ttl: 720h}
    scope: [notes:read, notes:write]
    owner: platform-team
    max_age: 30d
    grace: 1s
    runbook: runbooks/exec.md#rotation
    targets:
      - {target: notes-env, key: NOTES_API_KEY}
`, pluginCommand(t), keyFile, asPlugin, envFile)
	cfg, err := config.Parse(filepath.Join(dir, "rotator.yaml"), []byte(doc), config.Options{BaseDir: root, CheckRunbooks: true})
	if err != nil {
		t.Fatalf("config:\n%s\n%v", doc, err)
	}

	st, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "rotator.db"))
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
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatalf("apply: %v", err)
	}

	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	red := &secret.Redactor{}
	logs := &testlog.Buffer{}
	logger := slog.New(secret.NewHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}), red))
	e, err := rotation.New(rotation.Options{Store: st, Keyring: kr, Redactor: red, Logger: logger, RunbookDir: root, StepTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: 2, FetchPollInterval: 20 * time.Millisecond, JobTimeout: 90 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.WithoutCancel(ctx)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := runner.Stop(sctx); err != nil {
			t.Errorf("stop runner: %v", err)
		}
	})

	published := func() string {
		t.Helper()
		data, err := os.ReadFile(envFile)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "NOTES_API_KEY="); ok {
				return strings.Trim(v, "'")
			}
		}
		t.Fatalf("%s has no NOTES_API_KEY", envFile)
		return ""
	}
	rotate := func() store.Run {
		t.Helper()
		started, err := e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{"notes-api-key"}}, Trigger: store.TriggerManual, Actor: "test", Reason: "example plugin test"})
		if err != nil || len(started) != 1 || started[0].Skipped {
			t.Fatalf("rotate: %+v, %v", started, err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			run, err := st.GetRun(ctx, started[0].RunID)
			if err != nil {
				t.Fatal(err)
			}
			if rotation.State(run.State).Terminal() {
				if run.State != string(rotation.StateSucceeded) {
					t.Fatalf("run %s ended %s: %s", run.ID, run.State, run.Error)
				}
				return run
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s still %s after 60s", run.ID, run.State)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}

	rotate()
	first := published()
	if !strings.HasPrefix(first, "nk_") || len(first) != 43 {
		t.Fatalf("published value has %d bytes", len(first))
	}
	if ks := keys(t, keyFile); len(ks) != 1 || ks[0].SHA256 != digest(first) || ks[0].ExpiresAt == "" {
		t.Fatalf("after the first run the key file lists %+v", ks)
	}

	rotate()
	second := published()
	if second == first {
		t.Fatal("the second run published the same key")
	}
	if ks := keys(t, keyFile); len(ks) != 1 || ks[0].SHA256 != digest(second) {
		t.Fatalf("after the second run the key file lists %d keys; want only the new one (the previous retired after grace)", len(ks))
	}
	cred, err := st.GetCredential(ctx, "notes-api-key")
	if err != nil {
		t.Fatal(err)
	}
	if cred.Current == nil || cred.Current.Metadata["key_id"] != keyID(second) {
		t.Fatalf("the current version's metadata does not name the new key: %+v", cred.Current)
	}
	for _, v := range []string{first, second} {
		if strings.Contains(logs.String(), v) {
			t.Fatal("a key appears in the engine's logs")
		}
	}
}
