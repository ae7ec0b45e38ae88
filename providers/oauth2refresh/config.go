package oauth2refresh

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Auth styles: how the client authenticates at the token, introspection and
// revocation endpoints.
const (
	// AuthStyleAuto uses HTTP Basic when there is a client secret, and form
	// parameters when the server refuses it; a public client (no secret)
	// sends its client_id as a form parameter.
	AuthStyleAuto = "auto"
	// AuthStyleHeader sends HTTP Basic authentication (client_secret_basic).
	AuthStyleHeader = "header"
	// AuthStyleParams sends client_id (and client_secret) as form
	// parameters (client_secret_post, or a public client).
	AuthStyleParams = "params"
)

// DefaultTimeout bounds every request when `timeout` is not set.
const DefaultTimeout = 30 * time.Second

// Config is the configuration of an oauth2-refresh-token provider.
type Config struct {
	// TokenURL is the authorization server's token endpoint.
	TokenURL string
	// DeviceAuthorizationURL is the RFC 8628 device authorization endpoint
	// that `rotator login` uses; optional.
	DeviceAuthorizationURL string
	// ClientID identifies the client the refresh token was issued to.
	ClientID string
	// ClientSecret authenticates a confidential client; zero for a public
	// client.
	ClientSecret secret.Value
	// RefreshToken is the bootstrap refresh token, from a reference; zero
	// when `rotator login` provides it.
	RefreshToken secret.Value
	// Scopes, when set, are sent on every refresh (narrowing the grant, RFC
	// 6749 §6) and asked for at login.
	Scopes []string
	// Resource, when set, is sent as RFC 8707's `resource` on every refresh
	// and at login.
	Resource string
	// AuthStyle is AuthStyleAuto, AuthStyleHeader or AuthStyleParams.
	AuthStyle string
	// Verify holds the checks Verify runs; at least one is required.
	Verify VerifyConfig
	// RevocationURL, when set, is the RFC 7009 endpoint Revoke calls with a
	// retired access token (never with the refresh token).
	RevocationURL string
	// Timeout bounds each request.
	Timeout time.Duration
	// InsecureHTTP allows plain-http URLs to hosts other than loopback.
	InsecureHTTP bool
}

// VerifyConfig holds the verification checks; nil means not configured.
type VerifyConfig struct {
	// IntrospectionURL is an RFC 7662 endpoint, asked with the client's
	// credentials.
	IntrospectionURL string
	// HTTPProbeURL is requested with GET and the access token; it must
	// answer HTTPProbeStatus.
	HTTPProbeURL    string
	HTTPProbeStatus int
}

var defaults = Config{AuthStyle: AuthStyleAuto, Timeout: DefaultTimeout}

// parse reads provider settings. Credentials have no settings of their
// own: one provider holds one grant (one refresh token lineage), so it
// serves one credential.
func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := defaults
	c.InsecureHTTP = r.Bool("insecure_http", false)
	c.TokenURL = r.RequiredString("token_url")
	r.HTTPURL("token_url", c.TokenURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
	c.DeviceAuthorizationURL = r.String("device_authorization_url", "")
	r.HTTPURL("device_authorization_url", c.DeviceAuthorizationURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
	c.ClientID = r.RequiredString("client_id")
	c.ClientSecret = r.Secret("client_secret")
	c.RefreshToken = r.Secret("refresh_token")
	if c.RefreshToken.IsZero() && !r.Has("refresh_token") && c.DeviceAuthorizationURL == "" {
		r.Fail("refresh_token", "is required without device_authorization_url: a reference to the bootstrap refresh token, such as ${file:/run/secrets/mcp-refresh-token} (or set device_authorization_url and run `rotator login CREDENTIAL`)")
	}
	c.Scopes = r.Strings("scopes", nil)
	for i, sc := range c.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n\"\\") {
			r.Fail(fmt.Sprintf("scopes[%d]", i), "must be a non-empty scope token without spaces, quotes or backslashes (RFC 6749 §3.3)")
		}
	}
	c.Resource = r.String("resource", "")
	if c.Resource != "" {
		if u, err := url.Parse(c.Resource); err != nil || !u.IsAbs() || u.Fragment != "" {
			r.Fail("resource", "must be an absolute URI without a fragment (RFC 8707), such as https://mcp.example.com/mcp")
		}
	}
	c.AuthStyle = r.OneOf("auth_style", defaults.AuthStyle, AuthStyleAuto, AuthStyleHeader, AuthStyleParams)
	if c.AuthStyle == AuthStyleHeader && c.ClientSecret.IsZero() && !r.Has("client_secret") {
		r.Fail("auth_style", "header needs a client_secret; a public client authenticates with params (its client_id)")
	}
	c.RevocationURL = r.String("revocation_url", "")
	r.HTTPURL("revocation_url", c.RevocationURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
	c.Timeout = r.Duration("timeout", defaults.Timeout)
	if c.Timeout <= 0 {
		r.Fail("timeout", "must be positive")
		c.Timeout = DefaultTimeout
	}
	v := r.Map("verify")
	vr := settings.NewReader(v)
	if sub := vr.Map("introspection"); vr.Has("introspection") {
		sr := settings.NewReader(sub)
		c.Verify.IntrospectionURL = sr.RequiredString("url")
		sr.HTTPURL("url", c.Verify.IntrospectionURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
		sr.Unknown()
		vr.Nest("introspection", sr.Errors())
	}
	if sub := vr.Map("http_probe"); vr.Has("http_probe") {
		sr := settings.NewReader(sub)
		c.Verify.HTTPProbeURL = sr.RequiredString("url")
		c.Verify.HTTPProbeStatus = sr.Int("expect_status", 200, 100, 599)
		sr.HTTPURL("url", c.Verify.HTTPProbeURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
		sr.Unknown()
		vr.Nest("http_probe", sr.Errors())
	}
	vr.Unknown()
	if c.Verify.IntrospectionURL == "" && c.Verify.HTTPProbeURL == "" && len(vr.Errors()) == 0 {
		vr.Fail("", "is required and names no check; use introspection {url: …} and/or http_probe {url: …}: without one, nothing proves a refreshed access token works")
	}
	r.Nest("verify", vr.Errors())
	r.Unknown()
	return c, r.Errors()
}

// ValidateProvider checks provider-level settings without resolving
// references or contacting anything.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateCredential refuses credential settings: the provider is the grant.
func ValidateCredential(s settings.Map) settings.Errors {
	var errs settings.Errors
	for k := range s {
		errs = append(errs, settings.Error{Field: k, Msg: "unknown field; an oauth2-refresh-token credential has no settings (configure its provider, one per refresh token)"})
	}
	return errs
}
