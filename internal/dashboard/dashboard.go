// Package dashboard is rotator's web dashboard (issue 13): server-rendered
// pages that work without JavaScript and load nothing from elsewhere (the
// style sheet is inline, the templates are embedded). It shows the
// credentials (those that need attention first, age against max age, next
// rotation), recent runs, a run's steps and runbook, emergency runs and the
// audit chain, and lets a person with a rotate or admin token rotate a
// credential, routinely or in an emergency.
//
// A person logs in with an API token (rotator tokens create --scope read);
// the token is checked once and never stored: the browser gets a random
// session id in an HttpOnly, SameSite=Strict cookie (Secure over TLS), and
// the server keeps the session in memory until it expires, its token is
// revoked or expires, or the process ends. Over plaintext it answers
// loopback clients only, as the API does. Every form that changes
// something carries the session's CSRF token, and a POST from another site
// (Origin or Sec-Fetch-Site) is refused. No secret value is ever read: the
// pages show versions by fingerprint only.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

//go:embed templates/*.html
var templateFS embed.FS

// Defaults.
const (
	// DefaultSessionTTL is how long a session lives (never past its
	// token's expiry).
	DefaultSessionTTL = 8 * time.Hour
	// DefaultPageSize is how many credentials or runs a page lists.
	DefaultPageSize = 100
)

// Rotator starts rotations; *rotation.Engine is one (with a Runner, so it
// has a queue).
type Rotator interface {
	Rotate(ctx context.Context, req rotation.Request) ([]rotation.Started, error)
}

// Options configure a Handler.
type Options struct {
	Store store.Store
	// Tokens authenticates the token given at login.
	Tokens *apitoken.Service
	// Rotator starts the rotations asked for with the rotate buttons; nil
	// hides them.
	Rotator Rotator
	// RunbookDir is where relative runbook paths are found (the
	// configuration file's directory, as for the engine); the working
	// directory when empty.
	RunbookDir string
	// SessionTTL is DefaultSessionTTL when zero.
	SessionTTL time.Duration
	// PageSize is DefaultPageSize when zero.
	PageSize int
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler serves the dashboard. Mount it at "/" beside the API.
type Handler struct {
	opts     Options
	pages    map[string]*template.Template
	mux      *http.ServeMux
	sessions *sessions
	limiter  *limiter
	audit    auditCache
}

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil || opts.Tokens == nil {
		return nil, errors.New("dashboard: needs a store and the API token service")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RunbookDir == "" {
		opts.RunbookDir = "."
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, pages: pages, sessions: newSessions(), limiter: newLimiter(opts.Now)}
	h.mux = h.routes()
	return h, nil
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: parsing templates/layout.html: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "credentials", "credential", "runs", "run", "runbook", "audit", "error"} {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parsing templates/%s.html: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("POST /logout", h.authed(h.logout))
	mux.HandleFunc("GET /{$}", h.authed(h.credentialsPage))
	mux.HandleFunc("GET /credentials/{id}", h.authed(h.credentialPage))
	mux.HandleFunc("POST /credentials/{id}/rotate", h.authed(h.rotate))
	mux.HandleFunc("GET /runs", h.authed(h.runsPage(false)))
	mux.HandleFunc("GET /emergencies", h.authed(h.runsPage(true)))
	mux.HandleFunc("GET /runs/{id}", h.authed(h.runPage))
	mux.HandleFunc("GET /runs/{id}/runbook", h.authed(h.runbookPage))
	mux.HandleFunc("GET /audit", h.authed(h.auditPage))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, nil, http.StatusNotFound, "No such page.")
	})
	return mux
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Nothing but the page itself and its inline style: no script, no
	// outside asset, no framing, no form posting elsewhere.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with a form, which the origin check must refuse.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	if r.TLS == nil && !netx.LoopbackHostPort(r.RemoteAddr) {
		// A token typed in, or a session cookie, would cross the network
		// in the clear: as the API, answer such peers nothing.
		h.fail(w, r, nil, http.StatusForbidden, "The dashboard answers plaintext requests from this host only: start rotator serve with --tls-cert and --tls-key and connect with https.")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	Session *session
	// CSRF is the session's token for the forms of the page.
	CSRF  string
	Flash string
	Data  any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s := sessionFrom(r.Context()); s != nil {
		p.Session, p.CSRF = s, s.csrf
		if p.Flash == "" {
			p.Flash = h.sessions.takeFlash(s.id)
		}
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.opts.Logger.Error("dashboard: rendering a page failed", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "rendering the page failed; see the service log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders the error page; err (if any) is logged, not shown, unless
// the message is empty.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, status int, msg string) {
	if err != nil {
		h.opts.Logger.Error("dashboard: request failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	if msg == "" {
		msg = "Something failed on the server; the service log says what."
	}
	h.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}
