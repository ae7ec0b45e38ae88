package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// rotateBody is the body of POST /v1/rotate (the selection and the
// options) and of POST /v1/credentials/{id}/rotate (the options only; the
// body may be empty).
type rotateBody struct {
	IDs []string `json:"ids"`
	// Selector is key=value[,key=value], as the CLI's --selector.
	Selector    string `json:"selector"`
	Consumer    string `json:"consumer"`
	All         bool   `json:"all"`
	Emergency   bool   `json:"emergency"`
	Reason      string `json:"reason"`
	RevokeFirst bool   `json:"revoke_first"`
}

// startedRun is one credential of a rotation request, as `rotator rotate
// -o json` shows it without --wait.
type startedRun struct {
	Credential string `json:"credential"`
	Run        string `json:"run"`
	State      string `json:"state"`
	Skipped    bool   `json:"skipped,omitempty"`
	Note       string `json:"note,omitempty"`
	Preempted  string `json:"preempted,omitempty"`
}

func (s *Server) rotateOne(w http.ResponseWriter, r *http.Request, p principal) {
	body, prob := readRotateBody(r)
	if prob != nil {
		prob.write(w, r)
		return
	}
	if len(body.IDs) > 0 || body.Selector != "" || body.Consumer != "" || body.All {
		badRequestManage("this route rotates the credential in its path; select credentials with POST /v1/rotate instead").write(w, r)
		return
	}
	s.rotate(w, r, p, rotation.Selection{IDs: []string{r.PathValue("id")}}, body)
}

func (s *Server) rotateSelection(w http.ResponseWriter, r *http.Request, p principal) {
	body, prob := readRotateBody(r)
	if prob != nil {
		prob.write(w, r)
		return
	}
	labels, prob := parseSelector([]string{body.Selector})
	if prob != nil {
		prob.write(w, r)
		return
	}
	sel := rotation.Selection{IDs: body.IDs, Labels: labels, Consumer: body.Consumer, All: body.All}
	if sel.Empty() {
		badRequestManage(`no credentials selected: give "ids", "selector", "consumer" or "all": true`).write(w, r)
		return
	}
	s.rotate(w, r, p, sel, body)
}

func readRotateBody(r *http.Request) (rotateBody, *problem) {
	var body rotateBody
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		// The decoder's message names the field or offset, never the
		// body's text beyond a field name.
		return body, badRequestManage("the body is not a rotation request (docs/api.md): " + clip(err.Error()))
	}
	body.Reason = strings.TrimSpace(body.Reason)
	return body, nil
}

// rotate starts rotations of sel, as `rotator rotate` without --wait
// does with a service running: runs are queued for the workers, and the
// answer (202) lists each credential's run, or why it was skipped.
func (s *Server) rotate(w http.ResponseWriter, r *http.Request, p principal, sel rotation.Selection, body rotateBody) {
	e := s.opts.Engine
	if e == nil {
		unavailableProblem("this server starts no rotations (it has no engine)").write(w, r)
		return
	}
	if body.Emergency && body.Reason == "" {
		badRequestManage(`an emergency rotation needs a "reason": say why, it is recorded in the audit log`).write(w, r)
		return
	}
	if body.RevokeFirst && !body.Emergency {
		badRequestManage(`"revoke_first" is only for emergencies: add "emergency": true and a "reason"`).write(w, r)
		return
	}
	ctx := r.Context()
	creds, err := e.Select(ctx, sel)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFoundManage("Credential not found", clip(err.Error())+"; see GET /v1/credentials").write(w, r)
		return
	case err != nil:
		s.storeFailed(w, r, "selecting credentials", err)
		return
	case len(creds) == 0:
		notFoundManage("No credential selected", "the selection matches no credential; see GET /v1/credentials").write(w, r)
		return
	}
	if body.RevokeFirst {
		var cannot []string
		for _, c := range creds {
			caps, typ, err := e.Capabilities(ctx, c.Provider)
			if err != nil {
				s.storeFailed(w, r, "reading a provider's capabilities", err)
				return
			}
			if !caps.Revocable {
				cannot = append(cannot, fmt.Sprintf("%s (provider %s, type %s)", c.ID, c.Provider, typ))
			}
		}
		if len(cannot) > 0 {
			newManageProblem(http.StatusConflict, "cannot-revoke", "The provider cannot revoke values",
				"revoke_first: the provider of "+strings.Join(cannot, ", ")+" cannot revoke values, so the current value would stay valid until it expires; "+
					"rotate with emergency alone and revoke it at the resource by hand (or use rotator rotate --revoke-first --force)").write(w, r)
			return
		}
	}
	ids := make([]string, len(creds))
	for i, c := range creds {
		ids[i] = c.ID
	}
	started, err := e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: ids}, Trigger: store.TriggerAPI,
		Actor: p.actor, Reason: body.Reason, Emergency: body.Emergency, RevokeFirst: body.RevokeFirst})
	if err != nil && len(started) == 0 {
		s.opts.Logger.Error("starting rotations for the API failed", slog.String("actor", p.actor), slog.Any("error", err))
		internalProblem("the rotations could not be started (see the service's log)").write(w, r)
		return
	}
	if err != nil {
		s.opts.Logger.Error("starting some rotations for the API failed", slog.Int("started", len(started)), slog.Any("error", err))
	}
	out := make([]startedRun, 0, len(started))
	for _, st := range started {
		v := startedRun{Credential: st.CredentialID, Run: st.RunID, State: string(rotation.StatePlanned), Preempted: st.Preempted}
		if st.Skipped {
			v = startedRun{Credential: st.CredentialID, Run: st.RunID, State: string(st.ActiveState), Skipped: true, Note: st.Reason}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"runs": out, "emergency": body.Emergency})
}
