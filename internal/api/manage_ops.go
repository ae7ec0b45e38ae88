package api

import (
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/report"
	"github.com/rotatorhq/rotator/internal/store"
)

// reportTypes are the Content-Types of the report formats.
var reportTypes = map[report.Format]string{
	report.FormatMarkdown: "text/markdown; charset=utf-8",
	report.FormatHTML:     "text/html; charset=utf-8",
	report.FormatJSON:     "application/json",
	report.FormatCSV:      "text/csv; charset=utf-8",
}

// report serves GET /v1/report?format=&since=&until=&selector=: the audit
// report of `rotator report`, streamed as it is made. A failure after the
// first bytes were sent aborts the response (the client sees a truncated
// transfer, never a report that looks complete).
func (s *Server) report(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	name := q.Get("format")
	if name == "" {
		name = "json"
	}
	f, err := report.ParseFormat(name)
	if err != nil {
		badRequestManage("format="+strconv.Quote(clip(name))+": use json, md, html or csv").write(w, r)
		return
	}
	now := s.opts.Now().UTC()
	opts := report.Options{Format: f, Now: now, RunbookDir: s.opts.RunbookDir, RunbookBaseURL: s.opts.RunbookBaseURL,
		Database: string(s.opts.Store.Dialect()), Parallel: parallelism(s.opts.Store)}
	var prob *problem
	if opts.Since, prob = parseTime("since", orDefault(q.Get("since"), "30d"), now); prob != nil {
		prob.write(w, r)
		return
	}
	if v := q.Get("until"); v != "" {
		if opts.Until, prob = parseTime("until", v, now); prob != nil {
			prob.write(w, r)
			return
		}
	}
	if opts.Selector, prob = parseSelector(q["selector"]); prob != nil {
		prob.write(w, r)
		return
	}
	lw := &lazyWriter{w: w, contentType: reportTypes[f]}
	if _, err := report.Write(r.Context(), s.opts.Store, lw, opts); err != nil {
		if !lw.started {
			if errors.Is(err, report.ErrBadOptions) {
				badRequestManage(clip(err.Error())).write(w, r)
				return
			}
			s.storeFailed(w, r, "writing the report", err)
			return
		}
		s.opts.Logger.Error("writing the report for the API failed midway; the response is cut off", slog.Any("error", err))
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		lw.start()
	}
}

// lazyWriter sends the status and headers with the first bytes, so an
// error before them can still be answered as a problem.
type lazyWriter struct {
	w           http.ResponseWriter
	contentType string
	started     bool
}

func (l *lazyWriter) start() {
	l.started = true
	h := l.w.Header()
	h.Set("Content-Type", l.contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(b []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(b)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// parallelism is how many ranges audit verification checks at once: four
// on Postgres, one on SQLite (as the CLI does).
func parallelism(st store.Store) int {
	if st.Dialect() == store.DialectPostgres {
		return 4
	}
	return 1
}

// auditVerify serves GET /v1/audit/verify?since=: the check of `rotator
// audit verify -o json`. The answer is 200 whether or not the chain is
// intact: "ok" says which, and "problem" names the first break.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request, _ principal) {
	opts := audit.VerifyOptions{Parallel: parallelism(s.opts.Store)}
	if v := r.URL.Query().Get("since"); v != "" {
		t, prob := parseTime("since", v, s.opts.Now())
		if prob != nil {
			prob.write(w, r)
			return
		}
		opts.Since = t
	}
	rep, err := audit.Verify(r.Context(), s.opts.Store, opts)
	if err != nil {
		s.storeFailed(w, r, "verifying the audit chain", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit_chain": rep})
}

// ReloadResult is the outcome of a configuration reload (Options.Reload).
type ReloadResult struct {
	// File is the configuration file reloaded.
	File string `json:"file"`
	// Applied is false when the file had problems: nothing changed.
	Applied bool `json:"applied"`
	// Problems lists each problem of a file that was not applied, with
	// its file and line.
	Problems []string `json:"-"`
	// Warnings are apply's warnings of an applied file.
	Warnings []string `json:"warnings"`
	// Created ... Removed count the inventory's changes.
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// reload serves POST /v1/config/reload: the SIGHUP reload, all or
// nothing. A file with problems is 422 with every problem in "errors".
func (s *Server) reload(w http.ResponseWriter, r *http.Request, p principal) {
	if s.opts.Reload == nil {
		newManageProblem(http.StatusConflict, "no-config-file", "No configuration file to reload",
			"the service was started without -f FILE, so there is nothing to reload; apply changes with rotator apply").write(w, r)
		return
	}
	res := s.opts.Reload(r.Context(), p.actor)
	if !res.Applied {
		prob := newManageProblem(http.StatusUnprocessableEntity, "config-invalid", "The configuration was not reloaded",
			strconv.Itoa(len(res.Problems))+" problem(s) in "+res.File+": nothing changed; fix them and reload again")
		prob.Errors = res.Problems
		if prob.Errors == nil {
			prob.Errors = []string{}
		}
		prob.write(w, r)
		return
	}
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reload": res})
}

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 description of the TCP API.
func OpenAPI() []byte { return openAPIDoc }

// openAPI serves GET /v1/openapi.json.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ principal) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	_, _ = w.Write(openAPIDoc)
}
