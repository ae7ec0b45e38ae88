package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// dropCredential removes one credential's block from a configuration.
func dropCredential(t *testing.T, cfg, id string) string {
	t.Helper()
	start := strings.Index(cfg, "  - id: "+id+"\n")
	if start < 0 {
		t.Fatalf("no credential %s in the configuration", id)
	}
	end := strings.Index(cfg[start+1:], "  - id: ")
	if end < 0 {
		return cfg[:start]
	}
	return cfg[:start] + cfg[start+1+end:]
}

// apply checks what the file names on this host: unresolvable references
// and missing plugin executables are warnings with file:line, errors with
// --strict, and a resolved value is never printed.
func TestApplyChecks(t *testing.T) {
	t.Parallel()
	const canary = "canary-env-secret-Zq8xL2Wm4"
	c := newCLI(t, "sqlite", "ROTATOR_TEST_TOKEN="+canary)
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), `providers:
  keys:
    type: exec
    command: [./plugins/missing-plugin]
    env:
      TOKEN: ${env:ROTATOR_TEST_TOKEN}
      OTHER: ${file:/nonexistent/rotator-test-secret}
credentials:
  - id: api-key
    consumer: mcp-server-notes
    provider: keys
    max_age: 1h
    runbook: runbooks/generated.md#rotation
`)
	wantWarnings := []string{
		"warning: rotator.yaml:4: providers.keys.command[0]: executable ./plugins/missing-plugin (" + c.path("plugins", "missing-plugin") + ") does not exist",
		"warning: rotator.yaml:7: providers.keys.env.OTHER: ${file:/nonexistent/rotator-test-secret} cannot be resolved here: file /nonexistent/rotator-test-secret does not exist",
	}

	r := c.must(t, 2, "apply", "-f", "rotator.yaml", "--strict")
	if !strings.Contains(r.stderr, "configuration is invalid (2 problem(s))") || !strings.Contains(r.stderr, "rotator.yaml:7: providers.keys.env.OTHER:") {
		t.Errorf("--strict:\n%s", r)
	}
	if fileExists(c.path("rotator.db")) {
		t.Error("--strict wrote the database")
	}

	for _, args := range [][]string{{"--dry-run"}, {}} {
		r = c.must(t, 0, append([]string{"apply", "-f", "rotator.yaml"}, args...)...)
		for _, w := range wantWarnings {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("apply %v: no %q:\n%s", args, w, r)
			}
		}
		if strings.Contains(r.stderr, "TOKEN") {
			t.Errorf("apply %v warns about a reference that resolves:\n%s", args, r)
		}
	}
	if out := c.must(t, 0, "credentials", "list").stdout; !strings.Contains(out, "api-key") {
		t.Errorf("apply without --strict did not apply the file:\n%s", out)
	}
	r = c.must(t, 0, "apply", "-f", "rotator.yaml", "-o", "json")
	o := decodeObject(t, r.stdout, "changes", "warnings", "dry_run", "withdrawals")
	if w := stringList(t, o["warnings"]); len(w) != 2 || !strings.Contains(w[0], "rotator.yaml:4: providers.keys.command[0]") {
		t.Errorf("-o json warnings %q", w)
	}
	for _, p := range c.printed {
		if strings.Contains(p, canary) {
			t.Fatal("a resolved value was printed")
		}
	}
}

// apply --prune withdraws a removed credential's value from its targets,
// and warns that its values stay valid unless --revoke revokes them.
func TestApplyPruneWithdraws(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	full := readFile(t, quickstartPath)
	writeFile(t, c.path("rotator.yaml"), full)
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "notes-api-key", "github-proxy-upstream-key", "--wait")
	env := readFile(t, c.path("run", "mcp.env"))
	if !strings.Contains(env, "NOTES_API_KEY=") || !strings.Contains(env, "GITHUB_PROXY_API_KEY=") {
		t.Fatalf("values not published:\n%s", env)
	}

	withoutNotes := dropCredential(t, full, "notes-api-key")
	writeFile(t, c.path("pruned.yaml"), withoutNotes)
	r := c.must(t, 0, "apply", "-f", "pruned.yaml", "--prune", "--dry-run")
	if !strings.Contains(r.stdout, "Would withdraw credential notes-api-key's value from local-env.") ||
		!strings.Contains(r.stderr, "warning: credential notes-api-key: without --revoke its values would remain valid at provider api-keys") {
		t.Errorf("dry run:\n%s", r)
	}
	if !strings.Contains(readFile(t, c.path("run", "mcp.env")), "NOTES_API_KEY=") {
		t.Fatal("a dry run withdrew a value")
	}

	r = c.must(t, 0, "apply", "-f", "pruned.yaml", "--prune")
	if !hasRow(r.stdout, "notes-api-key", "withdraw", "local-env", "ok") || !hasRow(r.stdout, "notes-api-key", "revoke", "skipped") {
		t.Errorf("apply --prune:\n%s", r)
	}
	if !strings.Contains(r.stderr, "warning: credential notes-api-key was removed, but its values remain valid at its provider until they expire") ||
		!strings.Contains(r.stderr, "apply this one with --prune --revoke") {
		t.Errorf("no warning about the values left valid:\n%s", r)
	}
	env = readFile(t, c.path("run", "mcp.env"))
	if strings.Contains(env, "NOTES_API_KEY") || !strings.Contains(env, "GITHUB_PROXY_API_KEY=") {
		t.Errorf("run/mcp.env after the prune:\n%s", env)
	}

	// --revoke on a provider that cannot revoke: skipped, and said so.
	writeFile(t, c.path("pruned2.yaml"), dropCredential(t, withoutNotes, "github-proxy-upstream-key"))
	r = c.must(t, 0, "apply", "-f", "pruned2.yaml", "--prune", "--revoke", "-o", "json")
	o := decodeObject(t, r.stdout, "changes", "warnings", "dry_run", "withdrawals")
	var got []string
	for _, w := range array(t, o, "withdrawals") {
		requireKeys(t, "withdrawal", w, "credential", "action", "outcome")
		got = append(got, str(t, w, "credential")+":"+str(t, w, "action")+":"+str(t, w, "outcome"))
		if w["action"] == "revoke" && !strings.Contains(str(t, w, "detail"), "provider api-keys cannot revoke values") {
			t.Errorf("revoke detail %v", w["detail"])
		}
	}
	if strings.Join(got, " ") != "github-proxy-upstream-key:withdraw:ok github-proxy-upstream-key:revoke:skipped" {
		t.Errorf("withdrawals %v", got)
	}
	if !strings.Contains(r.stderr, "its provider cannot revoke values") {
		t.Errorf("no warning that the provider cannot revoke:\n%s", r)
	}
	c.must(t, 2, "apply", "-f", "pruned2.yaml", "--revoke")
}

// --revoke-first is refused for a provider that cannot revoke, unless
// --force; the forced run records revoke_first as skipped. credentials show
// gives each version's sha256.
func TestRevokeFirstNeedsRevocableProvider(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "notes-api-key", "--wait")

	args := []string{"rotate", "notes-api-key", "--emergency", "--reason", "leak", "--revoke-first", "--wait"}
	r := c.must(t, 2, args...)
	if !strings.Contains(r.stderr, "--revoke-first: the provider of notes-api-key (provider api-keys, type generated) cannot revoke values") ||
		!strings.Contains(r.stderr, "--force") {
		t.Errorf("refusal:\n%s", r)
	}
	runs := array(t, decodeObject(t, c.must(t, 0, "runs", "list", "-o", "json").stdout, "runs"), "runs")
	if len(runs) != 1 {
		t.Fatalf("%d runs after a refused --revoke-first, want 1", len(runs))
	}
	c.must(t, 2, "rotate", "notes-api-key", "--force")

	r = c.must(t, 0, append(args, "--force", "-o", "json")...)
	if !strings.Contains(r.stderr, "warning: --force") {
		t.Errorf("no warning with --force:\n%s", r)
	}
	run := object(t, decodeObject(t, c.must(t, 0, "runs", "show", str(t, array(t, decodeObject(t, r.stdout, "runs"), "runs")[0], "run"), "-o", "json").stdout, "run"), "run")
	steps := array(t, run, "steps")
	if len(steps) == 0 || steps[0]["name"] != "revoke_first" || steps[0]["state"] != "skipped" {
		t.Fatalf("first step %v, want revoke_first skipped", steps[0])
	}

	// credentials show: the sha256 of every version's value.
	show := object(t, decodeObject(t, c.must(t, 0, "credentials", "show", "notes-api-key", "-o", "json").stdout, "credential"), "credential")
	cur := object(t, show, "current_version")
	env := readFile(t, c.path("run", "mcp.env"))
	var value string
	for _, l := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(l, "NOTES_API_KEY="); ok {
			value = v
		}
	}
	sum := sha256.Sum256([]byte(value))
	want := "sha256:" + hex.EncodeToString(sum[:])
	var found bool
	for _, v := range array(t, show, "versions") {
		if v["id"] == cur["id"] {
			found = v["sha256"] == want
		}
	}
	if !found {
		t.Errorf("credentials show -o json: the current version has no sha256 %s: %v", want, show["versions"])
	}
	if text := c.must(t, 0, "credentials", "show", "notes-api-key").stdout; !strings.Contains(text, str(t, cur, "id")+"  "+want) {
		t.Errorf("credentials show does not list %s:\n%s", want, text)
	}
}

// A withdrawal that fails exits 1 and names it; the removal stays committed.
func TestApplyPruneWithdrawFailureExits1(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	full := readFile(t, quickstartPath)
	writeFile(t, c.path("rotator.yaml"), full)
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "claude-desktop-gateway-token", "--wait")
	// The JSON file the client reads is no longer a JSON object of strings.
	writeFile(t, c.path("run", "claude-desktop.json"), "not json\n")

	writeFile(t, c.path("pruned.yaml"), dropCredential(t, full, "claude-desktop-gateway-token"))
	r := c.must(t, 1, "apply", "-f", "pruned.yaml", "--prune")
	if !hasRow(r.stdout, "claude-desktop-gateway-token", "withdraw", "client-config", "failed") ||
		!strings.Contains(r.stderr, "withdrawing or revoking the values of removed credentials failed") {
		t.Errorf("failed withdrawal:\n%s", r)
	}
	if out := c.must(t, 0, "credentials", "list").stdout; strings.Contains(out, "claude-desktop-gateway-token") {
		t.Errorf("the removal was undone:\n%s", out)
	}
	if out := c.must(t, 0, "audit", "list", "--credential", "claude-desktop-gateway-token", "-o", "json").stdout; !strings.Contains(out, `"credential.withdraw"`) || !strings.Contains(out, "failed") {
		t.Errorf("the failed withdrawal is not in the audit log:\n%s", out)
	}
}
