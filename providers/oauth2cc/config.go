package oauth2cc

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Auth styles: how the client authenticates at the token, introspection and
// revocation endpoints (RFC 6749 §2.3.1).
const (
	// AuthStyleAuto tries the Authorization header first and form
	// parameters when the server refuses it.
	AuthStyleAuto = "auto"
	// AuthStyleHeader sends HTTP Basic authentication (client_secret_basic).
	AuthStyleHeader = "header"
	// AuthStyleParams sends client_id and client_secret as form parameters
	// (client_secret_post).
	AuthStyleParams = "params"
)

// Client authentication methods, named as RFC 7591's
// token_endpoint_auth_method values.
const (
	// ClientAuthSecretBasic sends the client secret with HTTP Basic
	// authentication (auth_style header).
	ClientAuthSecretBasic = "client_secret_basic"
	// ClientAuthSecretPost sends the client secret as form parameters
	// (auth_style params).
	ClientAuthSecretPost = "client_secret_post"
	// ClientAuthPrivateKeyJWT sends a JWT assertion signed by the client's
	// private key (RFC 7523 §2.2), whose public key the authorization
	// server knows from the client's JWKS.
	ClientAuthPrivateKeyJWT = "private_key_jwt"
)

// AssertionLifetime is how long a client assertion is valid.
const AssertionLifetime = time.Minute

// Scope policies: how the scope granted by the authorization server must
// relate to the credential's declared scope.
const (
	// ScopeSubset requires the granted scope to be a subset of the declared
	// scope: a token may be narrower than declared, never wider.
	ScopeSubset = "subset"
	// ScopeExact requires the granted scope to equal the declared scope.
	ScopeExact = "exact"
)

// DefaultTimeout bounds every request to the authorization server and every
// verification probe when `timeout` is not set.
const DefaultTimeout = 30 * time.Second

// Config is the configuration of an oauth2-client-credentials provider.
type Config struct {
	// TokenURL is the authorization server's token endpoint.
	TokenURL string
	// ClientID identifies rotator's client at the authorization server.
	ClientID string
	// ClientSecret authenticates the client. It comes from a reference.
	ClientSecret secret.Value
	// ClientAuth is how the client authenticates: "" (a client secret, as
	// AuthStyle says), ClientAuthSecretBasic, ClientAuthSecretPost or
	// ClientAuthPrivateKeyJWT.
	ClientAuth string
	// PrivateKey signs client assertions under ClientAuthPrivateKeyJWT: a
	// PEM or JWK private key from a reference, usually {credential: ID},
	// the current value of an oauth2-private-key-jwt credential.
	PrivateKey secret.Value
	// AssertionAudience is the aud of client assertions; TokenURL when
	// empty.
	AssertionAudience string
	// Scopes are requested in every token request. When empty, the
	// credential's declared scope is requested.
	Scopes []string
	// Resource, when set, is sent as the RFC 8707 `resource` parameter (the
	// canonical URI of the MCP server the token is for), and verification
	// requires it in the token's audience.
	Resource string
	// AuthStyle is AuthStyleAuto, AuthStyleHeader or AuthStyleParams.
	AuthStyle string
	// ScopePolicy is ScopeSubset (the default) or ScopeExact.
	ScopePolicy string
	// Verify lists the checks Verify runs; every configured check must pass.
	Verify VerifyConfig
	// RevocationURL, when set, is the RFC 7009 revocation endpoint that
	// Revoke calls. Without it a retired token stays valid until it expires.
	RevocationURL string
	// Timeout bounds each request to the authorization server and each probe.
	Timeout time.Duration
	// InsecureHTTP allows plain-http URLs to hosts other than the loopback
	// interface. Tokens and the client secret then cross the network in
	// clear text; use it only inside a trusted network.
	InsecureHTTP bool
}

// VerifyConfig holds the verification checks; nil means not configured.
type VerifyConfig struct {
	// Introspection asks the authorization server about the token (RFC 7662).
	Introspection *IntrospectionConfig
	// JWKS checks the token as a JWT signed by a key of a JSON Web Key Set.
	JWKS *JWKSConfig
	// MCPProbe opens an MCP session with the token and lists the tools.
	MCPProbe *MCPProbeConfig
	// HTTPProbe requests a URL with the token and checks the status.
	HTTPProbe *HTTPProbeConfig
}

func (v VerifyConfig) empty() bool {
	return v.Introspection == nil && v.JWKS == nil && v.MCPProbe == nil && v.HTTPProbe == nil
}

// IntrospectionConfig configures RFC 7662 token introspection.
type IntrospectionConfig struct {
	// URL is the introspection endpoint.
	URL string
	// ClientID authenticates at the endpoint; the provider's client_id when empty.
	ClientID string
	// ClientSecret authenticates at the endpoint; the provider's
	// client_secret when empty. It comes from a reference.
	ClientSecret secret.Value
}

// JWKSConfig configures the check of a JWT access token.
type JWKSConfig struct {
	// URL serves the authorization server's JSON Web Key Set.
	URL string
	// Issuer, when set, must equal the token's `iss` claim.
	Issuer string
	// Audience, when set, must be in the token's `aud` claim; when empty,
	// Resource (if set) must be.
	Audience string
}

// MCPProbeConfig configures the MCP probe.
type MCPProbeConfig struct {
	// URL is the MCP server's streamable-HTTP endpoint.
	URL string
}

// HTTPProbeConfig configures the HTTP probe.
type HTTPProbeConfig struct {
	// URL is requested with GET and the token as a bearer token.
	URL string
	// ExpectStatus is the status that proves the token works; 200 by default.
	ExpectStatus int
}

var defaults = Config{AuthStyle: AuthStyleAuto, ScopePolicy: ScopeSubset, Timeout: DefaultTimeout}

// level says which fields a settings map may hold.
type level int

const (
	providerLevel   level = iota // the provider's settings: every field
	credentialLevel              // a credential's settings: overrides only
)

// parse reads settings over base. At credential level only the fields a
// credential may override are allowed: scopes, resource, scope_policy and
// verify (whose introspection check then uses the provider's client).
// Credential settings are not resolved, so they cannot hold secrets.
func parse(s settings.Map, base Config, lvl level) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := base
	if lvl == providerLevel {
		c.InsecureHTTP = r.Bool("insecure_http", base.InsecureHTTP)
		c.TokenURL = r.RequiredString("token_url")
		r.HTTPURL("token_url", c.TokenURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
		c.ClientID = r.RequiredString("client_id")
		c.AuthStyle = r.OneOf("auth_style", base.AuthStyle, AuthStyleAuto, AuthStyleHeader, AuthStyleParams)
		c.ClientAuth = r.String("client_auth", base.ClientAuth)
		methods := []string{ClientAuthSecretBasic, ClientAuthSecretPost, ClientAuthPrivateKeyJWT}
		switch {
		case c.ClientAuth != "" && !slices.Contains(methods, c.ClientAuth):
			r.Fail("client_auth", "must be one of %s, got %q", strings.Join(methods, ", "), c.ClientAuth)
			// One error is enough: the fields below depend on the method.
			r.Secret("client_secret")
			r.Secret("private_key")
			r.Secret("assertion_audience")
		case c.ClientAuth == ClientAuthPrivateKeyJWT:
			c.PrivateKey = r.Secret("private_key")
			if c.PrivateKey.IsZero() && !r.Has("private_key") {
				r.Fail("private_key", "is required with client_auth private_key_jwt: {credential: ID} naming an oauth2-private-key-jwt credential (its current key), or a reference such as ${file:/run/secrets/client-key.pem}")
			}
			if r.Has("client_secret") {
				r.Fail("client_secret", "must not be set with client_auth private_key_jwt: the client authenticates with private_key; remove client_secret")
				r.Secret("client_secret") // mark it read: one error is enough
			}
			if r.Has("auth_style") {
				r.Fail("auth_style", "applies to client secrets only; remove it with client_auth private_key_jwt")
			}
			c.AssertionAudience = r.String("assertion_audience", base.AssertionAudience)
			if c.AssertionAudience != "" {
				if u, err := url.Parse(c.AssertionAudience); err != nil || !u.IsAbs() {
					r.Fail("assertion_audience", "must be an absolute URI: the token endpoint (the default) or the authorization server's issuer")
				}
			}
		default:
			c.ClientSecret = r.Secret("client_secret")
			if c.ClientSecret.IsZero() && !r.Has("client_secret") {
				r.Fail("client_secret", "is required: a reference such as ${env:NAME} or ${file:/path} (or set client_auth: private_key_jwt and private_key)")
			}
			for _, k := range []string{"private_key", "assertion_audience"} {
				if r.Has(k) {
					r.Fail(k, "is used only with client_auth: private_key_jwt; set that, or remove %s", k)
					r.Secret(k) // mark it read: one error is enough
				}
			}
			want := map[string]string{ClientAuthSecretBasic: AuthStyleHeader, ClientAuthSecretPost: AuthStyleParams}[c.ClientAuth]
			if want != "" {
				if r.Has("auth_style") && c.AuthStyle != want {
					r.Fail("auth_style", "is %s, which contradicts client_auth %s; remove auth_style", c.AuthStyle, c.ClientAuth)
				}
				c.AuthStyle = want
			}
		}
		c.RevocationURL = r.String("revocation_url", base.RevocationURL)
		if c.RevocationURL != "" {
			r.HTTPURL("revocation_url", c.RevocationURL, settings.URLRule{InsecureHTTP: c.InsecureHTTP})
		}
		c.Timeout = r.Duration("timeout", base.Timeout)
		if c.Timeout <= 0 {
			r.Fail("timeout", "must be positive")
			c.Timeout = DefaultTimeout
		}
	}
	c.Scopes = r.Strings("scopes", base.Scopes)
	for i, sc := range c.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n\"\\") {
			r.Fail(fmt.Sprintf("scopes[%d]", i), "must be a non-empty scope token without spaces, quotes or backslashes (RFC 6749 §3.3)")
		}
	}
	c.Resource = r.String("resource", base.Resource)
	if c.Resource != "" {
		if u, err := url.Parse(c.Resource); err != nil || !u.IsAbs() || u.Fragment != "" {
			r.Fail("resource", "must be an absolute URI without a fragment (RFC 8707), such as https://mcp.example.com/mcp")
		}
	}
	c.ScopePolicy = r.OneOf("scope_policy", base.ScopePolicy, ScopeSubset, ScopeExact)
	if r.Has("verify") {
		c.Verify = parseVerify(r, r.Map("verify"), c.InsecureHTTP, lvl)
	}
	r.Unknown()
	return c, r.Errors()
}

// parseVerify reads the verify block; errors are reported on r with the
// nested field's dotted path.
func parseVerify(r *settings.Reader, m settings.Map, insecure bool, lvl level) VerifyConfig {
	var v VerifyConfig
	if m == nil {
		return v
	}
	vr := settings.NewReader(m)
	if sub := vr.Map("introspection"); vr.Has("introspection") {
		sr := settings.NewReader(sub)
		in := &IntrospectionConfig{URL: sr.RequiredString("url")}
		sr.HTTPURL("url", in.URL, settings.URLRule{InsecureHTTP: insecure})
		if lvl == providerLevel {
			in.ClientID = sr.String("client_id", "")
			in.ClientSecret = sr.Secret("client_secret")
			if (in.ClientID == "") != (in.ClientSecret.IsZero() && !sr.Has("client_secret")) {
				sr.Fail("client_id", "and client_secret go together: set both, or neither to use the provider's client")
			}
		}
		sr.Unknown()
		v.Introspection = in
		vr.Nest("introspection", sr.Errors())
	}
	if sub := vr.Map("jwks"); vr.Has("jwks") {
		sr := settings.NewReader(sub)
		j := &JWKSConfig{URL: sr.RequiredString("url"), Issuer: sr.String("issuer", ""), Audience: sr.String("audience", "")}
		sr.HTTPURL("url", j.URL, settings.URLRule{InsecureHTTP: insecure})
		sr.Unknown()
		v.JWKS = j
		vr.Nest("jwks", sr.Errors())
	}
	if sub := vr.Map("mcp_probe"); vr.Has("mcp_probe") {
		sr := settings.NewReader(sub)
		p := &MCPProbeConfig{URL: sr.RequiredString("url")}
		sr.HTTPURL("url", p.URL, settings.URLRule{InsecureHTTP: insecure})
		sr.Unknown()
		v.MCPProbe = p
		vr.Nest("mcp_probe", sr.Errors())
	}
	if sub := vr.Map("http_probe"); vr.Has("http_probe") {
		sr := settings.NewReader(sub)
		p := &HTTPProbeConfig{URL: sr.RequiredString("url"), ExpectStatus: sr.Int("expect_status", 200, 100, 599)}
		sr.HTTPURL("url", p.URL, settings.URLRule{InsecureHTTP: insecure})
		sr.Unknown()
		v.HTTPProbe = p
		vr.Nest("http_probe", sr.Errors())
	}
	vr.Unknown()
	if len(m) == 0 {
		vr.Fail("", "names no check; use one or more of introspection, jwks, mcp_probe, http_probe")
	}
	r.Nest("verify", vr.Errors())
	return v
}

// ValidateProvider checks provider-level settings without resolving
// references or contacting anything.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s, defaults, providerLevel)
	return errs
}

// ValidateCredential checks per-credential settings: scopes, resource,
// scope_policy and verify may override the provider's.
func ValidateCredential(s settings.Map) settings.Errors {
	// The provider's fields are unknown here; parse the overrides over a
	// base that allows plain http, so that only the provider-level check
	// (at New) judges the scheme against the provider's insecure_http.
	_, errs := parse(s, Config{AuthStyle: AuthStyleAuto, ScopePolicy: ScopeSubset, Timeout: DefaultTimeout, InsecureHTTP: true}, credentialLevel)
	return errs
}

// requested returns the scope to ask the token endpoint for.
func (c Config) requested(declared []string) []string {
	if len(c.Scopes) > 0 {
		return c.Scopes
	}
	return declared
}

// declared returns the scope the granted scope is held against: the
// credential's declared scope, else the configured scopes.
func (c Config) declared(credential []string) []string {
	if len(credential) > 0 {
		return credential
	}
	return c.Scopes
}

// checkScope applies the scope policy. It returns nil when nothing is
// declared (there is nothing to hold the grant against).
func checkScope(policy string, declared, granted []string) error {
	if len(declared) == 0 {
		return nil
	}
	var wider []string
	for _, g := range granted {
		if !slices.Contains(declared, g) {
			wider = append(wider, g)
		}
	}
	if len(wider) > 0 {
		return fmt.Errorf("%w: granted scope %q is wider than the declared %q (not declared: %s)",
			ErrScopePolicy, strings.Join(granted, " "), strings.Join(declared, " "), strings.Join(wider, " "))
	}
	if policy == ScopeExact {
		var missing []string
		for _, d := range declared {
			if !slices.Contains(granted, d) {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: granted scope %q differs from the declared %q (missing: %s) and scope_policy is exact",
				ErrScopePolicy, strings.Join(granted, " "), strings.Join(declared, " "), strings.Join(missing, " "))
		}
	}
	return nil
}
