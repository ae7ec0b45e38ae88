package mysqluser

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testproxy"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// adminDSN is the test server's administrative account: the machine's
// MariaDB (scripts/test-services.sh starts it), root without a password.
func adminDSN() string {
	if d := os.Getenv("ROTATOR_TEST_MYSQL_DSN"); d != "" {
		return d
	}
	return "root@tcp(127.0.0.1:3306)/"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func adminExec(t testing.TB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := mysql.ParseDSN(adminDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("admin %q: %v (is MariaDB up? scripts/test-services.sh starts it)", s, err)
		}
	}
}

// env is one test's database, with a table, and the role (alternating) or
// account (single) that may read it.
type env struct {
	name string // role or account, and database
}

func newEnv(t *testing.T, strategy string) *env {
	t.Helper()
	e := &env{name: "rtr_" + randomHex(5)}
	db := ident(e.name)
	adminExec(t,
		"CREATE DATABASE "+db,
		"CREATE TABLE "+db+".items (id int)",
		"INSERT INTO "+db+".items VALUES (1), (2)")
	if strategy == StrategySingle {
		adminExec(t, "CREATE USER "+account(e.name, "%")+" ACCOUNT LOCK",
			"GRANT SELECT ON "+db+".* TO "+account(e.name, "%"))
	} else {
		adminExec(t, "CREATE ROLE "+ident(e.name), "GRANT SELECT ON "+db+".* TO "+ident(e.name))
	}
	t.Cleanup(func() {
		adminExec(t,
			"DROP USER IF EXISTS "+account(e.name+"_a", "%"),
			"DROP USER IF EXISTS "+account(e.name+"_b", "%"),
			"DROP USER IF EXISTS "+account(e.name, "%"),
			"DROP ROLE IF EXISTS "+ident(e.name),
			"DROP DATABASE IF EXISTS "+db)
	})
	return e
}

func (e *env) checkQuery() string { return "SELECT count(*) FROM " + ident(e.name) + ".items" }

func (e *env) cred() settings.Map {
	return settings.Map{"user": e.name, "database": e.name, "check_query": e.checkQuery()}
}

// connect logs in as a consumer would, directly (not through any proxy).
func connect(ctx context.Context, v providers.VersionRef, fallbackUser, database string) (*sql.DB, error) {
	user, pw := credentials(v, fallbackUser)
	cfg, err := mysql.ParseDSN(adminDSN())
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Passwd, cfg.DBName, cfg.Logger = user, pw, database, nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func credentials(v providers.VersionRef, fallbackUser string) (user, password string) {
	if v.Metadata[MetaFormat] == FormatURL {
		u, err := url.Parse(v.Value.RevealString())
		if err != nil || u.User == nil {
			return "invalid", "invalid"
		}
		pw, _ := u.User.Password()
		return u.User.Username(), pw
	}
	user = v.Metadata[MetaLoginUser]
	if user == "" {
		user = fallbackUser
	}
	return user, v.Value.RevealString()
}

type resource struct {
	e     *env
	proxy *testproxy.Proxy
}

func (r *resource) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	db, err := connect(ctx, v, r.e.name, "")
	if isAuthFailure(err) {
		return false, nil
	}
	if err != nil {
		return false, errors.New("cannot reach the server")
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "SELECT 1")
	return err == nil, nil
}

// Stall implements providertest.Staller: the proxy in front of the server
// holds new connections without answering.
func (r *resource) Stall(t *testing.T) func() { return r.proxy.Stall() }

func newProvider(t *testing.T, s settings.Map, logger *slog.Logger) (*Provider, *testproxy.Proxy, secret.Value) {
	t.Helper()
	cfg, err := mysql.ParseDSN(adminDSN())
	if err != nil {
		t.Fatal(err)
	}
	px := testproxy.New(t, cfg.Addr)
	cfg.Addr = px.Addr()
	dsn := secret.NewString(cfg.FormatDSN())
	m := settings.Map{"admin_dsn": dsn}
	for k, v := range s {
		m[k] = v
	}
	prov, err := Factory().New(t.Context(), providers.Env{Name: "mysql-test", Settings: m, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prov.(*Provider).Close() })
	return prov.(*Provider), px, dsn
}

func TestExercise(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{StrategyAlternating, StrategySingle} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			providertest.Exercise(t, providertest.Harness{
				Factory:  Factory(),
				Scope:    []string{"SELECT on items"},
				Parallel: true,
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					e := newEnv(t, strategy)
					prov, px, dsn := newProvider(t, settings.Map{"strategy": strategy}, logger)
					return providertest.Instance{
						Provider: prov,
						Resource: &resource{e: e, proxy: px},
						Settings: e.cred(),
						Secrets:  []secret.Value{dsn},
					}
				},
			})
		})
	}
}

// rotate is one engine-ordered rotation: mint (with the current version),
// activate, verify; the caller publishes and later revokes.
func rotate(t *testing.T, p *Provider, cred settings.Map, n int, cur *providers.VersionRef) providers.VersionRef {
	t.Helper()
	ctx := t.Context()
	ver := fmt.Sprintf("v%03d", n)
	c := func(step string) providers.Common {
		return providers.Common{CredentialID: "reports-db", VersionID: ver, IdempotencyKey: fmt.Sprintf("run%03d/%s", n, step), Settings: cred}
	}
	m, err := p.Mint(ctx, providers.MintRequest{Common: c("mint"), Current: cur})
	if err != nil {
		t.Fatalf("rotation %d: mint: %v", n, err)
	}
	if _, err := p.Activate(ctx, providers.ActivateRequest{Common: c("activate"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatalf("rotation %d: activate: %v", n, err)
	}
	if _, err := p.Verify(ctx, providers.VerifyRequest{Common: c("verify"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatalf("rotation %d: verify: %v", n, err)
	}
	return providers.VersionRef{VersionID: ver, Value: m.Value, Metadata: m.Metadata}
}

// zeroDisruption runs 50 rotations with the strategy while 4 clients keep
// logging in with whatever value is published, and returns the result.
func zeroDisruption(t *testing.T, strategy string) (providertest.ZeroDisruptionResult, *env, *sync.Map) {
	e := newEnv(t, strategy)
	logs := &strings.Builder{}
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, _, _ := newProvider(t, settings.Map{"strategy": strategy}, logger)
	cred := e.cred()
	users := &sync.Map{}
	var minted []providers.VersionRef
	r := providertest.ZeroDisruption{
		Rotations: 50, Clients: 4,
		Rotate: func(n int, cur *providers.VersionRef) providers.VersionRef {
			next := rotate(t, p, cred, n, cur)
			minted = append(minted, next)
			if strategy == StrategyAlternating && cur != nil && next.Metadata[MetaLoginUser] == cur.Metadata[MetaLoginUser] {
				t.Fatalf("rotation %d reused account %s", n, cur.Metadata[MetaLoginUser])
			}
			return next
		},
		Revoke: func(n int, prev providers.VersionRef) {
			err := p.Revoke(t.Context(), providers.RevokeRequest{
				Common: providers.Common{CredentialID: "reports-db", VersionID: prev.VersionID, IdempotencyKey: fmt.Sprintf("run%03d/revoke_previous", n), Settings: cred},
				Value:  prev.Value, Metadata: prev.Metadata,
			})
			if err != nil {
				t.Fatalf("rotation %d: revoke previous: %v", n, err)
			}
		},
		Use: func(ctx context.Context, _ int, ref providers.VersionRef) error {
			db, err := connect(ctx, ref, e.name, e.name)
			if err != nil {
				return err
			}
			defer db.Close()
			var n int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
				return err
			}
			if n != 2 {
				return fmt.Errorf("check query returned %d, want 2", n)
			}
			user, _ := credentials(ref, e.name)
			users.Store(user, true)
			return nil
		},
		AuthFailure: isAuthFailure,
	}.Run(t)
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, v := range minted {
		_, pw := credentials(v, e.name)
		if strings.Contains(out, pw) {
			t.Fatalf("version %s's password appears in the provider's log", v.VersionID)
		}
	}
	return r, e, users
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestZeroDisruption: with alternating, no client sees an authentication
// failure over 50 rotations; with single, in the same loop, clients do
// (the old password dies at activation, before cutover), which shows the
// harness can see failures.
func TestZeroDisruption(t *testing.T) {
	t.Parallel()
	t.Run(StrategyAlternating, func(t *testing.T) {
		t.Parallel()
		r, e, users := zeroDisruption(t, StrategyAlternating)
		t.Logf("zero-disruption (mysql-user, alternating): 50 rotations, %d client connections, %d authentication failures", r.Attempts, r.AuthFailures)
		if r.AuthFailures != 0 {
			t.Fatalf("%d of %d client connections failed authentication during rotation", r.AuthFailures, r.Attempts)
		}
		if r.Attempts < 50 {
			t.Fatalf("only %d client connections over 50 rotations; the clients did not overlap the rotations", r.Attempts)
		}
		_, a := users.Load(e.name + "_a")
		_, b := users.Load(e.name + "_b")
		if !a || !b {
			t.Fatal("clients did not log in as both accounts")
		}
		res := &resource{e: e}
		if ok, err := res.Accepts(t.Context(), r.First); err != nil || ok {
			t.Fatalf("the first version still logs in after 50 rotations (ok=%v, err=%v)", ok, err)
		}
		if ok, err := res.Accepts(t.Context(), r.Last); err != nil || !ok {
			t.Fatalf("the current version does not log in (ok=%v, err=%v)", ok, err)
		}
	})
	t.Run(StrategySingle, func(t *testing.T) {
		t.Parallel()
		r, e, _ := zeroDisruption(t, StrategySingle)
		t.Logf("zero-disruption (mysql-user, single): 50 rotations, %d client connections, %d authentication failures", r.Attempts, r.AuthFailures)
		if r.AuthFailures == 0 {
			t.Fatalf("no authentication failure in %d client connections over 50 single rotations: the loop cannot see the window between activation and cutover", r.Attempts)
		}
		res := &resource{e: e}
		if ok, err := res.Accepts(t.Context(), r.Last); err != nil || !ok {
			t.Fatalf("the current version does not log in (ok=%v, err=%v)", ok, err)
		}
	})
}

func TestMintAlternates(t *testing.T) {
	t.Parallel()
	p, err := New(Config{AdminDSN: secret.NewString("admin:adminpw-canary@tcp(db.internal:3307)/app?tls=true")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cred := settings.Map{"user": "mcp_reports", "database": "reports"}
	m1, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred},
		Current: &providers.VersionRef{Metadata: map[string]string{MetaLoginUser: "mcp_reports_b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Metadata[MetaLoginUser] != "mcp_reports_a" || m1.Metadata[MetaHost] != "%" {
		t.Fatalf("metadata %v", m1.Metadata)
	}
	u, err := url.Parse(m1.Value.RevealString())
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "mysql" || u.User.Username() != "mcp_reports_a" || len(pw) != 32 || u.Host != "db.internal:3307" || u.Path != "/reports" {
		t.Fatalf("url value has scheme %q user %q, %d-char password, host %q, path %q", u.Scheme, u.User.Username(), len(pw), u.Host, u.Path)
	}
	if strings.Contains(m1.Value.RevealString(), "adminpw") {
		t.Fatal("the published URL carries the admin password")
	}
	cur := providers.VersionRef{Value: m1.Value, Metadata: m1.Metadata}
	m2, _ := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}, Current: &cur})
	if m2.Metadata[MetaLoginUser] != "mcp_reports_b" {
		t.Fatalf("second account %q", m2.Metadata[MetaLoginUser])
	}
	single, _ := New(Config{AdminDSN: secret.NewString("root@unix(/run/mysqld/mysqld.sock)/"), Strategy: StrategySingle}, nil)
	m, err := single.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: settings.Map{"user": "app"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Metadata[MetaLoginUser] != "app" || m.Value.Len() != 32 || strings.Contains(m.Value.RevealString(), "/") {
		t.Fatalf("single mint: account %q, %d bytes", m.Metadata[MetaLoginUser], m.Value.Len())
	}
	if single.Capabilities().Overlap || !p.Capabilities().Overlap || !single.Capabilities().Revocable {
		t.Fatal("single must not claim overlap; alternating must; both revoke")
	}
	withURL, _ := New(Config{AdminDSN: secret.NewString("root@unix(/run/mysqld/mysqld.sock)/"), Strategy: StrategySingle, Format: FormatURL}, nil)
	m, _ = withURL.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: settings.Map{"user": "app", "database": "d"}}})
	u, _ = url.Parse(m.Value.RevealString())
	if u.Query().Get("socket") != "/run/mysqld/mysqld.sock" || u.Path != "/d" {
		t.Fatalf("socket URL %q %q", u.Path, u.RawQuery)
	}
}

func TestMintWithoutCurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, StrategyAlternating)
	p, _, _ := newProvider(t, settings.Map{}, nil)
	mint := func() string {
		t.Helper()
		m, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: e.cred()}})
		if err != nil {
			t.Fatal(err)
		}
		return m.Metadata[MetaLoginUser]
	}
	if got := mint(); got != e.name+"_a" {
		t.Fatalf("no accounts yet: got %s, want _a", got)
	}
	// Consumers are using _a (no current version known): go to _b.
	adminExec(t, "CREATE USER "+account(e.name+"_a", "%")+" IDENTIFIED BY 'Consumer-In-Use-1'")
	if got := mint(); got != e.name+"_b" {
		t.Fatalf("_a can log in: got %s, want _b", got)
	}
	adminExec(t, "CREATE USER "+account(e.name+"_b", "%")+" IDENTIFIED BY 'Consumer-In-Use-2'")
	if got := mint(); got != e.name+"_a" {
		t.Fatalf("both can log in: got %s, want _a", got)
	}
	adminExec(t, "ALTER USER "+account(e.name+"_a", "%")+" ACCOUNT LOCK")
	if got := mint(); got != e.name+"_a" {
		t.Fatalf("_a is locked: got %s, want _a", got)
	}
}

func TestActivateNeedsRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, StrategyAlternating)
	p, _, _ := newProvider(t, settings.Map{}, nil)
	cred := settings.Map{"user": e.name + "_x"}
	t.Cleanup(func() { adminExec(t, "DROP USER IF EXISTS "+account(e.name+"_x_a", "%")) })
	m, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: m.Value, Metadata: m.Metadata})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "CREATE ROLE") {
		t.Fatalf("err = %v", err)
	}
	single, _, _ := newProvider(t, settings.Map{"strategy": StrategySingle}, nil)
	cred = settings.Map{"user": e.name + "_missing"}
	m, _ = single.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}})
	_, err = single.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: m.Value, Metadata: m.Metadata})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), m.Value.RevealString()) {
		t.Fatalf("err = %v", err)
	}
}

func TestBadAdminDSN(t *testing.T) {
	t.Parallel()
	const canary = "canary-admin-password-1234567"
	_, err := Factory().New(t.Context(), providers.Env{Name: "my", Settings: settings.Map{"admin_dsn": secret.NewString("u:" + canary + "@tcp(host:3306/db")}})
	if err == nil || !errors.Is(err, providers.ErrPermanent) || strings.Contains(err.Error(), canary) {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	provider := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"minimal":     {settings.Map{"admin_dsn": "${file:/run/secrets/my}"}, nil},
		"full":        {settings.Map{"admin_dsn": "${env:MY}", "strategy": "single", "password_length": 48, "check_query": "SELECT 1", "format": "url", "max_admin_connections": 8}, nil},
		"no dsn":      {settings.Map{"strategy": "single"}, []string{"admin_dsn"}},
		"bad":         {settings.Map{"admin_dsn": "${env:MY}", "strategy": "rolling"}, []string{"strategy"}},
		"short":       {settings.Map{"admin_dsn": "${env:MY}", "password_length": 8}, []string{"password_length"}},
		"empty check": {settings.Map{"admin_dsn": "${env:MY}", "check_query": " "}, []string{"check_query"}},
		"bad format":  {settings.Map{"admin_dsn": "${env:MY}", "format": "dsn"}, []string{"format"}},
		"no pool":     {settings.Map{"admin_dsn": "${env:MY}", "max_admin_connections": 0}, []string{"max_admin_connections"}},
		"unknown":     {settings.Map{"admin_dsn": "${env:MY}", "user": "x"}, []string{"user"}},
	}
	for name, tc := range provider {
		var got []string
		for _, e := range ValidateProvider(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("provider %s: error fields %v, want %v", name, got, tc.fields)
		}
	}
	cred := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"user":      {settings.Map{"user": "mcp_reports"}, nil},
		"full":      {settings.Map{"user": "mcp_reports", "host": "10.0.%", "database": "reports", "check_query": "SELECT 1 FROM t LIMIT 1"}, nil},
		"no user":   {settings.Map{}, []string{"user"}},
		"too long":  {settings.Map{"user": strings.Repeat("u", 31)}, []string{"user"}},
		"quote":     {settings.Map{"user": "a'b"}, []string{"user"}},
		"backslash": {settings.Map{"user": "ab", "host": `h\`}, []string{"host"}},
		"empty":     {settings.Map{"user": "ab", "host": ""}, []string{"host"}},
		"database":  {settings.Map{"user": "ab", "database": "a`b"}, []string{"database"}},
		"unknown":   {settings.Map{"user": "x", "strategy": "single"}, []string{"strategy"}},
	}
	for name, tc := range cred {
		var got []string
		for _, e := range ValidateCredential(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("credential %s: error fields %v, want %v", name, got, tc.fields)
		}
	}
}

func TestNativeHashMatchesServer(t *testing.T) {
	t.Parallel()
	const pw = "Correct-Horse-Battery-Staple-42"
	cfg, _ := mysql.ParseDSN(adminDSN())
	cfg.Logger = nopLogger{}
	c, _ := mysql.NewConnector(cfg)
	db := sql.OpenDB(c)
	defer db.Close()
	var h string
	if err := db.QueryRowContext(t.Context(), "SELECT PASSWORD(?)", pw).Scan(&h); err != nil {
		t.Fatal(err)
	}
	if nativeHash(pw) != h || nativeHash(pw+"x") == h {
		t.Fatalf("nativeHash disagrees with the server: %s vs %s", nativeHash(pw), h)
	}
}

// TestPasswordNotInGeneralLog turns the server's general query log on (to a
// file of this test, for a moment; the previous settings are restored) and
// runs rotations: the log must record a control statement with a canary
// password sent without sql_log_off (so the check can fail: MariaDB writes
// ALTER USER … IDENTIFIED BY verbatim), and none of the rotations'
// passwords. Not parallel: it changes global server settings.
func TestPasswordNotInGeneralLog(t *testing.T) {
	e := newEnv(t, StrategyAlternating)
	f, err := os.CreateTemp("", "rotator-mysql-general-*.log")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	// The server writes the file as its own user.
	if err := os.Chmod(f.Name(), 0o666); err != nil {
		t.Fatal(err)
	}
	var oldOn, oldFile, oldOutput string
	cfg, _ := mysql.ParseDSN(adminDSN())
	cfg.Logger = nopLogger{}
	c, _ := mysql.NewConnector(cfg)
	db := sql.OpenDB(c)
	defer db.Close()
	if err := db.QueryRowContext(t.Context(), "SELECT @@global.general_log, @@global.general_log_file, @@global.log_output").Scan(&oldOn, &oldFile, &oldOutput); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		adminExec(t, "SET GLOBAL general_log = "+oldOn, "SET GLOBAL general_log_file = "+literal(oldFile), "SET GLOBAL log_output = "+literal(oldOutput))
	}
	t.Cleanup(restore)
	adminExec(t, "SET GLOBAL log_output = 'FILE'", "SET GLOBAL general_log_file = "+literal(f.Name()), "SET GLOBAL general_log = 1")

	const control = "Canary7Control7Password"
	t.Cleanup(func() { adminExec(t, "DROP USER IF EXISTS "+account(e.name+"_ctl", "%")) })
	adminExec(t, "CREATE USER "+account(e.name+"_ctl", "%")+" IDENTIFIED BY "+literal(control))

	p, _, _ := newProvider(t, settings.Map{}, nil)
	v1 := rotate(t, p, e.cred(), 1, nil)
	v2 := rotate(t, p, e.cred(), 2, &v1)
	if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: providers.Common{Settings: e.cred()}, Value: v1.Value, Metadata: v1.Metadata}); err != nil {
		t.Fatal(err)
	}
	restore()
	logged, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), control) {
		t.Fatalf("the general log (%d bytes) does not hold the control statement's password: it records nothing this test can check", len(logged))
	}
	for _, v := range []providers.VersionRef{v1, v2} {
		_, pw := credentials(v, e.name)
		if strings.Contains(string(logged), pw) {
			t.Fatalf("version %s's password is in the server's general query log", v.VersionID)
		}
	}
	if !strings.Contains(string(logged), "sql_log_off") {
		t.Fatal("the provider's admin sessions did not set sql_log_off")
	}
}
