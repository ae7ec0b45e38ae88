// Package examples_test checks that the example inventories are valid:
// what `rotator apply --dry-run -f FILE` checks, without a database server.
package examples_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMCPServersInventory loads examples/mcp-servers.yaml as `rotator
// apply` does (runbooks resolved and checked), then applies it to an empty
// store with DryRun: it must create every provider, target and credential,
// with no error and no warning, and write nothing. Every credential must
// reach its consumer: through a target, through the delivery commands an
// MCP client configuration under clients/ runs (rotator exec, headers), or
// as another provider's {credential: ID} setting.
func TestMCPServersInventory(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("mcp-servers.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	for _, w := range cfg.Warnings {
		t.Errorf("warning: %v", w)
	}
	want := map[string]string{
		"github-mcp-token":      "github-app",
		"slack-mcp-bot-token":   "exec",
		"reports-db-url":        "postgres-role",
		"memory-redis-password": "redis-acl",
		"gateway-okta-key":      "oauth2-private-key-jwt",
		"gateway-okta-token":    "oauth2-client-credentials",
		"shop-db-url":           "mysql-user",
		"cost-explorer-aws-key": "aws-iam-access-key",
	}
	if len(cfg.Credentials) != len(want) {
		t.Errorf("%d credentials, want %d", len(cfg.Credentials), len(want))
	}
	// Who reads a credential without a target: the client configurations,
	// and providers that sign with it.
	delivered := clientCredentials(t)
	usedBy := map[string]string{}
	for _, p := range cfg.Providers {
		for _, id := range settings.CredentialRefs(p.Settings) {
			usedBy[id] = p.Name
		}
	}
	// The GitHub MCP server gets its token from rotator exec, not a file.
	if !slices.Contains(delivered["exec"], "github-mcp-token") {
		t.Errorf("no client configuration runs the GitHub MCP server under rotator exec with github-mcp-token: %v", delivered)
	}
	if usedBy["gateway-okta-key"] != "okta-m2m" {
		t.Errorf("gateway-okta-key is used by provider %q, want okta-m2m (client_auth: private_key_jwt)", usedBy["gateway-okta-key"])
	}
	for _, c := range cfg.Credentials {
		p, _ := cfg.Provider(c.Provider)
		if want[c.ID] != p.Type {
			t.Errorf("credential %s uses a %s provider, want %s", c.ID, p.Type, want[c.ID])
		}
		if c.RunbookRef.Digest == "" {
			t.Errorf("credential %s: runbook %s was not resolved", c.ID, c.Runbook)
		}
		byClients := slices.Contains(delivered["exec"], c.ID) || slices.Contains(delivered["headers"], c.ID)
		if len(c.Targets) == 0 && !byClients && usedBy[c.ID] == "" {
			t.Errorf("credential %s reaches no consumer: no target, no client configuration under clients/ names it, and no provider signs with it", c.ID)
		}
		// A copy in a file would outlive exec, which holds the token in
		// the server's environment only.
		if c.ID == "github-mcp-token" && len(c.Targets) > 0 {
			t.Errorf("credential %s is delivered by rotator exec and still published to targets %v", c.ID, c.Targets)
		}
	}

	st, err := sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	diff, err := inventory.Apply(t.Context(), st, cfg, inventory.Options{DryRun: true, Actor: "test"})
	if err != nil {
		t.Fatalf("apply --dry-run: %v", err)
	}
	if n := diff.Count(inventory.Created); n != len(cfg.Providers)+len(cfg.Targets)+len(cfg.Credentials) {
		t.Errorf("dry run would create %d objects, want %d: %+v", n, len(cfg.Providers)+len(cfg.Targets)+len(cfg.Credentials), diff.Changes)
	}
	if len(diff.Warnings) != 0 {
		t.Errorf("dry run warnings: %v", diff.Warnings)
	}
	creds, err := st.ListCredentials(t.Context(), store.CredentialFilter{})
	if err != nil || len(creds) != 0 {
		t.Fatalf("the dry run wrote %d credentials (%v)", len(creds), err)
	}
}

// TestPrometheusRules checks examples/prometheus-rules.yaml with promtool
// (Debian's prometheus package): the rules parse (check rules) and the
// alerts fire as prometheus-rules.test.yaml expects (test rules).
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (apt-get install prometheus): %v", err)
	}
	for _, args := range [][]string{{"check", "rules", "prometheus-rules.yaml"}, {"test", "rules", "prometheus-rules.test.yaml"}} {
		out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestKubernetesManifest checks examples/deploy/kubernetes.yaml: a
// Deployment of 2 replicas on Postgres (the URL from the Secret), the
// master key from the Secret, and probes on /healthz and /readyz.
func TestKubernetesManifest(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type envVar struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	type probe struct {
		HTTPGet struct{ Path string } `yaml:"httpGet"`
	}
	type doc struct {
		Kind     string `yaml:"kind"`
		Metadata struct{ Name string }
		Spec     struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec struct {
					Containers []struct {
						Args           []string `yaml:"args"`
						Env            []envVar `yaml:"env"`
						LivenessProbe  probe    `yaml:"livenessProbe"`
						ReadinessProbe probe    `yaml:"readinessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
		StringData map[string]string `yaml:"stringData"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	kinds := map[string]doc{}
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubernetes.yaml: %v", err)
		}
		kinds[d.Kind] = d
	}
	dep, ok := kinds["Deployment"]
	if !ok || dep.Spec.Replicas != 2 || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want a Deployment of 2 replicas with one container: %+v", dep)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %q, readiness %q", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if strings.Join(c.Args[:3], " ") != "serve -f /etc/rotator/rotator.yaml" {
		t.Errorf("args %v", c.Args)
	}
	secret, ok := kinds["Secret"]
	if !ok {
		t.Fatal("no Secret")
	}
	refs := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom.SecretKeyRef.Name == secret.Metadata.Name {
			refs[e.Name] = e.ValueFrom.SecretKeyRef.Key
		}
	}
	for env, key := range map[string]string{"ROTATOR_MASTER_KEY": "master-key", "ROTATOR_DATABASE_URL": "database-url"} {
		if refs[env] != key {
			t.Errorf("%s does not come from the Secret's %s: %v", env, key, refs)
		}
		if _, ok := secret.StringData[key]; !ok {
			t.Errorf("the Secret has no %s", key)
		}
	}
	if !strings.HasPrefix(secret.StringData["database-url"], "postgres://") {
		t.Errorf("database-url is not a Postgres URL")
	}
}
