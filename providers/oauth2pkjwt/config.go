package oauth2pkjwt

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/jose"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Key formats: how a minted private key is encoded as the credential's
// value.
const (
	// FormatPEM is a PKCS #8 "PRIVATE KEY" PEM block.
	FormatPEM = "pem"
	// FormatJWK is a private JSON Web Key, kid included.
	FormatJWK = "jwk"
)

// Defaults and limits.
const (
	// DefaultTimeout bounds each request to the token endpoint.
	DefaultTimeout = 30 * time.Second
	// DefaultAssertionLifetime is how long a client assertion is valid.
	DefaultAssertionLifetime = time.Minute
	// MaxAssertionLifetime is the longest assertion lifetime allowed:
	// assertions are single-use proofs, and servers refuse long ones.
	MaxAssertionLifetime = 5 * time.Minute
	// MaxStageWait is the longest stage_wait: the wait happens inside the
	// verify step, which the engine bounds with its step timeout (2m).
	MaxStageWait = 110 * time.Second
)

// Config is the configuration of an oauth2-private-key-jwt provider.
type Config struct {
	// TokenURL is the authorization server's token endpoint.
	TokenURL string
	// ClientID is the client whose keys are rotated (iss and sub of every
	// assertion).
	ClientID string
	// Algorithm is jose.ES256 (the default) or jose.RS256.
	Algorithm string
	// Format is FormatPEM (the default) or FormatJWK.
	Format string
	// Audience is the aud of assertions; the token endpoint when empty.
	Audience string
	// JWKSFile, when set, is the JSON Web Key Set file the provider keeps:
	// it adds a key at Activate and removes it at Revoke, writing the file
	// atomically. Without it the JWKS is published by `rotator serve` at
	// /.well-known/jwks/{provider}.json.
	JWKSFile string
	// StageWait is how long Verify waits after Activate published the key
	// before it uses it: the authorization server's JWKS cache lifetime.
	StageWait time.Duration
	// Scopes are requested in Verify's token request; none when empty.
	Scopes []string
	// Resource is sent as RFC 8707 `resource` in Verify's token request.
	Resource string
	// AssertionLifetime is exp - iat of every assertion.
	AssertionLifetime time.Duration
	// Timeout bounds each request to the token endpoint.
	Timeout time.Duration
	// InsecureHTTP allows a plain-http token_url to a host other than the
	// loopback interface.
	InsecureHTTP bool
}

var defaults = Config{Algorithm: jose.ES256, Format: FormatPEM, AssertionLifetime: DefaultAssertionLifetime, Timeout: DefaultTimeout}

// audience returns the aud of assertions.
func (c Config) audience() string {
	if c.Audience != "" {
		return c.Audience
	}
	return c.TokenURL
}

// parse reads provider-level settings over base.
func parse(s settings.Map, base Config) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := base
	c.InsecureHTTP = r.Bool("insecure_http", base.InsecureHTTP)
	c.TokenURL = r.RequiredString("token_url")
	r.HTTPURL("token_url", c.TokenURL, settings.URLRule{Example: "https://auth.example.com/oauth2/token", InsecureHTTP: c.InsecureHTTP})
	c.ClientID = r.RequiredString("client_id")
	c.Algorithm = r.OneOf("algorithm", base.Algorithm, jose.ES256, jose.RS256)
	c.Format = r.OneOf("format", base.Format, FormatPEM, FormatJWK)
	c.Audience = r.String("audience", base.Audience)
	if c.Audience != "" {
		if u, err := url.Parse(c.Audience); err != nil || !u.IsAbs() {
			r.Fail("audience", "must be an absolute URI: the token endpoint or the authorization server's issuer, such as https://auth.example.com")
		}
	}
	c.JWKSFile = r.String("jwks_file", base.JWKSFile)
	if c.JWKSFile != "" && (strings.ContainsRune(c.JWKSFile, 0) || filepath.Base(c.JWKSFile) == "." || strings.HasSuffix(c.JWKSFile, "/")) {
		r.Fail("jwks_file", "must be the path of a file, such as /srv/www/.well-known/jwks.json")
	}
	c.StageWait = r.Duration("stage_wait", base.StageWait)
	if c.StageWait < 0 || c.StageWait > MaxStageWait {
		r.Fail("stage_wait", "must be between 0s and %s (the wait happens inside the verify step, which the engine bounds at 2m), got %s", MaxStageWait, c.StageWait)
		c.StageWait = 0
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
	c.AssertionLifetime = r.Duration("assertion_lifetime", base.AssertionLifetime)
	if c.AssertionLifetime < 10*time.Second || c.AssertionLifetime > MaxAssertionLifetime {
		r.Fail("assertion_lifetime", "must be between 10s and %s, got %s", MaxAssertionLifetime, c.AssertionLifetime)
		c.AssertionLifetime = DefaultAssertionLifetime
	}
	c.Timeout = r.Duration("timeout", base.Timeout)
	if c.Timeout <= 0 {
		r.Fail("timeout", "must be positive")
		c.Timeout = DefaultTimeout
	}
	for _, k := range []string{"private_key", "client_secret"} {
		if r.Has(k) {
			r.Fail(k, "is not a setting of this provider: it mints the client's private keys itself (the credential's value); remove %s", k)
			r.Secret(k) // mark it read: one error is enough
		}
	}
	r.Unknown()
	return c, r.Errors()
}

// ValidateProvider checks provider-level settings without resolving
// references or contacting anything.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s, defaults)
	return errs
}

// ValidateCredential checks per-credential settings: this provider takes
// none (one provider is one client; its credentials are its keys).
func ValidateCredential(s settings.Map) settings.Errors {
	r := settings.NewReader(s)
	r.Unknown()
	errs := r.Errors()
	for i := range errs {
		errs[i].Msg = "unknown field; an oauth2-private-key-jwt credential takes no settings (configure the client on the provider)"
	}
	return errs
}
