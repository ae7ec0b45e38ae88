package main

import (
	"slices"
	"strings"
	"testing"
)

// complete asks rotator for the completions of args, as a shell does on Tab
// (the last argument is the word being completed), and returns the values
// without their descriptions.
func (c *cli) complete(t *testing.T, args ...string) []string {
	t.Helper()
	r := c.must(t, 0, append([]string{"__complete"}, args...)...)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l == "" || strings.HasPrefix(l, ":") {
			continue
		}
		v, _, _ := strings.Cut(l, "\t")
		out = append(out, v)
	}
	return out
}

func TestCompletion(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)

			if store == "sqlite" {
				// No database: no ids, and none is created.
				if got := c.complete(t, "credentials", "show", ""); len(got) != 0 {
					t.Errorf("completions without a database: %q", got)
				}
				if got := c.complete(t, "runs", "show", ""); len(got) != 0 {
					t.Errorf("completions without a database: %q", got)
				}
				if fileExists(c.path("rotator.db")) {
					t.Fatal("completion created rotator.db")
				}
			}

			c.copyRunbooks(t)
			writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
			c.must(t, 0, "apply", "-f", "rotator.yaml")
			r := c.must(t, 0, "rotate", "notes-api-key", "--wait", "-o", "json")
			runID := str(t, array(t, decodeObject(t, r.stdout, "runs"), "runs")[0], "run")

			ids := []string{"claude-desktop-gateway-token", "github-proxy-upstream-key", "notes-api-key", "reports-webhook-signing-secret"}
			if store == "sqlite" {
				// --database names the database to complete from.
				other := newCLI(t, "sqlite")
				got := other.complete(t, "--database", c.path("rotator.db"), "credentials", "show", "no")
				if !slices.Equal(got, []string{"notes-api-key"}) {
					t.Errorf("completion with --database: %q", got)
				}
				if got := other.complete(t, "--database", other.path("none.db"), "credentials", "show", ""); len(got) != 0 || fileExists(other.path("none.db")) {
					t.Errorf("completion with --database of a missing file: %q (or created it)", got)
				}
			}
			for _, tc := range []struct {
				args []string
				want []string
			}{
				{[]string{"credentials", "show", ""}, ids},
				{[]string{"credentials", "show", "no"}, []string{"notes-api-key"}},
				{[]string{"rotate", "notes-api-key", ""}, slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == "notes-api-key" })},
				{[]string{"runs", "list", "--credential", "gi"}, []string{"github-proxy-upstream-key"}},
				{[]string{"runs", "show", ""}, []string{runID}},
				{[]string{"runs", "show", strings.ToLower(runID[:6])}, []string{runID}},
				{[]string{"audit", "list", "--run", ""}, []string{runID}},
				{[]string{"rotate", "--consumer", "mcp-server-g"}, []string{"mcp-server-github-proxy"}},
				{[]string{"rotate", "--selector", "team=p"}, []string{"team=platform"}},
				{[]string{"credentials", "list", "--selector", "team=platform,"}, []string{"team=platform,env=dev"}},
				{[]string{"runs", "list", "--state", "roll"}, []string{"rolling_back", "rolled_back"}},
				{[]string{"credentials", "list", "-o", ""}, []string{"table", "wide", "json", "yaml"}},
				{[]string{"credentials", "show", "notes-api-key", "-o", ""}, []string{"text", "json", "yaml"}},
				{[]string{"report", "-o", ""}, []string{"md", "html", "json", "csv"}},
				{[]string{"version", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
				{[]string{"completion", ""}, []string{"bash", "fish", "powershell", "zsh"}},
			} {
				got := c.complete(t, tc.args...)
				if !slices.Equal(sortedStrings(got), sortedStrings(tc.want)) {
					t.Errorf("rotator %s<Tab>: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
				}
			}
		})
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	for shell, want := range map[string]string{
		"bash":       "__start_rotator",
		"zsh":        "#compdef rotator",
		"fish":       "complete -c rotator",
		"powershell": "Register-ArgumentCompleter",
	} {
		r := c.must(t, 0, "completion", shell)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s does not contain %q", shell, want)
		}
	}
	if fileExists(c.path("rotator.db")) {
		t.Error("completion created rotator.db")
	}
}
