package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// doctorConfig is an inventory with a postgres-role, a redis-acl, an
// oauth2-client-credentials and an exec provider and a file target; redis
// names the Redis address and runbook the runbook of the last credential.
const doctorConfig = `providers:
  pg:
    type: postgres-role
    admin_dsn: ${env:PG_ADMIN_DSN}
  cache:
    type: redis-acl
    addr: %s
    password: ${env:REDIS_ADMIN_PASSWORD}
  idp:
    type: oauth2-client-credentials
    token_url: %s
    client_id: rotator
    client_secret: ${env:OAUTH_CLIENT_SECRET}
  plugin:
    type: exec
    command: [/bin/sh, -c, "exit 1"]
targets:
  env-file:
    type: file
    path: ./run/mcp.env
credentials:
  - {id: db, consumer: mcp-db, provider: pg, settings: {role: doctor_role}, max_age: 24h, runbook: runbooks/generated.md#rotation, targets: [{target: env-file, key: DB}]}
  - {id: cache, consumer: mcp-cache, provider: cache, settings: {user: doctor_user}, max_age: 24h, runbook: runbooks/generated.md#rotation}
  - {id: idp, consumer: mcp-idp, provider: idp, max_age: 1h, runbook: runbooks/generated.md#rotation}
  - {id: plugin, consumer: mcp-plugin, provider: plugin, max_age: 24h, runbook: %s}
`

// tokenEndpoint answers like an authorization server: invalid_client to a
// client that does not present secret, unsupported_grant_type otherwise.
func tokenEndpoint(t *testing.T, secret string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		_, pw, ok := r.BasicAuth()
		if !ok {
			pw = r.PostForm.Get("client_secret")
		} else {
			pw, _ = url.QueryUnescape(pw)
		}
		w.Header().Set("Content-Type", "application/json")
		if pw != secret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		if r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unsupported_grant_type"}`))
			return
		}
		t.Errorf("doctor minted a token")
		_, _ = w.Write([]byte(`{"access_token":"minted","token_type":"bearer","expires_in":60}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func canary(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// passwordRole creates a login role that must authenticate by password
// (a member of rotator_test_password_auth, see scripts/test-services.sh)
// and returns its name.
func passwordRole(t *testing.T, password string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testpg.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	role := "rtr_doctor_" + canary("")[:8]
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE rotator_test_password_auth", role, password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testpg.ServerURL())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
			_ = c.Close(context.Background())
		}
	})
	return role
}

// TestDoctor: a healthy setup passes (exit 0); a setup with a wrong
// database password, a missing runbook and an unreachable provider fails
// (exit 1) naming all three, with what to do; no secret is printed.
func TestDoctor(t *testing.T) {
	t.Parallel()
	adminPW, oauthSecret, redisPW, wrongDBPW := canary("pgadmin-"), canary("oauth-"), canary("redis-"), canary("dbpw-")
	server, err := url.Parse(testpg.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	// Trust authentication ignores the password, which is still a secret
	// doctor must not show.
	admin := *server
	admin.User = url.UserPassword(server.User.Username(), adminPW)
	idp := tokenEndpoint(t, oauthSecret)
	c := newCLI(t, "postgres", "PG_ADMIN_DSN="+admin.String(), "OAUTH_CLIENT_SECRET="+oauthSecret, "REDIS_ADMIN_PASSWORD="+redisPW)
	c.copyRunbooks(t)
	writeFile(t, c.path("healthy.yaml"), fmt.Sprintf(doctorConfig, "127.0.0.1:6379", idp.URL, "runbooks/generated.md#rotation"))
	c.must(t, 0, "apply", "-f", "healthy.yaml")

	// Healthy but for the service: no 'rotator serve' runs here (serve
	// would rotate, and the token endpoint fails the test on a mint), so
	// the missing leader is the one broken part (TestDoctorService starts
	// one).
	t.Run("healthy", func(t *testing.T) {
		for _, args := range [][]string{{"doctor"}, {"doctor", "-f", "healthy.yaml"}} {
			r := c.must(t, 1, args...)
			for _, want := range []string{"COMPONENT", "database", "migrations", "master-key", "audit-chain",
				"provider     pg", "superuser", "authenticated to Redis", "speaks OAuth", "not proven", "/bin/sh", "target       env-file",
				"service      leader", "1 broken, 0 warning(s)", "service leader (broken): no rotator serve process is leading"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("doctor output lacks %q:\n%s", want, r)
				}
			}
			if n := strings.Count(r.stdout, "  broken  "); n != 1 {
				t.Errorf("healthy setup reported %d broken parts, want only the service's leader:\n%s", n, r)
			}
		}
		r := c.must(t, 1, "doctor", "-o", "json")
		o := decodeObject(t, r.stdout, "checks", "broken", "warnings")
		for _, ch := range array(t, o, "checks") {
			requireKeys(t, "check", ch, "component", "name", "status", "detail", "fix")
			if str(t, ch, "status") == "broken" && (str(t, ch, "component") != "service" || str(t, ch, "name") != "leader") {
				t.Errorf("broken: %v", ch)
			}
		}
		if n := num(t, o, "broken"); n != 1 {
			t.Errorf("broken = %d, want 1:\n%s", n, r)
		}
	})

	t.Run("broken", func(t *testing.T) {
		role := passwordRole(t, canary("right-"))
		bad := *server
		bad.User = url.UserPassword(role, wrongDBPW)
		bc := &cli{dir: c.dir, env: append(append([]string{}, c.env...), "ROTATOR_DATABASE_URL="+bad.String())}
		writeFile(t, c.path("broken.yaml"), fmt.Sprintf(doctorConfig, closedPort(t), idp.URL, "runbooks/missing.md#rotation"))
		r := bc.must(t, 1, "doctor", "-f", "broken.yaml")
		for _, want := range []string{
			"  - database postgres://" + role + ":xxxxx@", "password authentication failed", "to fix: the database refused the user or password",
			"runbook plugin (broken)", "runbooks/missing.md",
			"provider cache (broken)", "connection refused",
			"3 broken",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("doctor output lacks %q:\n%s", want, r)
			}
		}
		// Without the database, the configuration's other parts are still
		// checked.
		for _, want := range []string{"provider     pg ", "provider     idp", "target       env-file"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("doctor output lacks %q:\n%s", want, r)
			}
		}
		r = bc.must(t, 1, "doctor", "-f", "broken.yaml", "-o", "json")
		o := decodeObject(t, r.stdout, "checks", "broken", "warnings")
		if n := num(t, o, "broken"); n != 3 {
			t.Errorf("broken = %d, want 3:\n%s", n, r)
		}
		c.mu.Lock()
		c.printed = append(c.printed, bc.printed...)
		c.mu.Unlock()
	})

	for _, out := range c.printed {
		for _, s := range []string{adminPW, oauthSecret, redisPW, wrongDBPW} {
			if strings.Contains(out, s) {
				t.Errorf("doctor printed a secret (%s...):\n%s", s[:6], out)
			}
		}
	}
}

// serviceConfig is an inventory serve can rotate here, with no notify:
// section: a serve started with it routes no notification event.
const serviceConfig = `providers:
  gen:
    type: generated
targets:
  env-file:
    type: file
    path: ./run/mcp.env
credentials:
  - {id: notes-key, consumer: mcp-notes, provider: gen, max_age: 24h, runbook: runbooks/generated.md#rotation, targets: [{target: env-file, key: NOTES_KEY}]}
`

// doctorCheck returns the check of `doctor -o json` output with the
// component and name, failing the test when there is none.
func doctorCheck(t *testing.T, out, component, name string) obj {
	t.Helper()
	o := decodeObject(t, out, "checks", "broken", "warnings")
	for _, ch := range array(t, o, "checks") {
		if str(t, ch, "component") == component && str(t, ch, "name") == name {
			return ch
		}
	}
	t.Fatalf("no %s %s check:\n%s", component, name, out)
	return nil
}

// TestDoctorService, on SQLite and Postgres: with no 'rotator serve'
// running, doctor reports the service's leader broken with what to do
// (exit 1); with the real serve running, it names it as the leader (exit
// 0); a notification outbox row waiting an hour is a warning that names
// its events and age, and does not change the exit code.
func TestDoctorService(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, kind)
			c.copyRunbooks(t)
			writeFile(t, c.path("rotator.yaml"), serviceConfig)
			c.must(t, 0, "apply", "-f", "rotator.yaml")

			r := c.must(t, 1, "doctor")
			for _, want := range []string{
				"service leader (broken): no rotator serve process is leading: scheduled rotations, retirements, sealing and notifications wait",
				"to fix: start 'rotator serve' on this database",
				"1 broken",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("doctor output lacks %q:\n%s", want, r)
				}
			}
			r = c.must(t, 1, "doctor", "-o", "json")
			if ch := doctorCheck(t, r.stdout, "service", "leader"); str(t, ch, "status") != "broken" || !strings.Contains(str(t, ch, "fix"), "rotator serve") {
				t.Errorf("leader check without a serve: %v", ch)
			}
			// A deployment without a serve on purpose (cron runs resume).
			r = c.must(t, 0, "doctor", "--no-service", "-o", "json")
			if ch := doctorCheck(t, r.stdout, "service", "leader"); str(t, ch, "status") != "skipped" || !strings.Contains(str(t, ch, "detail"), "rotator runs resume") {
				t.Errorf("leader check with --no-service: %v", ch)
			}

			startServe(t, c, nil)
			deadline := time.Now().Add(30 * time.Second)
			for {
				r = c.run(t, "doctor", "-o", "json")
				ch := doctorCheck(t, r.stdout, "service", "leader")
				if str(t, ch, "status") == "ok" {
					if r.code != 0 || !strings.Contains(str(t, ch, "detail"), " leads, elected ") {
						t.Errorf("with serve leading:\n%s", r)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("serve did not lead within 30s:\n%s", r)
				}
				time.Sleep(200 * time.Millisecond)
			}

			// A commit's events (two) written an hour ago, which no serve
			// routes: this one has no notify: section.
			url := c.envValue(storeopen.EnvURL)
			if url == "" {
				url = "sqlite://" + c.path("rotator.db")
			}
			ctx := t.Context()
			st, err := storeopen.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			at := time.Now().Add(-time.Hour)
			evs := []notify.Event{
				{ID: rotation.NewID(at), Kind: notify.KindRunFailed, Time: at, CredentialID: "notes-key", Summary: "failed"},
				{ID: rotation.NewID(at), Kind: notify.KindNeedsAttention, Time: at, CredentialID: "notes-key", Summary: "needs attention"},
			}
			row, err := rotation.OutboxRow(evs...)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.InTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyOutbox(ctx, row) }); err != nil {
				t.Fatal(err)
			}

			r = c.must(t, 0, "doctor")
			for _, want := range []string{
				"service notifications (warn): 2 notification event(s) waiting to be routed (2 in 1 notify_outbox row(s), 0 in notify_events), the oldest since ",
				"(1h ago, more than 5m)",
				"to fix: the leader routes them every 2 seconds when 'rotator serve' runs with -f FILE whose notify: section has routes",
				"0 broken, 1 warning(s)",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("doctor output lacks %q:\n%s", want, r)
				}
			}
			r = c.must(t, 0, "doctor", "-o", "json")
			if ch := doctorCheck(t, r.stdout, "service", "notifications"); str(t, ch, "status") != "warn" {
				t.Errorf("notifications check with an hour-old outbox row: %v", ch)
			}
			// With the configuration, doctor knows that no serve started
			// with it routes events: they wait by design.
			r = c.must(t, 0, "doctor", "-f", "rotator.yaml", "-o", "json")
			if ch := doctorCheck(t, r.stdout, "service", "notifications"); str(t, ch, "status") != "ok" || !strings.Contains(str(t, ch, "detail"), "has no notify: section") {
				t.Errorf("notifications check with a configuration without notify: %v", ch)
			}
		})
	}
}
