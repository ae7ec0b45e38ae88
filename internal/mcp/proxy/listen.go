package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/netx"
)

// checkUpstreamURL parses an upstream URL: http or https, a host, no user
// information (a password in a URL is a literal secret), and http only to
// a loopback address, so that an injected value never crosses another
// network in clear (DESIGN.md §11).
func checkUpstreamURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("no upstream URL: give the MCP server's endpoint, such as https://mcp.example.com/mcp")
	}
	u, err := url.Parse(s)
	if err != nil {
		// Not err itself: a *url.Error quotes the whole URL, a password
		// in it included.
		return nil, fmt.Errorf("upstream URL is not a URL: %w", netx.TransportCause(err))
	}
	switch {
	case u.User != nil:
		return nil, errors.New("upstream URL holds user information (user:password@); a credential belongs in the rotator store, injected by a header")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream URL scheme %q: use https:// (or http:// to a loopback address)", u.Scheme)
	case u.Host == "":
		return nil, errors.New("upstream URL has no host: give the MCP server's endpoint, such as https://mcp.example.com/mcp")
	case u.Fragment != "":
		return nil, errors.New("upstream URL has a #fragment, which HTTP never sends; remove it")
	case u.Scheme == "http" && !isLoopbackHost(u.Host):
		return nil, fmt.Errorf("upstream URL http://%s is not a loopback address: the injected credential would cross the network in clear; use https://", u.Host)
	}
	return u, nil
}

// checkListen checks a listen address and reports whether it is a
// loopback one. Listening on any other address (all interfaces included)
// needs TLS: the client's token crosses it.
func checkListen(addr string, tls bool) (bool, error) {
	if addr == "" {
		return false, errors.New("no listen address: give one such as 127.0.0.1:7070")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("listen address %q: %w; give host:port, such as 127.0.0.1:7070", addr, err)
	}
	if port == "" {
		return false, fmt.Errorf("listen address %q has no port; give host:port, such as 127.0.0.1:7070 (port 0 picks a free one)", addr)
	}
	loopback := host != "" && isLoopbackHost(host)
	if !loopback && !tls {
		shown := host
		if shown == "" {
			shown = "every interface"
		}
		return false, fmt.Errorf("listen address %q (%s) is not a loopback address; listening there in clear is refused (the client token and the responses would cross the network unencrypted): listen on 127.0.0.1, or give a TLS certificate and key", addr, shown)
	}
	return loopback, nil
}

// Listening is one bound listener, as Run reports it.
type Listening struct {
	// Upstream is the upstream's name.
	Upstream string `json:"name"`
	// Address is where the proxy listens (with the port picked when the
	// configuration gave port 0).
	Address string `json:"listen"`
	// URL is what an MCP client is pointed at.
	URL string `json:"url"`
	// Target is the upstream's URL.
	Target string `json:"upstream"`
	// Credentials are the ids of the credentials it injects.
	Credentials []string `json:"credentials"`
	// ClientToken says whether the client must present a token.
	ClientToken bool `json:"client_token"`
}

// Run starts the proxy (Start), listens on every upstream's address, calls
// ready with what it bound, and serves until ctx ends; then it stops
// accepting, ends event streams and returns. An error to listen or start
// ends it at once.
func (p *Proxy) Run(ctx context.Context, ready func([]Listening)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		return err
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	var out []Listening
	for _, u := range p.ups {
		ln, err := u.listen(ctx)
		if err != nil {
			return fmt.Errorf("upstream %q: %w", u.cfg.Name, err)
		}
		lns = append(lns, ln)
		scheme := "http"
		if u.cfg.TLSCert != "" {
			scheme = "https"
		}
		ids := make([]string, len(u.creds))
		for i, c := range u.creds {
			ids[i] = c.id
		}
		out = append(out, Listening{
			Upstream: u.cfg.Name, Address: ln.Addr().String(), URL: scheme + "://" + ln.Addr().String() + "/",
			Target: u.target.String(), Credentials: ids, ClientToken: u.needToken,
		})
	}
	if ready != nil {
		ready(out)
	}
	errs := make(chan error, len(lns))
	servers := make([]*http.Server, len(lns))
	var wg sync.WaitGroup
	for i, u := range p.ups {
		srv := &http.Server{
			Handler:           u,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(p.log.With(slog.String("upstream", u.cfg.Name)).Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}
		servers[i] = srv
		wg.Add(1)
		go func(ln net.Listener) {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("upstream %q: serving %s: %w", u.cfg.Name, ln.Addr(), err)
			}
		}(lns[i])
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	// Event streams never end by themselves: cancelling the base context
	// ends them, then Shutdown waits for the rest.
	cancel()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer scancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	wg.Wait()
	lns = nil
	return err
}

// listen binds the upstream's address, with TLS when configured.
func (u *upstream) listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", u.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", u.cfg.Listen, err)
	}
	if u.cfg.TLSCert == "" {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(u.cfg.TLSCert, u.cfg.TLSKey)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("loading the TLS certificate %s and key %s: %w", u.cfg.TLSCert, u.cfg.TLSKey, err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}), nil
}
