package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

// rawUpstream is an HTTP server speaking the streamable-HTTP transport's
// wire format (a JSON answer with a session id) that records every
// request; status decides its answer.
type rawUpstream struct {
	*httptest.Server
	rec    *seen
	bodies chan string
	status atomic.Int32
}

func newRawUpstream(t *testing.T) *rawUpstream {
	u := &rawUpstream{rec: &seen{}, bodies: make(chan string, 100)}
	u.status.Store(http.StatusOK)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.bodies <- string(body)
		h := r.Header.Clone()
		h.Set("X-Test-Method", r.Method)
		h.Set("X-Test-Path", r.URL.RequestURI())
		r.Header = h
		status := int(u.status.Load())
		u.rec.add(r, status == http.StatusUnauthorized)
		w.Header().Set("Mcp-Session-Id", "session-1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *rawUpstream) last(t *testing.T) http.Header {
	t.Helper()
	_, hs, _ := u.rec.snapshot()
	if len(hs) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return hs[len(hs)-1]
}

// runProxy starts a proxy of one upstream named "default" on a free port.
func runProxy(t testing.TB, src delivery.Source, w *world, up proxy.Upstream, opts proxy.Options) (string, *proxy.Proxy) {
	t.Helper()
	up.Name, up.Listen = "default", "127.0.0.1:0"
	if opts.Logger == nil {
		opts.Logger, opts.Redactor = w.log, w.red
	}
	p, err := proxy.New(src, []proxy.Upstream{up}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return startProxy(t, p), p
}

// rawRequest sends one HTTP/1.1 request as written (header names as
// given, not canonicalised) and returns the response.
func rawRequest(t *testing.T, proxyURL, req string) *http.Response {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(proxyURL, "http://"), "/")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, strings.ReplaceAll(req, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	up := newRawUpstream(t)
	url, _ := runProxy(t, w.src, w, proxy.Upstream{URL: up.URL + "/mcp?tenant=a", Headers: []proxy.Header{
		{Name: "Authorization", Template: "Bearer {api}"},
		{Name: "x-api-key", Template: "{other}"},
	}}, proxy.Options{})

	t.Run("credentials stripped, injected once; MCP headers, body and query kept", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"repo":"x"}}}`
		resp := rawRequest(t, url, "POST /?q=1 HTTP/1.1\nHost: 127.0.0.1\n"+
			"authorization: Bearer client-supplied\nAUTHORIZATION: Basic Y2xpZW50\nX-API-KEY: client-key\nx-api-key: client-key-2\n"+
			"Accept: application/json, text/event-stream\nContent-Type: application/json\n"+
			"Mcp-Session-Id: session-1\nMCP-Protocol-Version: 2026-07-28\nLast-Event-ID: ev-9\n"+
			"Mcp-Method: tools/call\nMcp-Name: search\nMcp-Param-Repo: x\nConnection: close\n"+
			fmt.Sprintf("Content-Length: %d\n\n", len(body))+body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") != "session-1" {
			t.Fatalf("status %d, session id %q", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"))
		}
		h := up.last(t)
		if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+w.current(t, "api") {
			t.Errorf("upstream Authorization: want exactly the injected one, got %d value(s)", len(got))
		}
		if got := h.Values("X-Api-Key"); len(got) != 1 || got[0] != w.current(t, "other") {
			t.Errorf("upstream X-Api-Key: want exactly the injected one, got %d value(s)", len(got))
		}
		for k, want := range map[string]string{
			"Mcp-Session-Id": "session-1", "Mcp-Protocol-Version": "2026-07-28", "Last-Event-Id": "ev-9",
			"Mcp-Method": "tools/call", "Mcp-Name": "search", "Mcp-Param-Repo": "x",
			"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
			"X-Test-Path": "/mcp?tenant=a&q=1",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("upstream %s: got %q, want %q", k, got, want)
			}
		}
		if got := <-up.bodies; got != body {
			t.Errorf("upstream body: got %q", got)
		}
	})
	t.Run("GET, DELETE and a sub-path", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			req, _ := http.NewRequestWithContext(t.Context(), m, url+"sub/path", nil)
			req.Header.Set("Mcp-Session-Id", "session-1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			<-up.bodies
			h := up.last(t)
			if h.Get("X-Test-Method") != m || h.Get("X-Test-Path") != "/mcp/sub/path?tenant=a" || h.Get("Mcp-Session-Id") != "session-1" {
				t.Errorf("%s: upstream saw %s %s session %q", m, h.Get("X-Test-Method"), h.Get("X-Test-Path"), h.Get("Mcp-Session-Id"))
			}
		}
	})
	t.Run("a tool parameter mapped onto an injected header is refused", func(t *testing.T) {
		_, before, _ := up.rec.snapshot()
		for _, name := range []string{"Mcp-Param-Authorization", "mcp-param-X-API-Key"} {
			resp := rawRequest(t, url, "POST / HTTP/1.1\nHost: localhost\n"+name+": Bearer attacker\nContent-Length: 2\nConnection: close\n\n{}")
			msg, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "tool parameter") {
				t.Errorf("%s: status %d, %s", name, resp.StatusCode, msg)
			}
		}
		if _, after, _ := up.rec.snapshot(); len(after) != len(before) {
			t.Error("a refused request reached the upstream")
		}
	})
	t.Run("DNS rebinding and cross-origin requests are refused", func(t *testing.T) {
		for name, req := range map[string]string{
			"foreign Host":   "GET / HTTP/1.1\nHost: evil.example:80\nConnection: close\n\n",
			"foreign Origin": "GET / HTTP/1.1\nHost: 127.0.0.1\nOrigin: https://evil.example\nConnection: close\n\n",
		} {
			if resp := rawRequest(t, url, req); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
			}
		}
		resp := rawRequest(t, url, "GET / HTTP/1.1\nHost: localhost:1\nOrigin: http://localhost:3000\nConnection: close\n\n")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("a local origin: status %d, want 200", resp.StatusCode)
		}
		<-up.bodies
	})
	w.noCanary(t, "the logs", w.logs.String(), "api", "other")
}

func TestClientToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	up := newRawUpstream(t)
	const token = "local-client-token-6f1c2a9e" // rotator:ignore: test fixture
	tokenFile := filepath.Join(t.TempDir(), "client-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, p := runProxy(t, w.src, w, proxy.Upstream{URL: up.URL, ClientToken: "${file:" + tokenFile + "}",
		Headers: []proxy.Header{{Name: "X-Api-Key", Template: "{api}"}}}, proxy.Options{})
	for name, tc := range map[string]struct {
		auth string
		want int
	}{
		"none":       {"", http.StatusUnauthorized},
		"wrong":      {"Bearer local-client-token-6f1c2a9f", http.StatusUnauthorized},
		"not bearer": {"Basic " + token, http.StatusUnauthorized},
		"right":      {"Bearer " + token, http.StatusOK},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader("{}"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	<-up.bodies
	auth, hs, _ := up.rec.snapshot()
	if len(hs) != 1 || len(auth) != 0 {
		t.Fatalf("the upstream saw %d request(s) and %d Authorization header(s); want 1 and none (the client token stays here)", len(hs), len(auth))
	}
	if s := p.Stats(); s.Refused != 3 || s.Requests != 1 {
		t.Errorf("stats: %+v", s)
	}
	if strings.Contains(w.logs.String(), token) {
		t.Error("the client token is in the logs")
	}
}

func TestRetryAfter401(t *testing.T) {
	t.Parallel()
	// The watch never looks: only the 401 makes the proxy re-read.
	w := newWorld(t, "0s", time.Hour)
	rec := &seen{}
	var bodies atomic.Value
	upstream := httptest.NewServer(requireBearer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies.Store(string(b))
		fmt.Fprint(rw, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}), rec, func(ctx context.Context) (map[string]bool, error) {
		// A server without grace: only the current value.
		return map[string]bool{w.current(t, "api"): true}, nil
	}))
	defer upstream.Close()
	url, p := runProxy(t, w.src, w, proxy.Upstream{URL: upstream.URL, Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}},
		proxy.Options{MaxRetryBody: 64})
	post := func(body string) int {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(`{"n":1}`); got != http.StatusOK {
		t.Fatalf("before the rotation: status %d", got)
	}
	old := w.current(t, "api")
	w.rotate(t, "api")
	body := `{"jsonrpc":"2.0","id":2,"method":"tools/call"}`
	if got := post(body); got != http.StatusOK {
		t.Fatalf("after the rotation: status %d, want 200 (re-read and retried)", got)
	}
	auth, _, rejects := rec.snapshot()
	if len(auth) != 3 || auth[1] != "Bearer "+old || auth[2] != "Bearer "+w.current(t, "api") || rejects != 1 {
		t.Errorf("the upstream should see the old value rejected, then the new one (%d requests, %d rejected)", len(auth), rejects)
	}
	if bodies.Load() != body {
		t.Errorf("the retry's body: %q", bodies.Load())
	}
	if s := p.Stats(); s.Retried != 1 || s.Rereads != 1 || s.Unauthorized != 1 {
		t.Errorf("stats: %+v", s)
	}

	t.Run("a body over the retry limit is streamed, not retried", func(t *testing.T) {
		w.rotate(t, "api")
		big := strings.Repeat("x", 65)
		if got := post(big); got != http.StatusUnauthorized {
			t.Fatalf("status %d, want the upstream's 401", got)
		}
		if bodies.Load() == big {
			t.Error("a rejected request reached the handler")
		}
		if got := post(`{}`); got != http.StatusOK {
			t.Fatalf("the next small request: status %d, want 200", got)
		}
	})
	t.Run("an upstream that rejects the current value: one attempt, no re-read storm", func(t *testing.T) {
		before := p.Stats()
		_, hs0, _ := rec.snapshot()
		// The store is left alone; the upstream now knows no valid value.
		rejectAll := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(http.StatusUnauthorized)
		}))
		defer rejectAll.Close()
		url2, p2 := runProxy(t, w.src, w, proxy.Upstream{URL: rejectAll.URL, Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}, proxy.Options{})
		for range 5 {
			resp, err := http.Post(url2, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		if s := p2.Stats(); s.Retried != 0 || s.Rereads != 1 || s.Unauthorized != 5 {
			t.Errorf("stats: %+v (want 5 401s, one re-read, no retry)", s)
		}
		if _, hs, _ := rec.snapshot(); len(hs) != len(hs0) || p.Stats() != before {
			t.Error("the first proxy was touched")
		}
	})
	w.noCanary(t, "the logs", w.logs.String(), "api")
}

func TestEventStreamUnbuffered(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	next := make(chan struct{})
	lastEventID := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		lastEventID <- r.Header.Get("Last-Event-ID")
		rw.Header().Set("Content-Type", "text/event-stream")
		rw.WriteHeader(http.StatusOK)
		for i := range 3 {
			fmt.Fprintf(rw, "id: ev-%d\nevent: message\ndata: {\"n\":%d}\n\n", i, i)
			rw.(http.Flusher).Flush()
			select {
			case <-next: // the client read this event through the proxy
			case <-time.After(5 * time.Second):
				return
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer upstream.Close()
	url, _ := runProxy(t, w.src, w, proxy.Upstream{URL: upstream.URL, Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}, proxy.Options{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "ev-41")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := <-lastEventID; got != "ev-41" {
		t.Errorf("Last-Event-ID at the upstream: %q", got)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		deadline := time.AfterFunc(3*time.Second, func() { _ = resp.Body.Close() })
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d did not arrive while the upstream waited for it (buffered?): %v", i, err)
			}
			if strings.HasPrefix(line, "data: ") {
				break
			}
		}
		deadline.Stop()
		next <- struct{}{}
	}
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	url, p := runProxy(t, w.src, w, proxy.Upstream{URL: dead + "/mcp", Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}, proxy.Options{})
	resp, err := http.Post(url+"?secret-looking-query=canary_query_0123456789", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(msg), "did not answer") {
		t.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	if p.Stats().UpstreamErrors != 1 {
		t.Errorf("stats: %+v", p.Stats())
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "upstream request failed") || strings.Contains(logs, "canary_query") || strings.Contains(string(msg), "canary_query") {
		t.Errorf("want the failure logged without the request's URL:\n%s", logs)
	}
	w.noCanary(t, "the logs and the answer", logs+string(msg), "api")
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	p, err := proxy.New(w.src, []proxy.Upstream{{Name: "x", Listen: "127.0.0.1:0", URL: "https://mcp.example.com/mcp",
		Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {nope}"}}}}, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(t.Context(), nil)
	if !errors.Is(err, delivery.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("an unknown credential: %v", err)
	}
	p, err = proxy.New(w.src, []proxy.Upstream{{Name: "x", Listen: "127.0.0.1:0", URL: "https://mcp.example.com/mcp",
		ClientToken: "${file:" + filepath.Join(t.TempDir(), "absent") + "}", Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}}, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "client token") {
		t.Errorf("an unset client token: %v", err)
	}
}
