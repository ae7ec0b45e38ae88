package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Commands that only read never create the database they are pointed at:
// on a directory without rotator.db they fail (exit 2) naming the file and
// the fix, and leave nothing behind.
func TestReadOnlyCommandsNeedTheDatabase(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"credentials", "list"},
		{"credentials", "show", "notes-api-key"},
		{"runs", "list"},
		{"runs", "show", "01ABC"},
		{"audit", "list"},
		{"audit", "verify"},
		{"report"},
		{"runbooks", "check"},
		{"rotate", "notes-api-key"},
		{"rotate", "--all", "--wait"},
		{"keys", "rotate"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, "sqlite")
			r := c.must(t, 2, args...)
			for _, want := range []string{"no database at " + c.path("rotator.db"), "rotator apply -f FILE", "rotator migrate", "--database", "ROTATOR_DATABASE_URL"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, r)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout is not empty:\n%s", r)
			}
			if names := dirFiles(t, c.dir); len(names) != 0 {
				t.Errorf("the command left %v in its directory", names)
			}
		})
	}
}

// dirFiles lists the regular files directly in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

// --database (or ROTATOR_DATABASE_URL) takes an SQLite path as well as a
// URL, the flag wins over the variable, and the generated master key goes
// beside the database the command uses.
func TestDatabaseFlag(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))

	c.must(t, 0, "apply", "-f", "rotator.yaml", "--database", "state/inventory.db")
	c.must(t, 0, "rotate", "notes-api-key", "--wait", "--database", "./state/inventory.db")
	for _, f := range []string{"state/inventory.db", "state/inventory.db.key"} {
		if !fileExists(c.path(f)) {
			t.Errorf("%s was not created", f)
		}
	}
	// Nothing under the default name.
	if fileExists(c.path("rotator.db")) || fileExists(c.path("rotator.db.key")) {
		t.Error("--database also created ./rotator.db or its key")
	}
	key := readFile(t, c.path("state", "inventory.db.key"))

	// The same database through every form, with the flag first.
	abs := c.path("state", "inventory.db")
	other := c.with("ROTATOR_DATABASE_URL=elsewhere.db")
	for _, args := range [][]string{
		{"--database", abs},
		{"--database", "sqlite://" + abs},
		{"--database", "file:state/inventory.db"},
	} {
		r := other.must(t, 0, append([]string{"credentials", "list", "-o", "json"}, args...)...)
		if !strings.Contains(r.stdout, "notes-api-key") {
			t.Errorf("credentials list %v does not list notes-api-key:\n%s", args, r)
		}
	}
	viaEnv := c.with("ROTATOR_DATABASE_URL=state/inventory.db")
	if r := viaEnv.must(t, 0, "runs", "list", "-o", "json"); !strings.Contains(r.stdout, "notes-api-key") {
		t.Errorf("runs list through ROTATOR_DATABASE_URL=state/inventory.db does not show the run:\n%s", r)
	}
	if fileExists(c.path("elsewhere.db")) {
		t.Error("the flag did not win over ROTATOR_DATABASE_URL")
	}
	if got := readFile(t, c.path("state", "inventory.db.key")); got != key {
		t.Error("the key file changed")
	}

	// A missing database named by the flag or the variable says so.
	r := c.must(t, 2, "credentials", "list", "--database", "nope.db")
	if !strings.Contains(r.stderr, c.path("nope.db")) || !strings.Contains(r.stderr, "named by --database") {
		t.Errorf("stderr does not name nope.db and the flag:\n%s", r)
	}
	r = other.must(t, 2, "credentials", "list")
	if !strings.Contains(r.stderr, c.path("elsewhere.db")) || !strings.Contains(r.stderr, "named by ROTATOR_DATABASE_URL") {
		t.Errorf("stderr does not name elsewhere.db and the variable:\n%s", r)
	}
	// An unknown scheme is a usage error that shows no password.
	r = c.must(t, 2, "credentials", "list", "--database", "mysql://root:hunter2@db/rotator")
	if !strings.Contains(r.stderr, `unknown database URL scheme "mysql"`) || strings.Contains(r.stderr, "hunter2") {
		t.Errorf("stderr:\n%s", r)
	}
	// migrate creates a database and names it.
	r = c.must(t, 0, "migrate", "--database", "new/fresh.db")
	if !strings.Contains(r.stdout, c.path("new", "fresh.db")) || !fileExists(c.path("new", "fresh.db")) {
		t.Errorf("migrate --database new/fresh.db:\n%s", r)
	}
}

// with returns a CLI in the same directory whose environment has each
// "NAME=value" of changes set (replacing NAME), and each bare "NAME" unset.
func (c *cli) with(changes ...string) *cli {
	env := append([]string(nil), c.env...)
	for _, ch := range changes {
		name, _, _ := strings.Cut(ch, "=")
		kept := env[:0]
		for _, kv := range env {
			if !strings.HasPrefix(kv, name+"=") {
				kept = append(kept, kv)
			}
		}
		env = kept
		if strings.Contains(ch, "=") {
			env = append(env, ch)
		}
	}
	return &cli{dir: c.dir, env: env}
}

// in returns a CLI with c's environment in another directory.
func (c *cli) in(dir string) *cli {
	return &cli{dir: dir, env: append([]string(nil), c.env...)}
}

// envValue returns the value of NAME in c's environment ("" if unset).
func (c *cli) envValue(name string) string {
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
