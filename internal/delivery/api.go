package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
)

// ErrUnauthorized: the consume API refused the request's credentials (a
// missing, unknown, expired or revoked API token).
var ErrUnauthorized = errors.New("not authorised by the consume API")

// DefaultWatchWait is how long one long poll of an API watch waits.
const DefaultWatchWait = 55 * time.Second

// APIOptions configures an API source: Socket, or URL with Token.
type APIOptions struct {
	// Socket is the path of the service's Unix socket (rotator serve
	// --socket); the service authorises this process by its uid.
	Socket string
	// URL is the service's base URL (https://rotator.example:8443, or
	// http://127.0.0.1:8080 on loopback); Token is the API token it
	// requires. Plain http is refused for any host but loopback.
	URL   string
	Token secret.Value
	// Client, when set, sends the requests (its TLS settings for https);
	// by default a client of its own is used.
	Client *http.Client
	// WatchWait is how long one long poll waits (DefaultWatchWait when
	// zero); Watch sends another until the version changes.
	WatchWait time.Duration
}

// API reads values from the service's consume API.
type API struct {
	base   string
	socket string // the socket's path, when reading over one (for errors)
	shown  string // the base URL as errors show it (a password in it redacted)
	token  secret.Value
	client *http.Client
	wait   time.Duration
	own    *http.Transport
}

// NewAPI returns an API source.
func NewAPI(opts APIOptions) (*API, error) {
	a := &API{token: opts.Token, client: opts.Client, wait: opts.WatchWait}
	if a.wait <= 0 {
		a.wait = DefaultWatchWait
	}
	switch {
	case opts.Socket != "" && opts.URL != "":
		return nil, errors.New("delivery: give the consume API's socket or its URL, not both")
	case opts.Socket != "":
		if !opts.Token.IsZero() {
			return nil, errors.New("delivery: the socket authorises by uid; it takes no token")
		}
		path := opts.Socket
		a.own = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConnsPerHost: 64,
		}
		a.base = "http://rotator-socket"
		a.socket = path
	case opts.URL != "":
		u, err := url.Parse(opts.URL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			shown := "" // an unparsable URL is not shown: it may hold a password
			if err == nil {
				shown = " " + u.Redacted()
			}
			return nil, fmt.Errorf("delivery: consume API URL%s: want https://HOST[:PORT] (or http:// on loopback)", shown)
		}
		if u.Scheme == "http" && !netx.Loopback(u.Hostname()) {
			return nil, fmt.Errorf("delivery: consume API URL %s: plain http is allowed to loopback only; use https (a token and a value never cross the network in the clear)", u.Redacted())
		}
		if opts.Token.IsZero() {
			return nil, errors.New("delivery: the consume API over TCP needs an API token (rotator tokens create)")
		}
		a.base = strings.TrimRight(u.String(), "/")
		a.shown = strings.TrimRight(u.Redacted(), "/")
		if a.client == nil {
			a.own = &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 16, ForceAttemptHTTP2: true}
		}
	default:
		return nil, errors.New("delivery: give the consume API's socket (--socket) or its URL (--url) and token")
	}
	if a.client == nil {
		a.client = &http.Client{Transport: a.own}
	}
	return a, nil
}

// Read implements Source.
func (a *API) Read(ctx context.Context, req ReadRequest) (Current, error) {
	cur, _, err := a.get(ctx, req.CredentialID, url.Values{"purpose": {req.Purpose}})
	return cur, err
}

// Watch implements Source with long polls: each waits up to WatchWait on
// the server, which polls the store once a second for all its waiting
// clients together.
func (a *API) Watch(ctx context.Context, req WatchRequest) (Current, error) {
	q := url.Values{"after": {req.AfterVersionID}, "wait": {a.wait.String()}, "purpose": {req.Purpose}}
	for {
		cur, changed, err := a.get(ctx, req.CredentialID, q)
		switch {
		case err != nil && ctx.Err() != nil:
			return Current{}, ctx.Err()
		case err != nil:
			return Current{}, err
		case changed:
			return cur, nil
		}
	}
}

// Close implements Source.
func (a *API) Close() error {
	if a.own != nil {
		a.own.CloseIdleConnections()
	}
	return nil
}

type apiValue struct {
	Credential    string     `json:"credential"`
	Version       string     `json:"version"`
	Fingerprint   string     `json:"fingerprint"`
	ExpiresAt     *time.Time `json:"expires_at"`
	NextCutoverAt *time.Time `json:"next_cutover_at"`
	Value         *string    `json:"value"`
}

type apiProblem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// get sends one request; changed is false on a long poll's 304.
func (a *API) get(ctx context.Context, id string, q url.Values) (Current, bool, error) {
	if q.Get("purpose") == "" {
		q.Del("purpose")
	}
	u := a.base + "/v1/credentials/" + url.PathEscape(id) + "/value"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Current{}, false, fmt.Errorf("credential %q: %w", id, err)
	}
	req.Header.Set("Accept", "application/json")
	if !a.token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+a.token.RevealString())
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return Current{}, false, a.transportError(id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Current{}, false, fmt.Errorf("credential %q: reading the consume API's answer from %s: %w", id, a.where(), err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var v apiValue
		if err := json.Unmarshal(body, &v); err != nil || v.Value == nil || v.Version == "" {
			return Current{}, false, fmt.Errorf("credential %q: the consume API answered with a body that is not a value (HTTP 200)", id)
		}
		cur := Current{CredentialID: v.Credential, VersionID: v.Version, Fingerprint: v.Fingerprint, Value: secret.NewString(*v.Value)}
		if v.ExpiresAt != nil {
			cur.ExpiresAt = *v.ExpiresAt
		}
		if v.NextCutoverAt != nil {
			cur.NextCutoverAt = *v.NextCutoverAt
		}
		return cur, true, nil
	case http.StatusNotModified:
		return Current{}, false, nil
	}
	var p apiProblem
	_ = json.Unmarshal(body, &p)
	detail := p.Detail
	if detail == "" {
		detail = resp.Status
	}
	var kind error
	switch {
	case resp.StatusCode == http.StatusNotFound && p.Code == "not-found":
		kind = ErrNotFound
	case resp.StatusCode == http.StatusForbidden && p.Code == "forbidden":
		kind = ErrForbidden
	case resp.StatusCode == http.StatusConflict && p.Code == "no-value":
		kind = ErrNoValue
	case resp.StatusCode == http.StatusUnauthorized:
		kind = ErrUnauthorized
	default:
		return Current{}, false, fmt.Errorf("credential %q: the consume API at %s answered HTTP %d: %s", id, a.where(), resp.StatusCode, detail)
	}
	return Current{}, false, fmt.Errorf("credential %q: %w: %s", id, kind, detail)
}

// where names the consume API for errors: the socket's path or the base URL.
func (a *API) where() string {
	if a.socket != "" {
		return "the socket " + a.socket
	}
	return a.shown
}

// transportError says why a request reached no consume API: where it was
// sent (the socket's path or the service's base URL, never the internal
// request URL) and, for the usual causes, what to check.
func (a *API) transportError(id string, err error) error {
	err = netx.TransportCause(err)
	if a.socket != "" {
		switch {
		case errors.Is(err, syscall.ENOENT):
			return fmt.Errorf("credential %q: no socket at %s: is rotator serve running with --socket %s?", id, a.socket, a.socket)
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("credential %q: nothing listens on the socket %s: rotator serve has stopped (the file is left from an earlier run)", id, a.socket)
		case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			return fmt.Errorf("credential %q: permission denied on the socket %s: it admits its owner and the group of serve's --socket-group", id, a.socket)
		}
		return fmt.Errorf("credential %q: the consume API on the socket %s: %w", id, a.socket, err)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("credential %q: nothing listens at %s: is rotator serve running with its API there?", id, a.shown)
	}
	return fmt.Errorf("credential %q: the consume API at %s: %w", id, a.shown, err)
}

var _ Source = (*API)(nil)
