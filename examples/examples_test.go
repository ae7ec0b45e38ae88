// Package examples_test checks that the example inventories are valid:
// what `rotator apply --dry-run -f FILE` checks, without a database server.
package examples_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMCPServersInventory loads examples/mcp-servers.yaml as `rotator
// apply` does (runbooks resolved and checked), then applies it to an empty
// store with DryRun: it must create every provider, target and credential,
// with no error and no warning, and write nothing.
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
		"github-mcp-token":      "exec",
		"slack-mcp-bot-token":   "exec",
		"reports-db-url":        "postgres-role",
		"memory-redis-password": "redis-acl",
		"gateway-okta-token":    "oauth2-client-credentials",
		"shop-db-url":           "mysql-user",
		"cost-explorer-aws-key": "aws-iam-access-key",
	}
	if len(cfg.Credentials) != len(want) {
		t.Errorf("%d credentials, want %d", len(cfg.Credentials), len(want))
	}
	for _, c := range cfg.Credentials {
		p, _ := cfg.Provider(c.Provider)
		if want[c.ID] != p.Type {
			t.Errorf("credential %s uses a %s provider, want %s", c.ID, p.Type, want[c.ID])
		}
		if c.RunbookRef.Digest == "" {
			t.Errorf("credential %s: runbook %s was not resolved", c.ID, c.Runbook)
		}
		if len(c.Targets) == 0 {
			t.Errorf("credential %s publishes nowhere", c.ID)
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
