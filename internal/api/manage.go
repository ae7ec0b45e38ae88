package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
)

// route is one route of the TCP API: its method and path pattern, the
// scope it needs (KindConsume: a consume: selector matching the
// credential, checked by the handler) and its handler.
type route struct {
	method, pattern string
	need            apitoken.Kind
	handle          func(w http.ResponseWriter, r *http.Request, p principal)
}

// routes is the TCP API. docs/api.md and openapi.json describe it; a test
// checks that the three agree.
func (s *Server) routes() []route {
	return []route{
		{http.MethodGet, "/v1/credentials", apitoken.KindRead, s.listCredentials},
		{http.MethodGet, "/v1/credentials/{id}", apitoken.KindRead, s.showCredential},
		{http.MethodGet, "/v1/credentials/{id}/value", apitoken.KindConsume, s.value},
		{http.MethodPost, "/v1/credentials/{id}/rotate", apitoken.KindRotate, s.rotateOne},
		{http.MethodPost, "/v1/rotate", apitoken.KindRotate, s.rotateSelection},
		{http.MethodGet, "/v1/runs", apitoken.KindRead, s.listRuns},
		{http.MethodGet, "/v1/runs/{id}", apitoken.KindRead, s.showRun},
		{http.MethodGet, "/v1/report", apitoken.KindRead, s.report},
		{http.MethodGet, "/v1/audit/verify", apitoken.KindRead, s.auditVerify},
		{http.MethodPost, "/v1/config/reload", apitoken.KindAdmin, s.reload},
		{http.MethodGet, "/v1/openapi.json", apitoken.KindRead, s.openAPI},
	}
}

// manageMux routes the TCP API. A request no route matches is answered
// with a problem: 405 (with Allow) when the path exists with another
// method, 404 otherwise.
func (s *Server) manageMux() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.method+" "+rt.pattern, s.guard(rt))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pat := mux.Handler(r); pat != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Ask the mux what it would answer (404 or 405 with Allow), then
		// answer that as a problem.
		h, _ := mux.Handler(r)
		cw := &captureWriter{h: http.Header{}}
		h.ServeHTTP(cw, r)
		if cw.status == http.StatusMethodNotAllowed {
			p := newManageProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
				r.Method+" is not served on this path; it takes "+cw.h.Get("Allow")+" (docs/api.md)")
			p.allow = cw.h.Get("Allow")
			p.write(w, r)
			return
		}
		notFoundManage("No such endpoint", "no route of the API matches this path; see GET /v1/openapi.json or docs/api.md").write(w, r)
	})
}

// guard authenticates a request and checks the route's scope before its
// handler runs.
func (s *Server) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, prob := s.tokenAuth(r)
		if prob != nil {
			prob.write(w, r)
			return
		}
		if info, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
			info.token = p.tokenID
		}
		if rt.need != apitoken.KindConsume && !p.may(rt.need) {
			scopeProblem(p, rt.method, rt.pattern, rt.need).write(w, r)
			return
		}
		if p.tokenID != "" && rt.need != apitoken.KindConsume {
			s.touchToken(p.tokenID) // a value read records it when the value is sent
		}
		rt.handle(w, r, p)
	}
}

// captureWriter records what a handler would answer, without sending it.
type captureWriter struct {
	h      http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.h }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

// reqInfo carries what a request's log line needs from its handler.
type reqInfo struct{ token string }

type reqInfoKey struct{}

// logRequests logs one line per request: method, route pattern, status,
// duration and the token's id (or the socket peer). Never the URL's
// query, a header or a body: no token, value or reason reaches the log.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "api request",
				slog.String("method", clip(r.Method)), slog.String("route", route), slog.Int("status", status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000), slog.String("token_id", info.token))
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets a streamed answer (a report) reach the client as it is made.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		internalProblem("encoding the response failed").write(w, nil)
		return
	}
	writeJSONBody(w, status, b)
}

// writeJSONBody writes b, a JSON document, as writeJSON does.
func writeJSONBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// RouteList returns the TCP API's routes as "METHOD /pattern", sorted.
func (s *Server) RouteList() []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.method+" "+rt.pattern)
	}
	slices.Sort(out)
	return out
}

// RouteScope returns the scope a route ("METHOD /pattern") needs: read,
// rotate, admin or consume ("" for an unknown route).
func (s *Server) RouteScope(route string) string {
	method, pattern, _ := strings.Cut(route, " ")
	for _, rt := range s.routes() {
		if rt.method == method && rt.pattern == pattern {
			return string(rt.need)
		}
	}
	return ""
}
