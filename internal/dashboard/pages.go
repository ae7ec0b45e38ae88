package dashboard

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// credRow is one credential as the list shows it.
type credRow struct {
	ID, Consumer, Provider, Owner string
	Status                        store.Status
	// HasAge is false for a credential without a current version.
	HasAge  bool
	Age     time.Duration
	MaxAge  time.Duration
	AgePct  int
	Next    time.Time
	Expires time.Time
	Runbook string
	// Fingerprint is the current version's (never its value).
	Fingerprint string
}

func (h *Handler) row(c store.Credential, now time.Time) credRow {
	row := credRow{ID: c.ID, Consumer: c.Consumer, Provider: c.Provider, Owner: c.Owner,
		Status: rotation.EffectiveStatus(c, now), MaxAge: c.Policy.MaxAge, Next: c.State.NextRotationAt,
		Expires: c.State.ExpiresAt, Runbook: c.Runbook}
	if v := c.Current; v != nil {
		issued := v.ActivatedAt
		if issued.IsZero() {
			issued = v.CreatedAt
		}
		row.HasAge, row.Age, row.Fingerprint = true, max(now.Sub(issued), 0), v.Fingerprint
		if row.MaxAge > 0 {
			row.AgePct = int(min(100, row.Age*100/row.MaxAge))
		}
	}
	return row
}

type credentialsData struct {
	Counts    store.Counts
	Attention int64
	Rows      []credRow
	Next      string
	First     bool
	Now       time.Time
}

// Cursors are opaque to users: base64url of "a|unixmicro|id" (a is 1 for
// the attention segment), so an id with any character survives a URL.
func encodeCursor(k store.RankKey) string {
	a := "0"
	if k.Attention {
		a = "1"
	}
	t := ""
	if !k.NextRotationAt.IsZero() {
		t = strconv.FormatInt(k.NextRotationAt.UnixMicro(), 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(a + "|" + t + "|" + k.ID))
}

func decodeCursor(s string) (*store.RankKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(string(raw), "|", 3)
	if len(parts) != 3 || (parts[0] != "0" && parts[0] != "1") {
		return nil, errors.New("malformed")
	}
	k := &store.RankKey{Attention: parts[0] == "1", ID: parts[2]}
	if parts[1] != "" {
		us, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return nil, err
		}
		k.NextRotationAt = time.UnixMicro(us).UTC()
	}
	return k, nil
}

func (h *Handler) credentialsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := h.opts.Now()
	var after *store.RankKey
	if c := r.URL.Query().Get("after"); c != "" {
		var err error
		if after, err = decodeCursor(c); err != nil {
			h.fail(w, r, nil, http.StatusBadRequest, "The page link is malformed; start again from the first page.")
			return
		}
	}
	creds, err := h.opts.Store.ListCredentialsRanked(ctx, store.RankedFilter{After: after, Limit: h.opts.PageSize + 1})
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	}
	counts, err := h.opts.Store.Counts(ctx, now)
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	}
	d := credentialsData{Counts: counts, Attention: counts.Failing + counts.NeedsAttention, First: after == nil, Now: now}
	if len(creds) > h.opts.PageSize {
		creds = creds[:h.opts.PageSize]
		d.Next = encodeCursor(store.RankKeyOf(creds[len(creds)-1]))
	}
	d.Rows = make([]credRow, len(creds))
	for i, c := range creds {
		d.Rows[i] = h.row(c, now)
	}
	h.render(w, r, http.StatusOK, "credentials", page{Title: "Credentials", Nav: "credentials", Data: d})
}

type credentialData struct {
	Cred     credRow
	Scope    []string
	Schedule string
	Runs     []store.Run
	Rotate   bool
}

func (h *Handler) credentialPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := h.opts.Store.GetCredential(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, nil, http.StatusNotFound, "No such credential.")
		return
	}
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	}
	runs, err := h.opts.Store.ListRuns(ctx, store.RunFilter{CredentialID: c.ID, Limit: 20})
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	}
	s := sessionFrom(ctx)
	d := credentialData{Cred: h.row(c, h.opts.Now()), Scope: c.Scope, Schedule: c.Policy.Schedule, Runs: runs,
		Rotate: s.CanRotate && h.opts.Rotator != nil}
	h.render(w, r, http.StatusOK, "credential", page{Title: c.ID, Nav: "credentials", Data: d})
}

// rotate starts a manual or emergency rotation of one credential.
func (h *Handler) rotate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s := sessionFrom(ctx)
	id := r.PathValue("id")
	if !s.CanRotate || h.opts.Rotator == nil {
		h.fail(w, r, nil, http.StatusForbidden, "Your token may view but not rotate: rotating needs the rotate or admin scope.")
		return
	}
	emergency := r.PostFormValue("kind") == "emergency"
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > 500 {
		h.fail(w, r, nil, http.StatusBadRequest, "The reason is longer than 500 characters.")
		return
	}
	if emergency && reason == "" {
		h.sessions.setFlash(s.id, "An emergency rotation needs a reason: say what leaked or why.")
		http.Redirect(w, r, "/credentials/"+id, http.StatusSeeOther)
		return
	}
	started, err := h.opts.Rotator.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{id}},
		Trigger: store.TriggerManual, Actor: s.Actor(), Reason: reason, Emergency: emergency})
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, nil, http.StatusNotFound, "No such credential.")
		return
	}
	if err != nil || len(started) != 1 {
		h.fail(w, r, err, http.StatusInternalServerError, "The rotation could not be started; the service log says why.")
		return
	}
	st := started[0]
	kind := "Rotation"
	if emergency {
		kind = "Emergency rotation"
	}
	h.opts.Logger.Info("dashboard: rotation requested", slog.String("credential", id), slog.String("actor", s.Actor()),
		slog.Bool("emergency", emergency), slog.String("run", st.RunID), slog.Bool("skipped", st.Skipped))
	msg := kind + " started."
	if st.Skipped {
		msg = fmt.Sprintf("%s not started: the credential already has an active run (this one, %s).", kind, st.ActiveState)
	}
	h.sessions.setFlash(s.id, msg)
	http.Redirect(w, r, "/runs/"+st.RunID, http.StatusSeeOther)
}

type runsData struct {
	Emergencies bool
	Runs        []store.Run
	Next        string
}

// runsPage lists runs newest first (emergency runs only, for the
// emergencies page), a page at a time: before= is the last run shown
// ("unixmicro|id").
func (h *Handler) runsPage(emergencies bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		size := h.opts.PageSize
		f := store.RunFilter{Limit: size + 1}
		if emergencies {
			f.Trigger = store.TriggerEmergency
		}
		var beforeAt time.Time
		var beforeID string
		if b := r.URL.Query().Get("before"); b != "" {
			us, id, ok := strings.Cut(b, "|")
			n, err := strconv.ParseInt(us, 10, 64)
			if !ok || err != nil {
				h.fail(w, r, nil, http.StatusBadRequest, "The page link is malformed; start again from the first page.")
				return
			}
			beforeAt, beforeID = time.UnixMicro(n).UTC(), id
			// Runs created in the same microsecond as the last one shown
			// are read again and skipped by id (the order's tie-break).
			f.Until, f.Limit = beforeAt.Add(time.Microsecond), size+1+50
		}
		runs, err := h.opts.Store.ListRuns(r.Context(), f)
		if err != nil {
			h.fail(w, r, err, http.StatusInternalServerError, "")
			return
		}
		if beforeID != "" {
			kept := runs[:0]
			for _, run := range runs {
				if run.CreatedAt.Equal(beforeAt) && run.ID >= beforeID {
					continue
				}
				kept = append(kept, run)
			}
			runs = kept
		}
		d := runsData{Emergencies: emergencies}
		if len(runs) > size {
			runs = runs[:size]
			last := runs[size-1]
			d.Next = strconv.FormatInt(last.CreatedAt.UnixMicro(), 10) + "|" + last.ID
		}
		d.Runs = runs
		title, nav := "Recent runs", "runs"
		if emergencies {
			title, nav = "Emergency runs", "emergencies"
		}
		h.render(w, r, http.StatusOK, "runs", page{Title: title, Nav: nav, Data: d})
	}
}

type runData struct {
	Run   store.Run
	Steps []store.Step
	// Emergency and RevokeFirst are the run's options.
	Emergency, RevokeFirst bool
}

func (h *Handler) getRun(w http.ResponseWriter, r *http.Request) (store.Run, bool) {
	run, err := h.opts.Store.GetRun(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, nil, http.StatusNotFound, "No such run.")
		return run, false
	}
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return run, false
	}
	return run, true
}

func (h *Handler) runPage(w http.ResponseWriter, r *http.Request) {
	run, ok := h.getRun(w, r)
	if !ok {
		return
	}
	steps, err := h.opts.Store.ListSteps(r.Context(), run.ID)
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	}
	o := rotation.OptionsOf(run)
	h.render(w, r, http.StatusOK, "run", page{Title: "Run " + run.ID, Nav: "runs",
		Data: runData{Run: run, Steps: steps, Emergency: o.Emergency, RevokeFirst: o.RevokeFirst}})
}
