package oauth2cc_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testauthz"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/oauth2cc"
	"github.com/rotatorhq/rotator/providers/oauth2pkjwt"
)

// TestPrivateKeyJWT gets tokens with client_auth private_key_jwt, with the
// key an oauth2-private-key-jwt provider rotates, before and after a
// rotation of that key (the engine rebuilds the oauth2cc instance with the
// new current value of the {credential: ID} reference), and shows that the
// old key stops working once it is revoked after grace.
func TestPrivateKeyJWT(t *testing.T) {
	as := testauthz.New(t)
	as.CacheTTL = 0 // fetch (read) the JWKS on every assertion
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	as.Register(testauthz.Client{ID: "mcp-gateway", JWKSFile: jwksFile})
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys, err := oauth2pkjwt.New(providers.Env{Name: "gateway-keys", Logger: logger, Settings: settings.Map{
		"token_url": as.TokenURL(), "client_id": "mcp-gateway", "jwks_file": jwksFile,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keys.Close() })

	rotateKey := func(id string, cur *providers.VersionRef) providers.VersionRef {
		t.Helper()
		c := providers.Common{CredentialID: "gateway-key", VersionID: id}
		m, err := keys.Mint(t.Context(), providers.MintRequest{Common: c, Current: cur})
		if err != nil {
			t.Fatal(err)
		}
		a, err := keys.Activate(t.Context(), providers.ActivateRequest{Common: c, Value: m.Value, Metadata: m.Metadata})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range a.Metadata {
			m.Metadata[k] = v
		}
		if _, err := keys.Verify(t.Context(), providers.VerifyRequest{Common: c, Value: m.Value, Metadata: m.Metadata}); err != nil {
			t.Fatal(err)
		}
		return providers.VersionRef{VersionID: id, Value: m.Value, Metadata: m.Metadata}
	}
	tokens := func(key secret.Value) (*oauth2cc.Provider, error) {
		p, err := oauth2cc.New(providers.Env{Name: "gateway", Logger: logger, Settings: settings.Map{
			"token_url": as.TokenURL(), "client_id": "mcp-gateway",
			"client_auth": "private_key_jwt", "private_key": key,
			"revocation_url": as.URL + "/revoke",
		}})
		if err == nil {
			t.Cleanup(func() { _ = p.Close() })
		}
		return p, err
	}
	mintToken := func(p *oauth2cc.Provider) error {
		res, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{CredentialID: "gateway-token", VersionID: "t"}})
		if err == nil && !as.Issued(res.Value.RevealString()) {
			t.Fatal("Mint returned a token the server did not issue")
		}
		return err
	}

	k1 := rotateKey("k1", nil)
	before, err := tokens(k1.Value)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // each request has its own assertion (jti)
		if err := mintToken(before); err != nil {
			t.Fatalf("token with the first key: %v", err)
		}
	}
	k2 := rotateKey("k2", &k1)
	// During grace both keys work.
	if err := mintToken(before); err != nil {
		t.Fatalf("token with the previous key during grace: %v", err)
	}
	after, err := tokens(k2.Value)
	if err != nil {
		t.Fatal(err)
	}
	if err := mintToken(after); err != nil {
		t.Fatalf("token with the rotated key: %v", err)
	}
	// After grace the previous key is withdrawn from the JWKS.
	if err := keys.Revoke(t.Context(), providers.RevokeRequest{Common: providers.Common{CredentialID: "gateway-key", VersionID: "k1"}, Value: k1.Value}); err != nil {
		t.Fatal(err)
	}
	err = mintToken(before)
	if err == nil {
		t.Fatal("the withdrawn key still gets tokens")
	}
	if !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("error with the withdrawn key = %v, want invalid_client", err)
	}
	if err := mintToken(after); err != nil {
		t.Fatalf("token with the current key after the previous was withdrawn: %v", err)
	}
	for _, s := range []string{logs.String(), err.Error()} {
		for _, k := range []secret.Value{k1.Value, k2.Value} {
			body := strings.Join(strings.Split(k.RevealString(), "\n")[1:3], "")
			if strings.Contains(s, body) {
				t.Fatalf("a private key appears in output:\n%s", s)
			}
		}
	}
}

func TestPrivateKeyJWTConfig(t *testing.T) {
	base := func(extra settings.Map) settings.Map {
		s := settings.Map{"token_url": "https://as.example/token", "client_id": "c", "client_auth": "private_key_jwt", "private_key": map[string]any{"credential": "gateway-key"}}
		for k, v := range extra {
			if v == nil {
				delete(s, k)
			} else {
				s[k] = v
			}
		}
		return s
	}
	if errs := oauth2cc.ValidateProvider(base(nil)); len(errs) > 0 {
		t.Fatalf("a {credential: ID} private_key is refused: %v", errs)
	}
	for name, c := range map[string]struct {
		s          settings.Map
		field, msg string
	}{
		"no key":       {base(settings.Map{"private_key": nil}), "private_key", "is required with client_auth private_key_jwt"},
		"secret too":   {base(settings.Map{"client_secret": "${env:S}"}), "client_secret", "must not be set with client_auth private_key_jwt"},
		"auth_style":   {base(settings.Map{"auth_style": "header"}), "auth_style", "applies to client secrets only"},
		"bad method":   {base(settings.Map{"client_auth": "tls_client_auth"}), "client_auth", "must be one of"},
		"key, no auth": {settings.Map{"token_url": "https://as.example/token", "client_id": "c", "client_secret": "${env:S}", "private_key": "${file:/k}"}, "private_key", "only with client_auth: private_key_jwt"},
		"contradicts":  {settings.Map{"token_url": "https://as.example/token", "client_id": "c", "client_secret": "${env:S}", "client_auth": "client_secret_post", "auth_style": "header"}, "auth_style", "contradicts client_auth client_secret_post"},
	} {
		t.Run(name, func(t *testing.T) {
			errs := oauth2cc.ValidateProvider(c.s)
			if len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Msg, c.msg) {
				t.Fatalf("errors = %v, want one on %s containing %q", errs, c.field, c.msg)
			}
		})
	}
	_, err := oauth2cc.New(providers.Env{Name: "gw", Settings: base(settings.Map{"private_key": secret.NewString("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWNhbmFyeS1ib2R5LXh5eg==\n-----END PRIVATE KEY-----\n")})})
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("New with a corrupt key = %v, want an error without the key", err)
	}
	_ = time.Second
}
