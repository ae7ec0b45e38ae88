package notify_test

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/rotatorhq/rotator/notify"
)

// schema reads the event schema from docs/notifications.md.
func schema(t *testing.T) (*jsonschema.Resolved, map[string]any) {
	t.Helper()
	doc, err := os.ReadFile("../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- schema:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- schema:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/notifications.md has no schema between the markers")
	}
	block = strings.TrimSpace(block)
	block = strings.TrimSuffix(strings.TrimPrefix(block, "```json"), "```")
	var s jsonschema.Schema
	if err := json.Unmarshal([]byte(block), &s); err != nil {
		t.Fatalf("the schema does not parse: %v", err)
	}
	r, err := s.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(block), &raw)
	return r, raw
}

func toAny(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// TestSchemaMatchesEvent: the documented schema and notify.Event name the
// same fields, the schema lists every kind, and a full event of every kind
// validates.
func TestSchemaMatchesEvent(t *testing.T) {
	t.Parallel()
	r, raw := schema(t)
	props := raw["properties"].(map[string]any)
	var fields []string
	et := reflect.TypeFor[notify.Event]()
	for i := range et.NumField() {
		name, _, _ := strings.Cut(et.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
		if _, ok := props[name]; !ok {
			t.Errorf("notify.Event field %s is not in the schema", name)
		}
	}
	for name := range props {
		if !slices.Contains(fields, name) {
			t.Errorf("the schema has %s, which notify.Event lacks", name)
		}
	}
	var kinds []string
	for _, k := range props["kind"].(map[string]any)["enum"].([]any) {
		kinds = append(kinds, k.(string))
	}
	for _, k := range notify.Kinds {
		if !slices.Contains(kinds, string(k)) {
			t.Errorf("kind %s is not in the schema", k)
		}
	}
	for _, k := range notify.Kinds {
		ev := notify.Event{ID: "01JEV", Kind: k, Time: time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC), CredentialID: "github-mcp-token",
			Consumer: "mcp-server-github", Labels: map[string]string{"env": "prod"}, RunID: "01JRUN", Trigger: "schedule",
			OldVersion: &notify.Version{ID: "01JOLD", Fingerprint: "0123456789abcdef"}, NewVersion: &notify.Version{ID: "01JNEW", Fingerprint: "fedcba9876543210"},
			Reason: "provider returned 503", Summary: "something happened", Runbook: "runbooks/x.md#rotation",
			Links: &notify.Links{Run: "https://rotator.example.com/runs/01JRUN", Runbook: "https://git.example.com/x.md#rotation"}}
		if k == notify.KindEmergency {
			ev.Phase, ev.Credentials = "started", []string{"a", "b"}
		}
		if err := r.Validate(toAny(t, ev)); err != nil {
			t.Errorf("%s: %v", k, err)
		}
		minimal := notify.Event{ID: "x", Kind: k, Time: time.Now().UTC(), Summary: "s"}
		if err := r.Validate(toAny(t, minimal)); err != nil {
			t.Errorf("%s minimal: %v", k, err)
		}
	}
}

// TestSchemaRejects: the schema is strict (a test of it could not fail
// otherwise): unknown kinds, missing fields, a value field and a
// fingerprint that is not one are refused.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	r, _ := schema(t)
	good := map[string]any{"id": "x", "kind": "rotation.failed", "time": "2026-12-05T04:00:00Z", "summary": "s"}
	if err := r.Validate(good); err != nil {
		t.Fatalf("good: %v", err)
	}
	bad := map[string]map[string]any{
		"unknown kind":    {"kind": "run.exploded"},
		"a value field":   {"value": "rtr_secret"},
		"bad fingerprint": {"new_version": map[string]any{"id": "v", "fingerprint": "rtr_notAFingerprint"}},
		"bad trigger":     {"trigger": "cron"},
	}
	for name, change := range bad {
		ev := map[string]any{}
		for k, v := range good {
			ev[k] = v
		}
		for k, v := range change {
			ev[k] = v
		}
		if err := r.Validate(ev); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
	if err := r.Validate(map[string]any{"id": "x", "kind": "rotation.failed"}); err == nil {
		t.Error("an event without time and summary validated")
	}
}
