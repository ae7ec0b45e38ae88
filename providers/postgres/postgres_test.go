package postgres

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/internal/testproxy"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

// passwordAuthGroup is the role whose (direct or indirect) members the test
// server must authenticate by password. With trust authentication every
// password works, so nothing about passwords could be tested. The local
// server needs this line in pg_hba.conf, before any trust line:
//
//	host all +rotator_test_password_auth 127.0.0.1/32 scram-sha-256
const passwordAuthGroup = "rotator_test_password_auth"

const hbaHint = "the test server must authenticate members of " + passwordAuthGroup + " by password: add\n" +
	"  host all +" + passwordAuthGroup + " 127.0.0.1/32 scram-sha-256\n" +
	"to pg_hba.conf before any trust line, then SELECT pg_reload_conf()"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func adminExec(t testing.TB, dsn string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer conn.Close(context.Background())
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("admin %q: %v", s, err)
		}
	}
}

var checkAuthOnce sync.Once
var authErr error

// requirePasswordAuth fails the test unless the server refuses a wrong
// password for members of passwordAuthGroup.
func requirePasswordAuth(t *testing.T, dsn string) {
	t.Helper()
	checkAuthOnce.Do(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			authErr = err
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, `DO $$BEGIN CREATE ROLE `+passwordAuthGroup+` NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END$$`)
		probe := "rtr_probe_" + randomHex(4)
		if _, err := conn.Exec(ctx, "CREATE ROLE "+probe+" LOGIN PASSWORD 'probe-right-password' IN ROLE "+passwordAuthGroup); err != nil {
			authErr = err
			return
		}
		defer conn.Exec(ctx, "DROP ROLE "+probe) //nolint:errcheck // best-effort removal of the probe role
		cfg, _ := pgx.ParseConfig(dsn)
		cfg.User, cfg.Password = probe, "probe-wrong-password"
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			c.Close(ctx)
			authErr = errors.New(hbaHint)
		} else if !isAuthFailure(err) {
			authErr = fmt.Errorf("probing password authentication: %w", err)
		}
	})
	if authErr != nil {
		t.Fatal(authErr)
	}
}

// pgEnv is a group role (and its login roles) of one test, in the test
// binary's database, with a table the group may read.
type pgEnv struct {
	dsn    string // admin, direct
	group  string
	schema string
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	dsn := testpg.New(t)
	requirePasswordAuth(t, dsn)
	u, _ := url.Parse(dsn)
	e := &pgEnv{dsn: dsn, group: "rtr_" + randomHex(5), schema: u.Query().Get("search_path")}
	g := pgx.Identifier{e.group}.Sanitize()
	adminExec(t, dsn,
		"CREATE ROLE "+g+" NOLOGIN IN ROLE "+passwordAuthGroup,
		"CREATE TABLE "+e.schema+".items (id int)",
		"INSERT INTO "+e.schema+".items VALUES (1), (2)",
		"GRANT USAGE ON SCHEMA "+e.schema+" TO "+g,
		"GRANT SELECT ON "+e.schema+".items TO "+g,
	)
	t.Cleanup(func() {
		for _, r := range []string{e.group + "_a", e.group + "_b", e.group} {
			id := pgx.Identifier{r}.Sanitize()
			adminExec(t, dsn, `DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = `+literal(r)+`) THEN
				EXECUTE 'DROP OWNED BY `+strings.ReplaceAll(id, "'", "''")+`'; EXECUTE 'DROP ROLE `+strings.ReplaceAll(id, "'", "''")+`'; END IF; END$$`)
		}
	})
	return e
}

func (e *pgEnv) checkQuery() string { return "SELECT count(*) FROM " + e.schema + ".items" }

// resource logs in directly (not through any proxy) as a consumer would.
type resource struct {
	dsn      string
	strategy string
	role     string
	proxy    *testproxy.Proxy
}

func (r *resource) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	user, pw := r.credentials(v)
	cfg, err := pgx.ParseConfig(r.dsn)
	if err != nil {
		return false, err
	}
	cfg.User, cfg.Password = user, pw
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if isAuthFailure(err) {
		return false, nil
	}
	if err != nil {
		return false, errors.New("cannot reach the server")
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1")
	return err == nil, nil
}

func (r *resource) credentials(v providers.VersionRef) (user, password string) {
	if v.Metadata[MetaFormat] == FormatURL {
		u, err := url.Parse(v.Value.RevealString())
		if err != nil || u.User == nil {
			return "invalid", "invalid"
		}
		pw, _ := u.User.Password()
		return u.User.Username(), pw
	}
	user = v.Metadata[MetaLoginRole]
	if user == "" {
		user = r.role
	}
	return user, v.Value.RevealString()
}

// Stall implements providertest.Staller: the proxy in front of the server
// holds new connections without answering.
func (r *resource) Stall(t *testing.T) func() { return r.proxy.Stall() }

// viaProxy returns dsn with its host and port replaced by the proxy's.
func viaProxy(t *testing.T, dsn string) (string, *testproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testproxy.New(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

func newProvider(t *testing.T, e *pgEnv, s settings.Map, logger *slog.Logger) (*Provider, *testproxy.Proxy) {
	t.Helper()
	dsn, px := viaProxy(t, e.dsn)
	m := settings.Map{"admin_dsn": secret.NewString(dsn)}
	for k, v := range s {
		m[k] = v
	}
	prov, err := Factory().New(t.Context(), providers.Env{Name: "pg-test", Settings: m, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prov.(*Provider).Close() })
	return prov.(*Provider), px
}

func TestExercise(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct{ strategy, verify string }{
		{StrategyAlternating, VerifyLogin}, {StrategySingle, VerifyLogin},
		{StrategyAlternating, VerifyVerifier}, {StrategySingle, VerifyVerifier},
	} {
		strategy := mode.strategy
		t.Run(strategy+"/verify="+mode.verify, func(t *testing.T) {
			t.Parallel()
			providertest.Exercise(t, providertest.Harness{
				Factory:  Factory(),
				Scope:    []string{"SELECT on items"},
				Parallel: true,
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					e := newPGEnv(t)
					if strategy == StrategySingle {
						// single rotates the role's own password: it logs in.
						adminExec(t, e.dsn, "ALTER ROLE "+pgx.Identifier{e.group}.Sanitize()+" LOGIN")
					}
					prov, px := newProvider(t, e, settings.Map{"strategy": strategy, "verify": mode.verify}, logger)
					cred := settings.Map{"role": e.group, "check_query": e.checkQuery()}
					if mode.verify == VerifyVerifier {
						cred = settings.Map{"role": e.group} // check_query needs a login
					}
					return providertest.Instance{
						Provider: prov,
						Resource: &resource{dsn: e.dsn, strategy: strategy, role: e.group, proxy: px},
						Settings: cred,
						Secrets:  []secret.Value{secret.NewString(e.dsn)},
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
	v, err := tryRotate(t.Context(), p, cred, n, cur)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tryRotate is rotate for goroutines other than the test's.
func tryRotate(ctx context.Context, p *Provider, cred settings.Map, n int, cur *providers.VersionRef) (providers.VersionRef, error) {
	ver := fmt.Sprintf("v%03d", n)
	c := func(step string) providers.Common {
		return providers.Common{CredentialID: "reports-db", VersionID: ver, IdempotencyKey: fmt.Sprintf("run%03d/%s", n, step), Settings: cred}
	}
	m, err := p.Mint(ctx, providers.MintRequest{Common: c("mint"), Current: cur})
	if err != nil {
		return providers.VersionRef{}, fmt.Errorf("rotation %d: mint: %w", n, err)
	}
	if _, err := p.Activate(ctx, providers.ActivateRequest{Common: c("activate"), Value: m.Value, Metadata: m.Metadata, ExpiresAt: m.ExpiresAt}); err != nil {
		return providers.VersionRef{}, fmt.Errorf("rotation %d: activate: %w", n, err)
	}
	if _, err := p.Verify(ctx, providers.VerifyRequest{Common: c("verify"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		return providers.VersionRef{}, fmt.Errorf("rotation %d: verify: %w", n, err)
	}
	return providers.VersionRef{VersionID: ver, Value: m.Value, Metadata: m.Metadata}, nil
}

// TestZeroDisruption: clients keep opening connections with whatever
// credential is published while 50 alternating rotations run in the
// engine's order (activate → verify → promote → after grace revoke the
// previous); no client may see an authentication failure.
func TestZeroDisruption(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	p, _ := newProvider(t, e, settings.Map{"strategy": StrategyAlternating}, nil)
	cred := settings.Map{"role": e.group, "check_query": e.checkQuery()}

	const rotations = 50
	users := sync.Map{}
	r := providertest.ZeroDisruption{
		Rotations: rotations, Clients: 4,
		Rotate: func(n int, cur *providers.VersionRef) providers.VersionRef {
			next := rotate(t, p, cred, n, cur)
			if cur != nil && next.Metadata[MetaLoginRole] == cur.Metadata[MetaLoginRole] {
				t.Fatalf("rotation %d reused login role %s", n, cur.Metadata[MetaLoginRole])
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
			conn, err := pgx.Connect(ctx, ref.Value.RevealString())
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			var n int
			if err := conn.QueryRow(ctx, e.checkQuery()).Scan(&n); err != nil {
				return err
			}
			if n != 2 {
				return fmt.Errorf("check query returned %d, want 2", n)
			}
			users.Store(ref.Metadata[MetaLoginRole], true)
			return nil
		},
		AuthFailure: isAuthFailure,
	}.Run(t)

	n, failed := r.Attempts, r.AuthFailures
	t.Logf("zero-disruption (postgres-role, alternating): %d rotations, %d client connections, %d authentication failures", rotations, n, failed)
	if failed != 0 {
		t.Fatalf("%d of %d client connections failed authentication during rotation", failed, n)
	}
	if n < rotations {
		t.Fatalf("only %d client connections over %d rotations; the clients did not overlap the rotations", n, rotations)
	}
	first, cur := r.First, r.Last
	_, a := users.Load(e.group + "_a")
	_, b := users.Load(e.group + "_b")
	if !a || !b {
		t.Fatal("clients did not log in as both login roles")
	}
	// Old versions are really gone; the current one works.
	res := &resource{dsn: e.dsn, role: e.group}
	if ok, err := res.Accepts(t.Context(), first); err != nil || ok {
		t.Fatalf("the first version still logs in after 50 rotations (ok=%v, err=%v)", ok, err)
	}
	if ok, err := res.Accepts(t.Context(), cur); err != nil || !ok {
		t.Fatalf("the current version does not log in (ok=%v, err=%v)", ok, err)
	}
}

// TestNoPlaintextOnTheWire runs a rotation through a recording proxy: the
// password must never reach the server (ALTER ROLE carries the SCRAM
// verifier; logins use SCRAM proofs).
func TestNoPlaintextOnTheWire(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	for _, strategy := range []string{StrategyAlternating, StrategySingle} {
		if strategy == StrategySingle {
			adminExec(t, e.dsn, "ALTER ROLE "+pgx.Identifier{e.group}.Sanitize()+" LOGIN")
		}
		p, px := newProvider(t, e, settings.Map{"strategy": strategy, "format": FormatPassword}, nil)
		cred := settings.Map{"role": e.group}
		v1 := rotate(t, p, cred, 1, nil)
		v2 := rotate(t, p, cred, 2, &v1)
		err := p.Revoke(t.Context(), providers.RevokeRequest{Common: providers.Common{CredentialID: "c", VersionID: v1.VersionID, Settings: cred}, Value: v1.Value, Metadata: v1.Metadata})
		if err != nil {
			t.Fatal(err)
		}
		wire := px.Sent()
		if !bytes.Contains(wire, []byte("SCRAM-SHA-256$4096:")) {
			t.Fatalf("%s: the proxy did not see the ALTER ROLE with a verifier; it records nothing", strategy)
		}
		for _, v := range []providers.VersionRef{v1, v2} {
			if bytes.Contains(wire, v.Value.Reveal()) {
				t.Fatalf("%s: a password crossed the wire in clear", strategy)
			}
		}
	}
}

func TestSCRAMVerifierMatchesServer(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	const pw = "Correct-Horse-Battery-Staple-42"
	adminExec(t, e.dsn, "SET password_encryption = 'scram-sha-256'; ALTER ROLE "+pgx.Identifier{e.group}.Sanitize()+" PASSWORD "+literal(pw))
	conn, err := pgx.Connect(t.Context(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored string
	if err := conn.QueryRow(t.Context(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", e.group).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !verifierMatches(stored, e.group, pw) || verifierMatches(stored, e.group, pw+"x") {
		t.Fatal("verifierMatches disagrees with the server's verifier")
	}
	// Recompute with the server's salt and iterations: byte-identical.
	rest := strings.TrimPrefix(stored, "SCRAM-SHA-256$")
	params, _, _ := strings.Cut(rest, "$")
	_, saltB64, _ := strings.Cut(params, ":")
	salt, _ := base64Decode(saltB64)
	mine, err := scramVerifierWith(pw, salt, 4096)
	if err != nil || mine != stored {
		t.Fatalf("our verifier differs from the server's:\n ours   %s\n server %s", mine, stored)
	}
	// md5, as older servers store it.
	if !verifierMatches("md5"+md5hex(pw+e.group), e.group, pw) || verifierMatches("md5"+md5hex("x"+e.group), e.group, pw) {
		t.Fatal("md5 verifiers")
	}
}

func TestMintAlternates(t *testing.T) {
	t.Parallel()
	p, err := New(Config{AdminDSN: secret.NewString("postgres://admin:adminpw@db.internal:6432/app?sslmode=verify-full"), Strategy: StrategyAlternating}, nil) // rotator:ignore: test fixture
	if err != nil {
		t.Fatal(err)
	}
	cred := settings.Map{"role": "mcp_reports", "database": "reports"}
	// A current version on _b (minting without one asks the server; see
	// TestMintWithoutCurrent).
	m1, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred},
		Current: &providers.VersionRef{Metadata: map[string]string{MetaLoginRole: "mcp_reports_b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Metadata[MetaLoginRole] != "mcp_reports_a" {
		t.Fatalf("first login role %q", m1.Metadata[MetaLoginRole])
	}
	u, err := url.Parse(m1.Value.RevealString())
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	if u.User.Username() != "mcp_reports_a" || len(pw) != 32 || u.Host != "db.internal:6432" || u.Path != "/reports" || u.Query().Get("sslmode") != "verify-full" {
		t.Fatalf("url value has user %q, %d-char password, host %q, path %q, query %q", u.User.Username(), len(pw), u.Host, u.Path, u.RawQuery)
	}
	if strings.Contains(m1.Value.RevealString(), "adminpw") {
		t.Fatal("the published URL carries the admin password")
	}
	cur := providers.VersionRef{Value: m1.Value, Metadata: m1.Metadata}
	m2, _ := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}, Current: &cur})
	if m2.Metadata[MetaLoginRole] != "mcp_reports_b" {
		t.Fatalf("second login role %q", m2.Metadata[MetaLoginRole])
	}
	cur = providers.VersionRef{Value: m2.Value, Metadata: m2.Metadata}
	m3, _ := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}, Current: &cur})
	if m3.Metadata[MetaLoginRole] != "mcp_reports_a" {
		t.Fatalf("third login role %q", m3.Metadata[MetaLoginRole])
	}

	single, _ := New(Config{AdminDSN: secret.NewString("host=/var/run/postgresql user=postgres dbname=app sslmode=disable"), Strategy: StrategySingle, ValidFor: time.Hour}, nil)
	m, err := single.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: settings.Map{"role": "app"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Metadata[MetaLoginRole] != "app" || m.Value.Len() != 32 || strings.Contains(m.Value.RevealString(), "/") {
		t.Fatalf("single mint: login role %q, %d bytes", m.Metadata[MetaLoginRole], m.Value.Len())
	}
	if d := time.Until(m.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("ExpiresAt in %s, want valid_for 1h", d)
	}
	if single.Capabilities().Overlap || !p.Capabilities().Overlap {
		t.Fatal("single must not claim overlap; alternating must")
	}
	withURL, _ := New(Config{AdminDSN: secret.NewString("host=/var/run/postgresql port=5433 user=postgres dbname=app sslmode=disable"), Strategy: StrategySingle, Format: FormatURL}, nil)
	m, _ = withURL.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: settings.Map{"role": "app"}}})
	u, _ = url.Parse(m.Value.RevealString())
	if u.Query().Get("host") != "/var/run/postgresql" || u.Query().Get("port") != "5433" || u.Query().Get("sslmode") != "disable" {
		t.Fatalf("socket URL query %q", u.RawQuery)
	}
}

func TestBadAdminDSN(t *testing.T) {
	t.Parallel()
	const canary = "canary-admin-password-1234567"
	_, err := Factory().New(t.Context(), providers.Env{Name: "pg", Settings: settings.Map{"admin_dsn": secret.NewString("postgres://u:" + canary + "@host:notaport/db")}})
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
		"minimal":                  {settings.Map{"admin_dsn": "${file:/run/secrets/pg}"}, nil},
		"full":                     {settings.Map{"admin_dsn": "${env:PG}", "strategy": "single", "password_length": 48, "check_query": "SELECT 1", "valid_for": "30d", "format": "url", "url_sslmode": "require"}, nil},
		"no dsn":                   {settings.Map{"strategy": "single"}, []string{"admin_dsn"}},
		"bad strategy":             {settings.Map{"admin_dsn": "${env:PG}", "strategy": "rolling"}, []string{"strategy"}},
		"short":                    {settings.Map{"admin_dsn": "${env:PG}", "password_length": 8}, []string{"password_length"}},
		"empty check":              {settings.Map{"admin_dsn": "${env:PG}", "check_query": " "}, []string{"check_query"}},
		"bad format":               {settings.Map{"admin_dsn": "${env:PG}", "format": "dsn"}, []string{"format"}},
		"bad sslmode":              {settings.Map{"admin_dsn": "${env:PG}", "url_sslmode": "maybe"}, []string{"url_sslmode"}},
		"unknown":                  {settings.Map{"admin_dsn": "${env:PG}", "role": "x"}, []string{"role"}},
		"verifier":                 {settings.Map{"admin_dsn": "${env:PG}", "verify": "verifier", "max_admin_connections": 8}, nil},
		"bad verify":               {settings.Map{"admin_dsn": "${env:PG}", "verify": "scram"}, []string{"verify"}},
		"verifier and check_query": {settings.Map{"admin_dsn": "${env:PG}", "verify": "verifier", "check_query": "SELECT 1"}, []string{"check_query"}},
		"no pool":                  {settings.Map{"admin_dsn": "${env:PG}", "max_admin_connections": 0}, []string{"max_admin_connections"}},
		"huge pool":                {settings.Map{"admin_dsn": "${env:PG}", "max_admin_connections": 65}, []string{"max_admin_connections"}},
		"iterations":               {settings.Map{"admin_dsn": "${env:PG}", "scram_iterations": 1}, nil},
		"no iterations":            {settings.Map{"admin_dsn": "${env:PG}", "scram_iterations": 0}, []string{"scram_iterations"}},
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
		"role":     {settings.Map{"role": "mcp_reports"}, nil},
		"full":     {settings.Map{"role": "mcp_reports", "database": "reports", "check_query": "SELECT 1 FROM reporting.daily LIMIT 1", "valid_for": "7d"}, nil},
		"no role":  {settings.Map{}, []string{"role"}},
		"too long": {settings.Map{"role": strings.Repeat("r", 62)}, []string{"role"}},
		"unknown":  {settings.Map{"role": "x", "strategy": "single"}, []string{"strategy"}},
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

func TestActivateNeedsGroupRole(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	p, _ := newProvider(t, e, settings.Map{"strategy": StrategyAlternating}, nil)
	cred := settings.Map{"role": e.group + "_missing"}
	m, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: m.Value, Metadata: m.Metadata})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestMintWithoutCurrent(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	p, _ := newProvider(t, e, settings.Map{"strategy": StrategyAlternating}, nil)
	cred := settings.Map{"role": e.group}
	mint := func() string {
		t.Helper()
		m, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}})
		if err != nil {
			t.Fatal(err)
		}
		return m.Metadata[MetaLoginRole]
	}
	if got := mint(); got != e.group+"_a" {
		t.Fatalf("no login roles yet: got %s, want _a", got)
	}
	// Consumers are using _a (an inventory restored from an old backup
	// has no current version): the new value must go to _b.
	adminExec(t, e.dsn, "CREATE ROLE "+pgx.Identifier{e.group + "_a"}.Sanitize()+" LOGIN IN ROLE "+pgx.Identifier{e.group}.Sanitize())
	if got := mint(); got != e.group+"_b" {
		t.Fatalf("_a can log in: got %s, want _b", got)
	}
	adminExec(t, e.dsn, "CREATE ROLE "+pgx.Identifier{e.group + "_b"}.Sanitize()+" LOGIN IN ROLE "+pgx.Identifier{e.group}.Sanitize())
	if got := mint(); got != e.group+"_a" {
		t.Fatalf("both can log in: got %s, want _a", got)
	}
}
