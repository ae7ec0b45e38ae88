package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/store"
)

// CookieName is the session cookie.
const CookieName = "rotator_session"

// session is a logged-in browser. It holds the token's id, never the
// token.
type session struct {
	id        string
	csrf      string
	tokenID   string
	TokenName string
	// CanRotate is true for a token with the rotate or admin scope.
	CanRotate bool
	expires   time.Time
	flash     string
}

// Actor names the session's person in runs and audit events.
func (s *session) Actor() string { return "dashboard:" + s.TokenName }

// sessions are held in memory: they die with the process.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func randomHex() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func (ss *sessions) create(s *session, now time.Time) *session {
	s.id, s.csrf = randomHex(), randomHex()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, old := range ss.m { // sweep expired sessions at each login
		if !now.Before(old.expires) {
			delete(ss.m, id)
		}
	}
	ss.m[s.id] = s
	return s
}

// get returns a copy of the live session id names.
func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		return nil
	}
	if !now.Before(s.expires) {
		delete(ss.m, id)
		return nil
	}
	c := *s
	return &c
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

func (ss *sessions) setFlash(id, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s, ok := ss.m[id]; ok {
		s.flash = msg
	}
}

func (ss *sessions) takeFlash(id string) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		return ""
	}
	msg := s.flash
	s.flash = ""
	return msg
}

// limiter slows down token guessing: after maxFailures failed logins from
// one address within failureWindow, that address gets 429 until the window
// has passed.
type limiter struct {
	mu   sync.Mutex
	now  func() time.Time
	seen map[string][]time.Time
}

const (
	maxFailures   = 10
	failureWindow = time.Minute
)

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, seen: map[string][]time.Time{}}
}

func (l *limiter) recent(addr string) []time.Time {
	cut := l.now().Add(-failureWindow)
	ts := slices.DeleteFunc(l.seen[addr], func(t time.Time) bool { return t.Before(cut) })
	if len(ts) == 0 {
		delete(l.seen, addr)
	} else {
		l.seen[addr] = ts
	}
	return ts
}

func (l *limiter) blocked(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(addr)) >= maxFailures
}

func (l *limiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[addr] = append(l.recent(addr), l.now())
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type ctxKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(ctxKey{}).(*session)
	return s
}

// authed serves next to a logged-in session whose token is still valid,
// and sends anyone else to the login page. A POST must also come from this
// site and carry the session's CSRF token.
func (h *Handler) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := h.opts.Now()
		var s *session
		if c, err := r.Cookie(CookieName); err == nil {
			s = h.sessions.get(c.Value, now)
		}
		if s != nil {
			// A revoked or expired token ends its sessions at once.
			tok, err := h.opts.Store.GetAPIToken(r.Context(), s.tokenID)
			switch {
			case errors.Is(err, store.ErrNotFound), err == nil && !tok.RevokedAt.IsZero():
				h.sessions.drop(s.id)
				s = nil
			case err != nil:
				h.fail(w, r, err, http.StatusServiceUnavailable, "The database did not answer; try again.")
				return
			}
		}
		if s == nil {
			if r.Method != http.MethodGet {
				h.fail(w, r, nil, http.StatusUnauthorized, "Your session has ended; log in again.")
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				h.fail(w, r, nil, http.StatusForbidden, "This form was sent from another site, and refused.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				h.fail(w, r, nil, http.StatusForbidden, "This form is stale or was not made by this dashboard (CSRF token mismatch); reload the page and try again.")
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	}
}

// sameOrigin reports whether a POST came from a page of this site, as far
// as the browser says: Sec-Fetch-Site (same-origin, or none for a typed
// request) and Origin (this host) when they are sent. A browser that sends
// neither is covered by the CSRF token and the SameSite=Strict cookie.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null" and other opaque origins
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

type loginData struct {
	Next  string
	Error string
}

func safeNext(next string) string {
	// Only a path of this site: never "//host" or "scheme:".
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if !sameOrigin(r) {
		h.fail(w, r, nil, http.StatusForbidden, "This form was sent from another site, and refused.")
		return
	}
	addr := clientAddr(r)
	if h.limiter.blocked(addr) {
		w.Header().Set("Retry-After", "60")
		h.render(w, r, http.StatusTooManyRequests, "login", page{Title: "Log in", Data: loginData{Next: next, Error: "Too many failed logins from your address; wait a minute."}})
		return
	}
	tok, err := h.opts.Tokens.Authenticate(r.Context(), strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		h.limiter.fail(addr)
		msg := "That is not a valid API token."
		switch {
		case errors.Is(err, apitoken.ErrRevoked):
			msg = "That API token is revoked."
		case errors.Is(err, apitoken.ErrExpired):
			msg = "That API token has expired."
		case !errors.Is(err, apitoken.ErrInvalid) && !errors.Is(err, apitoken.ErrUnknown):
			h.opts.Logger.Error("dashboard: checking a login token failed", slog.String("error", err.Error()))
			msg = "The token could not be checked (database error); try again."
		}
		h.opts.Logger.Info("dashboard: login refused", slog.String("client", addr), slog.String("reason", err.Error()))
		h.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Data: loginData{Next: next, Error: msg}})
		return
	}
	var read, rotate bool
	for _, sc := range tok.Scopes {
		switch sc.Kind {
		case apitoken.KindRead:
			read = true
		case apitoken.KindRotate, apitoken.KindAdmin:
			read, rotate = true, true
		case apitoken.KindConsume:
		}
	}
	if !read {
		h.limiter.fail(addr)
		h.opts.Logger.Info("dashboard: login refused: token lacks the read scope", slog.String("client", addr), slog.String("token", tok.ID))
		h.render(w, r, http.StatusForbidden, "login", page{Title: "Log in", Data: loginData{Next: next,
			Error: "This token may not view the dashboard: it needs the read, rotate or admin scope (rotator tokens create --scope read)."}})
		return
	}
	now := h.opts.Now()
	expires := now.Add(h.opts.SessionTTL)
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(expires) {
		expires = tok.ExpiresAt
	}
	name := tok.Name
	if name == "" {
		name = tok.ID
	}
	s := h.sessions.create(&session{tokenID: tok.ID, TokenName: name, CanRotate: rotate, expires: expires}, now)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: s.id, Path: "/", Expires: expires, MaxAge: int(expires.Sub(now) / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	h.opts.Logger.Info("dashboard: logged in", slog.String("client", addr), slog.String("token", tok.ID), slog.Bool("can_rotate", rotate))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	h.sessions.drop(s.id)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
