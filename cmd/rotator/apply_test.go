package main

import (
	"slices"
	"strings"
	"testing"
)

// quickstartCredentials are the credentials of examples/quickstart.yaml with
// the policy apply must store for them.
var quickstartCredentials = map[string]struct {
	consumer, provider, owner string
	scope                     []string
	labels                    map[string]string
	maxAgeSeconds             int64
}{
	"notes-api-key": {"mcp-server-notes", "api-keys", "platform-team",
		[]string{"notes:read", "notes:write"}, map[string]string{"team": "platform", "env": "dev"}, 5 * 60},
	"github-proxy-upstream-key": {"mcp-server-github-proxy", "api-keys", "platform-team",
		[]string{"repo:read", "issues:write"}, map[string]string{"team": "platform", "env": "dev"}, 7 * 24 * 3600},
	"claude-desktop-gateway-token": {"claude-desktop", "shared-secrets", "ai-enablement",
		[]string{"mcp:tools", "mcp:resources"}, map[string]string{"team": "ai-enablement", "env": "dev"}, 30 * 24 * 3600},
	"reports-webhook-signing-secret": {"mcp-server-reports", "shared-secrets", "data-team",
		[]string{"webhooks:sign"}, map[string]string{"team": "data", "env": "dev"}, 14 * 24 * 3600},
}

// quickstartNames are every provider, target and credential of the quickstart.
var quickstartNames = []string{"api-keys", "shared-secrets", "local-env", "client-config",
	"notes-api-key", "github-proxy-upstream-key", "claude-desktop-gateway-token", "reports-webhook-signing-secret"}

// credentialFields are the field names of a credential (DESIGN.md §12).
var credentialFields = []string{"id", "consumer", "provider", "scope", "granted_scope", "owner", "labels", "status",
	"age_seconds", "max_age_seconds", "last_rotated_at", "next_rotation_at", "expires_at", "current_version", "runbook"}

// versionFields are the field names of current_version (DESIGN.md §12).
var versionFields = []string{"id", "fingerprint", "created_at", "expires_at"}

func TestApplyQuickstart(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)

			t.Run("first apply creates everything", func(t *testing.T) {
				if fileExists(c.path("rotator.db")) {
					t.Fatal("rotator.db exists before the first apply")
				}
				r := c.must(t, 0, "apply", "-f", quickstartPath)
				for _, name := range quickstartNames {
					if !hasRow(r.stdout, name, "created") {
						t.Errorf("stdout does not report %s as created:\n%s", name, r.stdout)
					}
				}
				if !strings.Contains(r.stdout, "Applied: 8 created, 0 updated, 0 unchanged, 0 removed.") {
					t.Errorf("stdout has no summary of 8 created:\n%s", r.stdout)
				}
				// SQLite is the default: ./rotator.db in the working directory.
				// With ROTATOR_DATABASE_URL set, nothing is created there.
				if got, want := fileExists(c.path("rotator.db")), store == "sqlite"; got != want {
					t.Errorf("rotator.db in the working directory: exists=%t, want %t", got, want)
				}
			})

			t.Run("second apply reports no changes", func(t *testing.T) {
				r := c.must(t, 0, "apply", "-f", quickstartPath)
				if !strings.Contains(r.stdout, "no changes") {
					t.Errorf("stdout does not say no changes:\n%s", r.stdout)
				}
				if strings.Contains(r.stdout, "created") || strings.Contains(r.stdout, "updated") {
					t.Errorf("a second apply reports changes:\n%s", r.stdout)
				}

				r = c.must(t, 0, "apply", "-f", quickstartPath, "-o", "json")
				o := decodeObject(t, r.stdout, "changes", "warnings", "dry_run", "withdrawals")
				changes := array(t, o, "changes")
				if len(changes) != len(quickstartNames) {
					t.Errorf("got %d changes, want %d:\n%s", len(changes), len(quickstartNames), r.stdout)
				}
				for _, ch := range changes {
					requireKeys(t, "change", ch, "kind", "name", "action")
					if a := str(t, ch, "action"); a != "unchanged" {
						t.Errorf("%s %s: action %q on a second apply, want unchanged", ch["kind"], ch["name"], a)
					}
				}
				if o["dry_run"] != false {
					t.Errorf("dry_run = %v, want false", o["dry_run"])
				}
			})

			t.Run("credentials list -o json", func(t *testing.T) {
				out := c.listJSON(t)
				creds := array(t, decodeObject(t, out, "credentials"), "credentials")
				var ids []string
				for _, cr := range creds {
					requireKeys(t, "credential", cr, credentialFields...)
					id := str(t, cr, "id")
					ids = append(ids, id)
					want, ok := quickstartCredentials[id]
					if !ok {
						t.Errorf("unexpected credential %q", id)
						continue
					}
					if got := str(t, cr, "consumer"); got != want.consumer {
						t.Errorf("%s: consumer %q, want %q", id, got, want.consumer)
					}
					if got := str(t, cr, "provider"); got != want.provider {
						t.Errorf("%s: provider %q, want %q", id, got, want.provider)
					}
					if got := str(t, cr, "owner"); got != want.owner {
						t.Errorf("%s: owner %q, want %q", id, got, want.owner)
					}
					if got := stringList(t, cr["scope"]); !slices.Equal(got, want.scope) {
						t.Errorf("%s: scope %q, want %q", id, got, want.scope)
					}
					labels := object(t, cr, "labels")
					if len(labels) != len(want.labels) {
						t.Errorf("%s: labels %v, want %v", id, labels, want.labels)
					}
					for k, v := range want.labels {
						if labels[k] != v {
							t.Errorf("%s: label %s=%v, want %s", id, k, labels[k], v)
						}
					}
					if got := num(t, cr, "max_age_seconds"); got != want.maxAgeSeconds {
						t.Errorf("%s: max_age_seconds %d, want %d", id, got, want.maxAgeSeconds)
					}
					if got := str(t, cr, "runbook"); got != "runbooks/generated.md#rotation" {
						t.Errorf("%s: runbook %q", id, got)
					}
					if s := str(t, cr, "status"); s == "" {
						t.Errorf("%s: empty status", id)
					}
					utcTime(t, cr, "next_rotation_at")
					// Never rotated: no value, so no age and no current version.
					for _, k := range []string{"age_seconds", "current_version", "last_rotated_at"} {
						if cr[k] != nil {
							t.Errorf("%s: %s = %v before any rotation, want null", id, k, cr[k])
						}
					}
				}
				if !slices.IsSorted(ids) || len(ids) != len(quickstartCredentials) {
					t.Errorf("credential ids %q: want the %d quickstart ids, sorted", ids, len(quickstartCredentials))
				}
			})

			t.Run("credentials list table", func(t *testing.T) {
				r := c.must(t, 0, "credentials", "list")
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				if h := strings.Fields(lines[0]); len(h) < 3 || !slices.Equal(h[:3], []string{"ID", "CONSUMER", "SCOPE"}) {
					t.Errorf("table header %q", lines[0])
				}
				if len(lines) != 1+len(quickstartCredentials) {
					t.Errorf("table has %d lines, want a header and %d rows:\n%s", len(lines), len(quickstartCredentials), r.stdout)
				}
				for id, want := range quickstartCredentials {
					if !hasRow(r.stdout, id, want.consumer, strings.Join(want.scope, ",")) {
						t.Errorf("no row for %s:\n%s", id, r.stdout)
					}
				}
				r = c.must(t, 0, "credentials", "list", "-o", "wide")
				if h := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[0]); len(h) < 4 || !slices.Equal(h[:4], []string{"ID", "CONSUMER", "PROVIDER", "SCOPE"}) {
					t.Errorf("-o wide: table header %q", h)
				}
				for id, want := range quickstartCredentials {
					if !hasRow(r.stdout, id, want.consumer, want.provider, strings.Join(want.scope, ",")) {
						t.Errorf("-o wide: no row for %s:\n%s", id, r.stdout)
					}
				}
				r = c.must(t, 0, "credentials", "list", "--consumer", "claude-desktop", "-o", "json")
				if got := array(t, decodeObject(t, r.stdout, "credentials"), "credentials"); len(got) != 1 || got[0]["id"] != "claude-desktop-gateway-token" {
					t.Errorf("--consumer claude-desktop selected %v", got)
				}
				r = c.must(t, 0, "credentials", "list", "--selector", "team=platform", "-o", "json")
				if got := array(t, decodeObject(t, r.stdout, "credentials"), "credentials"); len(got) != 2 {
					t.Errorf("--selector team=platform selected %d credentials, want 2", len(got))
				}
			})

			t.Run("dry run changes nothing", func(t *testing.T) {
				// A config that differs from the stored inventory: one credential
				// gets a longer max_age, and another is added.
				c.copyRunbooks(t)
				q := readFile(t, quickstartPath)
				changed := strings.Replace(q, "    max_age: 5m\n", "    max_age: 10m\n", 1)
				changed += `
  - id: extra-api-key
    consumer: mcp-server-extra
    provider: api-keys
    scope: [extra:read]
    owner: platform-team
    max_age: 1h
    runbook: runbooks/generated.md#rotation
`
				if changed == q {
					t.Fatal("the quickstart has no 'max_age: 5m' line to change")
				}
				file := c.path("changed.yaml")
				writeFile(t, file, changed)

				before := c.listJSON(t)
				r := c.must(t, 0, "apply", "-f", file, "--dry-run")
				if !strings.Contains(r.stdout, "Dry run (nothing written)") {
					t.Errorf("stdout does not say it is a dry run:\n%s", r.stdout)
				}
				if !hasRow(r.stdout, "notes-api-key", "updated", "max_age") || !hasRow(r.stdout, "extra-api-key", "created") {
					t.Errorf("the dry run does not show the update and the creation:\n%s", r.stdout)
				}
				r = c.must(t, 0, "apply", "-f", file, "--dry-run", "-o", "json")
				o := decodeObject(t, r.stdout, "changes", "warnings", "dry_run", "withdrawals")
				if o["dry_run"] != true {
					t.Errorf("dry_run = %v, want true", o["dry_run"])
				}
				actions := map[string]string{}
				for _, ch := range array(t, o, "changes") {
					actions[str(t, ch, "name")] = str(t, ch, "action")
				}
				if actions["notes-api-key"] != "updated" || actions["extra-api-key"] != "created" {
					t.Errorf("dry run -o json actions: %v", actions)
				}
				if after := c.listJSON(t); after != before {
					t.Errorf("a dry run changed the inventory:\nbefore: %s\nafter: %s", before, after)
				}

				// The same apply without --dry-run does change it.
				r = c.must(t, 0, "apply", "-f", file)
				if !strings.Contains(r.stdout, "Applied: 1 created, 1 updated,") {
					t.Errorf("apply after the dry run:\n%s", r.stdout)
				}
				creds := byField(t, array(t, decodeObject(t, c.listJSON(t), "credentials"), "credentials"), "id")
				if got := num(t, creds["notes-api-key"], "max_age_seconds"); got != 600 {
					t.Errorf("notes-api-key max_age_seconds %d after apply, want 600", got)
				}
				if _, ok := creds["extra-api-key"]; !ok {
					t.Error("extra-api-key was not created")
				}
			})
		})
	}
}

// hasRow reports whether a line of out contains every one of cols as a
// whitespace-separated field, in order.
func hasRow(out string, cols ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		i := 0
		for _, f := range fields {
			if i < len(cols) && strings.TrimRight(f, ",") == cols[i] {
				i++
			}
		}
		if i == len(cols) {
			return true
		}
	}
	return false
}

// stringList converts a decoded JSON array of strings.
func stringList(t *testing.T, v any) []string {
	t.Helper()
	raw, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is %T, want an array", v, v)
	}
	out := make([]string, len(raw))
	for i, x := range raw {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("%v: item %d is %T, want a string", v, i, x)
		}
		out[i] = s
	}
	return out
}
