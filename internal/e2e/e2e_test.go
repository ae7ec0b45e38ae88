// Package e2e runs the rotator binary as real processes against real
// databases (SQLite files and the test Postgres): crash safety when a
// serve process is killed mid-run, several replicas sharing one database
// (and starting together on an empty one), the quickstart example and the
// memory of applying 100,000 credentials. TestMain builds the binary once.
//
// The long tests (replicas, quickstart, big apply) are behind the soak
// build tag:
//
//	go test -race -count=1 ./internal/e2e/                       # crash safety
//	go test -tags soak -run Replicas -v -timeout 10m ./internal/e2e/
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/rotation"
)

var (
	// rotatorBin is the binary built by TestMain.
	rotatorBin string
	// masterKey is the ROTATOR_MASTER_KEY of every process of the run.
	masterKey string
)

// buildMain builds the binary before the tests and removes it after; it
// is what goleak.VerifyTestMain runs (VerifyTestMain exits, so cleanup
// must happen inside Run).
type buildMain struct{ inner testpg.Main }

func (b buildMain) Run() int {
	// The tests mostly wait on child processes (River's leader TTL, its
	// rescuer), not on the CPU: run them all at once unless -parallel says
	// otherwise.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "32")
	}
	dir, err := os.MkdirTemp("", "rotator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rotatorBin = filepath.Join(dir, "rotator")
	cmd := exec.Command("go", "build", "-o", rotatorBin, "github.com/rotatorhq/rotator/cmd/rotator")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the rotator binary:", err)
		return 1
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	masterKey = base64.StdEncoding.EncodeToString(key)
	return b.inner.Run()
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(buildMain{testpg.M(m)}) }

// Database kinds.
const (
	sqliteDB   = "sqlite"
	postgresDB = "postgres"
)

var databases = []string{sqliteDB, postgresDB}

// harness is one database, a working directory and the processes of one test.
type harness struct {
	t    *testing.T
	dir  string
	kind string
	// url is what children get as ROTATOR_DATABASE_URL.
	url string
	st  store.Store
	kr  secret.Keyring
	// extraEnv is added to every child's environment.
	extraEnv []string
}

// newHarness creates a fresh database of the given kind, migrates it (with
// River's tables) and opens it for the test's own reads. maxConns caps the
// Postgres pool of each child (0: the default), to keep many parallel
// tests under the server's connection limit.
func newHarness(t *testing.T, kind string, maxConns int) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), kind: kind}
	testURL := ""
	switch kind {
	case sqliteDB:
		h.url = "sqlite://" + filepath.Join(h.dir, "rotator.db")
		testURL = h.url
	case postgresDB:
		h.url = testpg.New(t)
		testURL = withQuery(t, h.url, "pool_max_conns", "1")
		if maxConns > 0 {
			h.url = withQuery(t, h.url, "pool_max_conns", fmt.Sprint(maxConns))
		}
	default:
		t.Fatalf("unknown database kind %q", kind)
	}
	ctx := context.Background()
	// Migrate (with a default pool: migrations hold a lock on one
	// connection and work on another), then keep a small pool for reads.
	mig, err := storeopen.Open(ctx, h.url)
	if err != nil {
		t.Fatal(err)
	}
	err = rotation.Migrate(ctx, mig)
	_ = mig.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err := storeopen.Open(ctx, testURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h.st = st
	kr, _, err := secret.LoadMasterKey(secret.MasterKeyOptions{LookupEnv: func(k string) (string, bool) {
		if k == secret.EnvMasterKey {
			return masterKey, true
		}
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.kr = kr
	// The runbook every test configuration links.
	writeFile(t, filepath.Join(h.dir, "runbooks", "e2e.md"), "# End-to-end tests\n\n## Rotation\n\nNothing to do by hand: the test drives every step.\n")
	return h
}

func withQuery(t *testing.T, raw, k, v string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// Write and rename, so a process reading the file (the faulty
	// provider's control file) never sees it half-written.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// env is the environment of a child process: the test's own without any
// ROTATOR_ variable, plus the database, the master key and the faulty
// provider switch.
func (h *harness) env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROTATOR_") {
			out = append(out, kv)
		}
	}
	return append(append(out,
		"ROTATOR_DATABASE_URL="+h.url,
		"ROTATOR_MASTER_KEY="+masterKey,
		"ROTATOR_ENABLE_FAULTY_PROVIDER=1",
	), h.extraEnv...)
}

// proc is a running rotator process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// start starts `rotator args...` in the harness directory, its output in
// <dir>/<name>.log. The process is killed when the test ends, and its log
// printed if the test failed.
func (h *harness) start(name string, args ...string) *proc {
	h.t.Helper()
	logPath := filepath.Join(h.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(rotatorBin, args...)
	cmd.Dir = h.dir
	cmd.Env = h.env()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		h.t.Fatal(err)
	}
	_ = f.Close()
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.t.Cleanup(func() {
		p.kill()
		if h.t.Failed() {
			h.t.Logf("--- log of %s (last 60 lines) ---\n%s", name, tail(p.log(), 60))
		}
	})
	return p
}

// serve starts `rotator serve -f config` with the given extra flags.
func (h *harness) serve(name, config string, flags ...string) *proc {
	h.t.Helper()
	args := append([]string{"serve", "-f", config, "--listen", "127.0.0.1:0"}, flags...)
	return h.start(name, args...)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for a clean exit; it kills
// the process after that and reports whether the exit was clean.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.name, timeout)
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cli runs a one-shot rotator command and returns its standard output.
func (h *harness) cli(args ...string) (string, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, args...)
	cmd.Dir = h.dir
	cmd.Env = h.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("rotator %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// waitFor polls cond every interval until it holds, failing the test after
// timeout. A cond error is remembered (the database may be briefly busy)
// and reported if the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runs returns the runs of a credential, oldest first.
func (h *harness) runs(credID string) ([]store.Run, error) {
	rs, err := h.st.ListRuns(context.Background(), store.RunFilter{CredentialID: credID})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	return rs, nil
}

// open returns the value of a version.
func (h *harness) open(v store.Version) string {
	h.t.Helper()
	if len(v.Sealed) == 0 {
		h.t.Fatalf("version %s (%s) holds no sealed value", v.ID, v.Stage)
	}
	val, err := h.kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
	if err != nil {
		h.t.Fatal(err)
	}
	return val.RevealString()
}

// riverJob is a row of River's job table.
type riverJob struct {
	State   string
	Attempt int
	Errors  string
	Args    string
}

// rotateJobs returns River's rotate jobs.
func (h *harness) rotateJobs() ([]riverJob, error) {
	ctx := context.Background()
	kind := rotation.RotateArgs{}.Kind()
	var out []riverJob
	switch db := h.st.Handle().(type) {
	case *pgxpool.Pool:
		rows, err := db.Query(ctx, `SELECT state::text, attempt, coalesce(array_to_string(errors, ','), ''), args::text FROM river_job WHERE kind = $1 ORDER BY id`, kind)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var j riverJob
			if err := rows.Scan(&j.State, &j.Attempt, &j.Errors, &j.Args); err != nil {
				return nil, err
			}
			out = append(out, j)
		}
		return out, rows.Err()
	case *sql.DB:
		rows, err := db.QueryContext(ctx, `SELECT state, attempt, coalesce(json(errors), ''), json(args) FROM river_job WHERE kind = ? ORDER BY id`, kind)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var j riverJob
			if err := rows.Scan(&j.State, &j.Attempt, &j.Errors, &j.Args); err != nil {
				return nil, err
			}
			out = append(out, j)
		}
		return out, rows.Err()
	}
	return nil, errors.New("unknown store handle")
}

// jobOf returns the rotate job of a run.
func (h *harness) jobOf(runID string) (riverJob, bool, error) {
	jobs, err := h.rotateJobs()
	if err != nil {
		return riverJob{}, false, err
	}
	for _, j := range jobs {
		if strings.Contains(j.Args, `"`+runID+`"`) {
			return j, true, nil
		}
	}
	return riverJob{}, false, nil
}

// readDotenv parses a dotenv file written by the file target.
func readDotenv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", path, s)
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out, sc.Err()
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// dirNames lists the names in a directory (none if it does not exist).
func dirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, err
}

// assertNoLeak fails if any of the values appears in a process's log.
func assertNoLeak(t *testing.T, procs []*proc, values ...string) {
	t.Helper()
	for _, p := range procs {
		log := p.log()
		for _, v := range values {
			if v != "" && strings.Contains(log, v) {
				t.Errorf("the log of %s contains a secret value", p.name)
			}
		}
	}
}
