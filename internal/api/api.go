// Package api is rotator's HTTP API (DESIGN.md §3, docs/api.md). It serves
// the management API under /v1 over TCP (manage.go: credentials, runs,
// rotations, the report, audit verify and config reload, authorised by
// read, rotate and admin tokens) and the consume API of DESIGN.md §10:
//
//	GET /v1/credentials/{id}/value                     the current value
//	GET /v1/credentials/{id}/value?after=V&wait=60s    long poll: answers when the
//	                                                   current version is not V
//	                                                   (304 when wait ends first)
//
// on a Unix socket, authorised by the peer's uid and groups (SO_PEERCRED)
// against the config's delivery: rules, and over TCP, authorised by API
// tokens with consume: scopes. Errors are RFC 9457 problem details. Every
// value handed out is a value.read audit event (credential, version,
// fingerprint, reader; never the value), committed before the value is
// sent.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// Defaults.
const (
	// DefaultPoll is how often the watch poller reads the current versions
	// of the credentials clients wait on: one query for all of them.
	DefaultPoll = time.Second
	// MaxWait caps a long poll's wait=.
	MaxWait = 5 * time.Minute
	// DefaultWait is the wait of a long poll that names after= but no wait=.
	DefaultWait = 60 * time.Second
	// DefaultMaxStale is Options.MaxStale's default.
	DefaultMaxStale = 100 * time.Millisecond
)

// Options configure a Server.
type Options struct {
	Store   store.Store
	Keyring secret.Keyring
	// Tokens authenticates bearer tokens on TCP (nil: token requests get 401).
	Tokens *apitoken.Service
	// Rules authorise socket peers (ResolveRules builds them from the
	// config's delivery: section). No rule: every socket read is refused.
	Rules []Rule
	// Poll is the watch poller's interval (DefaultPoll when zero).
	Poll time.Duration
	// MaxStale bounds how late a read served from the value cache may
	// see a change committed by another process where the store cannot
	// tell (Postgres: another replica, a CLI): there a cached version is
	// confirmed by reading the credential at least this often while it is
	// read (DefaultMaxStale when zero; negative: at every read, as for a
	// store that tracks no changes). Changes committed through this
	// process's store, and on SQLite by any process, are seen by the next
	// read whatever MaxStale is. See docs/consume-api.md.
	MaxStale time.Duration
	// Engine starts the rotations of POST /v1/credentials/{id}/rotate and
	// POST /v1/rotate (nil: they answer 503). Its Runner must exist.
	Engine *rotation.Engine
	// Reload applies the service's configuration file again, as SIGHUP
	// does, for POST /v1/config/reload; actor names who asked (nil: the
	// service has no file to reload, 409).
	Reload func(ctx context.Context, actor string) ReloadResult
	// RunbookDir and RunbookBaseURL are GET /v1/report's (report.Options).
	RunbookDir, RunbookBaseURL string
	// AuthLimit bounds failed authentications per client address
	// (DefaultAuthLimit when zero).
	AuthLimit AuthLimit
	Now       func() time.Time
	Logger    *slog.Logger
}

// Server serves the consume API.
type Server struct {
	opts  Options
	hub   *hub
	rec   *recorder
	cache *valueCache
	// lists keeps the credentials GET /v1/credentials listed.
	lists *listCache
	users *userCache
	touch *touchCache
	// limiter counts failed authentications per client address.
	limiter *limiter
	// touching counts the goroutines recording tokens' last use.
	touching sync.WaitGroup
}

// New returns a Server. Close stops its background work.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Keyring.ActiveKeyID() == "" {
		return nil, errors.New("api: the consume API needs a store and a keyring")
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.MaxStale == 0 {
		opts.MaxStale = DefaultMaxStale
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, users: newUserCache(), touch: &touchCache{last: map[string]time.Time{}},
		limiter: newLimiter(opts.AuthLimit), cache: newValueCache(),
		lists: newListCache()}
	s.hub = newHub(opts.Store, opts.Poll, opts.Logger, func(id string) { s.cache.drop(id, "") })
	s.rec = newRecorder(opts.Store, opts.Logger, opts.MaxStale)
	return s, nil
}

// Close stops the watch poller (long polls in progress end with 503) and
// the audit recorder, after it wrote what it holds (reads after Close end
// with 503). Close is idempotent.
func (s *Server) Close() error {
	s.hub.close()
	s.rec.close()
	s.touching.Wait()
	return nil
}

// SocketHandler serves the consume API to Unix socket peers; use it with
// ConnContext on the http.Server (see Server.ServeSocket). The management
// API is not served on the socket.
func (s *Server) SocketHandler() http.Handler { return s.logRequests(s.socketMux(s.socketAuth)) }

// TCPHandler serves the consume and management APIs over TCP, authorised
// by bearer tokens. A request over plaintext from a non-loopback peer is
// refused before its token is looked at: a value or a token never crosses
// such a connection.
func (s *Server) TCPHandler() http.Handler { return s.logRequests(s.manageMux()) }

func (s *Server) socketMux(auth func(r *http.Request) (principal, *problem)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/credentials/{id}/value", func(w http.ResponseWriter, r *http.Request) {
		p, prob := auth(r)
		if prob != nil {
			prob.write(w, r)
			return
		}
		s.value(w, r, p)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		notFoundProblem("no such endpoint; the socket serves the consume API, GET /v1/credentials/{id}/value (the management API is served on --listen)").write(w, r)
	})
	return mux
}

// valueBody is the consume endpoint's response.
type valueBody struct {
	Credential    string     `json:"credential"`
	Version       string     `json:"version"`
	Fingerprint   string     `json:"fingerprint"`
	ExpiresAt     *time.Time `json:"expires_at"`
	NextCutoverAt *time.Time `json:"next_cutover_at"`
	Value         string     `json:"value"`
}

func (s *Server) value(w http.ResponseWriter, r *http.Request, p principal) {
	id := r.PathValue("id")
	q := r.URL.Query()
	after, watching := q.Get("after"), q.Has("after")
	wait := time.Duration(0)
	if watching {
		wait = DefaultWait
	}
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d < 0 {
			badRequest(fmt.Sprintf("wait=%q: give a duration such as 60s (at most %s)", clip(ws), MaxWait)).write(w, r)
			return
		}
		wait = min(d, MaxWait)
	}
	purpose := clip(q.Get("purpose"))
	ctx := r.Context()
	if s.sendCached(w, r, p, id, after, watching, purpose) {
		return
	}
	var deadline <-chan time.Time
	if watching {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		c, err := s.opts.Store.GetCredential(ctx, id)
		if prob := s.authorise(p, id, c, err); prob != nil {
			if prob.Status == http.StatusInternalServerError {
				s.opts.Logger.Error("reading a credential for the consume API failed", slog.String("credential", id), slog.Any("error", err))
			}
			if prob.Status == http.StatusForbidden {
				s.recordRefusal(ctx, p, id, purpose)
			}
			prob.write(w, r)
			return
		}
		cur := ""
		if c.Current != nil {
			cur = c.Current.ID
		}
		if !watching || cur != after {
			if c.Current == nil {
				noValueProblem(id).write(w, r)
				return
			}
			s.send(w, r, p, c, purpose)
			return
		}
		// Wait for the shared poller to see this credential change.
		ch, seen := s.hub.subscribe(id, cur)
		if seen != cur {
			s.hub.unsubscribe(id)
			continue
		}
		select {
		case <-ch:
			s.hub.unsubscribe(id)
		case <-deadline:
			s.hub.unsubscribe(id)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotModified)
			return
		case <-ctx.Done():
			s.hub.unsubscribe(id)
			return
		case <-s.hub.stopped:
			s.hub.unsubscribe(id)
			unavailableProblem("the service is stopping; ask again").write(w, r)
			return
		}
	}
}

// send opens the current value, records the read and writes the body.
func (s *Server) send(w http.ResponseWriter, r *http.Request, p principal, c store.Credential, purpose string) {
	v := c.Current
	val, err := s.opts.Keyring.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
	if err != nil {
		s.opts.Logger.Error("opening a credential's current value failed", slog.String("credential", c.ID), slog.String("version", v.ID), slog.Any("error", err))
		internalProblem("the value could not be opened (see the service's log)").write(w, r)
		return
	}
	ev, err := s.readEvent(p, c.ID, v.ID, v.Fingerprint, purpose)
	if err != nil {
		internalProblem("encoding the audit event failed").write(w, r)
		return
	}
	if err := s.rec.record(r.Context(), ev); err != nil {
		s.recordFailed(w, r, c.ID, err)
		return
	}
	e := entryOf(c, val)
	s.cache.put(c.ID, e)
	s.writeValue(w, r, p, c.ID, e)
}

// sendCached serves the read from the cache when it holds a version that
// answers it and that p may read; the transaction recording the read
// confirms that version is current (see valueCache). It returns false
// when the read must go the uncached way.
func (s *Server) sendCached(w http.ResponseWriter, r *http.Request, p principal, id, after string, watching bool, purpose string) bool {
	e, ok := s.cache.get(id)
	if !ok || (watching && e.versionID == after) || !p.mayRead(id, e.labels, false) {
		return false
	}
	ev, err := s.readEvent(p, id, e.versionID, e.fingerprint, purpose)
	if err != nil {
		return false
	}
	res, err := s.rec.recordChecked(r.Context(), ev, versionCheck{CredentialID: id, VersionID: e.versionID, Labels: e.labels,
		Confirmed: e.confirmed, Mark: e.mark, At: e.at})
	switch {
	case errors.Is(err, errStale):
		s.cache.drop(id, e.versionID)
		return false
	case err != nil:
		s.recordFailed(w, r, id, err)
		return true
	}
	if res.fresh != nil {
		e = s.cache.confirm(id, e, *res.fresh, res.mark, res.at)
	}
	s.writeValue(w, r, p, id, e)
	return true
}

func (s *Server) readEvent(p principal, id, version, fingerprint, purpose string) (store.AuditEvent, error) {
	data, err := json.Marshal(delivery.ReadEvent{Version: version, Fingerprint: fingerprint, Reader: p.identity, Via: p.via, Purpose: purpose})
	if err != nil {
		return store.AuditEvent{}, err
	}
	return store.AuditEvent{OccurredAt: s.opts.Now(), Actor: p.identity, Action: delivery.ActionValueRead, CredentialID: id, Data: data}, nil
}

func (s *Server) recordFailed(w http.ResponseWriter, r *http.Request, id string, err error) {
	s.opts.Logger.Error("recording a value.read audit event failed; the value was not sent", slog.String("credential", id), slog.Any("error", err))
	unavailableProblem("the read could not be recorded in the audit log, so the value is not handed out; try again").write(w, r)
}

// writeValue writes the body of a read of credential id's current
// version, as e holds it; the read is recorded already.
func (s *Server) writeValue(w http.ResponseWriter, r *http.Request, p principal, id string, e cachedValue) {
	if p.tokenID != "" {
		s.touchToken(p.tokenID)
	}
	body := valueBody{Credential: id, Version: e.versionID, Fingerprint: e.fingerprint,
		ExpiresAt: optTime(e.expiresAt), NextCutoverAt: optTime(e.nextCutoverAt), Value: e.value.RevealString()}
	b, err := json.Marshal(body)
	if err != nil {
		internalProblem("encoding the response failed").write(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	_, _ = w.Write(append(b, '\n'))
}

// authorise decides a read of credential id by p, given the store's answer
// for it. A credential that does not exist is 404 only for a principal
// that could read it by its id; to others it is 403, as one they may not
// read: a narrow token learns nothing about what else exists.
func (s *Server) authorise(p principal, id string, c store.Credential, err error) *problem {
	switch {
	case errors.Is(err, store.ErrNotFound):
		if p.mayRead(id, nil, true) {
			return notFoundProblem(fmt.Sprintf("no credential has id %q", id))
		}
		return forbiddenProblem(id, p)
	case err != nil:
		return internalProblem("the store could not be read (see the service's log)")
	case !p.mayRead(c.ID, c.Labels, false):
		return forbiddenProblem(id, p)
	}
	return nil
}

// recordRefusal records a refused read (value.read.refused), so the audit
// log shows who tried to read what.
func (s *Server) recordRefusal(ctx context.Context, p principal, id, purpose string) {
	data, err := json.Marshal(delivery.ReadEvent{Reader: p.identity, Via: p.via, Purpose: purpose})
	if err != nil {
		return
	}
	ev := store.AuditEvent{OccurredAt: s.opts.Now(), Actor: p.identity, Action: ActionReadRefused, CredentialID: id, Data: data}
	if err := s.rec.record(ctx, ev); err != nil {
		s.opts.Logger.Warn("recording a refused read failed", slog.String("credential", id), slog.Any("error", err))
	}
}

// ActionReadRefused is the audit action of a read the API refused (403).
const ActionReadRefused = "value.read.refused"

func (s *Server) touchToken(id string) {
	now := s.opts.Now()
	if !s.touch.due(id, now) {
		return
	}
	s.touching.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := s.opts.Store.InTx(ctx, func(tx store.Tx) error { return tx.TouchAPIToken(ctx, id, now) })
		if err != nil {
			s.opts.Logger.Warn("recording an API token's last use failed", slog.String("token", id), slog.Any("error", err))
		}
	})
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// clip bounds what a request makes the service echo or record.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
