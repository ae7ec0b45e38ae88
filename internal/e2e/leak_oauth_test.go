package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testauthz"
	"github.com/rotatorhq/rotator/internal/testaws"
	"github.com/rotatorhq/rotator/internal/testoauth"
)

// leakOAuthConfig: two oauth2-refresh-token grants (a confidential client
// bootstrapped from a refresh token in a file, a public client started by
// rotator login with the device grant), and the gateway's private_key_jwt
// key pair (oauth2-private-key-jwt, its JWKS in a file the authorization
// server reads) with which an oauth2-client-credentials provider signs.
// user-token is also delivered to an aws-secretsmanager target
// (internal/testaws's Secrets Manager), created at its first promotion.
const leakOAuthConfig = `
providers:
  grant:
    type: oauth2-refresh-token
    token_url: %[1]s/token
    client_id: mcp-client
    client_secret: ${env:LEAK_OAUTH_CLIENT_SECRET}
    refresh_token: ${file:%[2]s}
    resource: %[1]s/api
    revocation_url: %[1]s/revoke
    verify: {introspection: {url: %[1]s/introspect}}
  device-grant:
    type: oauth2-refresh-token
    token_url: %[1]s/token
    client_id: mcp-public
    device_authorization_url: %[1]s/device
    resource: %[1]s/api
    verify: {http_probe: {url: %[1]s/api/whoami}}
  keys:
    type: oauth2-private-key-jwt
    token_url: %[3]s
    client_id: mcp-gateway
    jwks_file: %[4]s
  gateway:
    type: oauth2-client-credentials
    token_url: %[3]s
    client_id: mcp-gateway
    client_auth: private_key_jwt
    private_key: {credential: gateway-key}
targets:
  env-file: {type: file, path: %[5]q, format: dotenv}
  sm:
    type: aws-secretsmanager
    secret_id: mcp/user-token
    region: us-east-1
    endpoint: %[6]s
    create_if_missing: true
    access_key_id: ${env:LEAK_SM_KEY_ID}
    secret_access_key: ${env:LEAK_SM_SECRET_KEY}
credentials:
  - {id: user-token, consumer: mcp-a, provider: grant, scope: ["mcp:read", "mcp:write"], max_age: 1h, grace: 2s, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: USER_TOKEN}, {target: sm}]}
  - {id: device-token, consumer: mcp-b, provider: device-grant, scope: ["mcp:read", "mcp:write"], max_age: 1h, grace: 2s, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: DEVICE_TOKEN}]}
  - {id: gateway-key, consumer: mcp-gateway, provider: keys, max_age: 30d, grace: 2s, runbook: runbooks/e2e.md#rotation}
  - {id: gateway-token, consumer: mcp-gateway, provider: gateway, scope: ["mcp:tools"], max_age: 1h, grace: 2s, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: GATEWAY_TOKEN}]}
`

// TestLeakOAuth is TestLeakSweep for the OAuth providers that hold a
// secret of their own: oauth2-refresh-token (internal/testoauth: refresh
// tokens rotate at every refresh, reuse revokes the grant) and
// oauth2-private-key-jwt with an oauth2-client-credentials provider
// signing its client assertions with the rotated key (internal/testauthz),
// and the aws-secretsmanager target (internal/testaws).
// It starts a grant with rotator login (the device grant), rotates every
// credential with the CLI and with the service, delivers them with exec
// and headers, runs an emergency, and makes a refresh fail with
// invalid_grant (the grant revoked at the server). Every refresh token and
// access token the servers issued, every private key, and the client
// secret are then searched for in every output, log, audit event,
// database column and file, the JWKS file and the served JWKS included.
// The refresh tokens must be in the sealed provider state (opened with the
// master key), the access tokens in the file target, the key where exec
// delivered it: the checks can fail.
func TestLeakOAuth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteDB, 0)
	tag := leakTag()
	lc := &leakCheck{}
	out := filepath.Join(h.dir, "out") // what holds values by design

	// The refresh-token authorization server: a confidential client with
	// a canary secret and a grant bootstrapped from a file; a public
	// client for rotator login.
	clientSecret := "canary-oauth-client-secret-" + tag
	as := testoauth.New(t)
	as.AddClient("mcp-client", clientSecret)
	as.AddClient("mcp-public", "")
	bootstrap := as.Grant("mcp-client", as.Resource())
	bootstrapFile := filepath.Join(out, "bootstrap-refresh-token")
	writeFile(t, bootstrapFile, bootstrap+"\n")

	// The client-credentials authorization server, reading the gateway's
	// JWKS from the file the provider keeps, at every assertion (no cache:
	// stage_wait is 0s). The file is searched like any other: it must
	// hold public keys only.
	az := testauthz.New(t)
	az.CacheTTL = 0
	jwksFile := filepath.Join(h.dir, "www", "jwks.json")
	az.Register(testauthz.Client{ID: "mcp-gateway", JWKSFile: jwksFile})

	// The Secrets Manager user-token is also delivered to, signed with a
	// canary secret access key.
	sm := testaws.NewSecretsManager(t)
	smSecretKey := "canary-sm-secret-access-key-" + tag

	// Paths relative to the harness directory, where every command runs:
	// the test's temporary directory may look random to apply's literal
	// secret check.
	writeFile(t, filepath.Join(h.dir, "rotator.yaml"), fmt.Sprintf(leakOAuthConfig,
		as.URL, bootstrapFile, az.TokenURL(), "www/jwks.json", "out/mcp.env", sm.URL()))
	h.extraEnv = []string{"LEAK_OAUTH_CLIENT_SECRET=" + clientSecret, "LEAK_SM_KEY_ID=AKIDFAKE", "LEAK_SM_SECRET_KEY=" + smSecretKey}

	// Retirement erases a version's value, so the private keys are
	// harvested from the store after every command.
	privateKeys := map[string]string{} // by version id
	harvest := func() {
		t.Helper()
		vs, err := h.st.ListVersions(t.Context(), "gateway-key")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if len(v.Sealed) > 0 {
				privateKeys[v.ID] = h.open(v)
			}
		}
	}
	debug := []string{"--log-level", "debug"}
	type runOpt struct{ mayFail, keepStdout bool }
	run := func(o runOpt, args ...string) (string, string) {
		t.Helper()
		defer harvest()
		args = append(append([]string(nil), debug...), args...)
		stdout, stderr, err := h.cliSplit(args...)
		name := "rotator " + strings.Join(args, " ")
		if !o.keepStdout {
			lc.add(name+" (stdout)", stdout)
		}
		lc.add(name+" (stderr)", stderr)
		var ee *exec.ExitError
		if err != nil && !(o.mayFail && errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("%s: %v\n%s%s", name, err, stdout, stderr)
		}
		return stdout, stderr
	}
	must := runOpt{}

	run(must, "apply", "-f", "rotator.yaml")

	// rotator login: the operator opens the URL and approves the code.
	login := h.start("login", append(debug, "login", "device-token")...)
	codeRE := regexp.MustCompile(`enter the code ([^\s)]+)`)
	waitFor(t, time.Minute, "rotator login to print the user code", func() (bool, error) {
		if login.exited() {
			t.Fatalf("rotator login exited: %v\n%s", login.err, login.log())
		}
		m := codeRE.FindStringSubmatch(login.log())
		return m != nil && as.Approve(m[1]), nil
	})
	select {
	case <-login.done:
		if login.err != nil {
			t.Fatalf("rotator login: %v\n%s", login.err, login.log())
		}
	case <-time.After(time.Minute):
		t.Fatalf("rotator login did not finish after the approval\n%s", login.log())
	}
	lc.add("rotator login (stdout, stderr)", login.log())

	// The key first: the gateway's provider signs with its current value.
	// A credential rotates again once its previous version retired (grace
	// 2s); retirement revokes retired access tokens and withdraws retired
	// keys from the JWKS.
	run(must, "rotate", "gateway-key", "--wait")
	run(must, "rotate", "--all", "--wait=retired", "--timeout", "3m", "-o", "json")
	run(must, "--log-format", "json", "rotate", "--all", "--wait=retired", "--timeout", "3m")
	run(must, "rotate", "user-token", "--emergency", "--reason", "leak sweep", "--wait", "-o", "yaml")

	// The service, with JSON debug logs, rotates the key and the grant
	// once more; the served JWKS holds public keys only.
	srv := h.start("serve", append(debug, "--log-format", "json", "serve", "-f", "rotator.yaml", "--listen", "127.0.0.1:0")...)
	base := "http://" + serveAddr(t, srv)
	for _, id := range []string{"gateway-key", "user-token"} {
		waitFor(t, time.Minute, "the CLI to hand "+id+" to the service", func() (bool, error) {
			_, stderr := run(must, "rotate", id, "--wait")
			return strings.Contains(stderr, "queued for the running service"), nil
		})
	}
	resp, err := http.Get(base + "/.well-known/jwks/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(served), `"keys"`) {
		t.Fatalf("served JWKS: %d %s", resp.StatusCode, served)
	}
	lc.add("served JWKS", string(served))
	waitFor(t, time.Minute, "the service to retire the previous versions", func() (bool, error) {
		active, err := h.st.ListRuns(t.Context(), store.RunFilter{ActiveOnly: true})
		return len(active) == 0, err
	})
	if err := srv.stop(30 * time.Second); err != nil {
		t.Errorf("serve: %v", err)
	}
	lc.add("rotator serve (log)", srv.log())

	// The gateway's token after two key rotations, signed with the newest.
	run(must, "rotate", "gateway-token", "--wait")

	// Delivery: headers prints the access token (stdout only); exec gives
	// the child the key in a file and the token in its environment.
	stdout, _ := run(runOpt{keepStdout: true}, "headers", "--header", "Authorization=Bearer {user-token}")
	mustHold(t, lc, "headers (stdout)", stdout, "Bearer at_")
	keyFile := filepath.Join(h.dir, "run", "gateway.pem")
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	script := `cat "$1" > ` + filepath.Join(out, "child-key") + `; printf %s "$TOKEN" > ` + filepath.Join(out, "child-token")
	run(must, "exec", "--file", keyFile+"=gateway-key", "--env", "TOKEN=device-token", "--", "sh", "-c", script, "sh", keyFile)
	childKey, _ := os.ReadFile(filepath.Join(out, "child-key"))
	if !strings.Contains(string(childKey), "PRIVATE KEY") {
		t.Fatalf("exec gave the child no private key (%d bytes)", len(childKey))
	}
	lc.expect("the key exec gave its child", string(childKey))
	childToken, _ := os.ReadFile(filepath.Join(out, "child-token"))
	lc.expect("the token exec gave its child", string(childToken))

	// The grant dies at the server (its refresh token revoked): the next
	// refresh is refused with invalid_grant, and the failure is reported
	// without a token.
	form := url.Values{"token": {bootstrap}, "token_type_hint": {"refresh_token"}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, as.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("mcp-client", clientSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoking the grant: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}
	// The engine retries the run with backoff (35s, then longer): the CLI
	// stops waiting after the first attempt.
	_, stderr := run(runOpt{mayFail: true}, "rotate", "user-token", "--wait", "--timeout", "10s")
	if !strings.Contains(stderr, "invalid_grant") {
		t.Errorf("rotate after the grant was revoked does not say invalid_grant:\n%s", tail(stderr, 5))
	}

	// Every read-only view, now that the runs, the login and the failure
	// are recorded.
	for _, args := range [][]string{
		{"credentials", "list", "-o", "wide"}, {"credentials", "list", "-o", "json"},
		{"runs", "list", "-o", "json"}, {"audit", "list", "-o", "json"}, {"audit", "verify"},
		{"report", "-o", "json"}, {"report", "-o", "md"},
	} {
		run(must, args...)
	}
	run(runOpt{mayFail: true}, "doctor", "-f", "rotator.yaml", "-o", "json")
	for _, id := range []string{"user-token", "device-token", "gateway-key", "gateway-token"} {
		for _, o := range []string{"text", "json"} {
			run(must, "credentials", "show", id, "-o", o)
		}
	}
	runs, err := h.st.ListRuns(t.Context(), store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range runs {
		run(must, "runs", "show", r.ID, "-o", "json")
		if r.Error != "" {
			failed++
		}
	}
	if failed == 0 {
		t.Error("no run recorded an error: the invalid_grant failure was not exercised")
	}

	// The secrets: the client secret, every token the servers issued, every
	// key version's value (PEM, its body, a line of it).
	lc.secret("OAuth client secret", clientSecret)
	lc.secret("Secrets Manager secret access key", smSecretKey)
	issued := as.Issued()
	for i, tok := range issued {
		lc.secret(fmt.Sprintf("refresh-token server's token %d (%s)", i, tok[:3]), tok)
	}
	for i, tok := range az.Tokens() {
		lc.secret(fmt.Sprintf("client-credentials server's token %d", i), tok)
	}
	refreshTokens := 0
	for _, tok := range issued {
		if strings.HasPrefix(tok, "rt_") {
			refreshTokens++
		}
	}
	// The bootstrap, login's, and one per refresh but the last (refused).
	if refreshTokens < 8 || len(issued)-refreshTokens < 7 || len(az.Tokens()) < 4 {
		t.Errorf("%d refresh tokens, %d access tokens and %d client-credentials tokens issued: the sweep would prove little",
			refreshTokens, len(issued)-refreshTokens, len(az.Tokens()))
	}
	// gateway-key rotated four times: every key, retired ones included.
	if len(privateKeys) < 4 {
		t.Errorf("%d private keys harvested, want 4", len(privateKeys))
	}
	for id, k := range privateKeys {
		lines := strings.Split(strings.TrimSpace(k), "\n")
		if len(lines) < 4 {
			t.Fatalf("gateway-key version %s is not a PEM key", id)
		}
		lc.secret("gateway private key "+id, k)
		lc.secret("gateway private key "+id+" (body)", strings.Join(lines[1:len(lines)-1], ""))
		lc.secret("gateway private key "+id+" (a line of its body)", lines[1])
	}
	// Retirement erased the others: the current version of each, and
	// gateway-token's previous (in grace).
	if n := lc.storedValues(t, h, "user-token", "device-token", "gateway-key", "gateway-token"); n < 5 {
		t.Errorf("%d versions hold a value, want at least 5", n)
	}

	// Where the secrets are meant to be: the refresh tokens in the sealed
	// provider state and the bootstrap file, the access tokens in the file
	// target.
	for _, id := range []string{"user-token", "device-token"} {
		ps, err := h.st.GetProviderState(t.Context(), id)
		if err != nil {
			t.Fatalf("%s: provider state: %v", id, err)
		}
		st, err := h.kr.Open(id, store.ProviderStateAAD, ps.KeyID, ps.Sealed)
		if err != nil {
			t.Fatal(err)
		}
		lc.expect(id+"'s provider state, opened with the master key", st.RevealString())
	}
	b, _ := os.ReadFile(bootstrapFile)
	lc.expect("the bootstrap refresh token's file", string(b))
	b, _ = os.ReadFile(filepath.Join(out, "mcp.env"))
	lc.expect("the file target", string(b))
	// The Secrets Manager secret holds user-token's current access token.
	if n := sm.Count("PutSecretValue") + sm.Count("CreateSecret"); n < 4 {
		t.Errorf("the aws-secretsmanager target was written %d times, want one per user-token rotation", n)
	}
	lc.expect("the Secrets Manager secret (AWSCURRENT)", sm.Current("mcp/user-token"))
	jwks, err := os.ReadFile(jwksFile)
	if err != nil || !strings.Contains(string(jwks), `"keys"`) {
		t.Fatalf("the JWKS file: %v\n%s", err, jwks)
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Errorf("the JWKS file holds %d keys (%v), want the current one (the previous ones retired)", len(set.Keys), err)
	}

	lc.database(t, h, func(p string) bool { return strings.HasPrefix(p, out+string(os.PathSeparator)) })
	lc.check(t)
}
