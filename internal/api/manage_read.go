package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
	"github.com/rotatorhq/rotator/rotation"
)

// Page sizes of the list routes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// statuses are the credential statuses GET /v1/credentials?status= takes.
var statuses = []store.Status{store.StatusNew, store.StatusHealthy, store.StatusDue, store.StatusRotating,
	store.StatusOverdue, store.StatusExpired, store.StatusFailing, store.StatusNeedsAttention}

// cursor is a position in a list: after the credential id After, or
// before the run (BeforeAt, BeforeID). It travels base64url-encoded, so
// clients treat it as opaque.
type cursor struct {
	Kind     string    `json:"k"`
	After    string    `json:"a,omitempty"`
	BeforeAt time.Time `json:"t,omitzero"`
	BeforeID string    `json:"i,omitempty"`
}

func (c cursor) encode() *string {
	b, _ := json.Marshal(c)
	s := base64.RawURLEncoding.EncodeToString(b)
	return &s
}

func decodeCursor(s, kind string) (cursor, *problem) {
	var c cursor
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Kind != kind {
		return c, badRequestManage("cursor: not a cursor of this list; pass the next_cursor of the previous page as is")
	}
	return c, nil
}

func parseLimit(q url.Values) (int, *problem) {
	v := q.Get("limit")
	if v == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, badRequestManage(fmt.Sprintf("limit=%q: give a number from 1 to %d", clip(v), MaxLimit))
	}
	return n, nil
}

// parseSelector reads selector= values as the CLI's --selector does:
// key=value pairs, comma-separated, repeatable, all of which must match.
func parseSelector(values []string) (map[string]string, *problem) {
	out := map[string]string{}
	for _, s := range values {
		for part := range strings.SplitSeq(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, badRequestManage(fmt.Sprintf("selector %q: use key=value[,key=value], for example team=platform", clip(part)))
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// listCredentials serves GET /v1/credentials: ordered by id, a page of
// limit, filtered by selector, consumer, provider and status. Pages are
// keyset pages on the primary key (id > the cursor's), so every page costs
// the same however deep it is; on Postgres they are read through the list
// cache (listCache): the page's ids and row stamps, then only what
// changed.
func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, prob := parseLimit(q)
	if prob != nil {
		prob.write(w, r)
		return
	}
	cur, prob := decodeCursor(q.Get("cursor"), "credentials")
	if prob != nil {
		prob.write(w, r)
		return
	}
	labels, prob := parseSelector(q["selector"])
	if prob != nil {
		prob.write(w, r)
		return
	}
	var want []store.Status
	for _, v := range q["status"] {
		for name := range strings.SplitSeq(v, ",") {
			st := store.Status(strings.TrimSpace(name))
			if !slices.Contains(statuses, st) {
				badRequestManage(fmt.Sprintf("status=%q: use one of %v", clip(string(st)), statuses)).write(w, r)
				return
			}
			want = append(want, st)
		}
	}
	f := store.CredentialFilter{Consumer: q.Get("consumer"), Provider: q.Get("provider"), Labels: labels, AfterID: cur.After, Summary: true}
	now := s.opts.Now().UTC()
	// The page is encoded as it is read into a pooled buffer.
	buf := listBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 1<<20 {
			listBuffers.Put(buf)
		}
	}()
	body := appendListStart((*buf)[:0])
	n, last := 0, ""
	// The status is computed at now (rotation.EffectiveStatus), so it is
	// filtered here: read on until the page is full or the list ends.
	f.Limit = limit + 1
	if len(want) > 0 {
		f.Limit = max(limit+1, 500)
	}
	more := false
	for {
		page, err := s.lists.list(r.Context(), s.opts.Store, f)
		if errors.Is(err, errListEncode) {
			s.opts.Logger.Error("listing credentials failed", slog.Any("error", err))
			internalProblem("encoding the response failed").write(w, r)
			return
		}
		if err != nil {
			s.storeFailed(w, r, "listing credentials", err)
			return
		}
		for _, l := range page {
			status := l.Status(now)
			if len(want) > 0 && !slices.Contains(want, store.Status(status)) {
				continue
			}
			if n == limit {
				more = true
				break
			}
			if n > 0 {
				body = append(body, ',')
			}
			body = l.AppendJSON(body, status, now)
			n, last = n+1, l.ID()
		}
		if more || len(page) < f.Limit {
			break
		}
		f.AfterID = page[len(page)-1].ID()
	}
	var next *string
	if more {
		next = cursor{Kind: "credentials", After: last}.encode()
	}
	body, err := appendListEnd(body, next)
	*buf = body
	if err != nil {
		internalProblem("encoding the response failed").write(w, r)
		return
	}
	writeJSONBody(w, http.StatusOK, body)
}

// listBuffers holds the buffers GET /v1/credentials encodes into (a page
// of 100 is about 60 kB).
var listBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// appendListStart and appendListEnd frame a page of GET /v1/credentials:
// {"credentials":[...],"next_cursor":...} (TestCredentialListJSONIsMarshal
// holds the frame to json.Marshal's output).
func appendListStart(b []byte) []byte { return append(b, `{"credentials":[`...) }

func appendListEnd(b []byte, next *string) ([]byte, error) {
	b = append(b, `],"next_cursor":`...)
	if next == nil {
		return append(b, "null}"...), nil
	}
	c, err := json.Marshal(*next)
	b = append(b, c...)
	return append(b, '}'), err
}

// showCredential serves GET /v1/credentials/{id}: the credential as
// `rotator credentials show -o json` shows it.
func (s *Server) showCredential(w http.ResponseWriter, r *http.Request, _ principal) {
	id := r.PathValue("id")
	c, err := s.opts.Store.GetCredential(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		notFoundManage("Credential not found", fmt.Sprintf("no credential has id %q; see GET /v1/credentials", clip(id))).write(w, r)
		return
	}
	if err != nil {
		s.storeFailed(w, r, "reading a credential", err)
		return
	}
	v, err := view.NewCredentialDetail(r.Context(), s.opts.Store, c, s.opts.Now().UTC())
	if err != nil {
		s.storeFailed(w, r, "reading a credential's versions", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"credential": v})
}

// runList is the body of GET /v1/runs.
type runList struct {
	Runs       []view.Run `json:"runs"`
	NextCursor *string    `json:"next_cursor"`
}

// listRuns serves GET /v1/runs: newest first, a page of limit, filtered
// by credential, state, trigger and since. Keyset pages on (created_at,
// id).
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, _ principal) {
	q := r.URL.Query()
	limit, prob := parseLimit(q)
	if prob != nil {
		prob.write(w, r)
		return
	}
	cur, prob := decodeCursor(q.Get("cursor"), "runs")
	if prob != nil {
		prob.write(w, r)
		return
	}
	f := store.RunFilter{CredentialID: q.Get("credential"), BeforeCreatedAt: cur.BeforeAt, BeforeID: cur.BeforeID, Limit: limit + 1}
	if v := q.Get("state"); v != "" {
		if _, err := rotation.ParseState(v); err != nil {
			badRequestManage("state="+clip(v)+": "+err.Error()).write(w, r)
			return
		}
		f.State = v
	}
	if v := q.Get("trigger"); v != "" {
		t := store.Trigger(v)
		if !slices.Contains([]store.Trigger{store.TriggerSchedule, store.TriggerExpiry, store.TriggerManual, store.TriggerEmergency, store.TriggerAPI}, t) {
			badRequestManage(fmt.Sprintf("trigger=%q: use schedule, expiry, manual, emergency or api", clip(v))).write(w, r)
			return
		}
		f.Trigger = t
	}
	if v := q.Get("since"); v != "" {
		t, prob := parseTime("since", v, s.opts.Now())
		if prob != nil {
			prob.write(w, r)
			return
		}
		f.Since = t
	}
	runs, err := s.opts.Store.ListRuns(r.Context(), f)
	if err != nil {
		s.storeFailed(w, r, "listing runs", err)
		return
	}
	out := runList{Runs: make([]view.Run, 0, min(len(runs), limit))}
	for i, run := range runs {
		if i == limit {
			last := runs[limit-1]
			out.NextCursor = cursor{Kind: "runs", BeforeAt: last.CreatedAt.UTC(), BeforeID: last.ID}.encode()
			break
		}
		out.Runs = append(out.Runs, view.NewRun(run, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// showRun serves GET /v1/runs/{id}: the run with its steps, as `rotator
// runs show -o json` shows it.
func (s *Server) showRun(w http.ResponseWriter, r *http.Request, _ principal) {
	id := strings.ToUpper(r.PathValue("id"))
	run, err := s.opts.Store.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		notFoundManage("Run not found", fmt.Sprintf("no run has id %q; see GET /v1/runs", clip(id))).write(w, r)
		return
	}
	if err != nil {
		s.storeFailed(w, r, "reading a run", err)
		return
	}
	steps, err := s.opts.Store.ListSteps(r.Context(), run.ID)
	if err != nil {
		s.storeFailed(w, r, "reading a run's steps", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run": view.NewRun(run, steps)})
}

// storeFailed logs a store error and answers 500 (the client learns no
// more than that).
func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.opts.Logger.Error(what+" for the API failed", slog.Any("error", err))
	internalProblem(what+" failed (see the service's log)").write(w, r)
}

// parseTime reads a time parameter as the CLI's time flags: a duration
// back from now (30d, 12h), a date (2026-01-31) or an RFC 3339 time.
func parseTime(name, value string, now time.Time) (time.Time, *problem) {
	v := strings.TrimSpace(value)
	if d, err := duration.Parse(v); err == nil {
		return now.Add(-d).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, badRequestManage(fmt.Sprintf("%s=%q: use a duration back from now (30d, 12h), a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)", name, clip(value)))
}
