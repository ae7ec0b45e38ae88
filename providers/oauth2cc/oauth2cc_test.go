package oauth2cc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/oauth2cc"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// declared is the scope the test credentials declare.
var declared = []string{mcpScope, "tools:call"}

// fixture is an authorization server with a registered client and an MCP
// server that trusts it.
type fixture struct {
	as     *authServer
	mcp    *mcpServer
	secret secret.Value
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	as := newAuthServer(t)
	m := newMCPServer(t, as)
	f := &fixture{as: as, mcp: m, secret: canary("cs-")}
	as.register("rotator", f.secret.RevealString(), mcpScope, "tools:call", "admin")
	as.set(func(as *authServer) { as.resources = []string{m.URL, as.URL + "/api"} })
	return f
}

// check names a verify block.
type check string

const (
	introspection check = "introspection"
	jwks          check = "jwks"
	mcpProbe      check = "mcp_probe"
	httpProbe     check = "http_probe"
)

// verify returns a verify block with the given checks.
func (f *fixture) verify(checks ...check) map[string]any {
	v := map[string]any{}
	for _, c := range checks {
		switch c {
		case introspection:
			v["introspection"] = map[string]any{"url": f.as.URL + "/introspect"}
		case jwks:
			v["jwks"] = map[string]any{"url": f.as.URL + "/jwks", "issuer": f.as.URL}
		case mcpProbe:
			v["mcp_probe"] = map[string]any{"url": f.mcp.URL}
		case httpProbe:
			v["http_probe"] = map[string]any{"url": f.as.URL + "/api/whoami"}
		}
	}
	return v
}

// settings returns resolved provider settings; extra overrides fields, and
// a nil value removes one.
func (f *fixture) settings(extra map[string]any) settings.Map {
	s := settings.Map{
		"token_url":      f.as.URL + "/token",
		"client_id":      "rotator",
		"client_secret":  f.secret,
		"resource":       f.mcp.URL,
		"revocation_url": f.as.URL + "/revoke",
		"verify":         f.verify(introspection),
	}
	for k, v := range extra {
		if v == nil {
			delete(s, k)
		} else {
			s[k] = v
		}
	}
	return s
}

// provider builds a provider through the factory, as the engine does.
func (f *fixture) provider(t *testing.T, logger *slog.Logger, extra map[string]any) providers.Provider {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := oauth2cc.Factory().New(context.Background(), providers.Env{Name: "test-as", Settings: f.settings(extra), Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestExercise(t *testing.T) {
	t.Parallel()
	suites := map[string][]check{
		"introspection":      {introspection},
		"jwks+introspection": {jwks, introspection},
		"mcp_probe":          {mcpProbe},
		"http_probe":         {httpProbe},
	}
	for name, checks := range suites {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			providertest.Exercise(t, providertest.Harness{
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					f := newFixture(t)
					p := f.provider(t, logger, map[string]any{"verify": f.verify(checks...), "timeout": "10s"})
					return providertest.Instance{Provider: p, Resource: f.as, Secrets: []secret.Value{f.secret}}
				},
				Factory:  oauth2cc.Factory(),
				Scope:    declared,
				Parallel: true,
			})
		})
	}
}

func captureLogs() (*slog.Logger, *testlog.Buffer) {
	b := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// noLeak fails the test if any of the secrets occurs in any of the texts.
func noLeak(t *testing.T, secrets []secret.Value, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, text := range texts {
			if s.Len() > 0 && strings.Contains(text, s.RevealString()) {
				t.Errorf("a secret leaked into %q", text)
			}
		}
	}
}

func common(scope []string) providers.Common {
	return providers.Common{CredentialID: "mcp-token", VersionID: "v1", IdempotencyKey: "run/step", Scope: scope}
}

func mint(t *testing.T, p providers.Provider, scope []string) providers.MintResponse {
	t.Helper()
	resp, err := p.Mint(context.Background(), providers.MintRequest{Common: common(scope)})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return resp
}

func verify(p providers.Provider, scope []string, v secret.Value, meta map[string]string) (providers.VerifyResponse, error) {
	return p.Verify(context.Background(), providers.VerifyRequest{Common: common(scope), Value: v, Metadata: meta})
}

func revoke(t *testing.T, p providers.Provider, v secret.Value) {
	t.Helper()
	if err := p.Revoke(context.Background(), providers.RevokeRequest{Common: common(declared), Value: v}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
}

func TestMintRecordsTokenFacts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.as.set(func(as *authServer) { as.ttl = 15 * time.Minute })
	p := f.provider(t, nil, nil)
	before := time.Now()
	resp := mint(t, p, declared)

	if got := f.as.resourcesSeen(); !slices.Equal(got, []string{f.mcp.URL}) {
		t.Errorf("resource parameters sent = %q, want [%s]", got, f.mcp.URL)
	}
	if want := before.Add(15 * time.Minute); resp.ExpiresAt.Before(want.Add(-2*time.Second)) || resp.ExpiresAt.After(want.Add(2*time.Second)) {
		t.Errorf("ExpiresAt = %s, want about %s (expires_in)", resp.ExpiresAt, want)
	}
	if resp.ExpiresAt.Location() != time.UTC {
		t.Errorf("ExpiresAt is in %s, want UTC", resp.ExpiresAt.Location())
	}
	if !slices.Equal(resp.GrantedScope, declared) {
		t.Errorf("GrantedScope = %q, want %q", resp.GrantedScope, declared)
	}
	m := resp.Metadata
	if m["token_type"] != "Bearer" || !strings.HasPrefix(m["hash"], "sha256:") || len(m["hash"]) != len("sha256:")+16 ||
		m["jti"] == "" || m["scope"] != strings.Join(declared, " ") || m["resource"] != f.mcp.URL {
		t.Errorf("Metadata = %v", m)
	}
	for k, v := range m {
		if strings.Contains(resp.Value.RevealString(), v) && len(v) > 30 {
			t.Errorf("metadata %s holds part of the token", k)
		}
	}
	if !p.Capabilities().Revocable || !p.Capabilities().Overlap || !p.Capabilities().ScopeAware {
		t.Errorf("Capabilities = %+v, want overlap, revocable and scope-aware", p.Capabilities())
	}
}

// A token response without scope does not say what was granted: the
// version records the scope as not reported (never the requested scope,
// which may be wider than the declared one), and Verify takes it from
// introspection when that is configured.
func TestScopeNotReported(t *testing.T) {
	t.Parallel()
	// The client requests more than the credential declares; a grant
	// inferred from the request would be an over-scope violation.
	requested := []any{mcpScope, "tools:call", "admin"}

	t.Run("without introspection it stays not reported", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.as.set(func(as *authServer) { as.omitScope = true })
		p := f.provider(t, nil, map[string]any{"scopes": requested, "scope_policy": "exact", "verify": f.verify(mcpProbe)})
		resp := mint(t, p, declared)
		if !resp.ScopeNotReported || resp.GrantedScope != nil {
			t.Errorf("Mint: ScopeNotReported %t, GrantedScope %q; want not reported and no scope", resp.ScopeNotReported, resp.GrantedScope)
		}
		if s, ok := resp.Metadata["scope"]; ok {
			t.Errorf("metadata scope %q recorded although the response had none", s)
		}
		ver, err := verify(p, declared, resp.Value, resp.Metadata)
		if err != nil {
			t.Fatalf("Verify: %v (a scope that was not reported must not fail the scope policy)", err)
		}
		if !ver.ScopeNotReported || ver.GrantedScope != nil || ver.Evidence["scope"] != "not reported" ||
			!strings.Contains(ver.Evidence["scope_policy"], "not checked") || ver.Evidence["checks"] != "mcp_probe" {
			t.Errorf("Verify: ScopeNotReported %t, GrantedScope %q, evidence %v", ver.ScopeNotReported, ver.GrantedScope, ver.Evidence)
		}
	})

	t.Run("with introspection it is taken from introspection", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.as.set(func(as *authServer) { as.omitScope = true })
		p := f.provider(t, nil, map[string]any{"verify": f.verify(introspection)})
		resp := mint(t, p, declared)
		if !resp.ScopeNotReported {
			t.Fatal("Mint reported a scope the response did not carry")
		}
		ver, err := verify(p, declared, resp.Value, resp.Metadata)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if ver.ScopeNotReported || !slices.Equal(ver.GrantedScope, declared) || ver.Evidence["checks"] != "introspection,scope_policy" {
			t.Errorf("Verify: ScopeNotReported %t, GrantedScope %q, evidence %v; want the introspected scope", ver.ScopeNotReported, ver.GrantedScope, ver.Evidence)
		}
	})

	t.Run("introspection reveals a wider grant", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.as.set(func(as *authServer) { as.omitScope, as.widen = true, []string{"admin"} })
		p := f.provider(t, nil, map[string]any{"verify": f.verify(introspection)})
		resp := mint(t, p, declared)
		_, err := verify(p, declared, resp.Value, resp.Metadata)
		if !errors.Is(err, oauth2cc.ErrScopePolicy) || !strings.Contains(err.Error(), "not declared: admin") {
			t.Fatalf("Verify = %v, want the introspected over-grant refused", err)
		}
	})
}

func TestScopePolicy(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		policy  string
		widen   []string
		narrow  []string
		checks  []check
		wantErr string // empty: verification passes
	}{
		"subset, equal":                     {policy: "subset", checks: []check{introspection}},
		"exact, equal":                      {policy: "exact", checks: []check{introspection}},
		"subset, wider":                     {policy: "subset", widen: []string{"admin"}, checks: []check{introspection}, wantErr: `granted scope "mcp:read tools:call admin" is wider than the declared "mcp:read tools:call" (not declared: admin)`},
		"exact, wider":                      {policy: "exact", widen: []string{"admin"}, checks: []check{introspection}, wantErr: "not declared: admin"},
		"subset, narrower":                  {policy: "subset", narrow: []string{"tools:call"}, checks: []check{introspection}},
		"exact, narrower":                   {policy: "exact", narrow: []string{"tools:call"}, checks: []check{introspection}, wantErr: "missing: tools:call"},
		"subset, wider, seen by the JWT":    {policy: "subset", widen: []string{"admin"}, checks: []check{jwks}, wantErr: "not declared: admin"},
		"subset, wider, recorded at mint":   {policy: "subset", widen: []string{"admin"}, checks: []check{httpProbe}, wantErr: "not declared: admin"},
		"exact, narrower, recorded at mint": {policy: "exact", narrow: []string{"tools:call"}, checks: []check{mcpProbe}, wantErr: "missing: tools:call"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.as.set(func(as *authServer) { as.widen, as.narrow = tt.widen, tt.narrow })
			p := f.provider(t, nil, map[string]any{"scope_policy": tt.policy, "verify": f.verify(tt.checks...)})
			resp := mint(t, p, declared)
			for _, w := range tt.widen {
				if !slices.Contains(resp.GrantedScope, w) {
					t.Errorf("GrantedScope %q does not report the wider scope %s", resp.GrantedScope, w)
				}
			}
			ver, err := verify(p, declared, resp.Value, resp.Metadata)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if ver.Evidence["scope_policy"] != tt.policy || ver.Evidence["scope"] == "" {
					t.Errorf("Evidence = %v", ver.Evidence)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify passed; want a scope policy failure")
			}
			if !errors.Is(err, oauth2cc.ErrScopePolicy) || !errors.Is(err, providers.ErrPermanent) {
				t.Errorf("Verify error %v does not wrap ErrScopePolicy and ErrPermanent", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Verify error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestWrongClientSecret(t *testing.T) {
	t.Parallel()
	for _, style := range []string{"auto", "header", "params"} {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			// A careless server that echoes what it was sent.
			f.as.set(func(as *authServer) { as.echoSecret = true })
			wrong := canary("wrong-secret-")
			logger, logs := captureLogs()
			p := f.provider(t, logger, map[string]any{"client_secret": wrong, "auth_style": style})
			_, err := p.Mint(context.Background(), providers.MintRequest{Common: common(declared)})
			if err == nil {
				t.Fatal("Mint with a wrong client secret succeeded")
			}
			var oe *oauth2cc.OAuthError
			if !errors.As(err, &oe) && !strings.Contains(err.Error(), "invalid_client") {
				t.Fatalf("Mint error %q is neither an OAuthError nor names invalid_client", err)
			}
			if !errors.Is(err, providers.ErrPermanent) {
				t.Errorf("Mint error %q is not permanent", err)
			}
			msg := err.Error()
			for _, want := range []string{"token endpoint " + f.as.URL + "/token", "invalid_client", "[HTTP 401]", "check client_id, client_secret and auth_style"} {
				if !strings.Contains(msg, want) {
					t.Errorf("Mint error %q does not contain %q", msg, want)
				}
			}
			if !strings.Contains(msg, secret.Redacted) {
				t.Errorf("Mint error %q: the server's echo of the secret was not scrubbed to %s", msg, secret.Redacted)
			}
			noLeak(t, []secret.Value{wrong, f.secret}, msg, logs.String())
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		extra map[string]any
		scope []string
		want  []string
	}{
		"invalid_scope": {scope: []string{mcpScope, "repo:write"}, want: []string{"invalid_scope", "scope repo:write is not allowed", "[HTTP 400]", "may not request this scope"}},
		"invalid_target": {extra: map[string]any{"resource": "https://elsewhere.example/mcp"}, scope: declared,
			want: []string{"invalid_target", "[HTTP 400]", "check resource"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			logger, logs := captureLogs()
			p := f.provider(t, logger, tt.extra)
			_, err := p.Mint(context.Background(), providers.MintRequest{Common: common(tt.scope)})
			var oe *oauth2cc.OAuthError
			if !errors.As(err, &oe) {
				t.Fatalf("Mint error = %v, want an *OAuthError", err)
			}
			if oe.Code != name || oe.Endpoint != "token" || !errors.Is(err, providers.ErrPermanent) {
				t.Errorf("OAuthError = %+v (permanent %v)", oe, errors.Is(err, providers.ErrPermanent))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Mint error %q does not contain %q", err, w)
				}
			}
			noLeak(t, []secret.Value{f.secret}, err.Error(), logs.String())
		})
	}
}

func TestAuthStyle(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		server, style string
		wantErr       bool
		wantMethods   []string
	}{
		"auto falls back to params":       {server: "params", style: "auto", wantMethods: []string{"header", "params"}},
		"auto uses the header":            {server: "header", style: "auto", wantMethods: []string{"header"}},
		"header":                          {server: "header", style: "header", wantMethods: []string{"header"}},
		"params":                          {server: "params", style: "params", wantMethods: []string{"params"}},
		"header refused by a params-only": {server: "params", style: "header", wantErr: true},
		"params refused by a header-only": {server: "header", style: "params", wantErr: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.as.set(func(as *authServer) { as.requireAuth = tt.server })
			p := f.provider(t, nil, map[string]any{"auth_style": tt.style})
			resp, err := p.Mint(context.Background(), providers.MintRequest{Common: common(declared)})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "invalid_client") {
					t.Fatalf("Mint error = %v, want invalid_client", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if got := f.as.methods(); !slices.Equal(got, tt.wantMethods) {
				t.Errorf("client authentication methods used = %q, want %q", got, tt.wantMethods)
			}
			// Introspection and revocation authenticate the same way.
			if _, err := verify(p, declared, resp.Value, resp.Metadata); err != nil {
				t.Errorf("Verify (introspection): %v", err)
			}
			revoke(t, p, resp.Value)
			if ok, _ := f.as.Accepts(context.Background(), providers.VersionRef{Value: resp.Value}); ok {
				t.Error("the token is still accepted after Revoke")
			}
		})
	}
}

func TestIntrospectionInactiveAfterRevoke(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	logger, logs := captureLogs()
	p := f.provider(t, logger, nil)
	resp := mint(t, p, declared)
	ver, err := verify(p, declared, resp.Value, resp.Metadata)
	if err != nil {
		t.Fatalf("Verify before revoke: %v", err)
	}
	if ver.Evidence["introspection"] != "active" || ver.Evidence["checks"] != "introspection,scope_policy" {
		t.Errorf("Evidence = %v", ver.Evidence)
	}
	revoke(t, p, resp.Value)
	_, err = verify(p, declared, resp.Value, resp.Metadata)
	if !errors.Is(err, oauth2cc.ErrTokenRejected) || !strings.Contains(err.Error(), "reports the token inactive") {
		t.Fatalf("Verify after revoke = %v, want the token reported inactive", err)
	}
	noLeak(t, []secret.Value{resp.Value, f.secret}, err.Error(), logs.String())
}

func TestMCPProbe(t *testing.T) {
	t.Parallel()
	t.Run("accepted, then refused after revoke", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		logger, logs := captureLogs()
		p := f.provider(t, logger, map[string]any{"verify": f.verify(mcpProbe)})
		resp := mint(t, p, declared)
		ver, err := verify(p, declared, resp.Value, resp.Metadata)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if ver.Evidence["mcp_tools"] != "1" || ver.Evidence["mcp_server"] != "test-mcp 1.0.0" || ver.Evidence["mcp_protocol"] == "" {
			t.Errorf("Evidence = %v", ver.Evidence)
		}
		revoke(t, p, resp.Value)
		_, err = verify(p, declared, resp.Value, resp.Metadata)
		if !errors.Is(err, oauth2cc.ErrTokenRejected) {
			t.Fatalf("Verify after revoke = %v, want ErrTokenRejected", err)
		}
		if !strings.Contains(err.Error(), "mcp probe of "+f.mcp.URL+": the server refused the token at initialize (HTTP 401)") {
			t.Errorf("Verify error = %q", err)
		}
		noLeak(t, []secret.Value{resp.Value, f.secret}, err.Error(), logs.String())
	})
	t.Run("token for another resource", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := f.provider(t, nil, map[string]any{"resource": f.as.URL + "/api", "verify": f.verify(mcpProbe)})
		resp := mint(t, p, declared)
		_, err := verify(p, declared, resp.Value, resp.Metadata)
		if !errors.Is(err, oauth2cc.ErrTokenRejected) || !strings.Contains(err.Error(), "HTTP 401") {
			t.Fatalf("Verify = %v, want the MCP server to refuse a token for another audience", err)
		}
	})
	t.Run("token without the scope the server requires", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := f.provider(t, nil, map[string]any{"verify": f.verify(mcpProbe)})
		scope := []string{"tools:call"}
		resp := mint(t, p, scope)
		_, err := verify(p, scope, resp.Value, resp.Metadata)
		if !errors.Is(err, oauth2cc.ErrTokenRejected) || !strings.Contains(err.Error(), "HTTP 403") {
			t.Fatalf("Verify = %v, want the MCP server to refuse the token with 403", err)
		}
	})
	t.Run("no MCP server there", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := f.provider(t, nil, map[string]any{"verify": map[string]any{"mcp_probe": map[string]any{"url": f.as.URL + "/nothing"}}})
		resp := mint(t, p, declared)
		_, err := verify(p, declared, resp.Value, resp.Metadata)
		if err == nil || errors.Is(err, oauth2cc.ErrTokenRejected) || !strings.Contains(err.Error(), "mcp probe of "+f.as.URL+"/nothing: initialize") {
			t.Fatalf("Verify = %v, want an initialize failure that does not blame the token", err)
		}
	})
}

func TestHTTPProbe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, nil, map[string]any{"verify": map[string]any{"http_probe": map[string]any{"url": f.as.URL + "/api/whoami", "expect_status": 204}}})
	resp := mint(t, p, declared)
	_, err := verify(p, declared, resp.Value, resp.Metadata)
	if err == nil || !strings.Contains(err.Error(), "answered HTTP 200, want 204") || errors.Is(err, oauth2cc.ErrTokenRejected) {
		t.Fatalf("Verify = %v, want a status mismatch", err)
	}
	p = f.provider(t, nil, map[string]any{"verify": f.verify(httpProbe)})
	revoke(t, p, resp.Value)
	_, err = verify(p, declared, resp.Value, resp.Metadata)
	if !errors.Is(err, oauth2cc.ErrTokenRejected) || !strings.Contains(err.Error(), "HTTP 401 (invalid_token)") {
		t.Fatalf("Verify after revoke = %v, want HTTP 401 (invalid_token)", err)
	}
}

// forge returns token with its header and claims replaced by the results
// of editing them, keeping the signature.
func forge(t *testing.T, token secret.Value, edit func(header, claims map[string]any)) secret.Value {
	t.Helper()
	parts := strings.Split(token.RevealString(), ".")
	var header, claims map[string]any
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	edit(header, claims)
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	return secret.NewString(base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb) + "." + parts[2])
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.as.set(func(as *authServer) { as.alg = alg })
			p := f.provider(t, nil, map[string]any{"verify": f.verify(jwks)})
			resp := mint(t, p, declared)
			ver, err := verify(p, declared, resp.Value, resp.Metadata)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ver.Evidence["jwt_kid"] != strings.ToLower(alg)+"-1" || ver.Evidence["jwt_exp"] == "" || !slices.Equal(ver.GrantedScope, declared) {
				t.Errorf("Verify = %+v", ver)
			}
		})
	}
	rejections := map[string]struct {
		extra map[string]any // provider settings
		setup func(as *authServer)
		forge func(header, claims map[string]any)
		want  string
	}{
		"expired":         {setup: func(as *authServer) { as.clock = -2 * time.Hour }, want: "the JWT expired at"},
		"wrong issuer":    {extra: map[string]any{"verify": map[string]any{"jwks": map[string]any{"url": "{AS}/jwks", "issuer": "https://issuer.example"}}}, want: "issuer is"},
		"wrong audience":  {extra: map[string]any{"verify": map[string]any{"jwks": map[string]any{"url": "{AS}/jwks", "audience": "https://other.example/mcp"}}}, want: "does not contain https://other.example/mcp"},
		"tampered claims": {forge: func(_, c map[string]any) { c["scope"] = "mcp:read tools:call admin" }, want: "signature does not verify"},
		"alg none":        {forge: func(h, _ map[string]any) { h["alg"] = "none" }, want: `algorithm "none" is not accepted`},
		"alg HS256":       {forge: func(h, _ map[string]any) { h["alg"] = "HS256" }, want: `algorithm "HS256" is not accepted`},
		"unknown kid":     {forge: func(h, _ map[string]any) { h["kid"] = "gone" }, want: `no RSA signing key with kid "gone"`},
		"not a JWT":       {forge: func(map[string]any, map[string]any) {}, want: "the token is not a JWT"},
	}
	for name, tt := range rejections {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.setup != nil {
				f.as.set(tt.setup)
			}
			extra := map[string]any{"verify": f.verify(jwks)}
			if tt.extra != nil {
				b, _ := json.Marshal(tt.extra)
				_ = json.Unmarshal([]byte(strings.ReplaceAll(string(b), "{AS}", f.as.URL)), &extra)
			}
			logger, logs := captureLogs()
			p := f.provider(t, logger, extra)
			resp := mint(t, p, declared)
			v := resp.Value
			if tt.forge != nil {
				v = forge(t, v, tt.forge)
			}
			if name == "not a JWT" {
				v = secret.NewString("opaque-" + randomID())
			}
			_, err := verify(p, declared, v, resp.Metadata)
			if !errors.Is(err, oauth2cc.ErrTokenRejected) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want ErrTokenRejected containing %q", err, tt.want)
			}
			noLeak(t, []secret.Value{resp.Value, v, f.secret}, err.Error(), logs.String())
		})
	}
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	t.Run("without revocation_url", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		logger, logs := captureLogs()
		p := f.provider(t, logger, map[string]any{"revocation_url": nil})
		if p.Capabilities().Revocable {
			t.Error("Capabilities().Revocable is true without a revocation_url")
		}
		if !oauth2cc.Factory().Capabilities.Revocable {
			t.Error("the factory does not declare Revocable")
		}
		resp := mint(t, p, declared)
		revoke(t, p, resp.Value)
		if ok, err := f.as.Accepts(context.Background(), providers.VersionRef{Value: resp.Value}); !ok || err != nil {
			t.Errorf("the token is refused after a no-op Revoke (%v)", err)
		}
		if !strings.Contains(logs.String(), "no revocation_url configured") {
			t.Errorf("New did not log that tokens only expire: %s", logs.String())
		}
	})
	t.Run("server unavailable is retried", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := f.provider(t, nil, nil)
		resp := mint(t, p, declared)
		f.as.set(func(as *authServer) { as.revokeFail = http.StatusServiceUnavailable })
		err := p.Revoke(context.Background(), providers.RevokeRequest{Common: common(declared), Value: resp.Value})
		if err == nil || errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "revocation endpoint "+f.as.URL+"/revoke refused the request [HTTP 503]") {
			t.Fatalf("Revoke = %v, want a retryable HTTP 503 error", err)
		}
		noLeak(t, []secret.Value{resp.Value, f.secret}, err.Error())
	})
	t.Run("unsupported token type is permanent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := f.provider(t, nil, nil)
		resp := mint(t, p, declared)
		f.as.set(func(as *authServer) { as.revokeFail = http.StatusBadRequest })
		err := p.Revoke(context.Background(), providers.RevokeRequest{Common: common(declared), Value: resp.Value})
		var oe *oauth2cc.OAuthError
		if !errors.As(err, &oe) || oe.Code != "unsupported_token_type" || !errors.Is(err, providers.ErrPermanent) {
			t.Fatalf("Revoke = %v, want a permanent unsupported_token_type error", err)
		}
	})
}

func TestCredentialOverrides(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, nil, nil)
	c := common(declared)
	c.Settings = settings.Map{
		"resource":     f.as.URL + "/api",
		"scope_policy": "exact",
		"verify":       map[string]any{"http_probe": map[string]any{"url": f.as.URL + "/api/whoami"}},
	}
	resp, err := p.Mint(context.Background(), providers.MintRequest{Common: c})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	if resp.Metadata["resource"] != f.as.URL+"/api" {
		t.Errorf("Metadata resource = %q, want the credential's", resp.Metadata["resource"])
	}
	ver, err := p.Verify(context.Background(), providers.VerifyRequest{Common: c, Value: resp.Value, Metadata: resp.Metadata})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if ver.Evidence["checks"] != "http_probe,scope_policy" || ver.Evidence["scope_policy"] != "exact" {
		t.Errorf("Evidence = %v, want the credential's checks and policy", ver.Evidence)
	}
	c.Settings = settings.Map{"token_url": "https://evil.example/token"}
	if _, err := p.Mint(context.Background(), providers.MintRequest{Common: c}); !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "token_url: unknown field") {
		t.Errorf("Mint with a credential-level token_url = %v, want a permanent settings error", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	base := func() settings.Map {
		return settings.Map{
			"token_url":     "https://auth.example.com/oauth2/token",
			"client_id":     "mcp-gateway",
			"client_secret": "${env:OKTA_CLIENT_SECRET}",
			"resource":      "https://mcp.example.com/mcp",
			"verify":        map[string]any{"mcp_probe": map[string]any{"url": "https://mcp.example.com/mcp"}},
		}
	}
	with := func(k string, v any) settings.Map {
		s := base()
		if v == nil {
			delete(s, k)
		} else {
			s[k] = v
		}
		return s
	}
	tests := map[string]struct {
		provider   settings.Map
		credential settings.Map
		want       string // a field error, as "field: message" prefix; empty for none
	}{
		"valid": {provider: base()},
		"valid with every check": {provider: with("verify", map[string]any{
			"introspection": map[string]any{"url": "https://auth.example.com/introspect", "client_id": "rs", "client_secret": "${env:RS_SECRET}"},
			"jwks":          map[string]any{"url": "https://auth.example.com/jwks", "issuer": "https://auth.example.com", "audience": "x"},
			"mcp_probe":     map[string]any{"url": "https://mcp.example.com/mcp"},
			"http_probe":    map[string]any{"url": "https://api.example.com/me", "expect_status": 200},
		})},
		"loopback http":    {provider: with("token_url", "http://127.0.0.1:8080/token")},
		"no token_url":     {provider: with("token_url", nil), want: "token_url: is required"},
		"no client_secret": {provider: with("client_secret", nil), want: "client_secret: is required"},
		"plain http":       {provider: with("token_url", "http://auth.example.com/token"), want: "token_url: uses plain http"},
		"plain http allowed": {provider: func() settings.Map {
			s := with("token_url", "http://auth.internal/token")
			s["insecure_http"] = true
			return s
		}()},
		"credentials in URL":       {provider: with("revocation_url", "https://u:p@auth.example.com/revoke"), want: "revocation_url: must not hold credentials"}, // rotator:ignore: test fixture
		"bad auth_style":           {provider: with("auth_style", "bearer"), want: "auth_style: must be one of auto, header, params"},
		"bad scope_policy":         {provider: with("scope_policy", "loose"), want: "scope_policy: must be one of subset, exact"},
		"resource with a fragment": {provider: with("resource", "https://mcp.example.com/mcp#x"), want: "resource: must be an absolute URI"},
		"relative resource":        {provider: with("resource", "/mcp"), want: "resource: must be an absolute URI"},
		"scope with a space":       {provider: with("scopes", []any{"a b"}), want: "scopes[0]: must be a non-empty scope token"},
		"empty verify":             {provider: with("verify", map[string]any{}), want: "verify: names no check"},
		"unknown check":            {provider: with("verify", map[string]any{"ping": map[string]any{}}), want: "verify.ping: unknown field"},
		"probe without url":        {provider: with("verify", map[string]any{"mcp_probe": map[string]any{}}), want: "verify.mcp_probe.url: is required"},
		"bad expect_status":        {provider: with("verify", map[string]any{"http_probe": map[string]any{"url": "https://a.example", "expect_status": 42}}), want: "verify.http_probe.expect_status: must be between"},
		"introspection client_id alone": {provider: with("verify", map[string]any{"introspection": map[string]any{"url": "https://a.example/i", "client_id": "rs"}}),
			want: "verify.introspection.client_id: and client_secret go together"},
		"unknown field":                   {provider: with("client", "x"), want: "client: unknown field"},
		"credential overrides":            {provider: base(), credential: settings.Map{"scopes": []any{"a"}, "resource": "https://b.example/mcp", "scope_policy": "exact", "verify": map[string]any{"jwks": map[string]any{"url": "https://a.example/jwks"}}}},
		"credential token_url":            {provider: base(), credential: settings.Map{"token_url": "https://a.example/token"}, want: "token_url: unknown field"},
		"credential introspection secret": {provider: base(), credential: settings.Map{"verify": map[string]any{"introspection": map[string]any{"url": "https://a.example/i", "client_secret": "${env:X}"}}}, want: "verify.introspection.client_secret: unknown field"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := oauth2cc.Factory()
			errs := f.ValidateProvider(tt.provider)
			if tt.credential != nil {
				errs = append(errs, f.ValidateCredential(tt.credential)...)
			}
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("errors = %v, want none", errs)
				}
				return
			}
			if len(errs) == 0 || !slices.ContainsFunc(errs, func(e settings.Error) bool { return strings.HasPrefix(e.Error(), tt.want) }) {
				t.Fatalf("errors = %v, want one starting %q", errs, tt.want)
			}
		})
	}
}

func TestNewRefusesBadSettings(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := oauth2cc.Factory().New(context.Background(), providers.Env{Name: "okta", Settings: f.settings(map[string]any{"client_secret": secret.Value{}})})
	if !errors.Is(err, providers.ErrPermanent) || !strings.HasPrefix(err.Error(), "client_secret resolved to an empty value") {
		t.Errorf("New with an empty secret = %v", err)
	}
	_, err = oauth2cc.Factory().New(context.Background(), providers.Env{Name: "okta", Settings: f.settings(map[string]any{"auth_style": "x"})})
	if !errors.Is(err, providers.ErrPermanent) || !strings.HasPrefix(err.Error(), "settings: permanent failure: auth_style") {
		t.Errorf("New with a bad auth_style = %v", err)
	}
}
