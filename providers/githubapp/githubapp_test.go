package githubapp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testgithub"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/githubapp"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var declared = []string{"metadata:read", "contents:read", "issues:write"}

// appKey is the test app's private key, generated once (2048-bit RSA
// generation is slow).
var appKey, appKeyPEM = func() (*rsa.PrivateKey, secret.Value) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k, secret.New(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}()

type fixture struct {
	gh *testgithub.Fake
}

func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	return &fixture{gh: testgithub.New(t, &appKey.PublicKey, prefix)}
}

func (f *fixture) settings(extra map[string]any) settings.Map {
	s := settings.Map{
		"app_id":          f.gh.AppID,
		"installation_id": f.gh.InstallationID,
		"private_key":     appKeyPEM,
		"base_url":        f.gh.BaseURL(),
		"repositories":    []any{"rotator", "docs"},
		"timeout":         "10s",
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

func (f *fixture) provider(t *testing.T, logger *slog.Logger, extra map[string]any) providers.Provider {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := githubapp.Factory().New(context.Background(), providers.Env{Name: "gh-app", Settings: f.settings(extra), Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.(*githubapp.Provider).Close() })
	return p
}

func TestExercise(t *testing.T) {
	t.Parallel()
	for name, prefix := range map[string]string{"github.com": "", "enterprise-server": "/api/v3"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			providertest.Exercise(t, providertest.Harness{
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					f := newFixture(t, prefix)
					return providertest.Instance{
						Provider: f.provider(t, logger, nil), Resource: f.gh,
						Secrets: []secret.Value{appKeyPEM, pemBody(appKeyPEM)},
					}
				},
				Factory:  githubapp.Factory(),
				Scope:    declared,
				Parallel: true,
			})
		})
	}
}

// pemBody is the base64 body of a PEM block: a leak of the key need not
// carry the armour lines.
func pemBody(v secret.Value) secret.Value {
	lines := strings.Split(strings.TrimSpace(v.RevealString()), "\n")
	return secret.NewString(strings.Join(lines[1:len(lines)-1], ""))
}

func common(scope []string) providers.Common {
	return providers.Common{CredentialID: "github-mcp", VersionID: "v1", IdempotencyKey: "run/mint", Scope: scope}
}

func TestMintScopesTheToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	logger, logs := captureLogs()
	p := f.provider(t, logger, nil)
	before := time.Now()
	resp, err := p.Mint(context.Background(), providers.MintRequest{Common: common(declared)})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	want := []string{"contents:read", "issues:write", "metadata:read"}
	if !slices.Equal(resp.GrantedScope, want) {
		t.Errorf("GrantedScope = %q, want %q", resp.GrantedScope, want)
	}
	if d := resp.ExpiresAt.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("ExpiresAt is %s after the request, want about an hour (expires_at)", d)
	}
	m := resp.Metadata
	if m["installation_id"] != f.gh.InstallationID || m["repositories"] != "docs,rotator" || m["repository_selection"] != "selected" ||
		m["permissions"] != strings.Join(want, " ") || !strings.HasPrefix(m["hash"], "sha256:") {
		t.Errorf("Metadata = %v", m)
	}
	tok, ok := f.gh.Tokens()[resp.Value.RevealString()]
	if !ok || !slices.Equal(tok.Repos, []string{"rotator", "docs"}) || tok.Perms["contents"] != "read" || tok.Perms["issues"] != "write" {
		t.Errorf("GitHub recorded the token as %+v", tok)
	}

	// The JWT the fake accepted: iss is the app id, iat a minute in the
	// past, exp at most 10 minutes after now.
	claims := f.gh.LastClaims()
	iat, exp := int64(claims["iat"].(float64)), int64(claims["exp"].(float64))
	if claims["iss"] != f.gh.AppID {
		t.Errorf("iss = %v, want %s", claims["iss"], f.gh.AppID)
	}
	if d := before.Unix() - iat; d < 59 || d > 62 {
		t.Errorf("iat is %d s before the request, want 60", d)
	}
	if exp-before.Unix() > 600 || exp <= before.Unix() {
		t.Errorf("exp is %d s after the request, want in (0, 600]", exp-before.Unix())
	}
	if strings.Contains(logs.String(), resp.Value.RevealString()) {
		t.Error("the token appears in the log")
	}

	vr, err := p.Verify(context.Background(), providers.VerifyRequest{Common: common(declared), Value: resp.Value, Metadata: resp.Metadata})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !slices.Equal(vr.GrantedScope, want) || vr.Evidence["repositories"] != "2" {
		t.Errorf("Verify = %+v", vr)
	}
}

func TestMintRefusals(t *testing.T) {
	t.Parallel()
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := secret.New(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(otherKey)}))
	cases := map[string]struct {
		extra     map[string]any
		scope     []string
		setup     func(g *testgithub.Fake)
		want      string
		permanent bool
		is        error
	}{
		"another app's key": {
			extra: map[string]any{"private_key": otherPEM}, scope: declared,
			want: "HTTP 401", permanent: true,
		},
		"wrong app id": {
			extra: map[string]any{"app_id": "1"}, scope: declared,
			want: `"Integration not found"`, permanent: true,
		},
		"host clock 20 minutes behind": {
			scope: declared, setup: func(g *testgithub.Fake) { g.Now = func() time.Time { return time.Now().Add(20 * time.Minute) } },
			want: "clock", permanent: true,
		},
		"unknown installation": {
			extra: map[string]any{"installation_id": "1"}, scope: declared,
			want: "check installation_id and base_url", permanent: true,
		},
		"permission the installation lacks": {
			scope: []string{"metadata:read", "administration:write"},
			want:  "HTTP 422", permanent: true,
		},
		"level the installation lacks": {
			scope: []string{"metadata:read", "pull_requests:write"},
			want:  "grant it in the app's settings", permanent: true,
		},
		"repository outside the installation": {
			extra: map[string]any{"repositories": []any{"secret-repo"}}, scope: declared,
			want: "not accessible to the parent installation", permanent: true,
		},
		"server grants more than asked": {
			scope: declared, setup: func(g *testgithub.Fake) { g.ExtraGrant = map[string]string{"pull_requests": "read"} },
			want: "not declared: pull_requests:read", is: githubapp.ErrScopePolicy,
		},
		"rate limited": {
			scope: declared, setup: func(g *testgithub.Fake) { g.RateLimited = true },
			want: "rate limited", permanent: false,
		},
		"undeclared permission name": {
			scope: []string{"metadata:read", "contnets:read"},
			want:  `"contnets" names no GitHub App permission; valid names are contents`, permanent: true,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "")
			if c.setup != nil {
				f.gh.Set(c.setup)
			}
			logger, logs := captureLogs()
			p := f.provider(t, logger, c.extra)
			_, err := p.Mint(context.Background(), providers.MintRequest{Common: common(c.scope)})
			if err == nil {
				t.Fatal("Mint succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
			if got := errors.Is(err, providers.ErrPermanent); got != c.permanent && c.is == nil {
				t.Errorf("permanent = %v, want %v (%v)", got, c.permanent, err)
			}
			if c.is == githubapp.ErrScopePolicy {
				for _, tok := range f.gh.Tokens() {
					if !tok.Revoked {
						t.Error("the over-scoped token was not revoked")
					}
				}
			}
			for _, s := range []secret.Value{appKeyPEM, otherPEM, pemBody(appKeyPEM), pemBody(otherPEM)} {
				if strings.Contains(err.Error()+logs.String(), s.RevealString()) {
					t.Error("a private key leaked into the error or the log")
				}
			}
		})
	}
}

func TestVerifyRefusesWiderRepositories(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	// A token for every repository of the installation, verified by a
	// credential that names two.
	wide := f.provider(t, nil, map[string]any{"repositories": nil})
	resp, err := wide.Mint(context.Background(), providers.MintRequest{Common: common(declared)})
	if err != nil {
		t.Fatal(err)
	}
	narrow := f.provider(t, nil, nil)
	_, err = narrow.Verify(context.Background(), providers.VerifyRequest{Common: common(declared), Value: resp.Value, Metadata: resp.Metadata})
	if !errors.Is(err, githubapp.ErrScopePolicy) || !strings.Contains(err.Error(), "not configured: infra") {
		t.Errorf("Verify = %v, want a scope policy error naming infra", err)
	}
	// Permissions recorded at mint wider than declared.
	_, err = wide.Verify(context.Background(), providers.VerifyRequest{Common: common([]string{"metadata:read", "contents:read"}), Value: resp.Value, Metadata: resp.Metadata})
	if !errors.Is(err, githubapp.ErrScopePolicy) || !strings.Contains(err.Error(), "not declared: issues:write") {
		t.Errorf("Verify = %v, want a scope policy error naming issues:write", err)
	}
}

func TestRevokeIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	p := f.provider(t, nil, nil)
	resp, err := p.Mint(context.Background(), providers.MintRequest{Common: common(declared)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := p.Revoke(context.Background(), providers.RevokeRequest{Common: common(declared), Value: resp.Value}); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
	}
	if f.gh.Live(resp.Value.RevealString()) {
		t.Error("the token is still live after Revoke")
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	good := settings.Map{"app_id": "424242", "installation_id": "98765", "private_key": "${file:/run/secrets/app.pem}"}
	with := func(k string, v any) settings.Map {
		m := settings.Map{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	if errs := githubapp.ValidateProvider(good); len(errs) > 0 {
		t.Fatalf("good settings: %v", errs)
	}
	if errs := githubapp.ValidateProvider(with("app_id", "Iv23liAbCdEf12")); len(errs) > 0 {
		t.Errorf("client id as app_id: %v", errs)
	}
	bad := map[string]struct {
		s    settings.Map
		want string
	}{
		"no app_id":           {with("app_id", nil), "app_id: is required"},
		"bad app_id":          {with("app_id", "my-app"), "app_id: must be the GitHub App's numeric id"},
		"no private_key":      {with("private_key", nil), "private_key: is required: a reference"},
		"no installation":     {with("installation_id", nil), "installation_id: is required"},
		"http base_url":       {with("base_url", "http://github.example.com/api/v3"), "base_url: uses plain http"},
		"owner in repository": {with("repositories", []any{"acme/rotator"}), `repositories[0]: must be a repository name without its owner ("rotator", not "acme/rotator")`},
		"unknown field":       {with("org", "acme"), "org: unknown field"},
	}
	for name, c := range bad {
		errs := githubapp.ValidateProvider(c.s)
		if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s: errors %v, want %q", name, errs, c.want)
		}
	}
	if errs := githubapp.ValidateCredential(settings.Map{"repositories": []any{"docs"}, "installation_id": "5"}); len(errs) > 0 {
		t.Errorf("credential overrides: %v", errs)
	}
	if errs := githubapp.ValidateCredential(settings.Map{"app_id": "5"}); len(errs) == 0 {
		t.Error("a credential may not override app_id")
	}
	scopes := map[string]string{
		"":                                       "is empty",
		"contents":                               `"contents" is not PERMISSION:LEVEL`,
		"metadata:read contents:delete":          `permission contents has no level "delete"; valid levels are read, write`,
		"metadata:read issues:read issues:write": "permission issues is declared twice",
		"contents:read":                          "lacks metadata:read",
		"metadata:read organization_projects:admin": "",
	}
	for scope, want := range scopes {
		errs := githubapp.ValidateScope(strings.Fields(scope))
		switch {
		case want == "" && len(errs) > 0:
			t.Errorf("scope %q: %v", scope, errs)
		case want != "" && (len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), want)):
			t.Errorf("scope %q: errors %v, want %q", scope, errs, want)
		}
	}
}

func TestNewRejectsBadKeysWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	canary := secret.NewString("-----BEGIN RSA PRIVATE KEY-----\nY2FuYXJ5LW5vdC1hLWtleS1hdC1hbGwtY2FuYXJ5\n-----END RSA PRIVATE KEY-----\n")
	cases := map[string]struct {
		key  secret.Value
		want string
	}{
		"not PEM":      {secret.NewString("ghp_notakeyatall_0123456789abcdef"), "is not a PEM private key"},
		"garbage PEM":  {canary, "does not parse as PKCS #1"},
		"1024-bit key": {secret.New(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})), "1024-bit"},
	}
	for name, c := range cases {
		_, err := githubapp.New(providers.Env{Name: "gh-app", Settings: f.settings(map[string]any{"private_key": c.key})})
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, providers.ErrPermanent) {
			t.Errorf("%s: New = %v, want a permanent error saying %q", name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "Y2FuYXJ5") || strings.Contains(err.Error(), "ghp_notakey") {
			t.Errorf("%s: the key leaked into %q", name, err)
		}
	}
}

func captureLogs() (*slog.Logger, *testlog.Buffer) {
	b := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
