package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/secret"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "client_secret")
	if err := os.WriteFile(good, []byte(canaryRandom+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(dir, "plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	src := fmt.Sprintf(`providers:
  okta:
    type: oauth2-client-credentials
    token_url: https://auth.example.com/token
    client_id: mcp-gateway
    client_secret: ${file:%s}
    verify:
      introspection:
        url: https://auth.example.com/introspect
        client_id: introspector
        client_secret: ${env:ROTATOR_CHECK_UNSET}
  keys:
    type: exec
    command: [%s, --store, x]
    env:
      TOKEN: ${env:ROTATOR_CHECK_SET}
      EMPTY: ${file:%s}
  gone:
    type: exec
    command: [%s]
targets:
  sm:
    type: aws-secretsmanager
    secret_id: mcp/x
    region: us-east-1
    access_key_id: ${file:%s}
    secret_access_key: ${file:%s}
credentials:
  - id: a
    consumer: c
    provider: okta
    max_age: 1h
    runbook: runbooks/generated.md#rotation
    targets: [{target: sm}]
  - id: b
    consumer: c
    provider: keys
    max_age: 1h
    runbook: runbooks/generated.md#rotation
  - id: c
    consumer: c
    provider: gone
    max_age: 1h
    runbook: runbooks/generated.md#rotation
`, good, plugin, empty, missing, missing, good)
	cfg, err := Parse(filepath.Join(testdataDir, "check.yaml"), []byte(src), Options{CheckRunbooks: true})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ROTATOR_CHECK_SET": canaryPlain}
	res := &secret.Resolver{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	got := Check(t.Context(), cfg, CheckOptions{Resolver: res})
	lines := make([]string, len(got))
	for i, e := range got {
		lines[i] = e.Error()
	}
	text := strings.Join(lines, "\n")
	want := []string{
		"check.yaml:11: providers.okta.verify.introspection.client_secret: ${env:ROTATOR_CHECK_UNSET} cannot be resolved here: environment variable ROTATOR_CHECK_UNSET is not set;",
		"check.yaml:17: providers.keys.env.EMPTY: ${file:" + empty + "} resolves to an empty value here",
		"check.yaml:20: providers.gone.command[0]: executable " + missing + " does not exist",
		"check.yaml:26: targets.sm.access_key_id: ${file:" + missing + "} cannot be resolved here: file " + missing + " does not exist; create it",
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), text)
	}
	for i, w := range want {
		if i >= len(lines) || !strings.Contains(lines[i], w) {
			t.Errorf("problem %d: want %q\ngot:\n%s", i, w, text)
		}
	}
	for _, c := range []string{canaryRandom, canaryPlain} {
		if strings.Contains(text, c) {
			t.Errorf("a resolved value appears in the problems:\n%s", text)
		}
	}
}
