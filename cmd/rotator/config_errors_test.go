package main

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGitHubToken returns a fresh value of the shape of a GitHub personal
// access token (ghp_ and 36 letters or digits). It is built at run time so
// that no token-shaped string is committed.
func fakeGitHubToken() string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 36)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "ghp_" + string(b)
}

// assertNoToken fails if s contains the token or any 10-character piece of
// its random part.
func assertNoToken(t *testing.T, what, s, token string) {
	t.Helper()
	body := strings.TrimPrefix(token, "ghp_")
	for i := 0; i+10 <= len(body); i++ {
		if strings.Contains(s, body[i:i+10]) {
			t.Errorf("%s contains (part of) the literal secret:\n%s", what, s)
			return
		}
	}
}

func TestApplyRejectsLiteralSecret(t *testing.T) {
	cases := map[string]struct {
		testdata string
		// line marks the line the error must name, with field.
		line, field string
	}{
		"secret-named key of a provider": {"literal-secret.yaml", "client_secret:", "providers.api-keys.client_secret"},
		"token shape in a label":         {"literal-secret-label.yaml", "note:", "labels.note"},
	}
	for _, store := range storeKinds {
		for name, tc := range cases {
			t.Run(store+"/"+name, func(t *testing.T) {
				t.Parallel()
				c := newCLI(t, store)
				c.must(t, 0, "apply", "-f", quickstartPath)
				before := c.listJSON(t)

				token := fakeGitHubToken()
				tmpl := readFile(t, filepath.Join("testdata", tc.testdata))
				if !strings.Contains(tmpl, "__GITHUB_TOKEN__") {
					t.Fatalf("testdata/%s has no __GITHUB_TOKEN__ placeholder", tc.testdata)
				}
				content := strings.ReplaceAll(tmpl, "__GITHUB_TOKEN__", token)
				c.copyRunbooks(t)
				writeFile(t, c.path(tc.testdata), content)
				line := lineOf(t, content, tc.line)
				loc := fmt.Sprintf("%s:%d:", tc.testdata, line)

				for _, args := range [][]string{
					{"apply", "-f", tc.testdata},
					{"apply", "-f", tc.testdata, "-o", "json"},
					{"apply", "-f", tc.testdata, "--dry-run"},
				} {
					r := c.must(t, 2, args...)
					found := false
					for _, l := range strings.Split(r.stderr, "\n") {
						if strings.HasPrefix(l, loc) && strings.Contains(l, tc.field) {
							found = true
						}
					}
					if !found {
						t.Errorf("stderr does not name %s and %s on one line:\n%s", loc, tc.field, r)
					}
					if !strings.Contains(r.stderr, "configuration is invalid") {
						t.Errorf("stderr does not say the configuration is invalid:\n%s", r)
					}
					if r.stdout != "" {
						t.Errorf("stdout is not empty on a configuration error:\n%s", r)
					}
					assertNoToken(t, "stderr of "+strings.Join(args, " "), r.stderr, token)
					assertNoToken(t, "stdout of "+strings.Join(args, " "), r.stdout, token)
				}
				if after := c.listJSON(t); after != before {
					t.Errorf("a rejected config changed the inventory:\nbefore: %s\nafter: %s", before, after)
				}
				if r := c.must(t, 0, "apply", "-f", quickstartPath); !strings.Contains(r.stdout, "no changes") {
					t.Errorf("after a rejected config, re-applying the original reports changes:\n%s", r.stdout)
				}
			})
		}
	}
}

func TestApplyReportsEveryError(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("testdata", "three-errors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	content := readFile(t, file)
	want := []struct{ line, field, says string }{
		{"max_age: 5 minutes", "credentials[0].max_age", "invalid duration"},
		{"provider: no-such-provider", "credentials[1].provider", "unknown provider"},
		{`schedule: "61 * * * *"`, "credentials[2].schedule", "invalid schedule"},
	}
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)
			c.must(t, 0, "apply", "-f", quickstartPath)
			before := c.listJSON(t)

			r := c.must(t, 2, "apply", "-f", file)
			if !strings.Contains(r.stderr, "(3 problem(s))") {
				t.Errorf("stderr does not count 3 problems:\n%s", r)
			}
			for _, w := range want {
				loc := fmt.Sprintf("%s:%d: %s: ", file, lineOf(t, content, w.line), w.field)
				found := false
				for _, l := range strings.Split(r.stderr, "\n") {
					if strings.HasPrefix(l, loc) && strings.Contains(l, w.says) {
						found = true
					}
				}
				if !found {
					t.Errorf("stderr has no line starting %q that says %q:\n%s", loc, w.says, r)
				}
			}
			if after := c.listJSON(t); after != before {
				t.Errorf("an invalid config changed the inventory:\nbefore: %s\nafter: %s", before, after)
			}
			if r := c.must(t, 0, "apply", "-f", quickstartPath); !strings.Contains(r.stdout, "no changes") {
				t.Errorf("after an invalid config, re-applying the original reports changes:\n%s", r.stdout)
			}
		})
	}
}
