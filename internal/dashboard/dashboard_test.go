package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/dashboard"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(testpg.M(m))
}

type resp struct {
	status int
	body   string
	header http.Header
	cookie []*http.Cookie
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr map[string]string) resp {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(b), header: res.Header, cookie: res.Cookies()}
}

func (b *bundle) get(t *testing.T, c *http.Client, path string) resp {
	t.Helper()
	return do(t, c, http.MethodGet, b.srv.URL+path, nil, nil)
}

func (b *bundle) login(t *testing.T, c *http.Client, token string) resp {
	t.Helper()
	return do(t, c, http.MethodPost, b.srv.URL+"/login", url.Values{"token": {token}, "next": {"/"}}, nil)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

var rowRE = regexp.MustCompile(`data-credential="([^"]+)" data-status="([^"]+)"`)

func rowsOf(page string) (ids, statuses []string) {
	for _, m := range rowRE.FindAllStringSubmatch(page, -1) {
		ids, statuses = append(ids, m[1]), append(statuses, m[2])
	}
	return ids, statuses
}

func TestLoginSession(t *testing.T) {
	b := setup(t, setupOpts{rotateAll: true})
	c := b.client(t)

	r := b.get(t, c, "/runs?x=1")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next="+url.QueryEscape("/runs?x=1") {
		t.Fatalf("GET /runs without a session: %d %q, want 303 to the login page", r.status, r.header.Get("Location"))
	}
	if r := b.get(t, c, "/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz beside the dashboard: %d", r.status)
	}
	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"malformed":    {"rtrtok_nope", http.StatusUnauthorized},
		"unknown":      {"rtrtok_" + strings.Repeat("0", 64) + "12345678", http.StatusUnauthorized},
		"consume only": {b.token(t, "reader", "consume:*"), http.StatusForbidden},
	} {
		if r := b.login(t, c, tc.token); r.status != tc.want || len(r.cookie) != 0 {
			t.Errorf("login with a %s token: %d, cookies %v; want %d and no cookie", name, r.status, r.cookie, tc.want)
		}
	}
	read := b.token(t, "alice", "read")
	r = b.login(t, c, read)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" || len(r.cookie) != 1 {
		t.Fatalf("login: %d %q %v", r.status, r.header.Get("Location"), r.cookie)
	}
	ck := r.cookie[0]
	if ck.Name != dashboard.CookieName || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || len(ck.Value) != 64 || ck.Value == read {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, a random 64-hex id", ck)
	}
	page := b.get(t, c, "/")
	if page.status != http.StatusOK {
		t.Fatalf("GET /: %d\n%s", page.status, page.body)
	}
	ids, statuses := rowsOf(page.body)
	if len(ids) != 5 || ids[0] != failingID || statuses[0] != string(store.StatusFailing) {
		t.Errorf("credentials listed %v %v; want all 5, %s (failing) first", ids, statuses, failingID)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if page.header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if !strings.Contains(page.body, "read only") || strings.Contains(page.body, "Emergency rotation") {
		t.Error("a read token's page does not say read only")
	}
	if r := b.get(t, c, "/credentials/github-mcp-token"); r.status != http.StatusOK || strings.Contains(r.body, "/rotate\"") {
		t.Errorf("credential page for a read token: %d, rotate form shown: %v", r.status, strings.Contains(r.body, "/rotate\""))
	}

	// Logout needs the CSRF token, then ends the session server-side: the
	// old cookie no longer works.
	if r := do(t, c, http.MethodPost, b.srv.URL+"/logout", url.Values{}, nil); r.status != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", r.status)
	}
	r = do(t, c, http.MethodPost, b.srv.URL+"/logout", url.Values{"csrf": {csrfOf(t, page.body)}}, nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	stale := b.client(t)
	u, _ := url.Parse(b.srv.URL)
	stale.Jar.SetCookies(u, []*http.Cookie{ck})
	if r := b.get(t, stale, "/"); r.status != http.StatusSeeOther {
		t.Errorf("the logged-out session's cookie still works: %d", r.status)
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	b := setup(t, setupOpts{tls: true})
	r := b.login(t, b.client(t), b.token(t, "alice", "read"))
	if len(r.cookie) != 1 || !r.cookie[0].Secure {
		t.Fatalf("login over TLS: cookies %+v, want one Secure cookie", r.cookie)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	b := setup(t, setupOpts{})
	c := b.client(t)
	tok := b.token(t, "alice", "read")
	b.login(t, c, tok)
	if r := b.get(t, c, "/"); r.status != http.StatusOK {
		t.Fatalf("GET /: %d", r.status)
	}
	list, _ := b.tokens.List(t.Context())
	if _, err := b.tokens.Revoke(t.Context(), list[len(list)-1].ID, "test"); err != nil {
		t.Fatal(err)
	}
	if r := b.get(t, c, "/"); r.status != http.StatusSeeOther {
		t.Errorf("GET / after the token was revoked: %d, want 303 to the login page", r.status)
	}
}

func TestRotate(t *testing.T) {
	b := setup(t, setupOpts{})
	c := b.client(t)
	b.login(t, c, b.token(t, "oncall", "rotate"))
	page := b.get(t, c, "/credentials/github-mcp-token")
	if page.status != http.StatusOK || !strings.Contains(page.body, "Emergency rotation") {
		t.Fatalf("credential page for a rotate token: %d, no rotate forms", page.status)
	}
	csrf := csrfOf(t, page.body)
	post := func(form url.Values, hdr map[string]string) resp {
		return do(t, c, http.MethodPost, b.srv.URL+"/credentials/github-mcp-token/rotate", form, hdr)
	}
	runs := func() []store.Run {
		rs, err := b.st.ListRuns(t.Context(), store.RunFilter{CredentialID: "github-mcp-token"})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	for name, tc := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"no CSRF token":      {url.Values{"kind": {"manual"}}, nil},
		"wrong CSRF token":   {url.Values{"kind": {"manual"}, "csrf": {strings.Repeat("a", 64)}}, nil},
		"cross-site fetch":   {url.Values{"kind": {"manual"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"other origin":       {url.Values{"kind": {"manual"}, "csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
		"opaque null origin": {url.Values{"kind": {"manual"}, "csrf": {csrf}}, map[string]string{"Origin": "null"}},
	} {
		if r := post(tc.form, tc.hdr); r.status != http.StatusForbidden {
			t.Errorf("rotate with %s: %d, want 403", name, r.status)
		}
	}
	if n := len(runs()); n != 0 {
		t.Fatalf("%d runs after refused requests", n)
	}

	// An emergency needs a reason.
	r := post(url.Values{"kind": {"emergency"}, "csrf": {csrf}, "reason": {"  "}}, map[string]string{"Origin": b.srv.URL, "Sec-Fetch-Site": "same-origin"})
	if r.status != http.StatusSeeOther || len(runs()) != 0 {
		t.Fatalf("emergency without a reason: %d, %d runs", r.status, len(runs()))
	}
	if p := b.get(t, c, "/credentials/github-mcp-token"); !strings.Contains(p.body, "needs a reason") {
		t.Error("no message saying an emergency needs a reason")
	}

	r = post(url.Values{"kind": {"manual"}, "csrf": {csrf}, "reason": {"weekly check"}}, map[string]string{"Origin": b.srv.URL, "Sec-Fetch-Site": "same-origin"})
	rs := runs()
	if r.status != http.StatusSeeOther || len(rs) != 1 || r.header.Get("Location") != "/runs/"+rs[0].ID {
		t.Fatalf("manual rotate: %d %q, runs %+v", r.status, r.header.Get("Location"), rs)
	}
	if got := rs[0]; got.Actor != "dashboard:oncall" || got.Trigger != store.TriggerManual || got.Reason != "weekly check" {
		t.Errorf("run %+v: want actor dashboard:oncall, trigger manual, the reason", got)
	}
	if p := b.get(t, c, "/runs/"+rs[0].ID); p.status != http.StatusOK || !strings.Contains(p.body, "Rotation started.") {
		t.Errorf("run page after rotate: %d, no flash", p.status)
	}
	if _, _, err := b.e.Execute(t.Context(), rs[0].ID); err != nil {
		t.Fatal(err)
	}

	r = post(url.Values{"kind": {"emergency"}, "csrf": {csrf}, "reason": {"token pasted in a public issue"}}, nil)
	rs = runs()
	if r.status != http.StatusSeeOther || len(rs) != 2 || rs[0].Trigger != store.TriggerEmergency || rs[0].Reason != "token pasted in a public issue" {
		t.Fatalf("emergency rotate: %d, runs %+v", r.status, rs)
	}
	if p := b.get(t, c, "/emergencies"); !strings.Contains(p.body, rs[0].ID) || strings.Contains(p.body, rs[1].ID) {
		t.Error("the emergencies page does not list the emergency run alone")
	}

	// A read token may not rotate, even with its own valid CSRF token.
	rc := b.client(t)
	b.login(t, rc, b.token(t, "viewer", "read"))
	p := b.get(t, rc, "/")
	r = do(t, rc, http.MethodPost, b.srv.URL+"/credentials/github-mcp-token/rotate", url.Values{"kind": {"manual"}, "csrf": {csrfOf(t, p.body)}}, nil)
	if r.status != http.StatusForbidden || len(runs()) != 2 {
		t.Errorf("rotate with a read token: %d, %d runs; want 403 and no run", r.status, len(runs()))
	}
}

func TestPages(t *testing.T) {
	b := setup(t, setupOpts{rotateAll: true})
	c := b.client(t)
	b.login(t, c, b.token(t, "alice", "admin"))
	for path, want := range map[string][]string{
		"/runs":                           {b.failRun, b.okRun, "rolled_back", "succeeded", "initial rotation"},
		"/runs/" + b.failRun:              {"reports-db-password", "mint: injected failure", "failed", "runbooks/generated.md#rotation", "/runs/" + b.failRun + "/runbook"},
		"/runs/" + b.okRun:                {"cutover", "ok", "sha256:"},
		"/runs/" + b.failRun + "/runbook": {"# ", "runbooks/generated.md", "Digest now"},
		"/emergencies":                    {"No runs."},
		"/credentials/slack-bot-token":    {"mcp-server-slack", "fingerprint", "Emergency rotation"},
		"/audit":                          {"sealed events", "Not verified since the service started"},
	} {
		r := b.get(t, c, path)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", path, r.status, r.body)
			continue
		}
		for _, w := range want {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s: no %q in the page", path, w)
			}
		}
	}
	if r := b.get(t, c, "/audit?verify=1"); r.status != http.StatusSeeOther {
		t.Errorf("verify: %d", r.status)
	}
	if r := b.get(t, c, "/audit"); !strings.Contains(r.body, "intact") {
		t.Errorf("audit page after verify says no intact chain:\n%s", r.body)
	}
	for path, want := range map[string]int{"/runs/NOPE": 404, "/credentials/nope": 404, "/nothing": 404, "/?after=!!": 400, "/runs?before=x": 400} {
		if r := b.get(t, c, path); r.status != want {
			t.Errorf("GET %s: %d, want %d", path, r.status, want)
		}
	}
}

func TestPagination(t *testing.T) {
	b := setup(t, setupOpts{rotateAll: true})
	h, err := dashboard.New(dashboard.Options{Store: b.st, Tokens: b.tokens, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	b.srv.Config.Handler = h
	c := b.client(t)
	b.login(t, c, b.token(t, "alice", "read"))
	var all []string
	next := "/"
	for range 5 {
		r := b.get(t, c, next)
		ids, _ := rowsOf(r.body)
		all = append(all, ids...)
		m := regexp.MustCompile(`href="(/\?after=[^"]+)" rel="next"`).FindStringSubmatch(r.body)
		if m == nil {
			break
		}
		next = strings.ReplaceAll(m[1], "&amp;", "&")
	}
	if len(all) != 5 || all[0] != failingID || len(slices.Compact(slices.Sorted(slices.Values(all)))) != 5 {
		t.Errorf("paged through %v; want all 5 once, failing first", all)
	}
	runs := b.get(t, c, "/runs")
	m := regexp.MustCompile(`href="\?before=([^"]+)"`).FindStringSubmatch(runs.body)
	if m == nil {
		t.Fatal("no older-runs link with a page size of 2 and 4 runs")
	}
	older := b.get(t, c, "/runs?before="+m[1])
	first := regexp.MustCompile(`href="/runs/([0-9A-Z]+)"`)
	seen := map[string]int{}
	for _, p := range []string{runs.body, older.body} {
		for _, mm := range first.FindAllStringSubmatch(p, -1) {
			seen[mm[1]]++
		}
	}
	if len(seen) != 4 {
		t.Errorf("two pages of runs show %d distinct runs (%v), want 4", len(seen), seen)
	}
}

// TestNoSecretInPagesOrLogs renders every page after real rotations and
// checks that no credential value and no API token appears in a page or a
// log line: values are read nowhere, tokens are checked once and dropped.
func TestNoSecretInPagesOrLogs(t *testing.T) {
	b := setup(t, setupOpts{rotateAll: true})
	c := b.client(t)
	tok := b.token(t, "alice", "admin")
	b.login(t, c, "rtrtok_wrong-token-canary")
	b.login(t, c, tok)
	page := b.get(t, c, "/")
	csrf := csrfOf(t, page.body)
	before := b.secrets(t)
	do(t, c, http.MethodPost, b.srv.URL+"/credentials/notion-integration/rotate", url.Values{"kind": {"emergency"}, "csrf": {csrf}, "reason": {"canary"}}, nil)
	runs, _ := b.st.ListRuns(t.Context(), store.RunFilter{CredentialID: "notion-integration", Limit: 1})
	if _, _, err := b.e.Execute(t.Context(), runs[0].ID); err != nil {
		t.Fatal(err)
	}
	secrets := append(append(before, b.secrets(t)...), tok)
	if len(secrets) < 5 {
		t.Fatalf("only %d secrets to look for", len(secrets))
	}
	var pages []string
	for _, p := range []string{"/", "/runs", "/emergencies", "/audit", "/credentials/notion-integration", "/credentials/github-mcp-token"} {
		pages = append(pages, b.get(t, c, p).body)
	}
	all, _ := b.st.ListRuns(t.Context(), store.RunFilter{})
	for _, r := range all {
		pages = append(pages, b.get(t, c, "/runs/"+r.ID).body, b.get(t, c, "/runs/"+r.ID+"/runbook").body)
	}
	text := strings.Join(pages, "\n") + b.logs.String()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a secret (%d bytes, %.4s…) appears in a page or the log", len(s), s)
		}
	}
	if strings.Contains(text, "wrong-token-canary") {
		t.Error("a refused login's token appears in a page or the log")
	}
	if !strings.Contains(b.logs.String(), "dashboard: logged in") {
		t.Error("the log has no login line: the leak check read nothing")
	}
}

func TestLoginRateLimit(t *testing.T) {
	b := setup(t, setupOpts{})
	c := b.client(t)
	for i := range 10 {
		if r := b.login(t, c, "rtrtok_bad"); r.status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d", i, r.status)
		}
	}
	if r := b.login(t, c, b.token(t, "alice", "read")); r.status != http.StatusTooManyRequests {
		t.Errorf("login after 10 failures: %d, want 429", r.status)
	}
}

func TestPlaintextFromAnotherHostRefused(t *testing.T) {
	b := setup(t, setupOpts{})
	for _, path := range []string{"/login", "/"} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
		req.RemoteAddr = "192.0.2.7:40000"
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "--tls-cert") {
			t.Errorf("GET %s over plaintext from 192.0.2.7: %d, want 403 saying to use TLS", path, rec.Code)
		}
	}
}
