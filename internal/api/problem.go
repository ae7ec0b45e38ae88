package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// ProblemTypeBase prefixes the type URI of every problem the API returns;
// the suffix is the problem's code (forbidden, not-found, ...), also given
// as the member "code".
const ProblemTypeBase = "https://github.com/rotatorhq/rotator/blob/main/docs/consume-api.md#problem-"

// problem is an RFC 9457 problem details object. It never holds a value.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Code is the short name of Type, for scripts.
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
}

func newProblem(status int, code, title, detail string) *problem {
	return &problem{Type: ProblemTypeBase + code, Title: title, Status: status, Detail: detail, Code: code}
}

func (p *problem) write(w http.ResponseWriter, r *http.Request) {
	q := *p
	q.Instance = r.URL.Path
	b, _ := json.Marshal(q)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="rotator"`)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

func badRequest(detail string) *problem {
	return newProblem(http.StatusBadRequest, "bad-request", "Bad request", detail)
}

func notFoundProblem(detail string) *problem {
	return newProblem(http.StatusNotFound, "not-found", "Credential not found", detail)
}

func noValueProblem(id string) *problem {
	return newProblem(http.StatusConflict, "no-value", "Credential has no current value",
		fmt.Sprintf("credential %q has never been rotated, so it has no value yet (rotate it once: rotator rotate %s --wait)", id, id))
}

func forbiddenProblem(id string, p principal) *problem {
	return newProblem(http.StatusForbidden, "forbidden", "Not allowed to read this credential",
		fmt.Sprintf("%s may not read credential %q (%s)", p.identity, id, p.howToAllow))
}

func unauthorized(detail string) *problem {
	return newProblem(http.StatusUnauthorized, "unauthorized", "Missing or invalid API token", detail)
}

func tlsRequired() *problem {
	return newProblem(http.StatusForbidden, "tls-required", "TLS required",
		"the consume API answers plaintext requests from loopback clients only; start rotator serve with --tls-cert and --tls-key, and connect with https")
}

func internalProblem(detail string) *problem {
	return newProblem(http.StatusInternalServerError, "internal", "Internal error", detail)
}

func unavailableProblem(detail string) *problem {
	return newProblem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)
}
