package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// withParams returns dsn with query parameters set (and its user and
// password replaced when user is not empty).
func withParams(t *testing.T, dsn, user, password string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// newProviderDSN builds a provider on admin_dsn dsn (not through a proxy),
// closed when the test ends.
func newProviderDSN(t *testing.T, dsn string, s settings.Map) *Provider {
	t.Helper()
	m := settings.Map{"admin_dsn": secret.NewString(dsn)}
	for k, v := range s {
		m[k] = v
	}
	prov, err := Factory().New(t.Context(), providers.Env{Name: "pg-test", Settings: m})
	if err != nil {
		t.Fatal(err)
	}
	p := prov.(*Provider)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// backends returns the pids of the server's backends of user with
// application_name app.
func backends(ctx context.Context, conn *pgx.Conn, app, user string) ([]int, error) {
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND usename = $2", app, user)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

func revokeVersion(ctx context.Context, p *Provider, cred settings.Map, n int, v providers.VersionRef) error {
	err := p.Revoke(ctx, providers.RevokeRequest{
		Common: providers.Common{CredentialID: "reports-db", VersionID: v.VersionID, IdempotencyKey: fmt.Sprintf("run%03d/revoke_previous", n), Settings: cred},
		Value:  v.Value, Metadata: v.Metadata,
	})
	if err != nil {
		return fmt.Errorf("rotation %d: revoke previous: %w", n, err)
	}
	return nil
}

// loginOK reports whether the server lets user log in with password.
func loginOK(ctx context.Context, dsn, user, password string) bool {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return false
	}
	cfg.User, cfg.Password = user, password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false
	}
	_ = conn.Close(context.Background())
	return true
}

// TestAdminConnectionsReused runs 50 rotations (5 credentials at once, 10
// each, every one activating, verifying and revoking the previous version)
// through a provider with a pool of 2, and watches the server: the admin
// work must have used at most 2 backends in all. Before the pool, each
// rotation opened three.
func TestAdminConnectionsReused(t *testing.T) {
	t.Parallel()
	for _, verify := range []string{VerifyVerifier, VerifyLogin} {
		t.Run(verify, func(t *testing.T) {
			t.Parallel()
			const creds, perCred, maxConns = 5, 10, 2
			envs := make([]*pgEnv, creds)
			for i := range envs {
				envs[i] = newPGEnv(t)
			}
			app := "rtr_pool_" + randomHex(4)
			admin, _ := pgx.ParseConfig(envs[0].dsn)
			p := newProviderDSN(t, withParams(t, envs[0].dsn, "", "", map[string]string{"application_name": app}),
				settings.Map{"verify": verify, "max_admin_connections": maxConns, "format": FormatPassword})

			watch, err := pgx.Connect(t.Context(), envs[0].dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer watch.Close(context.Background())
			seen := map[int]bool{}
			maxLogins := 0 // login backends (verify: login) open at once
			sample := func() {
				pids, err := backends(t.Context(), watch, app, admin.User)
				if err != nil {
					t.Error(err)
				}
				for _, pid := range pids {
					seen[pid] = true
				}
				var logins int
				err = watch.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND usename <> $2", app, admin.User).Scan(&logins)
				if err != nil {
					t.Error(err)
				}
				maxLogins = max(maxLogins, logins)
			}
			done := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Go(func() {
				for {
					select {
					case <-done:
						return
					case <-time.After(5 * time.Millisecond):
						sample()
					}
				}
			})

			var wg sync.WaitGroup
			for _, e := range envs {
				wg.Go(func() {
					cred := settings.Map{"role": e.group}
					if verify == VerifyLogin {
						cred["check_query"] = e.checkQuery()
					}
					var cur *providers.VersionRef
					for n := 1; n <= perCred; n++ {
						next, err := tryRotate(t.Context(), p, cred, n, cur)
						if err == nil && cur != nil {
							err = revokeVersion(t.Context(), p, cred, n, *cur)
						}
						if err != nil {
							t.Error(err)
							return
						}
						cur = &next
					}
				})
			}
			wg.Wait()
			close(done)
			sampler.Wait()
			sample()

			stat := p.poolStat()
			t.Logf("verify=%s: %d rotations; admin backends seen %d; pool: %d connections opened, %d acquires, %d waited for a connection; at most %d login backends at once",
				verify, creds*perCred, len(seen), stat.NewConnsCount(), stat.AcquireCount(), stat.EmptyAcquireCount(), maxLogins)
			if maxLogins > maxConns {
				t.Errorf("%d login verifications were open at once, want at most max_admin_connections (%d)", maxLogins, maxConns)
			}
			if len(seen) == 0 {
				t.Fatal("saw no admin backend in pg_stat_activity; the check cannot work")
			}
			if len(seen) > maxConns || stat.NewConnsCount() > maxConns {
				t.Fatalf("%d rotations used %d admin backends (%d connections opened), want at most the pool's %d",
					creds*perCred, len(seen), stat.NewConnsCount(), maxConns)
			}
		})
	}
}

// TestCloseReleasesConnections: Close ends the provider's backends, and a
// call after Close fails with ErrClosed (retryable: the engine builds a new
// provider).
func TestCloseReleasesConnections(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	app := "rtr_close_" + randomHex(4)
	admin, _ := pgx.ParseConfig(e.dsn)
	p := newProviderDSN(t, withParams(t, e.dsn, "", "", map[string]string{"application_name": app}), settings.Map{"verify": VerifyVerifier})
	cred := settings.Map{"role": e.group}
	v1 := rotate(t, p, cred, 1, nil)
	v2 := rotate(t, p, cred, 2, &v1)

	watch, err := pgx.Connect(t.Context(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	pids, err := backends(t.Context(), watch, app, admin.User)
	if err != nil || len(pids) == 0 {
		t.Fatalf("no admin backend before Close (%v, err %v); the check cannot work", pids, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err = backends(t.Context(), watch, app, admin.User)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backends %v still there 10s after Close", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = p.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: v2.Value, Metadata: v2.Metadata})
	if !errors.Is(err, ErrClosed) || errors.Is(err, providers.ErrPermanent) {
		t.Fatalf("Activate after Close: %v, want ErrClosed and not permanent", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestVerifyVerifier checks verify: verifier against the server's own
// judgement: in every state of the role, Verify succeeds exactly when a
// real login with the version's password succeeds, and its errors carry
// neither the password nor the stored verifier.
func TestVerifyVerifier(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	p := newProviderDSN(t, e.dsn, settings.Map{"verify": VerifyVerifier, "format": FormatPassword})
	cred := settings.Map{"role": e.group}
	v := rotate(t, p, cred, 1, nil) // Activate and Verify succeed
	login := v.Metadata[MetaLoginRole]
	id := pgx.Identifier{login}.Sanitize()

	readStored := func() string {
		conn, err := pgx.Connect(t.Context(), e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var s *string
		if err := conn.QueryRow(t.Context(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", login).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == nil {
			return ""
		}
		return *s
	}
	verify := func(ref providers.VersionRef) (providers.VerifyResponse, error) {
		return p.Verify(t.Context(), providers.VerifyRequest{Common: providers.Common{CredentialID: "reports-db", VersionID: ref.VersionID, Settings: cred}, Value: ref.Value, Metadata: ref.Metadata})
	}
	reactivate := func() {
		t.Helper()
		if _, err := p.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: v.Value, Metadata: v.Metadata}); err != nil {
			t.Fatal(err)
		}
	}
	const behind = "canary-behind-its-back-7f3a9c21"
	wrong := v
	wrong.Value = secret.NewString("canary-wrong-password-5b8e0d44c1")

	resp, err := verify(v)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if resp.Evidence["verify"] != VerifyVerifier || resp.Evidence["group_role"] != e.group || resp.Evidence["login_role"] != login {
		t.Fatalf("evidence %v", resp.Evidence)
	}

	cases := []struct {
		name    string
		setup   []string
		ref     providers.VersionRef
		want    string // in the error
		restore bool
	}{
		{name: "wrong password", ref: wrong, want: "does not match the new password"},
		{name: "changed behind its back", setup: []string{"SET password_encryption = 'scram-sha-256'; ALTER ROLE " + id + " PASSWORD " + literal(behind)}, ref: v, want: "does not match the new password", restore: true},
		{name: "md5 behind its back", setup: []string{"SET password_encryption = 'md5'; ALTER ROLE " + id + " PASSWORD " + literal(behind)}, ref: v, want: "not a SCRAM-SHA-256 verifier", restore: true},
		{name: "NOLOGIN", setup: []string{"ALTER ROLE " + id + " NOLOGIN"}, ref: v, want: "NOLOGIN", restore: true},
		{name: "expired", setup: []string{"ALTER ROLE " + id + " VALID UNTIL '2001-01-01'"}, ref: v, want: "expired (VALID UNTIL 2001-01-01", restore: true},
		{name: "connection limit 0", setup: []string{"ALTER ROLE " + id + " CONNECTION LIMIT 0"}, ref: v, want: "connection limit is 0"},
		{name: "left the group", setup: []string{"ALTER ROLE " + id + " CONNECTION LIMIT -1", "REVOKE " + pgx.Identifier{e.group}.Sanitize() + " FROM " + id}, ref: v, want: "not a member of group role"},
	}
	for _, c := range cases {
		adminExec(t, e.dsn, c.setup...)
		stored := readStored()
		_, err := verify(c.ref)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: Verify = %v, want an error with %q", c.name, err, c.want)
		}
		for _, s := range []string{v.Value.RevealString(), wrong.Value.RevealString(), behind} {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("%s: the error carries a password: %v", c.name, err)
			}
		}
		if stored != "" && strings.Contains(err.Error(), stored) {
			t.Fatalf("%s: the error carries the stored verifier", c.name)
		}
		// Where the login itself is at stake (not membership, which only the
		// group's privileges show), the server agrees.
		if c.name != "left the group" && loginOK(t.Context(), e.dsn, login, c.ref.Value.RevealString()) {
			t.Fatalf("%s: Verify refused, but the server lets the role log in", c.name)
		}
		if c.restore {
			reactivate()
			if _, err := verify(v); err != nil {
				t.Fatalf("%s: after activating again: %v", c.name, err)
			}
		}
	}
	// Activate restores membership; the verifier and a login agree again.
	reactivate()
	if _, err := verify(v); err != nil {
		t.Fatalf("after activating again: %v", err)
	}
	if !loginOK(t.Context(), e.dsn, login, v.Value.RevealString()) {
		t.Fatal("Verify accepted, but the server refuses the login")
	}
	// A login role that does not exist.
	gone := v
	gone.Metadata = map[string]string{MetaLoginRole: e.group + "_x", MetaFormat: FormatPassword, MetaStrategy: StrategyAlternating}
	if _, err := verify(gone); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing login role: %v", err)
	}
}

// TestVerifierNeedsPrivilege: an admin role that may not read pg_authid
// gets a permanent error naming the grant that fixes it, without the admin
// password; with the column grant, verify: verifier works.
func TestVerifierNeedsPrivilege(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	admin := "rtr_adm_" + randomHex(4)
	aid := pgx.Identifier{admin}.Sanitize()
	adminExec(t, e.dsn, "CREATE ROLE "+aid+" LOGIN CREATEROLE", "GRANT USAGE ON SCHEMA "+e.schema+" TO "+aid)
	t.Cleanup(func() {
		adminExec(t, e.dsn, "REVOKE ALL ON pg_authid FROM "+aid, "DROP OWNED BY "+aid, "DROP ROLE "+aid)
	})
	// The server trusts this role (it is not in the password group), so the
	// password in the DSN is never asked for: it is a canary.
	const adminPW = "canary-admin-password-2c9d7e13"
	p := newProviderDSN(t, withParams(t, e.dsn, admin, adminPW, nil), settings.Map{"verify": VerifyVerifier, "format": FormatPassword})
	cred := settings.Map{"role": e.group}
	ctx := t.Context()
	m, err := p.Mint(ctx, providers.MintRequest{Common: providers.Common{Settings: cred}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Activate(ctx, providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatalf("activate as a CREATEROLE admin: %v", err)
	}
	req := providers.VerifyRequest{Common: providers.Common{VersionID: "v1", Settings: cred}, Value: m.Value, Metadata: m.Metadata}
	_, err = p.Verify(ctx, req)
	if !errors.Is(err, providers.ErrPermanent) || !errors.Is(err, ErrVerifierUnreadable) ||
		!strings.Contains(err.Error(), "GRANT SELECT (oid, rolname, rolpassword, rolcanlogin, rolvaliduntil, rolconnlimit) ON pg_authid TO "+aid) {
		t.Fatalf("Verify without the privilege: %v", err)
	}
	if strings.Contains(err.Error(), adminPW) || strings.Contains(err.Error(), m.Value.RevealString()) {
		t.Fatalf("the error carries a secret: %v", err)
	}
	adminExec(t, e.dsn, "GRANT SELECT (oid, rolname, rolpassword, rolcanlogin, rolvaliduntil, rolconnlimit) ON pg_authid TO "+aid)
	if _, err := p.Verify(ctx, req); err != nil {
		t.Fatalf("Verify with the column grant: %v", err)
	}
}

func TestActivateNeedsRole(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	p := newProviderDSN(t, e.dsn, settings.Map{"strategy": StrategySingle})
	cred := settings.Map{"role": e.group + "_missing"}
	m, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: cred}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{Settings: cred}, Value: m.Value, Metadata: m.Metadata})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "does not exist; create it (CREATE ROLE") {
		t.Fatalf("err = %v", err)
	}
}

// TestCredentialCheckQueryWithVerifier: a credential's check_query cannot
// be honoured by a provider that does not log in; every step says so.
func TestCredentialCheckQueryWithVerifier(t *testing.T) {
	t.Parallel()
	p, err := New(Config{AdminDSN: secret.NewString("postgres://admin@db.internal/app"), Verify: VerifyVerifier}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	_, err = p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{CredentialID: "c", Settings: settings.Map{"role": "app", "check_query": "SELECT 1"}},
		Current: &providers.VersionRef{Metadata: map[string]string{MetaLoginRole: "app_a"}}})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "verify: verifier") {
		t.Fatalf("err = %v", err)
	}
}

// TestSCRAMIterations: verifiers carry the configured iteration count, and
// the server accepts logins with them; verify: verifier reads the count from
// the stored verifier.
func TestSCRAMIterations(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	for _, verify := range []string{VerifyLogin, VerifyVerifier} {
		p := newProviderDSN(t, e.dsn, settings.Map{"scram_iterations": 64, "verify": verify, "format": FormatPassword})
		v := rotate(t, p, settings.Map{"role": e.group}, 1, nil) // Verify succeeds either way
		conn, err := pgx.Connect(t.Context(), e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		err = conn.QueryRow(t.Context(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", v.Metadata[MetaLoginRole]).Scan(&stored)
		_ = conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored, "SCRAM-SHA-256$64:") {
			t.Fatalf("verify=%s: stored verifier %.18s…, want 64 iterations", verify, stored)
		}
		if !loginOK(t.Context(), e.dsn, v.Metadata[MetaLoginRole], v.Value.RevealString()) {
			t.Fatalf("verify=%s: the server refuses a login with a 64-iteration verifier", verify)
		}
	}
}

// TestProvidersShareAPool: the engine may build several providers from one
// configuration at once (workers that start together each find its cache
// empty). Ten providers with the same admin_dsn and pool size, used at
// once, hold one pool: at most max_admin_connections backends in all. It
// stays open until the last of them is closed, and a provider dropped
// without Close lets go of it when collected.
func TestProvidersShareAPool(t *testing.T) {
	t.Parallel()
	const n, maxConns = 10, 2
	envs := make([]*pgEnv, n)
	for i := range envs {
		envs[i] = newPGEnv(t)
	}
	app := "rtr_share_" + randomHex(4)
	dsn := withParams(t, envs[0].dsn, "", "", map[string]string{"application_name": app})
	admin, _ := pgx.ParseConfig(dsn)
	build := func() *Provider {
		prov, err := Factory().New(t.Context(), providers.Env{Name: "pg-test", Settings: settings.Map{
			"admin_dsn": secret.NewString(dsn), "verify": VerifyVerifier, "max_admin_connections": maxConns}})
		if err != nil {
			t.Fatal(err)
		}
		return prov.(*Provider)
	}
	ps := make([]*Provider, n)
	for i := range ps {
		ps[i] = build()
	}
	t.Cleanup(func() {
		for _, p := range ps {
			_ = p.Close()
		}
	})
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			if _, err := tryRotate(t.Context(), p, settings.Map{"role": envs[i].group}, 1, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if st := ps[0].poolStat(); st.NewConnsCount() > maxConns {
		t.Fatalf("%d providers opened %d admin connections, want at most %d in all", n, st.NewConnsCount(), maxConns)
	}
	watch, err := pgx.Connect(t.Context(), envs[0].dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	count := func() int {
		pids, err := backends(t.Context(), watch, app, admin.User)
		if err != nil {
			t.Fatal(err)
		}
		return len(pids)
	}
	if c := count(); c == 0 || c > maxConns {
		t.Fatalf("%d admin backends, want 1 to %d", c, maxConns)
	}
	for _, p := range ps[:n-1] {
		_ = p.Close()
	}
	if _, err := tryRotate(t.Context(), ps[n-1], settings.Map{"role": envs[n-1].group}, 2, nil); err != nil {
		t.Fatalf("the last open provider: %v", err)
	}
	if count() == 0 {
		t.Fatal("the pool closed while a provider still uses it")
	}
	_ = ps[n-1].Close()
	waitNoBackends := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("admin backends still open 10s after %s", what)
			}
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitNoBackends("the last Close")

	// A provider that is dropped without Close.
	func() {
		p := build()
		if _, err := tryRotate(t.Context(), p, settings.Map{"role": envs[0].group}, 3, nil); err != nil {
			t.Fatal(err)
		}
	}()
	waitNoBackends("the provider was dropped")
}
