package oauth2refresh

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// Verify implements providers.Provider: it runs the configured checks.
// Introspection (RFC 7662) requires the token active, unexpired, issued to
// our client and, with resource set, for that audience, and reports the
// granted scope; the HTTP probe requires the configured status for a GET
// with the token.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w", req.VersionID, err)
	}
	resp := providers.VerifyResponse{ScopeNotReported: true, Evidence: map[string]string{}}
	var checks []string
	if u := p.cfg.Verify.IntrospectionURL; u != "" {
		if err := p.introspect(ctx, req, &resp); err != nil {
			return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s: %w", req.VersionID, err), req.Value)
		}
		checks = append(checks, "introspection")
	}
	if u := p.cfg.Verify.HTTPProbeURL; u != "" {
		if err := p.probe(ctx, req, &resp); err != nil {
			return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s: %w", req.VersionID, err), req.Value)
		}
		checks = append(checks, "http_probe")
	}
	resp.Evidence["checks"] = strings.Join(checks, ",")
	p.log.Debug("verified an access token", slog.String("credential", req.CredentialID),
		slog.String("version", req.VersionID), slog.String("checks", resp.Evidence["checks"]))
	return resp, nil
}

func (p *Provider) introspect(ctx context.Context, req providers.VerifyRequest, out *providers.VerifyResponse) error {
	u := p.cfg.Verify.IntrospectionURL
	form := url.Values{"token": {req.Value.RevealString()}, "token_type_hint": {"access_token"}}
	resp, body, err := p.post(ctx, "introspection", u, form)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return remote.EndpointError("introspection", u, resp, body, errorHints)
	}
	var in struct {
		Active   bool            `json:"active"`
		Scope    *string         `json:"scope"`
		ClientID string          `json:"client_id"`
		Exp      int64           `json:"exp"`
		Aud      json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return fmt.Errorf("introspection endpoint %s answered HTTP 200 with no introspection response", u)
	}
	if !in.Active {
		return fmt.Errorf("%w: introspection endpoint %s reports the token inactive (revoked, expired, or its grant revoked after a refresh token was reused)", ErrTokenRejected, u)
	}
	if in.Exp != 0 && !time.Unix(in.Exp, 0).After(time.Now()) {
		return fmt.Errorf("%w: introspection endpoint %s reports the token expired at %s", ErrTokenRejected, u, time.Unix(in.Exp, 0).UTC().Format(time.RFC3339))
	}
	if in.ClientID != "" && in.ClientID != p.cfg.ClientID {
		return fmt.Errorf("%w: the token was issued to client %q, not %q", ErrTokenRejected, remote.Printable(in.ClientID, 64), p.cfg.ClientID)
	}
	if p.cfg.Resource != "" {
		var aud []string
		var one string
		if json.Unmarshal(in.Aud, &one) == nil {
			aud = []string{one}
		} else {
			_ = json.Unmarshal(in.Aud, &aud)
		}
		if !slices.Contains(aud, p.cfg.Resource) {
			return fmt.Errorf("%w: the token's audience %q does not contain the resource %s", ErrTokenRejected, remote.Printable(strings.Join(aud, " "), 200), p.cfg.Resource)
		}
	}
	if in.Scope != nil {
		out.GrantedScope = append([]string{}, strings.Fields(*in.Scope)...)
		out.ScopeNotReported = false
		out.Evidence["scope"] = strings.Join(out.GrantedScope, " ")
	}
	if in.Exp != 0 {
		out.Evidence["exp"] = time.Unix(in.Exp, 0).UTC().Format(time.RFC3339)
	}
	out.Evidence["introspection"] = "active"
	return nil
}

func (p *Provider) probe(ctx context.Context, req providers.VerifyRequest, out *providers.VerifyResponse) error {
	u := p.cfg.Verify.HTTPProbeURL
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("http probe of %s: %w", u, err)
	}
	hr.Header.Set("Authorization", "Bearer "+req.Value.RevealString())
	resp, err := p.client.Do(hr)
	if err != nil {
		return fmt.Errorf("http probe of %s: %w", u, netx.TransportCause(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	if resp.StatusCode == p.cfg.Verify.HTTPProbeStatus {
		out.Evidence["http_probe"] = strconv.Itoa(resp.StatusCode)
		return nil
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("%w: http probe of %s: HTTP %d", ErrTokenRejected, u, resp.StatusCode)
	}
	return fmt.Errorf("http probe of %s: HTTP %d, want %d", u, resp.StatusCode, p.cfg.Verify.HTTPProbeStatus)
}

// OAuthError is an error response of an endpoint of the authorization
// server; it wraps providers.ErrPermanent when retrying cannot help.
type OAuthError = remote.OAuthError

// errorHints says what to check for each OAuth error code.
var errorHints = map[string]string{
	"invalid_grant":          "the refresh token is revoked, expired, or was used before (reuse detection revokes the whole grant)",
	"invalid_client":         "client authentication failed; check client_id, client_secret and auth_style",
	"unauthorized_client":    "the client may not use the refresh_token grant",
	"invalid_scope":          "the refresh may not ask for these scopes; scopes must be within the original grant",
	"invalid_target":         "the authorization server does not issue tokens for this resource; check resource",
	"unsupported_grant_type": "the authorization server does not support the refresh_token grant",
}
