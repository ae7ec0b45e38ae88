package view_test

import (
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
)

// BenchmarkAppendJSON: one credential of a list page, as GET
// /v1/credentials encodes a hundred of them.
func BenchmarkAppendJSON(b *testing.B) {
	now := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	c := store.Credential{ID: "bench-004711", Consumer: "mcp-server-bench-11", Provider: "shared-secrets",
		Scope: []string{"notes:read", "notes:write"}, Owner: "platform-team", Labels: map[string]string{"team": "bench", "shard": "1"},
		Policy: store.Policy{MaxAge: 24 * time.Hour}, Runbook: "runbooks/generated.md#rotation",
		State: store.CredentialState{Status: store.StatusHealthy, NextRotationAt: now.Add(time.Hour), LastRotatedAt: now.Add(-time.Hour)},
		Current: &store.Version{ID: "01M939JPPE37BXG4NFX50FKWDC", Fingerprint: "d54b3b889283c78c", CreatedAt: now.Add(-time.Hour),
			GrantedScope: []string{"notes:read", "notes:write"}, Metadata: map[string]string{"length": "40"}}}
	v := view.NewCredential(c, now)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = v.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
