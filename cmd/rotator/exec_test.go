package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestExec runs `rotator exec` as a user does: the child gets the current
// value (and not rotator's master key or database URL), exec passes its
// exit code through, and errors are clear, with the usual exit codes.
func TestExec(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)
			writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
			c.copyRunbooks(t)
			c.must(t, 0, "apply", "-f", "rotator.yaml")
			r := c.must(t, 1, "exec", "--env", "TOK=notes-api-key", "--", "true")
			if !strings.Contains(r.stderr, `credential "notes-api-key": credential has no current value (rotate it once`) {
				t.Errorf("exec of a credential never rotated:\n%s", r)
			}
			c.must(t, 0, "rotate", "notes-api-key", "--wait")
			var value string
			for l := range strings.SplitSeq(readFile(t, c.path("run", "mcp.env")), "\n") {
				if v, ok := strings.CutPrefix(l, "NOTES_API_KEY="); ok {
					value = strings.Trim(v, `"'`)
				}
			}
			if !strings.HasPrefix(value, "rtr_") {
				t.Fatalf("run/mcp.env holds no rotated value")
			}
			sum := sha256.Sum256([]byte(value))

			r = c.must(t, 7, "exec", "--env", "TOK=notes-api-key", "--",
				"sh", "-c", `test -z "$ROTATOR_MASTER_KEY$ROTATOR_DATABASE_URL" || exit 1; printf %s "$TOK" | sha256sum > seen; exit 7`)
			if got := strings.Fields(readFile(t, c.path("seen")))[0]; got != hex.EncodeToString(sum[:]) {
				t.Errorf("the child saw another value than the current one (sha256 %s)\n%s", got, r)
			}
			r = c.must(t, 0, "exec", "--file", c.path("tok")+"=notes-api-key", "--on-rotate", "none", "--",
				"sh", "-c", `test "$(stat -c %a tok)" = 600 && printf %s "$(cat tok)" | sha256sum > seen-file`)
			if got := strings.Fields(readFile(t, c.path("seen-file")))[0]; got != hex.EncodeToString(sum[:]) {
				t.Errorf("the file held another value than the current one\n%s", r)
			}
			if fileExists(c.path("tok")) {
				t.Error("the --file outlived exec")
			}

			for _, tc := range []struct {
				code int
				says string
				args []string
			}{
				{3, `credential "no-such": credential not found; see 'rotator credentials list'`, []string{"exec", "--env", "TOK=no-such", "--", "true"}},
				{1, `command "no-such-command-xyz" not found in PATH`, []string{"exec", "--env", "TOK=notes-api-key", "--", "no-such-command-xyz"}},
				{2, "nothing to deliver", []string{"exec", "--", "true"}},
				{2, "requires at least 1 arg", []string{"exec", "--env", "TOK=notes-api-key"}},
				{2, `--on-rotate "reload": use restart, signal:NAME`, []string{"exec", "--env", "TOK=notes-api-key", "--on-rotate", "reload", "--", "true"}},
				{2, `--env "TOK": use NAME=CREDENTIAL`, []string{"exec", "--env", "TOK", "--", "true"}},
			} {
				r := c.must(t, tc.code, tc.args...)
				if !strings.Contains(r.stderr, tc.says) {
					t.Errorf("stderr does not say %q:\n%s", tc.says, r)
				}
			}
			for _, p := range c.printed {
				if strings.Contains(p, value) {
					t.Fatal("the value was printed")
				}
			}
		})
	}
}
