package config

import (
	"strings"
	"testing"
)

// A grace period only protects consumers when the configured provider can
// keep two values valid: postgres-role with strategy single cannot, the
// default alternating strategy can.
func TestGraceWarningFollowsProviderSettings(t *testing.T) {
	t.Parallel()
	doc := func(strategy string) []byte {
		return []byte(`
providers:
  pg:
    type: postgres-role
    admin_dsn: ${env:PG_ADMIN_DSN}
    strategy: ` + strategy + `
credentials:
  - id: reports-db
    consumer: mcp-server-postgres
    provider: pg
    settings: {role: mcp_reports}
    max_age: 720h
    grace: 1h
    runbook: runbooks/postgres-role.md#rotation
`)
	}
	for strategy, wantWarning := range map[string]bool{"single": true, "alternating": false} {
		cfg, err := Parse("pg.yaml", doc(strategy), Options{})
		if err != nil {
			t.Fatalf("%s: %v", strategy, err)
		}
		warned := false
		for _, w := range cfg.Warnings {
			if w.Field == "credentials[0].grace" && strings.Contains(w.Msg, "cannot keep the old and the new value valid") {
				warned = true
			}
		}
		if warned != wantWarning {
			t.Errorf("strategy %s: grace warning = %v, want %v (warnings: %v)", strategy, warned, wantWarning, cfg.Warnings)
		}
	}
}
