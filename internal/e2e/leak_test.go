package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testpg"
)

// TestLeakSweep rotates credentials of every provider that needs no
// network beyond this machine (generated, exec, oauth2-client-credentials,
// postgres-role, redis-acl) through the file target, with the service and
// with the CLI alone, then looks for every secret the run handled — the
// values of every version, and the secrets the configuration references
// (an OAuth client secret, a Postgres admin password, a Redis admin
// password), each also in base64 and hex — in everything rotator wrote
// that is not meant to hold a value: every line of output and log of every
// command (text, json, yaml, wide; debug logs; JSON logs), every column of
// every table other than the sealed values, the raw database files, the
// reports in every format and the audit log. Only the file targets (whose
// job is to hold the values) are exempt. Expected: no occurrence.
func TestLeakSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteDB, 0)
	ctx := t.Context()
	tag := leakTag()

	// The secrets the configuration references: canaries.
	oauthSecret := "canary-oauth-client-secret-" + tag
	pgAdminPassword := "canary-pg-admin-password-" + tag
	redisAdminPassword := "canary-redis-admin-password-" + tag

	// An OAuth token endpoint that accepts the canary client secret.
	ts := &tokenServer{}
	ts.set(oauthSecret)
	oauth := httptest.NewServer(ts)
	t.Cleanup(oauth.Close)

	// A Postgres admin role that logs in with a password (members of
	// rotator_test_password_auth authenticate by SCRAM, see
	// scripts/test-services.sh), and a group role for the login roles.
	admin, group := "leak_adm_"+tag, "leak_grp_"+tag
	pgExec(t, testpg.ServerURL(),
		"CREATE ROLE "+admin+" LOGIN SUPERUSER IN ROLE rotator_test_password_auth PASSWORD '"+pgAdminPassword+"'",
		"CREATE ROLE "+group+" NOLOGIN")
	t.Cleanup(func() {
		pgExec(t, testpg.ServerURL(),
			"DROP ROLE IF EXISTS "+group+"_a", "DROP ROLE IF EXISTS "+group+"_b",
			"DROP ROLE IF EXISTS "+group, "DROP ROLE IF EXISTS "+admin)
	})
	su, err := url.Parse(testpg.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	su.User = url.UserPassword(admin, pgAdminPassword)
	pgAdminDSN := su.String()

	// A Redis admin user with a password, and the user whose password
	// rotates.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = rdb.Close() })
	radmin, ruser := "leak-adm-"+tag, "leak-user-"+tag
	if err := rdb.Do(ctx, "ACL", "SETUSER", radmin, "on", ">"+redisAdminPassword, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("redis (is it running? scripts/test-services.sh starts it): %v", err)
	}
	t.Cleanup(func() { _ = rdb.Do(context.Background(), "ACL", "DELUSER", radmin, ruser).Err() })

	// The exec provider's example plugin.
	plugin := filepath.Join(h.dir, "apikeys")
	if out, err := exec.Command("go", "build", "-o", plugin, "github.com/rotatorhq/rotator/examples/plugins/apikeys").CombinedOutput(); err != nil {
		t.Fatalf("building the apikeys plugin: %v\n%s", err, out)
	}

	writeFile(t, filepath.Join(h.dir, "rotator.yaml"), fmt.Sprintf(`
providers:
  gen: {type: generated, length: 40}
  keys:
    type: exec
    command: [%q, --file, %q]
    timeout: 20s
    overlap: true
    revocable: true
  oauth:
    type: oauth2-client-credentials
    token_url: %s/token
    client_id: mcp-gateway
    client_secret: ${env:LEAK_OAUTH_SECRET}
    scopes: [notes:read]
  pg:
    type: postgres-role
    admin_dsn: ${env:LEAK_PG_DSN}
    strategy: alternating
  cache:
    type: redis-acl
    addr: 127.0.0.1:6379
    username: %s
    password: ${env:LEAK_REDIS_PASSWORD}
targets:
  env-file: {type: file, path: %q, format: dotenv}
  json-file: {type: file, path: %q, format: json}
credentials:
  - {id: gen-token, consumer: mcp-a, provider: gen, max_age: 1h, grace: 1m, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: GEN_TOKEN}]}
  - {id: api-key, consumer: mcp-b, provider: keys, max_age: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: API_KEY}]}
  - {id: oauth-token, consumer: mcp-c, provider: oauth, scope: [notes:read], max_age: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: json-file, key: token}]}
  - {id: db-url, consumer: mcp-d, provider: pg, settings: {role: %s}, max_age: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: json-file, key: db}]}
  - {id: redis-password, consumer: mcp-e, provider: cache, settings: {user: %s, rules: "~leak:* +get"}, max_age: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: REDIS_PASSWORD}]}
`, plugin, filepath.Join(h.dir, "keys.json"), oauth.URL, radmin,
		filepath.Join(h.dir, "out", "mcp.env"), filepath.Join(h.dir, "out", "mcp.json"), group, ruser))

	h.extraEnv = []string{"LEAK_OAUTH_SECRET=" + oauthSecret, "LEAK_PG_DSN=" + pgAdminDSN, "LEAK_REDIS_PASSWORD=" + redisAdminPassword}
	var outputs []leakOutput
	// run runs a command that must succeed, or exit 1 when mayFail says
	// so (runbooks check finds the test runbook without front matter).
	runAll := func(mayFail bool, args ...string) (string, string) {
		t.Helper()
		stdout, stderr, err := h.cliSplit(args...)
		outputs = append(outputs, leakOutput{"rotator " + strings.Join(args, " "), stdout + stderr})
		var ee *exec.ExitError
		if err != nil && !(mayFail && errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("rotator %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
		return stdout, stderr
	}
	// Retirement erases a version's value from the database, so the values
	// are also harvested from the file targets after every command: by the
	// end they hold every value each rotation published.
	published := map[string]bool{}
	harvest := func() {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(h.dir, "out", "mcp.env")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && k != "" && !strings.HasPrefix(k, "#") {
					if uq, err := strconv.Unquote(v); err == nil {
						v = uq
					}
					published[v] = true
				}
			}
		}
		if b, err := os.ReadFile(filepath.Join(h.dir, "out", "mcp.json")); err == nil {
			var m map[string]string
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("the JSON target: %v", err)
			}
			for _, v := range m {
				published[v] = true
			}
		}
	}
	run := func(args ...string) string {
		t.Helper()
		stdout, _ := runAll(false, args...)
		harvest()
		return stdout
	}
	debug := []string{"--log-level", "debug"}
	run(append(debug, "apply", "-f", "rotator.yaml", "--dry-run")...)
	run(append(debug, "apply", "-f", "rotator.yaml")...)
	// The CLI alone executes the first rotations (and retires at once
	// what has no grace).
	run(append(debug, "rotate", "--all", "--wait", "-o", "json")...)
	run(append(debug, "--log-format", "json", "rotate", "--all", "--wait=retired", "--timeout", "3m")...)
	run(append(debug, "rotate", "db-url", "--emergency", "--reason", "leak sweep", "--wait", "-o", "yaml")...)

	// Then the service, with JSON debug logs, executes one more of each.
	srv := h.start("serve", append(debug, "--log-format", "json", "serve", "-f", "rotator.yaml", "--listen", "127.0.0.1:0")...)
	waitFor(t, time.Minute, "serve to start", func() (bool, error) {
		return strings.Contains(srv.log(), "rotator serving"), nil
	})
	waitFor(t, time.Minute, "the CLI to hand rotations to the service", func() (bool, error) {
		_, stderr := runAll(false, append(debug, "rotate", "--all", "--wait")...)
		return strings.Contains(stderr, "queued for the running service"), nil
	})
	if err := srv.stop(30 * time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	outputs = append(outputs, leakOutput{"rotator serve (log)", srv.log()})

	// Every read-only command, in every output format.
	for _, args := range [][]string{
		{"credentials", "list"}, {"credentials", "list", "-o", "json"}, {"credentials", "list", "-o", "yaml"}, {"credentials", "list", "-o", "wide"},
		{"runs", "list"}, {"runs", "list", "-o", "json"}, {"runs", "list", "-o", "yaml"},
		{"audit", "verify"}, {"audit", "verify", "-o", "json"}, {"audit", "list", "-o", "json"}, {"audit", "list"},
		{"report", "-o", "md"}, {"report", "-o", "html"}, {"report", "-o", "json"}, {"report", "-o", "csv"},
		{"keys", "rotate", "--dry-run"},
	} {
		run(append(debug, args...)...)
	}
	runAll(true, append(debug, "runbooks", "check")...)
	runAll(true, append(debug, "runbooks", "check", "-o", "json")...)
	for _, id := range []string{"gen-token", "api-key", "oauth-token", "db-url", "redis-password"} {
		for _, o := range []string{"text", "json", "yaml"} {
			run(append(debug, "credentials", "show", id, "-o", o)...)
		}
	}
	runs, err := h.st.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		for _, o := range []string{"text", "json", "md"} {
			run(append(debug, "runs", "show", r.ID, "-o", o)...)
		}
	}

	// What the runs handled: every version's value.
	lc := &leakCheck{outputs: outputs}
	lc.secret("oauth client secret", oauthSecret)
	lc.secret("postgres admin password", pgAdminPassword)
	lc.secret("redis admin password", redisAdminPassword)
	versions := lc.storedValues(t, h, "gen-token", "api-key", "oauth-token", "db-url", "redis-password")
	n := lc.published(published)
	// Five credentials rotated three times, db-url once more.
	if versions < 5 || n < 16 {
		t.Fatalf("%d versions hold values and %d values were published; the sweep would prove little", versions, n)
	}
	// The file targets do hold the current values: the sweep can fail.
	found := 0
	for _, f := range []string{filepath.Join(h.dir, "out", "mcp.env"), filepath.Join(h.dir, "out", "mcp.json")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found += len(lc.search(leakOutput{f, string(b)}))
	}
	if found < 5 {
		t.Fatalf("the file targets hold %d of the secrets, want the 5 current values: the search does not find what is there", found)
	}

	// The database, column by column (the sealed values aside), and its
	// files byte by byte.
	lc.database(t, h, func(p string) bool {
		return p == plugin || strings.HasPrefix(p, filepath.Join(h.dir, "out")+string(os.PathSeparator)) // the plugin binary; the targets' files
	})
	lc.check(t)
}

type leakOutput struct{ where, text string }

// leakCheck gathers what a leak test searched (outputs) and what it
// searches for (secrets, by name), and searches every output for every
// secret, raw, in base64 (standard and URL-safe) and in hex, and for any
// string shaped like a rotator API token (internal/secret's
// rotator-api-token rule), known to the test or not.
type leakCheck struct {
	outputs []leakOutput
	secrets map[string]string
	// meant are outputs that hold a secret by design: check fails unless
	// the search finds one in each, the proof that it finds what is there.
	meant []leakOutput
}

// add records an output to search.
func (c *leakCheck) add(where, text string) {
	c.outputs = append(c.outputs, leakOutput{where, text})
}

// secret records a secret to search for; a URL's password is searched
// for on its own too.
func (c *leakCheck) secret(name, value string) {
	if value == "" {
		return
	}
	if c.secrets == nil {
		c.secrets = map[string]string{}
	}
	c.secrets[name] = value
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			c.secrets[name+" (password in the URL)"] = p
		}
	}
	// A JSON value (an AWS access key) is searched for member by member
	// too, but for ids (AWS_ACCESS_KEY_ID), which may be shown.
	var m map[string]any
	if json.Unmarshal([]byte(value), &m) == nil {
		for k, v := range m {
			if s, ok := v.(string); ok && len(s) >= 8 && !strings.HasSuffix(strings.ToLower(k), "_id") {
				c.secrets[name+" (member "+k+")"] = s
			}
		}
	}
}

// storedValues records the value of every version of the credentials that
// still holds one (retirement erases them) and returns how many.
func (c *leakCheck) storedValues(t *testing.T, h *harness, ids ...string) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		vs, err := h.st.ListVersions(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if len(v.Sealed) == 0 {
				continue // retired and revoked: the value is gone
			}
			c.secret(id+" version "+v.ID, h.open(v))
			n++
		}
	}
	return n
}

// published records values harvested from targets and returns how many.
func (c *leakCheck) published(values map[string]bool) int {
	n := 0
	for v := range values {
		if v == "" {
			continue
		}
		c.secret(fmt.Sprintf("published value %d", n), v)
		n++
	}
	return n
}

// database records every column of every table of the harness's SQLite
// database (the sealed values aside) and every file under the harness
// directory but those skip names (files whose job is to hold values).
func (c *leakCheck) database(t *testing.T, h *harness, skip func(path string) bool) {
	t.Helper()
	c.outputs = append(c.outputs, dumpSQLite(t, strings.TrimPrefix(h.url, "sqlite://"))...)
	err := filepath.WalkDir(h.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || skip(p) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		c.add("file "+strings.TrimPrefix(p, h.dir+"/"), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// search returns what o holds of the secrets, one line per finding, the
// secret itself masked.
func (c *leakCheck) search(o leakOutput) []string {
	var out []string
	for name, s := range c.secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)), hex.EncodeToString([]byte(s))} {
			if i := strings.Index(o.text, form); i >= 0 {
				out = append(out, fmt.Sprintf("%s: holds the %s (at byte %d: %q)", o.where, name, i, context80(o.text, i, len(form))))
			}
		}
	}
	for _, m := range tokenRule.FindAll(o.text, true) {
		out = append(out, fmt.Sprintf("%s: holds an API token (at byte %d: %q)", o.where, m.Start, context80(o.text, m.Start, m.End-m.Start)))
	}
	return out
}

// expect records an output meant to hold a secret (a consume response,
// what a child process was given): check fails unless it finds one there.
func (c *leakCheck) expect(where, text string) {
	c.meant = append(c.meant, leakOutput{where, text})
}

// check reports every finding in every output.
func (c *leakCheck) check(t *testing.T) {
	t.Helper()
	for _, o := range c.meant {
		if len(c.search(o)) == 0 {
			t.Errorf("%s: holds none of the %d secrets, and should hold one: the search does not find what is there", o.where, len(c.secrets))
		}
	}
	checked := 0
	for _, o := range c.outputs {
		checked += len(o.text)
		for _, f := range c.search(o) {
			t.Error(f)
		}
	}
	t.Logf("searched %d outputs (%d bytes) for %d secrets, each raw, base64 and hex, and for API tokens; found one in each of the %d outputs meant to hold one",
		len(c.outputs), checked, len(c.secrets), len(c.meant))
	if len(c.meant) == 0 {
		t.Log("(no output meant to hold a secret was given: the caller proves the search on its own)")
	}
}

// tokenRule finds rotator API tokens (rtrtok_...) by their shape.
var tokenRule = secret.RuleByID("rotator-api-token")

// context80 shows what surrounds a finding, with the finding itself
// masked, so the failure message does not print the secret again.
func context80(s string, i, n int) string {
	from, to := max(i-40, 0), min(i+n+40, len(s))
	return s[from:i] + "<SECRET>" + s[i+n:to]
}

// dumpSQLite renders every column of every row of every table, except the
// sealed values, as text.
func dumpSQLite(t *testing.T, path string) []leakOutput {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var out []leakOutput
	for _, tb := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var b strings.Builder
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if tb == "versions" && cols[i] == "sealed" {
					continue
				}
				fmt.Fprintf(&b, "%s=%s\n", cols[i], v)
			}
		}
		rows.Close()
		out = append(out, leakOutput{"table " + tb, b.String()})
	}
	if len(tables) < 5 {
		t.Fatalf("only %d tables in %s", len(tables), path)
	}
	return out
}

// pgExec runs statements on a Postgres server as its admin.
func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(s, " PASSWORD", 2)[0], err)
		}
	}
}

// cliSplit is cli returning standard output and standard error apart.
func (h *harness) cliSplit(args ...string) (string, string, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, args...)
	cmd.Dir = h.dir
	cmd.Env = h.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}
