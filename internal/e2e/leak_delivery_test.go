package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/testaws"
	"github.com/rotatorhq/rotator/internal/testgithub"
)

// leakDeliveryConfig: two generated credentials (one a token may read, one
// it may not), a MariaDB account rotated by mysql-user, an AWS access key,
// a GitHub App installation token, all published to a
// dotenv file, and a webhook receiver for cut-overs and emergencies.
const leakDeliveryConfig = `
providers:
  gen: {type: generated, length: 40}
  maria:
    type: mysql-user
    admin_dsn: ${env:LEAK_MYSQL_DSN}
  aws:
    type: aws-iam-access-key
    access_key_id: ${env:LEAK_AWS_KEY_ID}
    secret_access_key: ${env:LEAK_AWS_SECRET_KEY}
    iam_endpoint: %s
    sts_endpoint: %s
    region: eu-central-1
    propagation_wait: 0s
  gh:
    type: github-app
    app_id: "%s"
    installation_id: "%s"
    private_key: ${file:%s}
    base_url: %s
    repositories: [rotator]
targets:
  env-file: {type: file, path: %q, format: dotenv}
credentials:
  - {id: svc-token, consumer: mcp-a, provider: gen, max_age: 1h, grace: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: SVC_TOKEN}]}
  - {id: other-token, consumer: mcp-b, provider: gen, max_age: 1h, grace: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: OTHER_TOKEN}]}
  - {id: db-login, consumer: mcp-c, provider: maria, settings: {user: %s}, max_age: 1h, grace: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: DB_URL}]}
  - {id: aws-key, consumer: mcp-d, provider: aws, settings: {user: leak-user}, max_age: 1h, grace: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: AWS_KEY}]}
  - {id: gh-token, consumer: mcp-e, provider: gh, scope: ["metadata:read", "contents:read"], max_age: 1h, grace: 1h, runbook: runbooks/e2e.md#rotation, targets: [{target: env-file, key: GITHUB_TOKEN}]}
notify:
  receivers:
    hook:
      type: webhook
      url: %s
      secret: ${file:%s}
  route:
    receiver: hook
    group_wait: 1s
    group_interval: 1s
    routes:
      - receiver: hook
        kinds: [rotation.cut_over, rotation.emergency]
`

// TestLeakDelivery is TestLeakSweep for the paths that hand values out
// and the service's other outputs: rotator exec (the child sees the value,
// rotator's own output does not), headers (from the store and from the
// consume API), proxy (an upstream that requires the bearer token; the
// client's own Authorization never reaches it), tokens create, list and
// revoke (the token is printed once, by create, and stored as its hash
// only), the consume API (the value is in the body of a 200 and nowhere
// else, refusals included), notify test and notifications (a webhook
// receiver), report, doctor, /metrics, and the mysql-user (MariaDB) and
// aws-iam-access-key (internal/testaws) and github-app (internal/testgithub)
// providers. Every
// output, log, webhook payload, database column and file is searched for
// every value, token and referenced secret. Each path where a value is
// meant to appear is searched too, and must hold it: the checks can fail.
func TestLeakDelivery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteDB, 0)
	tag := leakTag()
	lc := &leakCheck{}
	out := filepath.Join(h.dir, "out") // what holds values by design
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}

	// A MariaDB admin account with a canary password, and the role whose
	// login accounts rotate.
	mysqlAdminPassword := "canary-mysql-admin-password-" + tag
	madmin, mrole := "leak_adm_"+tag, "leak_role_"+tag
	mysqlExec(t.Context(), t, "root@tcp(127.0.0.1:3306)/",
		"CREATE USER '"+madmin+"'@'%' IDENTIFIED BY '"+mysqlAdminPassword+"'",
		"GRANT ALL ON *.* TO '"+madmin+"'@'%' WITH GRANT OPTION",
		"CREATE ROLE "+mrole,
		"GRANT "+mrole+" TO '"+madmin+"'@'%' WITH ADMIN OPTION")
	t.Cleanup(func() {
		mysqlExec(context.Background(), t, "root@tcp(127.0.0.1:3306)/",
			"DROP USER IF EXISTS '"+mrole+"_a'@'%'", "DROP USER IF EXISTS '"+mrole+"_b'@'%'",
			"DROP ROLE IF EXISTS "+mrole, "DROP USER IF EXISTS '"+madmin+"'@'%'")
	})

	// The webhook receiver, its signing secret a canary too.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	hook := &hookServer{secret: "whsec_" + base64.StdEncoding.EncodeToString(key), byID: map[string]int{}}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	writeFile(t, filepath.Join(out, "webhook-secret"), hook.secret+"\n")

	// AWS IAM and STS, at the protocol level.
	aws := testaws.New(t, "leak-user")

	// GitHub's installation-token API, and the app's private key.
	appKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	appKeyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(appKey)}))
	writeFile(t, filepath.Join(out, "app-key.pem"), appKeyPEM)
	gh := testgithub.New(t, &appKey.PublicKey, "")

	writeFile(t, filepath.Join(h.dir, "rotator.yaml"), fmt.Sprintf(leakDeliveryConfig, aws.URL(), aws.URL(),
		gh.AppID, gh.InstallationID, filepath.Join(out, "app-key.pem"), gh.BaseURL(),
		filepath.Join(out, "mcp.env"), mrole, hookSrv.URL+"/hook", filepath.Join(out, "webhook-secret")))
	h.extraEnv = []string{"LEAK_MYSQL_DSN=" + madmin + ":" + mysqlAdminPassword + "@tcp(127.0.0.1:3306)/",
		"LEAK_AWS_KEY_ID=" + aws.AdminID, "LEAK_AWS_SECRET_KEY=" + aws.AdminKey,
		// No shared AWS configuration or instance metadata from this machine.
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}

	// run runs a command; its standard output and error are searched
	// unless the test keeps stdout to itself (because it holds a value by
	// design). Exit 1 is accepted when mayFail says so.
	debug := []string{"--log-level", "debug"}
	type runOpt struct{ mayFail, keepStdout bool }
	run := func(o runOpt, args ...string) (string, string) {
		t.Helper()
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

	// The CLI rotates every credential once.
	run(must, "apply", "-f", "rotator.yaml")
	run(must, "rotate", "--all", "--wait")

	// The service, with JSON debug logs; then one rotation and one
	// emergency executed by it, which notify the webhook.
	srv := h.start("serve", append(debug, "--log-format", "json", "serve", "-f", "rotator.yaml", "--listen", "127.0.0.1:0")...)
	base := "http://" + serveAddr(t, srv)
	for _, args := range [][]string{
		{"rotate", "svc-token", "--wait"},
		{"rotate", "other-token", "--emergency", "--reason", "leak sweep", "--wait"},
	} {
		waitFor(t, time.Minute, "the CLI to hand "+args[1]+" to the service", func() (bool, error) {
			_, stderr := run(must, args...)
			return strings.Contains(stderr, "queued for the running service"), nil
		})
	}
	waitFor(t, time.Minute, "the webhook to receive the cut-over and the emergency", func() (bool, error) {
		_, bodies, _, _ := hook.snapshot()
		all := strings.Join(bodies, "\n")
		return strings.Contains(all, `"rotation.cut_over"`) && strings.Contains(all, `"rotation.emergency"`), nil
	})
	run(must, "notify", "test", "hook", "-f", "rotator.yaml", "-o", "json")
	run(must, "notify", "list", "-o", "json")

	// API tokens: one may read svc-token, one is revoked at once.
	create := func(scope string) (string, string) {
		t.Helper()
		stdout, _ := run(runOpt{keepStdout: true}, "tokens", "create", "--scope", scope, "--name", "leak", "--ttl", "1h", "-o", "json")
		var created map[string]any
		if err := json.Unmarshal([]byte(stdout), &created); err != nil {
			t.Fatalf("tokens create -o json: %v\n%s", err, stdout)
		}
		tok, _ := created["token"].(string)
		if !apitoken.WellFormed(tok) {
			t.Fatalf("tokens create -o json: no well-formed token in field token:\n%s", stdout)
		}
		// The output holds the token (the check finds it there), in the
		// field token only.
		lc.secret("API token "+scope, tok)
		lc.expect("tokens create -o json", stdout)
		created["token"] = ""
		rest, _ := json.Marshal(created)
		lc.add("tokens create -o json (but its field token)", string(rest))
		id, _ := created["id"].(string)
		return tok, id
	}
	token, _ := create("consume:svc-token")
	revoked, revokedID := create("consume:other-token")
	run(must, "tokens", "list", "-o", "json")
	run(must, "tokens", "revoke", revokedID, "-o", "json")
	run(must, "tokens", "list", "-o", "json")
	run(must, "tokens", "list", "-o", "wide")
	unknown, _ := apitoken.New() // well formed, never issued
	lc.secret("unknown API token", unknown)
	garbage := "canary-garbage-bearer-" + tag
	lc.secret("malformed bearer", garbage)

	// The consume API: the value in the 200's body only.
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path, bearer string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var hs bytes.Buffer
		_ = resp.Header.Write(&hs)
		return resp.StatusCode, hs.String(), string(body)
	}
	status, heads, body := get("/v1/credentials/svc-token/value?purpose=leak", token)
	var val struct{ Version, Value string }
	if err := json.Unmarshal([]byte(body), &val); status != http.StatusOK || err != nil || val.Value == "" {
		t.Fatalf("GET svc-token's value: %d %v", status, err)
	}
	svcValue := val.Value
	lc.add("consume 200 (headers)", heads)
	lc.expect("consume 200 (body)", body)
	for _, c := range []struct {
		path, bearer string
		want         int
	}{
		{"/v1/credentials/other-token/value", token, http.StatusForbidden},
		{"/v1/credentials/no-such-credential/value", token, http.StatusForbidden},
		{"/v1/credentials/svc-token/value", "", http.StatusUnauthorized},
		{"/v1/credentials/svc-token/value", revoked, http.StatusUnauthorized},
		{"/v1/credentials/svc-token/value", unknown, http.StatusUnauthorized},
		{"/v1/credentials/svc-token/value", garbage, http.StatusUnauthorized},
		{"/v1/credentials/svc-token/value?wait=soon", token, http.StatusBadRequest},
		{"/v1/credentials/svc-token/value?after=" + val.Version + "&wait=1s", token, http.StatusNotModified},
		{"/v1/credentials/svc-token", token, http.StatusForbidden}, // a consume token has no read scope
	} {
		status, heads, body := get(c.path, c.bearer)
		if status != c.want {
			t.Errorf("GET %s: %d, want %d\n%s", c.path, status, c.want, body)
		}
		lc.add(fmt.Sprintf("consume %d %s", status, c.path), heads+"\n"+body)
	}

	// headers, from the store and from the consume API: the value on
	// stdout only.
	writeFile(t, filepath.Join(out, "api-token"), token)
	headerArgs := []string{"headers", "--header", "Authorization=Bearer {svc-token}"}
	stdout, _ := run(runOpt{keepStdout: true}, headerArgs...)
	mustHold(t, lc, "headers (stdout)", stdout, "Bearer "+svcValue)
	stdout, _ = run(runOpt{keepStdout: true}, append(headerArgs, "--url", base, "--token-ref", "${file:"+filepath.Join(out, "api-token")+"}")...)
	mustHold(t, lc, "headers --url (stdout)", stdout, "Bearer "+svcValue)
	writeFile(t, filepath.Join(out, "revoked-token"), revoked)
	for _, args := range [][]string{
		{"headers", "--header", "X=a{svc-token}b{other-token}", "--url", base, "--token-ref", "${file:" + filepath.Join(out, "api-token") + "}"},
		{"headers", "--header", "X={svc-token}", "--url", base, "--token-ref", "${file:" + filepath.Join(out, "revoked-token") + "}"},
	} {
		if stdout, _ := run(runOpt{mayFail: true}, args...); stdout != "" {
			t.Errorf("rotator %s printed %q, want nothing when a value cannot be read", strings.Join(args, " "), stdout)
		}
	}

	// exec: the child sees the values (it writes them where they may be);
	// rotator's own output does not.
	script := `printf %s "$LEAK_VALUE" > ` + filepath.Join(out, "child-env") + `; cat "$1" > ` + filepath.Join(out, "child-file") + `; echo child done`
	tokenFile := filepath.Join(h.dir, "run", "other.token")
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	stdout, _ = run(must, "exec", "--env", "LEAK_VALUE=svc-token", "--file", tokenFile+"=other-token", "--", "sh", "-c", script, "sh", tokenFile)
	if !strings.Contains(stdout, "child done") {
		t.Errorf("exec: the child's output did not come through: %q", stdout)
	}
	for _, f := range []string{"child-env", "child-file"} {
		b, _ := os.ReadFile(filepath.Join(out, f))
		lc.expect("what the child of exec wrote to "+f, string(b))
	}
	if _, err := os.Stat(tokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("exec left its --file behind: %v", err)
	}
	run(runOpt{mayFail: true}, "exec", "--env", "X=svc-token", "--", filepath.Join(h.dir, "no-such-command"))

	// proxy: a real upstream that requires the bearer token.
	up := &upstreamServer{want: "Bearer " + svcValue}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	clientToken := "canary-proxy-client-token-" + tag
	lc.secret("proxy client token", clientToken)
	writeFile(t, filepath.Join(out, "client-token"), clientToken)
	px := h.start("proxy", append(debug, "proxy", "--listen", "127.0.0.1:0", "--upstream", upSrv.URL+"/mcp",
		"--credential", "svc-token", "--client-token", "${file:"+filepath.Join(out, "client-token")+"}", "-o", "json")...)
	proxyURL := proxyAddr(t, px)
	mcp := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	for _, c := range []struct {
		name    string
		path    string
		headers map[string]string
		want    int
	}{
		{"forwarded", "", map[string]string{"Authorization": "Bearer " + clientToken}, http.StatusOK},
		{"upstream refuses (401)", "/deny", map[string]string{"Authorization": "Bearer " + clientToken}, http.StatusUnauthorized},
		{"no client token", "", nil, http.StatusUnauthorized},
		{"wrong client token", "", map[string]string{"Authorization": "Bearer " + garbage}, http.StatusUnauthorized},
		{"tool parameter onto Authorization", "", map[string]string{"Authorization": "Bearer " + clientToken, "Mcp-Param-Authorization": "Bearer " + garbage}, http.StatusBadRequest},
		{"foreign Host", "", map[string]string{"Authorization": "Bearer " + clientToken, "Host": "evil.example"}, http.StatusForbidden},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, proxyURL+c.path, strings.NewReader(mcp))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range c.headers {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("proxy %s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var hs bytes.Buffer
		_ = resp.Header.Write(&hs)
		if resp.StatusCode != c.want {
			t.Errorf("proxy %s: %d, want %d\n%s", c.name, resp.StatusCode, c.want, body)
		}
		lc.add("proxy answer: "+c.name, hs.String()+"\n"+string(body))
	}
	// The upstream got the value (the check finds it there), and never
	// the client's token.
	upSeen := up.seen()
	lc.expect("the Authorization headers the upstream received", upSeen)
	if strings.Contains(upSeen, clientToken) || strings.Contains(upSeen, garbage) {
		t.Error("the client's own Authorization reached the upstream (token passthrough)")
	}
	if err := px.stop(30 * time.Second); err != nil {
		t.Errorf("proxy: %v", err)
	}
	lc.add("rotator proxy (stdout, stderr)", px.log())

	// What the service exposes besides: /metrics.
	status, heads, body = get("/metrics", "")
	if status != http.StatusOK || !strings.Contains(body, "rotator_") {
		t.Errorf("/metrics: %d\n%s", status, tail(body, 5))
	}
	lc.add("/metrics", heads+"\n"+body)

	// Reports, doctor and the audit log, now that the log holds token,
	// read, refusal and notification events.
	for _, o := range []string{"json", "md", "html"} {
		run(must, "report", "-o", o)
	}
	run(runOpt{mayFail: true}, "doctor", "-o", "json")
	run(runOpt{mayFail: true}, "doctor", "-f", "rotator.yaml", "-o", "json")
	stdout, _ = run(must, "audit", "list", "-o", "json")
	for _, kind := range []string{"value.read", "value.read.refused", "token.created", "token.revoked"} {
		if !strings.Contains(stdout, `"`+kind+`"`) {
			t.Errorf("audit list: no %s event", kind)
		}
	}
	if err := srv.stop(30 * time.Second); err != nil {
		t.Errorf("serve: %v", err)
	}
	lc.add("rotator serve (log)", srv.log())
	_, bodies, heads2, bad := hook.snapshot()
	if len(bad) > 0 {
		t.Errorf("webhook signatures that do not verify: %v", bad)
	}
	if !strings.Contains(strings.Join(bodies, "\n"), `"notify.test"`) {
		t.Error("the webhook never received notify test's event")
	}
	lc.add("webhook payloads", strings.Join(bodies, "\n"))
	lc.add("webhook headers", strings.Join(heads2, "\n"))

	// The secrets: every version's value (none has retired: grace 1h), the
	// tokens (above), the referenced secrets, the master key.
	lc.secret("mysql admin password", mysqlAdminPassword)
	lc.secret("AWS admin secret key", aws.AdminKey)
	lc.secret("GitHub App private key", appKeyPEM)
	pemLines := strings.Split(strings.TrimSpace(appKeyPEM), "\n")
	lc.secret("GitHub App private key (body)", strings.Join(pemLines[1:len(pemLines)-1], ""))
	lc.secret("GitHub App private key (a line of its body)", pemLines[2])
	lc.secret("webhook signing secret", hook.secret)
	lc.secret("webhook signing key", strings.TrimPrefix(hook.secret, "whsec_"))
	lc.secret("master key", masterKey)
	// svc-token's current and previous, other-token's current (the
	// emergency retired its previous), db-login's, aws-key's and
	// gh-token's current.
	if n := lc.storedValues(t, h, "svc-token", "other-token", "db-login", "aws-key", "gh-token"); n < 6 {
		t.Errorf("%d versions hold a value, want at least 6", n)
	}
	// The token is stored as its hash.
	var hashed int
	db, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(h.url, "sqlite://")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	err = db.QueryRowContext(t.Context(), `SELECT count(*) FROM api_tokens WHERE token_hash = ?`, apitoken.Hash(token)).Scan(&hashed)
	_ = db.Close()
	if err != nil || hashed != 1 {
		t.Errorf("api_tokens rows holding the token's hash: %d (%v), want 1", hashed, err)
	}
	lc.database(t, h, func(p string) bool { return strings.HasPrefix(p, out+string(os.PathSeparator)) })
	lc.check(t)
}

// mustHold fails unless text holds want, and shows the check would find
// it.
func mustHold(t *testing.T, lc *leakCheck, where, text, want string) {
	t.Helper()
	if !strings.Contains(text, want) {
		t.Errorf("%s: does not hold the expected value", where)
	}
	lc.expect(where, text)
}

// upstreamServer is an MCP server's endpoint that answers only requests
// carrying its bearer token, and /deny with 401 always; it records every
// Authorization header it received.
type upstreamServer struct {
	want string
	mu   sync.Mutex
	auth []string
}

func (s *upstreamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	a := r.Header.Values("Authorization")
	s.mu.Lock()
	s.auth = append(s.auth, a...)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if len(a) != 1 || a[0] != s.want || strings.HasSuffix(r.URL.Path, "/deny") {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"invalid token"}}`))
		return
	}
	_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`))
}

func (s *upstreamServer) seen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.auth, "\n")
}

var (
	serveAddrRE = regexp.MustCompile(`rotator serving"[^\n]*?\blisten"?[=:]"?([0-9.]+:[0-9]+)`)
	proxyURLRE  = regexp.MustCompile(`"url":\s*"(http://[^"]+)"`)
)

// serveAddr waits for serve (text or JSON logs) to say where it listens
// and to answer /readyz.
func serveAddr(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	waitFor(t, time.Minute, p.name+" to listen", func() (bool, error) {
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log(), 20))
		}
		m := serveAddrRE.FindStringSubmatch(p.log())
		if m == nil {
			return false, nil
		}
		addr = m[1]
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return addr
}

// proxyAddr waits for proxy -o json to print its URL.
func proxyAddr(t *testing.T, p *proc) string {
	t.Helper()
	var u string
	waitFor(t, time.Minute, p.name+" to listen", func() (bool, error) {
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log(), 20))
		}
		m := proxyURLRE.FindStringSubmatch(p.log())
		if m != nil {
			u = strings.TrimSuffix(m[1], "/")
		}
		return m != nil, nil
	})
	return u
}

// mysqlExec runs statements on the test MariaDB.
func mysqlExec(ctx context.Context, t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v (is MariaDB up? scripts/test-services.sh starts it)", strings.SplitN(s, " IDENTIFIED", 2)[0], err)
		}
	}
}

// leakTag is a short suffix for names and canaries, unique per run and
// not random-looking (apply refuses random-looking literals in settings).
func leakTag() string {
	return hex.EncodeToString([]byte(fmt.Sprint(time.Now().UnixNano())))[:12]
}
