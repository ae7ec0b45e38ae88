package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/rotatorhq/rotator/internal/apitoken"
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
	// Errors lists every problem of a configuration that was not
	// reloaded (an extension member, RFC 9457 §3.2).
	Errors []string `json:"errors,omitempty"`
	// retryAfter is the Retry-After of a 429, in seconds.
	retryAfter int
	// allow is the Allow header of a 405.
	allow string
}

// ManageProblemTypeBase prefixes the type URI of the problems only the
// management API returns (docs/api.md lists them all).
const ManageProblemTypeBase = "https://github.com/rotatorhq/rotator/blob/main/docs/api.md#problem-"

func newManageProblem(status int, code, title, detail string) *problem {
	return &problem{Type: ManageProblemTypeBase + code, Title: title, Status: status, Detail: detail, Code: code}
}

func newProblem(status int, code, title, detail string) *problem {
	return &problem{Type: ProblemTypeBase + code, Title: title, Status: status, Detail: detail, Code: code}
}

func (p *problem) write(w http.ResponseWriter, r *http.Request) {
	q := *p
	if r != nil {
		q.Instance = r.URL.Path
	}
	b, _ := json.Marshal(q)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	switch {
	case p.Status == http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="rotator"`)
	case p.Code == "insufficient-scope":
		h.Set("WWW-Authenticate", `Bearer realm="rotator", error="insufficient_scope"`)
	case p.retryAfter > 0:
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	case p.allow != "":
		h.Set("Allow", p.allow)
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

func scopeProblem(p principal, method, pattern string, need apitoken.Kind) *problem {
	alts := map[apitoken.Kind]string{apitoken.KindRead: "read, rotate or admin", apitoken.KindRotate: "rotate or admin", apitoken.KindAdmin: "admin"}
	return newManageProblem(http.StatusForbidden, "insufficient-scope", "The token lacks the scope this route needs",
		fmt.Sprintf("%s %s needs a token with the scope %s; %s has %s (rotator tokens create --scope %s)",
			method, pattern, alts[need], p.identity, p.scopes, need))
}

func tooManyFailures(wait time.Duration) *problem {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	p := newManageProblem(http.StatusTooManyRequests, "too-many-failures", "Too many failed authentications",
		fmt.Sprintf("this address sent too many missing or invalid API tokens; try again in %ds", secs))
	p.retryAfter = secs
	return p
}

func badRequestManage(detail string) *problem {
	return newManageProblem(http.StatusBadRequest, "bad-request", "Bad request", detail)
}

func notFoundManage(title, detail string) *problem {
	return newManageProblem(http.StatusNotFound, "not-found", title, detail)
}
