package execplugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// script writes an executable POSIX sh script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newProvider(t *testing.T, s settings.Map) (*Provider, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	p, err := Factory().New(t.Context(), providers.Env{Name: "plugin", Settings: s, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Provider), logs
}

// shPlugin is a complete plugin in POSIX sh: the resource is a directory
// holding one file per valid value, named by the value's SHA-256. While
// $STATE_DIR/stall exists, every step hangs.
const shPlugin = `set -eu
for step; do :; done # the step is the last argument
req=$(cat)
while [ -e "$STATE_DIR/stall" ]; do sleep 0.05; done
value() { printf '%s' "$req" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p'; }
digest() { printf '%s' "$(value)" | sha256sum | cut -d' ' -f1; }
case "$step" in
mint)
	v="sh_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
	printf '{"value":"%s","metadata":{"plugin":"sh"}}\n' "$v" ;;
activate)
	: > "$STATE_DIR/$(digest)"; echo '{}' ;;
verify)
	if [ -e "$STATE_DIR/$(digest)" ]; then echo '{"evidence":{"check":"value file present"}}'
	else echo '{"error":"the resource does not accept this value"}'; exit 1; fi ;;
revoke)
	rm -f "$STATE_DIR/$(digest)"; echo '{}' ;;
*)
	echo '{"error":"unknown step","permanent":true}'; exit 2 ;;
esac
`

type dirResource struct{ dir string }

func (r dirResource) Accepts(_ context.Context, v providers.VersionRef) (bool, error) {
	sum := sha256.Sum256(v.Value.Reveal())
	_, err := os.Stat(filepath.Join(r.dir, hex.EncodeToString(sum[:])))
	return err == nil, nil
}

func (r dirResource) Stall(t *testing.T) func() {
	stall := filepath.Join(r.dir, "stall")
	if err := os.WriteFile(stall, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() { _ = os.Remove(stall) }
}

func TestExercise(t *testing.T) {
	t.Parallel()
	plugin := script(t, shPlugin)
	providertest.Exercise(t, providertest.Harness{
		Factory:  Factory(),
		Scope:    []string{"notes:read"},
		Parallel: true,
		New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
			dir := t.TempDir()
			token := secret.NewString("plugin-env-secret-0123456789")
			p, err := Factory().New(t.Context(), providers.Env{Name: "sh", Logger: logger, Settings: settings.Map{
				"command": []any{plugin}, "timeout": "10s", "overlap": true, "revocable": true,
				"env": map[string]any{"STATE_DIR": dir, "API_TOKEN": token},
			}})
			if err != nil {
				t.Fatal(err)
			}
			return providertest.Instance{Provider: p, Resource: dirResource{dir: dir}, Settings: settings.Map{"tier": "test"}, Secrets: []secret.Value{token}}
		},
	})
}

// TestProtocol checks what a plugin receives: argv, stdin and environment.
func TestProtocol(t *testing.T) {
	t.Setenv("ROTATOR_MASTER_KEY", "master-key-that-must-not-leak-000000")
	dump := t.TempDir()
	plugin := script(t, `for step; do :; done # the step is the last argument
cat > "$DUMP_DIR/$step.json"
printf '%s\n' "$@" > "$DUMP_DIR/$step.args"
env > "$DUMP_DIR/$step.env"
case "$step" in
mint) echo '{"value":"minted-value-abcdefghijklmnop","expires_at":"2030-01-02T03:04:05Z","granted_scope":["notes:read"],"metadata":{"key_id":"k1"}}' ;;
activate) echo '{"metadata":{"activated":"yes"}}' ;;
verify) echo '{"granted_scope":["notes:read"],"evidence":{"check":"ok"}}' ;;
revoke) echo '{}' ;;
esac
`)
	p, _ := newProvider(t, settings.Map{
		"command": []any{plugin, "--store", "keys.json"},
		"env":     map[string]any{"DUMP_DIR": dump, "API_TOKEN": secret.NewString("api-token-value-0123456789")},
	})
	c := providers.Common{CredentialID: "notes-key", VersionID: "v2", IdempotencyKey: "run1/mint", Scope: []string{"notes:read"}, Settings: settings.Map{"tier": "gold", "n": 3}}
	cur := &providers.VersionRef{VersionID: "v1", Value: secret.NewString("current-value-0123456789"), Metadata: map[string]string{"key_id": "k0"}}
	m, err := p.Mint(t.Context(), providers.MintRequest{Common: c, Current: cur})
	if err != nil {
		t.Fatal(err)
	}
	if m.Value.RevealString() != "minted-value-abcdefghijklmnop" || m.Metadata["key_id"] != "k1" || m.ExpiresAt != time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) || m.GrantedScope[0] != "notes:read" {
		t.Fatalf("mint response: %+v", m)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c.IdempotencyKey = "run1/activate"
	a, err := p.Activate(t.Context(), providers.ActivateRequest{Common: c, Value: m.Value, Metadata: m.Metadata, ExpiresAt: expires})
	if err != nil || a.Metadata["activated"] != "yes" {
		t.Fatalf("activate: %+v, %v", a, err)
	}
	c.IdempotencyKey = "run1/verify"
	v, err := p.Verify(t.Context(), providers.VerifyRequest{Common: c, Value: m.Value, Metadata: m.Metadata})
	if err != nil || v.Evidence["check"] != "ok" || v.GrantedScope[0] != "notes:read" {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	c.IdempotencyKey = "run1/revoke"
	if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: c, Value: cur.Value, Metadata: cur.Metadata}); err != nil {
		t.Fatal(err)
	}

	read := func(step string) map[string]any {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dump, step+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s request is not JSON: %v", step, err)
		}
		return m
	}
	for _, step := range []string{StepMint, StepActivate, StepVerify, StepRevoke} {
		req := read(step)
		if req["protocol"] != Protocol || req["step"] != step || req["credential_id"] != "notes-key" || req["version_id"] != "v2" || req["idempotency_key"] != "run1/"+step {
			t.Errorf("%s request header: %v", step, req)
		}
		if s, _ := req["settings"].(map[string]any); s["tier"] != "gold" || s["n"] != float64(3) {
			t.Errorf("%s settings: %v", step, req["settings"])
		}
		if sc, _ := req["scope"].([]any); len(sc) != 1 || sc[0] != "notes:read" {
			t.Errorf("%s scope: %v", step, req["scope"])
		}
		_, hasValue := req["value"]
		if hasValue != (step != StepMint) {
			t.Errorf("%s request has value: %v", step, hasValue)
		}
		args, _ := os.ReadFile(filepath.Join(dump, step+".args"))
		if string(args) != "--store\nkeys.json\n"+step+"\n" {
			t.Errorf("%s argv: %q", step, args)
		}
		env, _ := os.ReadFile(filepath.Join(dump, step+".env"))
		if bytes.Contains(env, []byte("master-key-that-must-not-leak")) || bytes.Contains(env, []byte("ROTATOR_MASTER_KEY")) {
			t.Errorf("%s: rotator's environment reached the plugin", step)
		}
		if !bytes.Contains(env, []byte("API_TOKEN=api-token-value-0123456789")) || !bytes.Contains(env, []byte("ROTATOR_STEP="+step)) || !bytes.Contains(env, []byte("PATH=")) {
			t.Errorf("%s: environment lacks the configured env, ROTATOR_STEP or PATH", step)
		}
	}
	mint := read(StepMint)
	if cur, _ := mint["current"].(map[string]any); cur["version_id"] != "v1" || cur["value"] != "current-value-0123456789" {
		t.Errorf("mint current: %v", mint["current"])
	}
	if act := read(StepActivate); act["expires_at"] != "2030-01-02T03:04:05Z" || act["value"] != "minted-value-abcdefghijklmnop" {
		t.Errorf("activate expires_at/value: %v %v", act["expires_at"], act["value"] != nil)
	}
	if rev := read(StepRevoke); rev["value"] != "current-value-0123456789" {
		t.Error("revoke did not carry the revoked value")
	}
}

const leakValue = "leaky-secret-value-0123456789abcdef"

func TestFailures(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		body      string
		permanent bool
		want      string // in the error
	}{
		"exit with JSON error": {
			body: `cat >/dev/null; echo '{"error":"upstream refused key ` + leakValue + `"}'; exit 3`,
			want: "exited with status 3: upstream refused key [REDACTED]",
		},
		"error response, permanent": {
			body: `cat >/dev/null; echo '{"error":"bad settings: tier","permanent":true}'`, permanent: true,
			want: "bad settings: tier",
		},
		"exit with stderr only": {
			body: `cat >/dev/null; echo 'starting' >&2; echo "boom: could not reach api with ` + leakValue + `" >&2; exit 1`,
			want: "exited with status 1: boom: could not reach api with [REDACTED]",
		},
		"not JSON": {
			body: `cat >/dev/null; echo "value=` + leakValue + `"`, permanent: true,
			want: "stdout is not one JSON object",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, logs := newProvider(t, settings.Map{"command": []any{script(t, tc.body)}})
			_, err := p.Verify(t.Context(), providers.VerifyRequest{Common: providers.Common{CredentialID: "c"}, Value: secret.NewString(leakValue)})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
			if errors.Is(err, providers.ErrPermanent) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", !tc.permanent, tc.permanent, err)
			}
			if strings.Contains(err.Error(), leakValue) || strings.Contains(logs.String(), leakValue) {
				t.Errorf("the value leaked: err %v; logs %s", err, logs.String())
			}
		})
	}

	t.Run("mint without value", func(t *testing.T) {
		t.Parallel()
		p, _ := newProvider(t, settings.Map{"command": []any{script(t, `cat >/dev/null; echo '{}'`)}})
		_, err := p.Mint(t.Context(), providers.MintRequest{})
		if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "no value") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("command not found", func(t *testing.T) {
		t.Parallel()
		p, _ := newProvider(t, settings.Map{"command": []any{filepath.Join(t.TempDir(), "missing")}})
		_, err := p.Mint(t.Context(), providers.MintRequest{})
		if !errors.Is(err, providers.ErrPermanent) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestStderrIsScrubbedAndLogged: the plugin echoes the request (which
// holds the value) and, at mint, the minted value to stderr.
func TestStderrIsScrubbedAndLogged(t *testing.T) {
	t.Parallel()
	p, logs := newProvider(t, settings.Map{"command": []any{script(t, `req=$(cat)
echo "debug: request $req" >&2
if [ "$1" = mint ]; then echo "debug: minted minted-value-zyxwvutsrq9876543" >&2; echo '{"value":"minted-value-zyxwvutsrq9876543"}'; else echo '{}'; fi
`)}})
	if _, err := p.Mint(t.Context(), providers.MintRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Activate(t.Context(), providers.ActivateRequest{Value: secret.NewString(leakValue)}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, leakValue) || strings.Contains(out, "minted-value-zyxwvutsrq9876543") {
		t.Fatalf("stderr leaked a value into the logs:\n%s", out)
	}
	if !strings.Contains(out, "exec plugin stderr") || !strings.Contains(out, `debug: minted [REDACTED]`) || !strings.Contains(out, `\"value\":\"[REDACTED]\"`) {
		t.Fatalf("stderr lines were not logged, scrubbed:\n%s", out)
	}
}

// TestTimeoutKillsProcessGroup: a plugin that hangs, with a child of its
// own, is killed with the child at the timeout.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _ := newProvider(t, settings.Map{
		"command": []any{script(t, `cat >/dev/null; sleep 30 & echo $! > "$DIR/child.pid"; sleep 30`)},
		"timeout": "500ms", "env": map[string]any{"DIR": dir},
	})
	start := time.Now()
	_, err := p.Mint(t.Context(), providers.MintRequest{})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a timed-out plugin took %s to stop", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 500ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	b, rerr := os.ReadFile(filepath.Join(dir, "child.pid"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestCancelStopsPlugin(t *testing.T) {
	t.Parallel()
	p, _ := newProvider(t, settings.Map{"command": []any{script(t, `cat >/dev/null; sleep 30`)}})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := p.Revoke(ctx, providers.RevokeRequest{Value: secret.NewString(leakValue)})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a cancelled plugin took %s to stop", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// An executable still open for writing cannot be started (ETXTBSY). That
// passes within moments, when the writer (a deploy replacing the plugin, or
// another process that forked while holding it) closes it, and must not fail
// the step permanently.
func TestStartWaitsOutBusyExecutable(t *testing.T) {
	t.Parallel()
	path := script(t, `echo '{}'`)
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newProvider(t, settings.Map{"command": []any{path}})
	closed := make(chan time.Time, 1)
	time.AfterFunc(150*time.Millisecond, func() { closed <- time.Now(); _ = w.Close() })
	if err := p.Revoke(t.Context(), providers.RevokeRequest{Value: secret.NewString(leakValue)}); err != nil {
		t.Fatalf("revoke while the plugin was briefly open for writing: %v", err)
	}
	select {
	case <-closed:
	default:
		t.Fatal("the step ran before the writer closed the plugin; the test did not exercise ETXTBSY")
	}

	// Held open for good: a transient plugin error, not a permanent one.
	busy := script(t, `echo '{}'`)
	w2, err := os.OpenFile(busy, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	p2, _ := newProvider(t, settings.Map{"command": []any{busy}})
	err = p2.Revoke(t.Context(), providers.RevokeRequest{Value: secret.NewString(leakValue)})
	if !errors.Is(err, syscall.ETXTBSY) && (err == nil || !strings.Contains(err.Error(), "text file busy")) {
		t.Fatalf("err = %v, want text file busy", err)
	}
	if errors.Is(err, providers.ErrPermanent) || !errors.Is(err, ErrPlugin) {
		t.Fatalf("err = %v: a busy executable is transient (ErrPlugin, not ErrPermanent)", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	prov := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"minimal":     {settings.Map{"command": []any{"./plugins/apikeys"}}, nil},
		"full":        {settings.Map{"command": []any{"python3", "plugin.py"}, "dir": "/opt/p", "timeout": "2m", "overlap": true, "revocable": true, "env": map[string]any{"API_TOKEN": "${env:API_TOKEN}", "REGION": "eu"}}, nil},
		"no command":  {settings.Map{"timeout": "10s"}, []string{"command"}},
		"empty argv0": {settings.Map{"command": []any{""}}, []string{"command"}},
		"string cmd":  {settings.Map{"command": "./plugin"}, []string{"command"}},
		"bad timeout": {settings.Map{"command": []any{"x"}, "timeout": "0s"}, []string{"timeout"}},
		"bad env":     {settings.Map{"command": []any{"x"}, "env": map[string]any{"BAD-NAME": "x"}}, []string{"env.BAD-NAME"}},
		"env list":    {settings.Map{"command": []any{"x"}, "env": map[string]any{"X": []any{"a"}}}, []string{"env.X"}},
		"unknown":     {settings.Map{"command": []any{"x"}, "args": []any{"y"}}, []string{"args"}},
	}
	for name, tc := range prov {
		var got []string
		for _, e := range ValidateProvider(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("provider %s: %v, want %v", name, got, tc.fields)
		}
	}
	if errs := ValidateCredential(settings.Map{"tier": "gold", "limits": map[string]any{"rpm": 60}, "tags": []any{"a"}}); len(errs) != 0 {
		t.Errorf("plain credential settings refused: %v", errs)
	}
	if errs := ValidateCredential(settings.Map{"token": "${env:X}"}); len(errs) != 1 {
		t.Errorf("a reference in credential settings was accepted: %v", errs)
	}
}
