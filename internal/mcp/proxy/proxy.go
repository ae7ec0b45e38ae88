// Package proxy is `rotator proxy`: a reverse proxy for MCP servers that
// speak the streamable-HTTP transport, which adds the current value of a
// credential to every request it forwards (DESIGN.md §10), so that an MCP
// client's configuration holds no secret and a rotation needs no client
// restart.
//
// Values come from any delivery.Source. Each credential is read once at
// start and cached; a watch (Source.Watch) replaces the cached value in
// the background when a rotation cuts over, so a request never waits on
// the store. When an upstream answers 401 (a cutover the watch has not
// seen yet, or a previous version retired at once), the proxy re-reads
// the credential and, if its version changed, sends that request once
// more with the new value.
//
// What the client sends is passed through (JSON-RPC POSTs, GET and DELETE,
// Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID and the other MCP
// headers), server-sent event streams unbuffered, except credentials: a
// client's Authorization header and any header the proxy injects are
// removed (no token passthrough), and a request carrying a header that a
// tool parameter maps onto an injected one (x-mcp-header, sent as
// Mcp-Param-<name>) is refused. The proxy never logs headers or bodies.
package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
)

// DefaultMaxRetryBody is how much of a request body the proxy keeps to
// send the request again after a 401. A larger body is streamed, and its
// request is not retried.
const DefaultMaxRetryBody = 1 << 20

// DefaultHeaderName and DefaultHeaderTemplate make the header injected
// when an upstream configures none: Authorization: Bearer {credential}.
const (
	DefaultHeaderName     = "Authorization"
	DefaultHeaderTemplate = "Bearer {%s}"
)

// errOpenRelay refuses a proxy reachable from the network that anyone
// could use.
var errOpenRelay = errors.New("listening off loopback needs a client token: without one, anyone who reaches the address calls the upstream with the credential")

// paramHeaderPrefix is how MCP sends a tool parameter annotated with
// x-mcp-header as a request header (SEP-2243).
const paramHeaderPrefix = "Mcp-Param-"

// Header is one header the proxy sets on every upstream request.
type Header struct {
	// Name is the header's name, such as Authorization or X-API-Key.
	Name string
	// Template is its value with {credential-id} placeholders, such as
	// "Bearer {github-mcp-token}"; {{ and }} are literal braces.
	Template string
}

// Upstream is one proxied MCP server.
type Upstream struct {
	// Name identifies the upstream in logs and errors ("default" for the
	// one given by flags).
	Name string
	// Listen is the address the proxy listens on for this upstream
	// (host:port). A non-loopback address needs TLSCert and TLSKey.
	Listen string
	// URL is the MCP endpoint: https://, or http:// only on loopback (an
	// injected value never crosses a non-loopback connection in clear).
	// The proxy's root path maps to it; a path below the root is appended.
	URL string
	// Headers are set on every request; each names at least one
	// credential.
	Headers []Header
	// ClientToken, when set, is a secret reference (${env:...},
	// ${file:...}, ${aws-sm:...}) to a token the client must present as
	// "Authorization: Bearer TOKEN".
	ClientToken string
	// TLSCert and TLSKey are files of the listen side's certificate and
	// key (PEM).
	TLSCert, TLSKey string
}

// Options configures a Proxy.
type Options struct {
	Logger *slog.Logger
	// Redactor is told of every value the proxy holds, so that a log
	// line never shows one (nil: none).
	Redactor *secret.Redactor
	// Resolver resolves client token references (a zero Resolver when
	// nil).
	Resolver *secret.Resolver
	// Transport sends the upstream requests (a clone of
	// http.DefaultTransport keeping 256 idle connections per host when
	// nil).
	Transport http.RoundTripper
	// MaxRetryBody is DefaultMaxRetryBody when zero.
	MaxRetryBody int64
}

// Stats counts what a proxy did; see Proxy.Stats.
type Stats struct {
	// Requests is how many requests were forwarded.
	Requests int64
	// Refused is how many requests the proxy answered itself (a wrong
	// client token, Host or Origin, an x-mcp-header onto an injected
	// header).
	Refused int64
	// Unauthorized is how many upstream answers were 401.
	Unauthorized int64
	// Retried is how many requests were sent again with a newer value
	// after a 401.
	Retried int64
	// Rereads is how many times a credential was read again after a 401.
	Rereads int64
	// UpstreamErrors is how many requests failed to reach the upstream.
	UpstreamErrors int64
}

// Proxy forwards requests to its upstreams with their credentials.
type Proxy struct {
	src   delivery.Source
	opts  Options
	log   *slog.Logger
	creds map[string]*cred
	ups   []*upstream
	stats struct {
		requests, refused, unauthorized, retried, upstreamErrors atomic.Int64
	}
	started atomic.Bool
}

// upstream is one Upstream, compiled.
type upstream struct {
	p        *Proxy
	cfg      Upstream
	target   *url.URL
	loopback bool // the listen address is a loopback one
	headers  []compiledHeader
	creds    []*cred // every credential the headers name
	// injected are the canonical names of the injected headers, and
	// Authorization.
	injected    []string
	clientToken [sha256.Size]byte // hash of the client token; zero when none
	needToken   bool
	rp          *httputil.ReverseProxy
	rendered    atomic.Pointer[rendered]
}

type compiledHeader struct {
	name string
	tmpl delivery.Template
}

// rendered is an upstream's header values for one set of versions.
type rendered struct {
	curs   []*delivery.Current // per upstream.creds, what was rendered
	values []string            // per upstream.headers
	err    error
}

// Validate checks upstreams as New does, without a source: flags and files
// are checked before the database is opened.
func Validate(ups []Upstream) error {
	_, err := newProxy(nil, ups, Options{})
	return err
}

// New checks the upstreams and returns a proxy reading values from src.
// It reads nothing yet: Start does. src stays the caller's.
func New(src delivery.Source, ups []Upstream, opts Options) (*Proxy, error) {
	if src == nil {
		return nil, errors.New("proxy: no delivery source")
	}
	return newProxy(src, ups, opts)
}

func newProxy(src delivery.Source, ups []Upstream, opts Options) (*Proxy, error) {
	if len(ups) == 0 {
		return nil, errors.New("proxy: no upstream to proxy")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resolver == nil {
		opts.Resolver = &secret.Resolver{}
	}
	if opts.MaxRetryBody <= 0 {
		opts.MaxRetryBody = DefaultMaxRetryBody
	}
	if opts.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 256
		opts.Transport = t
	}
	p := &Proxy{src: src, opts: opts, log: opts.Logger, creds: map[string]*cred{}}
	names := map[string]bool{}
	for i, cfg := range ups {
		if cfg.Name == "" {
			cfg.Name = fmt.Sprintf("upstream-%d", i+1)
		}
		if names[cfg.Name] {
			return nil, fmt.Errorf("proxy: two upstreams are named %q", cfg.Name)
		}
		names[cfg.Name] = true
		u, err := p.compile(cfg)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", cfg.Name, err)
		}
		p.ups = append(p.ups, u)
	}
	return p, nil
}

// compile checks one upstream and prepares what requests need.
func (p *Proxy) compile(cfg Upstream) (*upstream, error) {
	u := &upstream{p: p, cfg: cfg, injected: []string{"Authorization"}}
	var err error
	if u.target, err = checkUpstreamURL(cfg.URL); err != nil {
		return nil, err
	}
	if u.loopback, err = checkListen(cfg.Listen, cfg.TLSCert != "" || cfg.TLSKey != ""); err != nil {
		return nil, err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("tls: give both a certificate and a key, or neither")
	}
	if !u.loopback && cfg.ClientToken == "" {
		return nil, errOpenRelay
	}
	if len(cfg.Headers) == 0 {
		return nil, errors.New("no header to inject: name a credential (the default header is Authorization: Bearer {credential})")
	}
	for _, h := range cfg.Headers {
		name, err := parseHeaderName(h.Name)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.Name, err)
		}
		for _, c := range u.headers {
			if c.name == name {
				return nil, fmt.Errorf("header %s is given twice", name)
			}
		}
		t, err := delivery.ParseTemplate(h.Template)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		u.headers = append(u.headers, compiledHeader{name: name, tmpl: t})
		if name != "Authorization" {
			u.injected = append(u.injected, name)
		}
		for _, id := range t.Credentials() {
			c := p.creds[id]
			if c == nil {
				c = &cred{id: id, src: p.src, red: p.opts.Redactor, log: p.log}
				p.creds[id] = c
			}
			if !containsCred(u.creds, c) {
				u.creds = append(u.creds, c)
			}
		}
	}
	u.rp = &httputil.ReverseProxy{
		Rewrite:      u.rewrite,
		Transport:    &injector{u: u, base: p.opts.Transport},
		ErrorHandler: u.proxyError,
		BufferPool:   buffers,
		ErrorLog:     slog.NewLogLogger(p.log.With(slog.String("upstream", cfg.Name)).Handler(), slog.LevelWarn),
	}
	return u, nil
}

func containsCred(list []*cred, c *cred) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// Start reads every credential once and resolves the client tokens; then,
// until ctx ends, it keeps the values current in the background. An error
// names the credential or upstream at fault (a credential not found wraps
// delivery.ErrNotFound).
func (p *Proxy) Start(ctx context.Context) error {
	if p.started.Swap(true) {
		return errors.New("proxy: already started")
	}
	for _, u := range p.ups {
		if u.cfg.ClientToken == "" {
			continue
		}
		tok, err := p.opts.Resolver.ResolveString(ctx, u.cfg.ClientToken)
		if err != nil {
			return fmt.Errorf("upstream %q: client token: %w", u.cfg.Name, err)
		}
		u.clientToken, u.needToken = sha256.Sum256(tok.Reveal()), true
	}
	for _, c := range p.creds {
		if err := c.load(ctx); err != nil {
			return err
		}
	}
	for _, u := range p.ups {
		if r := u.current(); r.err != nil {
			return fmt.Errorf("upstream %q: %w", u.cfg.Name, r.err)
		}
	}
	for _, c := range p.creds {
		go c.watch(ctx)
	}
	return nil
}

// Stats returns what the proxy did so far, over all upstreams.
func (p *Proxy) Stats() Stats {
	s := Stats{
		Requests: p.stats.requests.Load(), Refused: p.stats.refused.Load(), Unauthorized: p.stats.unauthorized.Load(),
		Retried: p.stats.retried.Load(), UpstreamErrors: p.stats.upstreamErrors.Load(),
	}
	for _, c := range p.creds {
		s.Rereads += c.rereads.Load()
	}
	return s
}

// Handler returns the handler of the named upstream (nil when none has
// that name). It serves requests only after Start.
func (p *Proxy) Handler(name string) http.Handler {
	for _, u := range p.ups {
		if u.cfg.Name == name {
			return u
		}
	}
	return nil
}

// current returns the upstream's header values for the cached versions,
// rendering them again only when a version changed.
func (u *upstream) current() *rendered {
	r := u.rendered.Load()
	if r != nil && r.fresh(u.creds) {
		return r
	}
	n := &rendered{curs: make([]*delivery.Current, len(u.creds)), values: make([]string, len(u.headers))}
	vals := make(map[string]string, len(u.creds))
	for i, c := range u.creds {
		n.curs[i] = c.cur.Load()
		vals[c.id] = n.curs[i].Value.RevealString()
	}
	for i, h := range u.headers {
		v, err := h.tmpl.Render(func(id string) string { return vals[id] })
		if err != nil {
			n.err = fmt.Errorf("header %s: %w", h.name, err)
			break
		}
		n.values[i] = v
	}
	u.rendered.Store(n)
	return n
}

func (r *rendered) fresh(creds []*cred) bool {
	for i, c := range creds {
		if c.cur.Load() != r.curs[i] {
			return false
		}
	}
	return true
}

// ServeHTTP checks what only the proxy may decide, then forwards.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if status, msg := u.refuse(r); status != 0 {
		u.p.stats.refused.Add(1)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rotator-proxy"`)
		}
		writeError(w, status, msg)
		return
	}
	u.p.stats.requests.Add(1)
	u.rp.ServeHTTP(w, r)
}

// refuse returns the status and message of a request the proxy does not
// forward; 0 when it forwards it.
func (u *upstream) refuse(r *http.Request) (int, string) {
	if u.loopback && !isLoopbackHost(r.Host) {
		return http.StatusForbidden, fmt.Sprintf("rotator proxy: Host %q is not a loopback name; this proxy answers only requests addressed to localhost (DNS rebinding protection)", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" && u.loopback {
		if ou, err := url.Parse(o); err != nil || !isLoopbackHost(ou.Host) {
			return http.StatusForbidden, "rotator proxy: requests from a web page of another origin are refused (Origin is not a loopback address)"
		}
	}
	if u.needToken {
		tok, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], u.clientToken[:]) != 1 || !ok {
			return http.StatusUnauthorized, "rotator proxy: this proxy requires its client token (Authorization: Bearer TOKEN); the one sent is missing or wrong"
		}
	}
	for k := range r.Header {
		if len(k) <= len(paramHeaderPrefix) || !strings.EqualFold(k[:len(paramHeaderPrefix)], paramHeaderPrefix) {
			continue
		}
		for _, inj := range u.injected {
			if strings.EqualFold(k[len(paramHeaderPrefix):], inj) {
				return http.StatusBadRequest, fmt.Sprintf("rotator proxy: header %s maps a tool parameter onto %s, which this proxy injects; a tool parameter cannot set a credential header (rename the tool's x-mcp-header)", k, inj)
			}
		}
	}
	return 0, ""
}

// bearer returns the token of an "Authorization: Bearer TOKEN" value.
func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

// rewrite directs the request to the upstream and removes every
// credential the client sent. The transport adds the proxy's.
func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(u.target)
	if p := pr.In.URL.Path; p == "" || p == "/" {
		pr.Out.URL.Path, pr.Out.URL.RawPath = u.target.Path, u.target.RawPath
	}
	for k := range pr.Out.Header {
		for _, inj := range u.injected {
			if strings.EqualFold(k, inj) {
				delete(pr.Out.Header, k)
				break
			}
		}
	}
}

// proxyError answers a request that did not reach the upstream. The error
// is logged without the URL (the client's query might hold anything).
func (u *upstream) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	u.p.stats.upstreamErrors.Add(1)
	err = netx.TransportCause(err)
	var re renderError
	if errors.As(err, &re) {
		u.p.log.Error("cannot build the credential header", slog.String("upstream", u.cfg.Name), slog.String("error", re.Error()))
		writeError(w, http.StatusBadGateway, "rotator proxy: cannot inject the credential: "+re.Error())
		return
	}
	msg := err.Error()
	if u.p.opts.Redactor != nil {
		msg = u.p.opts.Redactor.Scrub(msg)
	}
	u.p.log.Warn("upstream request failed", slog.String("upstream", u.cfg.Name), slog.String("method", r.Method), slog.String("error", msg))
	writeError(w, http.StatusBadGateway, fmt.Sprintf("rotator proxy: upstream %s did not answer: %s", u.cfg.Name, msg))
}

// writeError answers with a JSON-RPC error object (id null), which MCP
// clients show as the reason.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": -32000, "message": msg},
	})
}

// isLoopbackHost reports whether a Host value (name or IP, with or without
// a port) names this machine's loopback interface; names under .localhost
// count too (RFC 6761 reserves them for loopback).
func isLoopbackHost(hostport string) bool {
	if netx.LoopbackHostPort(hostport) {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.HasSuffix(strings.ToLower(host), ".localhost")
}

// bufferPool lends the 32 KiB buffers ReverseProxy copies responses
// with, which it would otherwise allocate for every request.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

var buffers = &bufferPool{p: sync.Pool{New: func() any { x := make([]byte, 32<<10); return &x }}}

var _ http.Handler = (*upstream)(nil)

// shutdownTimeout bounds how long Run waits for requests in flight (not
// for event streams, which it ends) when ctx ends.
const shutdownTimeout = 5 * time.Second
