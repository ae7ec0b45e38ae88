package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
)

// newKey returns a random master key in base64 and its id.
func newKey(t *testing.T) (b64, id string) {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	b64 = base64.StdEncoding.EncodeToString(b)
	k, err := secret.ParseKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b64, k.ID
}

// keyIDOf returns the id of the base64 key in a file or variable value.
func keyIDOf(t *testing.T, b64 string) string {
	t.Helper()
	k, err := secret.ParseKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// stateDigest summarises what a command must not change: every version
// (with its sealed bytes and key id) of every credential, the runs and the
// audit events.
func stateDigest(t *testing.T, c *cli) string {
	t.Helper()
	url := c.envValue(storeopen.EnvURL)
	if url == "" {
		url = "sqlite://" + c.path("rotator.db")
	}
	ctx := context.Background()
	st, err := storeopen.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := sha256.New()
	creds, err := st.ListCredentials(ctx, store.CredentialFilter{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range creds {
		fmt.Fprintf(h, "credential %s %s %s\n", cr.ID, cr.State.Status, cr.State.CurrentVersionID)
		vs, err := st.ListVersions(ctx, cr.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			fmt.Fprintf(h, "version %s %s %s %x\n", v.ID, v.Stage, v.KeyID, v.Sealed)
		}
	}
	runs, err := st.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		fmt.Fprintf(h, "run %s %s\n", r.ID, r.State)
	}
	n := 0
	if err := st.ScanAuditEvents(ctx, store.AuditFilter{}, func(store.AuditEvent) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(h, "audit events %d\n", n)
	return hex.EncodeToString(h.Sum(nil))
}

// keyFiles lists the *.key files of a directory.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.key"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// quickstartRotated applies the quickstart and rotates notes-api-key once,
// so that the database holds a value sealed under the CLI's key, whose id
// it returns.
func quickstartRotated(t *testing.T, c *cli) string {
	t.Helper()
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "notes-api-key", "--wait")
	if k := c.envValue(secret.EnvMasterKey); k != "" {
		return keyIDOf(t, k)
	}
	return keyIDOf(t, readFile(t, c.path("rotator.db.key")))
}

// mustRefuse runs a command that needs values with the wrong key: it must
// fail at once (exit 1), naming the key the data was sealed under and the
// fix, and change nothing.
func mustRefuse(t *testing.T, c *cli, says []string, args ...string) {
	t.Helper()
	start := time.Now()
	r := c.must(t, 1, args...)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rotator %s took %v to fail, want under 5s", strings.Join(args, " "), d.Round(time.Millisecond))
	}
	for _, want := range says {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r)
		}
	}
}

// A wrong master key: every command that needs values fails at once
// (exit 1) naming the key the data was sealed under, the configured one and
// the fix; nothing is written, no key is generated; the fix the message
// gives works.
func TestWrongMasterKey(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, kind)
			sealedUnder := quickstartRotated(t, c)
			keysBefore := keyFiles(t, c.dir)
			before := stateDigest(t, c)

			wrong, wrongID := newKey(t)
			w := c.with(secret.EnvMasterKey + "=" + wrong)
			says := []string{"sealed under master key " + sealedUnder, "active key " + wrongID, "from ROTATOR_MASTER_KEY",
				"ROTATOR_MASTER_KEY_PREVIOUS", "runbooks/master-key-rotation.md"}
			mustRefuse(t, w, says, "rotate", "notes-api-key", "--wait")
			mustRefuse(t, w, says, "rotate", "--all")
			mustRefuse(t, w, says, "keys", "rotate")
			mustRefuse(t, w, says, "serve", "--listen", "127.0.0.1:0")
			// Reading the inventory needs no value.
			w.must(t, 0, "credentials", "list")

			if after := stateDigest(t, c); after != before {
				t.Error("the database changed")
			}
			if got := keyFiles(t, c.dir); !slices.Equal(got, keysBefore) {
				t.Errorf("key files %v, want %v", got, keysBefore)
			}

			// The fix the message gives: the old key as previous, re-seal,
			// then the new key alone.
			var old string
			if kind == "sqlite" {
				old = strings.TrimSpace(readFile(t, c.path("rotator.db.key")))
			} else {
				old = c.envValue(secret.EnvMasterKey)
			}
			c.with(secret.EnvMasterKey+"="+wrong, secret.EnvMasterKeyPrevious+"="+old).must(t, 0, "keys", "rotate")
			w.must(t, 0, "rotate", "notes-api-key", "--wait")
		})
	}
}

// A database copied without its generated key file: no new key is
// generated beside it (it would open nothing), and every command that
// needs values fails at once naming the key it was sealed under.
func TestCopiedDatabaseWithoutKeyFile(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	sealedUnder := quickstartRotated(t, c)
	moved := c.in(t.TempDir())
	copyFile(t, c.path("rotator.db"), moved.path("rotator.db"))
	before := stateDigest(t, moved)

	says := []string{"sealed under master key " + sealedUnder, moved.path("rotator.db.key") + " does not exist",
		"A new key is not generated", "ROTATOR_MASTER_KEY", "runbooks/master-key-rotation.md"}
	mustRefuse(t, moved, says, "rotate", "notes-api-key", "--wait")
	mustRefuse(t, moved, says, "serve", "--listen", "127.0.0.1:0")
	mustRefuse(t, moved, says, "keys", "rotate")
	if got := keyFiles(t, moved.dir); len(got) != 0 {
		t.Errorf("a key file was generated: %v", got)
	}
	if after := stateDigest(t, moved); after != before {
		t.Error("the database changed")
	}
	moved.must(t, 0, "credentials", "list")

	// With its key file back, it works.
	copyFile(t, c.path("rotator.db.key"), moved.path("rotator.db.key"))
	moved.must(t, 0, "rotate", "notes-api-key", "--wait")
}

// An empty or malformed master key variable is a configuration error
// (exit 2) for every command, found before any database is opened, and
// never echoed.
func TestMasterKeyVariablesAreConfiguration(t *testing.T) {
	t.Parallel()
	const canary = "canary-not-a-master-key-6b1f"
	good, _ := newKey(t)
	for name, tc := range map[string]struct {
		env  []string
		says string
	}{
		"empty key":          {[]string{"ROTATOR_MASTER_KEY="}, "ROTATOR_MASTER_KEY is set but empty"},
		"malformed key":      {[]string{"ROTATOR_MASTER_KEY=" + canary}, "ROTATOR_MASTER_KEY: invalid master key"},
		"short key":          {[]string{"ROTATOR_MASTER_KEY=" + base64.StdEncoding.EncodeToString([]byte(canary))}, "want 32"},
		"empty key file":     {[]string{"ROTATOR_MASTER_KEY_FILE="}, "ROTATOR_MASTER_KEY_FILE is set but empty"},
		"missing key file":   {[]string{"ROTATOR_MASTER_KEY_FILE=/nonexistent/master.key"}, "/nonexistent/master.key"},
		"both":               {[]string{"ROTATOR_MASTER_KEY=" + good, "ROTATOR_MASTER_KEY_FILE=/x"}, "set only one"},
		"malformed previous": {[]string{"ROTATOR_MASTER_KEY=" + good, "ROTATOR_MASTER_KEY_PREVIOUS=" + canary}, "ROTATOR_MASTER_KEY_PREVIOUS entry 1"},
		"previous alone":     {[]string{"ROTATOR_MASTER_KEY_PREVIOUS=" + canary}, "ROTATOR_MASTER_KEY_PREVIOUS entry 1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, "sqlite", tc.env...)
			for _, args := range [][]string{
				{"credentials", "list"}, {"runs", "list"}, {"migrate"}, {"apply", "-f", quickstartPath},
				{"rotate", "notes-api-key", "--wait"}, {"serve", "--listen", "127.0.0.1:0"}, {"version"},
			} {
				r := c.must(t, 2, args...)
				if !strings.Contains(r.stderr, tc.says) {
					t.Errorf("stderr does not say %q:\n%s", tc.says, r)
				}
				if strings.Contains(r.stderr+r.stdout, canary) {
					t.Errorf("the malformed value is echoed:\n%s", r)
				}
			}
			if names := dirFiles(t, c.dir); len(names) != 0 {
				t.Errorf("files were created: %v", names)
			}
		})
	}
	_ = os.Getpid
}
