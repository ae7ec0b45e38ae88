// Package remote holds what the HTTP-based providers (oauth2-client-credentials,
// oauth2-refresh-token, oauth2-private-key-jwt, github-app) need to turn a
// remote server's answer into an error: text safe to log and the OAuth
// error response (the transport cause of a client error is
// netx.TransportCause).
package remote

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/rotatorhq/rotator/providers"
)

// Printable shortens s to n bytes and drops control characters, so that a
// server's text cannot forge log lines.
func Printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// OAuthError is an error response of an endpoint of the authorization
// server (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 7662 §2.3). It wraps
// providers.ErrPermanent when the response says that retrying cannot help.
type OAuthError struct {
	// Endpoint is "token", "introspection" or "revocation".
	Endpoint string
	// URL is the endpoint's URL.
	URL string
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code is the `error` field (invalid_client, invalid_scope, ...), if any.
	Code string
	// Description is the `error_description` field, if any, shortened.
	Description string
	// Hint says what to check for Code, in the words of the provider's grant.
	Hint string
}

// Error implements error.
func (e *OAuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s endpoint %s refused the request", e.Endpoint, e.URL)
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, " (%q)", e.Description)
	}
	fmt.Fprintf(&b, " [HTTP %d]", e.StatusCode)
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns providers.ErrPermanent when retrying cannot help.
func (e *OAuthError) Unwrap() error {
	if e.Permanent() {
		return providers.ErrPermanent
	}
	return nil
}

// Permanent reports whether the response says that retrying cannot help:
// the client, grant, scope or resource was refused, or the request was
// malformed.
func (e *OAuthError) Permanent() bool {
	switch e.Code {
	case "invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope", "invalid_target",
		"unsupported_grant_type", "unsupported_token_type", "invalid_request":
		return true
	}
	return e.Code == "" && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// NewOAuthError is the *OAuthError of an endpoint's answer, with the
// error code's hint from hints. The code and description are shortened
// and stripped of control characters.
func NewOAuthError(op, endpoint string, status int, code, description string, hints map[string]string) *OAuthError {
	code = Printable(code, 64)
	return &OAuthError{Endpoint: op, URL: endpoint, StatusCode: status, Code: code,
		Description: Printable(description, 200), Hint: hints[code]}
}

// EndpointError turns a non-success response, whose body is body, into an
// *OAuthError (the body's `error` and `error_description` when it is an
// OAuth error document).
func EndpointError(op, endpoint string, resp *http.Response, body []byte, hints map[string]string) *OAuthError {
	var fields struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &fields) != nil { // not an OAuth error document
		fields.Error, fields.Description = "", ""
	}
	return NewOAuthError(op, endpoint, resp.StatusCode, fields.Error, fields.Description, hints)
}
