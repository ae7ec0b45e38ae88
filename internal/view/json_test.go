package view

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

func TestAppendJSONIsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 30, 1, 123456789, time.UTC)
	whole := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	age := int64(86400)
	neg := int64(-3)
	cases := map[string]Credential{
		"zero": {},
		"list row": {ID: "notes-api-key", Consumer: "mcp-server-notes", Provider: "generated", Scope: []string{"notes:read", "notes:write"},
			GrantedScope: []string{}, GrantedScopeReported: true, Owner: "team-a", Labels: map[string]string{"team": "a", "env": "prod", "b": ""},
			Status: "healthy", AgeSeconds: &age, MaxAgeSeconds: 2592000, LastRotatedAt: &at, NextRotationAt: &whole, Runbook: "runbooks/notes.md",
			CurrentVersion: &Version{ID: "01M92V7FCJJJKYH44G6T0T6NTN", Fingerprint: "fp:ab12", CreatedAt: at, ExpiresAt: &whole}},
		"escapes": {ID: `a"b\c`, Consumer: "<script>&amp;</script>", Provider: "ünïcödé 日本", Owner: "line\nbreak\ttab\x01",
			Scope: []string{"\u2028", "\u2029", "\xff\xfe", ""}, Labels: map[string]string{"<k>": "&v", "é": "\x7f"}, Runbook: "/",
			AgeSeconds: &neg, Status: "needs_attention"},
		"version extras":    {ID: "x", CurrentVersion: &Version{ID: "v", Stage: "current", SHA256: "sha256:00", CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 1000, time.FixedZone("", 3600))}},
		"one of each":       {ID: "a<b", Consumer: "a>b", Provider: "a&b", Owner: "\u2028", Runbook: "é", Scope: []string{"\"", "\\", "\x1f"}},
		"zero version time": {ID: "x", CurrentVersion: &Version{}},
		"empty collections": {ID: "x", Scope: []string{}, Labels: map[string]string{}},
		"show fields":       {ID: "x", Schedule: "@daily", GraceSeconds: 60, Targets: []store.TargetBinding{{Target: "t", Key: "K"}}, Versions: []Version{{ID: "v"}}},
	}
	for name, c := range cases {
		want, werr := json.Marshal(c)
		got, gerr := c.AppendJSON([]byte("prefix"))
		if (werr != nil) != (gerr != nil) {
			t.Errorf("%s: AppendJSON error %v, json.Marshal error %v", name, gerr, werr)
			continue
		}
		if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("%s:\nAppendJSON: %s\njson.Marshal:     %s", name, got, want)
		}
	}
	bad := Credential{ID: "x", LastRotatedAt: new(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}
	if _, err := bad.AppendJSON(nil); err == nil {
		t.Error("AppendJSON accepted a year json.Marshal refuses")
	}
}

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
	v := NewCredential(c, now)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = v.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestListedIsNewCredential holds Listed, encoded once, to what
// NewCredential and AppendJSON give at each time: before the next
// rotation, due, overdue, expired, for credentials with and without a
// current version, in each stored status.
func TestListedIsNewCredential(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	base := store.Credential{ID: "notes-api-key", Consumer: "mcp-server-notes", Provider: "generated", Scope: []string{"notes:read"},
		Owner: "team-a", Labels: map[string]string{"team": "a", "status": `x","status":"y`}, Policy: store.Policy{MaxAge: 24 * time.Hour},
		Runbook: "runbooks/notes.md#rotate",
		State: store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "V1", NextRotationAt: t0.Add(time.Hour),
			LastRotatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(3 * time.Hour)},
		Current: &store.Version{ID: "V1", Stage: store.StageCurrent, Fingerprint: "fp:1", CreatedAt: t0.Add(-2 * time.Hour),
			ActivatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(3 * time.Hour), GrantedScope: []string{"notes:read"},
			Metadata: map[string]string{store.MetaSHA256: "sha256:00", store.MetaGrantedScope: store.ScopeNotReported}}}
	cases := map[string]store.Credential{"healthy": base}
	for _, st := range []store.Status{store.StatusFailing, store.StatusNeedsAttention, store.StatusRotating, store.StatusNew, ""} {
		c := base
		c.State.Status = st
		cases["stored "+string(st)] = c
	}
	never := base
	never.Current, never.State = nil, store.CredentialState{}
	cases["never rotated"] = never
	unscheduled := base
	unscheduled.State.NextRotationAt, unscheduled.State.ExpiresAt = time.Time{}, time.Time{}
	unscheduled.Labels, unscheduled.Scope = nil, nil
	cases["unscheduled, no labels"] = unscheduled
	for name, c := range cases {
		l, err := NewListed(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, now := range []time.Time{t0, t0.Add(time.Hour), t0.Add(2*time.Hour + time.Minute), t0.Add(4 * time.Hour), t0.Add(-90 * time.Minute)} {
			v := NewCredential(c, now)
			want, err := v.AppendJSON([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Status(now); got != v.Status {
				t.Errorf("%s at %s: Status = %q, NewCredential says %q", name, now, got, v.Status)
			}
			if got := l.AppendJSON([]byte("prefix"), v.Status, now); !bytes.Equal(got, want) {
				t.Errorf("%s at %s:\nListed:        %s\nNewCredential: %s", name, now, got, want)
			}
		}
	}
	bad := base
	bad.State.LastRotatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := NewListed(bad); err == nil {
		t.Error("NewListed accepted a year json.Marshal refuses")
	}
}
