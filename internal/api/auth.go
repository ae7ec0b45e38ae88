package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/credsel"
	"github.com/rotatorhq/rotator/internal/netx"
)

// principal is who makes a request, and what it may read.
type principal struct {
	// identity names the reader in audit events and problems: "uid:1000
	// (alice)" or "token:ID (name)".
	identity string
	// via is "socket" or "api".
	via     string
	tokenID string
	// selectors are what the principal may read.
	selectors []credsel.Selector
	// howToAllow ends a 403's detail: how an operator would allow it.
	howToAllow string
	// actor names a token in the runs it starts: "token:NAME", or
	// "token:ID" for an unnamed one.
	actor string
	// grants are the management scopes of a token (read, rotate, admin).
	grants []apitoken.Kind
	// scopes lists every scope of a token, for 403 details.
	scopes string
}

// may reports whether p holds a management scope that includes need:
// admin includes rotate, rotate includes read.
func (p principal) may(need apitoken.Kind) bool {
	for _, g := range p.grants {
		switch {
		case g == apitoken.KindAdmin,
			g == apitoken.KindRotate && need != apitoken.KindAdmin,
			g == apitoken.KindRead && need == apitoken.KindRead:
			return true
		}
	}
	return false
}

// mayRead reports whether p may read credential id with labels. For a
// credential that does not exist (missing), only selectors that name it by
// id (or *) count.
func (p principal) mayRead(id string, labels map[string]string, missing bool) bool {
	for _, s := range p.selectors {
		if missing && !s.All && s.ID == "" {
			continue
		}
		if s.Matches(id, labels) {
			return true
		}
	}
	return false
}

// Rule is a resolved delivery: allow rule: a uid or a gid, and the
// credentials it may read.
type Rule struct {
	// UID or GID (exactly one is set) is whom the rule allows.
	UID, GID  *uint32
	Selectors []credsel.Selector
	// Source says where the rule was written (file:line), for logs.
	Source string
}

// ResolveRules turns the config's delivery: section into Rules, looking up
// user and group names on this host. An unknown name is an error naming the
// file, line and field.
func ResolveRules(cfg *config.Config) ([]Rule, error) {
	if cfg == nil || cfg.Delivery == nil {
		return nil, nil
	}
	var out []Rule
	var errs []error
	for i, r := range cfg.Delivery.Allow {
		src := fmt.Sprintf("%s:%d", cfg.File, r.Line)
		field := fmt.Sprintf("delivery.allow[%d].%s", i, r.Kind)
		rule := Rule{Selectors: r.Selectors, Source: src}
		id, err := resolvePrincipal(r.Kind, r.Principal)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", src, field, err))
			continue
		}
		if r.Kind == "uid" || r.Kind == "user" {
			rule.UID = &id
		} else {
			rule.GID = &id
		}
		out = append(out, rule)
	}
	return out, errors.Join(errs...)
}

func resolvePrincipal(kind, name string) (uint32, error) {
	switch kind {
	case "uid", "gid":
		n, err := strconv.ParseUint(name, 10, 32)
		return uint32(n), err
	case "user":
		u, err := user.Lookup(name)
		if err != nil {
			return 0, fmt.Errorf("no user %q on this host (%v)", name, err)
		}
		n, err := strconv.ParseUint(u.Uid, 10, 32)
		return uint32(n), err
	case "group":
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, fmt.Errorf("no group %q on this host (%v)", name, err)
		}
		n, err := strconv.ParseUint(g.Gid, 10, 32)
		return uint32(n), err
	}
	return 0, fmt.Errorf("unknown principal kind %q", kind)
}

// PeerCred is the identity of a Unix socket's peer process.
type PeerCred struct {
	PID      int32
	UID, GID uint32
}

type peerKey struct{}

// NewSocketServer returns an http.Server for the Unix socket: each
// connection's peer credentials (SO_PEERCRED) are read once, when it is
// accepted, and authorise its requests.
func (s *Server) NewSocketServer() *http.Server {
	return &http.Server{
		Handler:           s.SocketHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cred, err := peerCred(c)
			if err != nil {
				s.opts.Logger.Warn("reading a socket peer's credentials failed; its requests are refused", slog.Any("error", err))
				return ctx
			}
			return context.WithValue(ctx, peerKey{}, cred)
		},
		ErrorLog: slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
}

func (s *Server) socketAuth(r *http.Request) (principal, *problem) {
	cred, ok := r.Context().Value(peerKey{}).(PeerCred)
	if !ok {
		return principal{}, newProblem(http.StatusForbidden, "forbidden", "Unknown peer", "the peer's credentials could not be read")
	}
	name, groups := s.users.lookup(cred.UID, s.opts.Now())
	p := principal{identity: "uid:" + strconv.FormatUint(uint64(cred.UID), 10), via: "socket",
		howToAllow: "allow it under delivery.allow in the service's configuration, by uid, user, gid or group"}
	if name != "" {
		p.identity += " (" + name + ")"
	}
	for _, rule := range s.opts.Rules {
		switch {
		case rule.UID != nil && *rule.UID == cred.UID,
			rule.GID != nil && (*rule.GID == cred.GID || slices.Contains(groups, *rule.GID)):
			p.selectors = append(p.selectors, rule.Selectors...)
		}
	}
	return p, nil
}

// tokenAuth authenticates a request's bearer token. A client address
// whose failed attempts used up its allowance is answered 429 before its
// token is looked at; each 401 uses up one more.
func (s *Server) tokenAuth(r *http.Request) (principal, *problem) {
	if r.TLS == nil && !netx.LoopbackHostPort(r.RemoteAddr) {
		return principal{}, tlsRequired()
	}
	addr := clientAddr(r.RemoteAddr)
	if wait := s.limiter.blocked(addr, s.opts.Now()); wait > 0 {
		return principal{}, tooManyFailures(wait)
	}
	p, prob := s.checkToken(r)
	if prob != nil && prob.Status == http.StatusUnauthorized {
		s.limiter.fail(addr, s.opts.Now())
	}
	return p, prob
}

func (s *Server) checkToken(r *http.Request) (principal, *problem) {
	if s.opts.Tokens == nil {
		return principal{}, unauthorized("this service takes no API tokens")
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return principal{}, unauthorized(`send an API token as "Authorization: Bearer rtrtok_..." (rotator tokens create)`)
	}
	t, err := s.opts.Tokens.Authenticate(r.Context(), strings.TrimSpace(tok))
	switch {
	case errors.Is(err, apitoken.ErrInvalid), errors.Is(err, apitoken.ErrUnknown):
		return principal{}, unauthorized("the API token is not valid")
	case errors.Is(err, apitoken.ErrExpired), errors.Is(err, apitoken.ErrRevoked):
		return principal{}, unauthorized(err.Error())
	case err != nil:
		s.opts.Logger.Error("authenticating an API token failed", slog.Any("error", err))
		return principal{}, unavailableProblem("the API token could not be checked; try again")
	}
	p := principal{identity: t.Identity(), via: "api", tokenID: t.ID, scopes: scopeList(t),
		howToAllow: "its scopes are " + scopeList(t) + "; create a token with --scope consume:CREDENTIAL"}
	p.actor = "token:" + t.ID
	if t.Name != "" {
		p.actor = "token:" + t.Name
	}
	for _, sc := range t.Scopes {
		if sc.Kind == apitoken.KindConsume {
			p.selectors = append(p.selectors, sc.Selector)
		} else {
			p.grants = append(p.grants, sc.Kind)
		}
	}
	return p, nil
}

func scopeList(t apitoken.Token) string {
	if len(t.Scopes) == 0 {
		return "none"
	}
	out := make([]string, len(t.Scopes))
	for i, s := range t.Scopes {
		out[i] = s.String()
	}
	return strings.Join(out, ", ")
}

// userCache caches a uid's name and groups for a minute.
type userCache struct {
	mu sync.Mutex
	m  map[uint32]userEntry
}

type userEntry struct {
	name   string
	groups []uint32
	at     time.Time
}

func newUserCache() *userCache { return &userCache{m: map[uint32]userEntry{}} }

func (c *userCache) lookup(uid uint32, now time.Time) (string, []uint32) {
	c.mu.Lock()
	e, ok := c.m[uid]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < time.Minute {
		return e.name, e.groups
	}
	e = userEntry{at: now}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		e.name = u.Username
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					e.groups = append(e.groups, uint32(n))
				}
			}
		}
	}
	c.mu.Lock()
	c.m[uid] = e
	c.mu.Unlock()
	return e.name, e.groups
}

// touchCache limits the recording of a token's last use to once a minute.
type touchCache struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (c *touchCache) due(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.last[id]; ok && now.Sub(t) < time.Minute {
		return false
	}
	c.last[id] = now
	return true
}
