package oauth2refresh_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/internal/testoauth"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/oauth2refresh"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	as     *testoauth.Server
	secret secret.Value
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{as: testoauth.New(t), secret: secret.NewString("cs-" + rand.Text())}
	f.as.AddClient("mcp-client", f.secret.RevealString())
	return f
}

// login starts a grant with the device authorization grant, driven by
// golang.org/x/oauth2 as an operator's `rotator login` would, and returns
// its refresh token.
func (f *fixture) login(t *testing.T) secret.Value {
	t.Helper()
	cfg := &oauth2.Config{
		ClientID: "mcp-client", ClientSecret: f.secret.RevealString(),
		Endpoint: oauth2.Endpoint{DeviceAuthURL: f.as.URL + "/device", TokenURL: f.as.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, f.as.Client())
	resource := oauth2.SetAuthURLParam("resource", f.as.URL+"/api")
	da, err := cfg.DeviceAuth(ctx, resource)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if !f.as.Approve(da.UserCode) {
		t.Fatalf("the server does not know user code %s", da.UserCode)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da, resource)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("the device grant issued no refresh token")
	}
	return secret.NewString(tok.RefreshToken)
}

func (f *fixture) settings(rt secret.Value, extra map[string]any) settings.Map {
	s := settings.Map{
		"token_url":      f.as.URL + "/token",
		"client_id":      "mcp-client",
		"client_secret":  f.secret,
		"refresh_token":  rt,
		"resource":       f.as.URL + "/api",
		"revocation_url": f.as.URL + "/revoke",
		"verify":         map[string]any{"introspection": map[string]any{"url": f.as.URL + "/introspect"}},
		"timeout":        "10s",
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

func (f *fixture) provider(t *testing.T, logger *slog.Logger, rt secret.Value, extra map[string]any) *oauth2refresh.Provider {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := oauth2refresh.Factory().New(context.Background(), providers.Env{Name: "mcp-oauth", Settings: f.settings(rt, extra), Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.(*oauth2refresh.Provider).Close() })
	return p.(*oauth2refresh.Provider)
}

func TestExercise(t *testing.T) {
	t.Parallel()
	checks := map[string]map[string]any{
		"introspection": {"introspection": map[string]any{"url": "INTROSPECT"}},
		"http_probe":    {"http_probe": map[string]any{"url": "WHOAMI"}},
	}
	for name, verify := range checks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			providertest.Exercise(t, providertest.Harness{
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					f := newFixture(t)
					rt := f.login(t)
					v := map[string]any{}
					for k, c := range verify {
						u := strings.NewReplacer("INTROSPECT", f.as.URL+"/introspect", "WHOAMI", f.as.URL+"/api/whoami").Replace(c.(map[string]any)["url"].(string))
						v[k] = map[string]any{"url": u}
					}
					return providertest.Instance{
						Provider: f.provider(t, logger, rt, map[string]any{"verify": v}),
						Resource: f.as,
						Secrets:  []secret.Value{f.secret, rt},
					}
				},
				Factory:  oauth2refresh.Factory(),
				Scope:    []string{"mcp:read", "mcp:write"},
				Parallel: true,
			})
		})
	}
}

func mint(ctx context.Context, p providers.Provider, state secret.Value) (providers.MintResponse, error) {
	return p.Mint(ctx, providers.MintRequest{
		Common: providers.Common{CredentialID: "mcp-token", VersionID: "v", IdempotencyKey: "run/mint", Scope: []string{"mcp:read"}},
		State:  state,
	})
}

// The rotated refresh token is the Mint's State; a provider built afresh
// (a restarted service) continues the lineage from the stored state, and
// never reuses a consumed refresh token.
func TestRotatedRefreshTokenIsState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := f.login(t)
	logger, logs := captureLogs()
	p := f.provider(t, logger, rt, nil)
	first, err := mint(t.Context(), p, secret.Value{})
	if err != nil {
		t.Fatalf("first Mint: %v", err)
	}
	if first.State.IsZero() || strings.Contains(first.State.RevealString(), rt.RevealString()) {
		t.Fatal("the first Mint's State does not hold a new refresh token")
	}
	if first.Metadata["refresh_rotated"] != "true" || !strings.HasPrefix(first.Metadata["refresh_token_hash"], "sha256:") {
		t.Errorf("Metadata = %v", first.Metadata)
	}
	var errs []string
	state := first.State
	for i := range 3 {
		restarted := f.provider(t, logger, rt, nil) // no memory of the chain
		next, err := mint(t.Context(), restarted, state)
		if err != nil {
			t.Fatalf("Mint #%d after a restart: %v", i+2, err)
		}
		state = next.State
		if _, err := restarted.Verify(t.Context(), providers.VerifyRequest{Common: providers.Common{CredentialID: "mcp-token"}, Value: next.Value}); err != nil {
			t.Fatalf("Verify #%d: %v", i+2, err)
		}
	}
	if n := f.as.Reuses(); n != 0 {
		t.Errorf("the server detected %d refresh token reuses", n)
	}
	for _, r := range f.as.ResourcesSeen() {
		if r != f.as.URL+"/api" {
			t.Errorf("a refresh sent resource %q, want %s", r, f.as.URL+"/api")
		}
	}
	if len(f.as.ResourcesSeen()) != 4 {
		t.Errorf("%d refreshes seen, want 4", len(f.as.ResourcesSeen()))
	}

	// A stale state (an old refresh token) on a process that does not know
	// better: the server detects the reuse and revokes the grant; the
	// error is permanent and says what to do.
	stale := f.provider(t, logger, rt, nil)
	_, err = mint(t.Context(), stale, first.State)
	if !errors.Is(err, oauth2refresh.ErrGrantRefused) || !errors.Is(err, providers.ErrPermanent) {
		t.Fatalf("Mint with a reused refresh token = %v, want ErrGrantRefused", err)
	}
	for _, want := range []string{"invalid_grant", "rotator login mcp-token", "refresh_token's reference", "runbooks/oauth2-refresh-token.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	errs = append(errs, err.Error())
	if f.as.Reuses() != 1 {
		t.Errorf("reuse detections = %d, want 1", f.as.Reuses())
	}
	// The whole grant is dead now, the newest refresh token too.
	_, err = mint(t.Context(), f.provider(t, logger, rt, nil), state)
	if !errors.Is(err, oauth2refresh.ErrGrantRefused) {
		t.Errorf("Mint after the grant was revoked = %v, want ErrGrantRefused", err)
	}
	errs = append(errs, fmt.Sprint(err))
	for _, s := range []secret.Value{rt, f.secret, mustRT(t, first.State), mustRT(t, state)} {
		for _, text := range append(errs, logs.String()) {
			if strings.Contains(text, s.RevealString()) {
				t.Errorf("a refresh token or the client secret appears in %q", text)
			}
		}
	}
}

// mustRT returns the refresh token a state holds.
func mustRT(t *testing.T, st secret.Value) secret.Value {
	t.Helper()
	s := st.RevealString()
	i := strings.Index(s, `"refresh_token":"`)
	if i < 0 {
		t.Fatal("state holds no refresh token")
	}
	s = s[i+len(`"refresh_token":"`):]
	return secret.NewString(s[:strings.Index(s, `"`)])
}

// A Mint re-run with the state it was handed before (the engine's commit
// failed and the step runs again) continues from the refresh token this
// process received, instead of reusing the consumed one.
func TestRerunMintDoesNotReuse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := f.login(t)
	p := f.provider(t, nil, rt, nil)
	first, err := mint(t.Context(), p, secret.Value{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		again, err := mint(t.Context(), p, first.State)
		if err != nil {
			t.Fatalf("re-run #%d: %v", i+1, err)
		}
		if again.Value.Equal(first.Value) {
			t.Error("the re-run returned the same access token")
		}
	}
	if n := f.as.Reuses(); n != 0 {
		t.Errorf("the server detected %d reuses", n)
	}
}

// A new refresh token put where the reference points (after the grant
// died) is used instead of the stored state.
func TestNewBootstrapIsUsed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := f.login(t)
	first, err := mint(t.Context(), f.provider(t, nil, rt, nil), secret.Value{})
	if err != nil {
		t.Fatal(err)
	}
	newRT := f.login(t)
	next, err := mint(t.Context(), f.provider(t, nil, newRT, nil), first.State)
	if err != nil {
		t.Fatalf("Mint with a new bootstrap token: %v", err)
	}
	// The lineage now descends from newRT: the stored state is kept using.
	if _, err := mint(t.Context(), f.provider(t, nil, newRT, nil), next.State); err != nil {
		t.Fatalf("Mint from the new lineage's state: %v", err)
	}
	if n := f.as.Reuses(); n != 0 {
		t.Errorf("the server detected %d reuses", n)
	}
}

// A server that does not rotate refresh tokens: the state keeps the same
// one, and Metadata says it was not rotated.
func TestNonRotatingServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rt := f.login(t)
	f.as.SetRotate(false)
	p := f.provider(t, nil, rt, nil)
	a, err := mint(t.Context(), p, secret.Value{})
	if err != nil {
		t.Fatal(err)
	}
	if !mustRT(t, a.State).Equal(rt) || a.Metadata["refresh_rotated"] != "false" {
		t.Errorf("state or metadata wrong for a non-rotating server: %v", a.Metadata)
	}
	if _, err := mint(t.Context(), f.provider(t, nil, rt, nil), a.State); err != nil {
		t.Fatal(err)
	}
}

func TestPublicClient(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.as.AddClient("public-client", "")
	// Bootstrap a grant for the public client directly through the device
	// flow with no secret.
	cfg := &oauth2.Config{ClientID: "public-client", Endpoint: oauth2.Endpoint{DeviceAuthURL: f.as.URL + "/device", TokenURL: f.as.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, f.as.Client())
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.as.Approve(da.UserCode)
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	p := f.provider(t, nil, secret.NewString(tok.RefreshToken), map[string]any{"client_id": "public-client", "client_secret": nil, "verify": map[string]any{"http_probe": map[string]any{"url": f.as.URL + "/api/whoami"}}})
	if _, err := mint(t.Context(), p, secret.Value{}); err != nil {
		t.Fatalf("Mint as a public client: %v", err)
	}
}

func TestNoRefreshToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, nil, secret.Value{}, map[string]any{"refresh_token": nil, "device_authorization_url": f.as.URL + "/device"})
	_, err := mint(t.Context(), p, secret.Value{})
	if !errors.Is(err, oauth2refresh.ErrNoRefreshToken) || !strings.Contains(err.Error(), "rotator login mcp-token") {
		t.Errorf("Mint without a refresh token = %v", err)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	good := settings.Map{
		"token_url": "https://as.example.com/token", "client_id": "c", "refresh_token": "${env:RT}",
		"verify": map[string]any{"introspection": map[string]any{"url": "https://as.example.com/introspect"}},
	}
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
	if errs := oauth2refresh.ValidateProvider(good); len(errs) > 0 {
		t.Fatalf("good: %v", errs)
	}
	cases := map[string]struct {
		s    settings.Map
		want string
	}{
		"no refresh token":   {with("refresh_token", nil), "refresh_token: is required without device_authorization_url"},
		"no verify":          {with("verify", nil), "verify: is required and names no check"},
		"empty verify":       {with("verify", map[string]any{}), "verify: is required and names no check"},
		"http token url":     {with("token_url", "http://as.example.com/token"), "token_url: uses plain http"},
		"bad resource":       {with("resource", "mcp"), "resource: must be an absolute URI"},
		"header without sec": {with("auth_style", "header"), "auth_style: header needs a client_secret"},
		"unknown":            {with("refresh_tokens", "x"), "refresh_tokens: unknown field"},
	}
	for name, c := range cases {
		if errs := oauth2refresh.ValidateProvider(c.s); len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s: %v, want %q", name, errs, c.want)
		}
	}
	if errs := oauth2refresh.ValidateProvider(with("refresh_token", nil)); slices.ContainsFunc(errs, func(e settings.Error) bool { return e.Field != "refresh_token" }) {
		t.Errorf("unexpected errors: %v", errs)
	}
	dev := with("refresh_token", nil)
	dev["device_authorization_url"] = "https://as.example.com/device"
	if errs := oauth2refresh.ValidateProvider(dev); len(errs) > 0 {
		t.Errorf("device flow without a refresh token: %v", errs)
	}
	if errs := oauth2refresh.ValidateCredential(settings.Map{"scopes": []any{"x"}}); len(errs) == 0 {
		t.Error("credential settings accepted")
	}
}

func captureLogs() (*slog.Logger, *testlog.Buffer) {
	b := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// Login runs the device grant: the operator is prompted with the
// verification URI and code, and the refresh token obtained becomes the
// state a Mint continues from; the configured bootstrap token (absent
// here) is not needed.
func TestLoginWithDeviceGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	logger, logs := captureLogs()
	p := f.provider(t, logger, secret.Value{}, map[string]any{"refresh_token": nil, "device_authorization_url": f.as.URL + "/device"})
	var prompted providers.LoginPrompt
	resp, err := p.Login(t.Context(), providers.LoginRequest{
		Common: providers.Common{CredentialID: "mcp-token"},
		Prompt: func(lp providers.LoginPrompt) {
			prompted = lp
			if !f.as.Approve(lp.UserCode) { // the operator approves in a browser
				t.Errorf("unknown user code %q", lp.UserCode)
			}
		},
	})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if prompted.VerificationURI != f.as.URL+"/activate" || prompted.UserCode == "" || prompted.ExpiresAt.IsZero() {
		t.Errorf("prompt = %+v", prompted)
	}
	if !strings.HasPrefix(resp.Metadata["refresh_token_hash"], "sha256:") || resp.Metadata["scope"] != "mcp:read mcp:write" {
		t.Errorf("Metadata = %v", resp.Metadata)
	}
	minted, err := mint(t.Context(), p, resp.State)
	if err != nil {
		t.Fatalf("Mint from the login's state: %v", err)
	}
	if _, err := p.Verify(t.Context(), providers.VerifyRequest{Common: providers.Common{CredentialID: "mcp-token"}, Value: minted.Value}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	rt := mustRT(t, resp.State)
	if strings.Contains(logs.String(), rt.RevealString()) || strings.Contains(logs.String(), mustRT(t, minted.State).RevealString()) {
		t.Error("a refresh token appears in the log")
	}

	// Without device_authorization_url, Login says what to do.
	plain := f.provider(t, nil, rt, nil)
	if _, err := plain.Login(t.Context(), providers.LoginRequest{Common: providers.Common{CredentialID: "mcp-token"}}); err == nil ||
		!strings.Contains(err.Error(), "no device_authorization_url") || !errors.Is(err, providers.ErrPermanent) {
		t.Errorf("Login without device_authorization_url = %v", err)
	}
}
