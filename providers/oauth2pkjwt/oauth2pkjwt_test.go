package oauth2pkjwt_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/jose"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testauthz"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/oauth2pkjwt"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is an authorization server that fetches the client's JWKS over
// HTTP from a server publishing the provider's jwks_file.
type fixture struct {
	as       *testauthz.Server
	jwksFile string
	client   *http.Client
}

func newFixture(t *testing.T, cacheTTL time.Duration) *fixture {
	t.Helper()
	f := &fixture{as: testauthz.New(t), jwksFile: filepath.Join(t.TempDir(), "jwks.json")}
	f.as.CacheTTL = cacheTTL
	pub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := os.ReadFile(f.jwksFile)
		if err != nil {
			raw = []byte(`{"keys":[]}`)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	}))
	t.Cleanup(pub.Close)
	f.as.Register(testauthz.Client{ID: "mcp-gateway", JWKSURL: pub.URL + "/.well-known/jwks.json"})
	f.client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

func (f *fixture) settings(extra map[string]any) settings.Map {
	s := settings.Map{
		"token_url": f.as.TokenURL(),
		"client_id": "mcp-gateway",
		"jwks_file": f.jwksFile,
		"timeout":   "10s",
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func (f *fixture) provider(t *testing.T, logger *slog.Logger, extra map[string]any) *oauth2pkjwt.Provider {
	t.Helper()
	p, err := oauth2pkjwt.New(providers.Env{Name: "okta-keys", Settings: f.settings(extra), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Accepts implements providertest.Resource: a client holding the key
// gets a token with it.
func (f *fixture) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	key, err := jose.ParsePrivateKey(v.Value)
	if err != nil {
		return false, nil
	}
	pub, err := jose.PublicJWK(key)
	if err != nil {
		return false, nil
	}
	a, err := jose.ClientAssertion(key, pub.Kid, "mcp-gateway", f.as.TokenURL(), time.Now(), time.Minute)
	if err != nil {
		return false, err
	}
	return f.token(ctx, url.Values{"client_assertion_type": {jose.AssertionType}, "client_assertion": {a}})
}

func (f *fixture) token(ctx context.Context, form url.Values) (bool, error) {
	form.Set("grant_type", "client_credentials")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.as.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK, nil
}

// Stall implements providertest.Staller.
func (f *fixture) Stall(t *testing.T) func() { return f.as.Stall(t) }

func TestExercise(t *testing.T) {
	for name, extra := range map[string]map[string]any{
		"ES256 PEM": {},
		"RS256 JWK": {"algorithm": "RS256", "format": "jwk"},
	} {
		t.Run(name, func(t *testing.T) {
			providertest.Exercise(t, providertest.Harness{
				Factory: oauth2pkjwt.Factory(),
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					f := newFixture(t, 100*time.Millisecond)
					e := map[string]any{"stage_wait": "150ms"}
					for k, v := range extra {
						e[k] = v
					}
					return providertest.Instance{Provider: f.provider(t, logger, e), Resource: f}
				},
				Timeout: 60 * time.Second,
			})
		})
	}
}

func mint(t *testing.T, p *oauth2pkjwt.Provider, id string, cur *providers.VersionRef) providers.VersionRef {
	t.Helper()
	res, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{CredentialID: "client-key", VersionID: id}, Current: cur})
	if err != nil {
		t.Fatal(err)
	}
	return providers.VersionRef{VersionID: id, Value: res.Value, Metadata: res.Metadata}
}

func activate(t *testing.T, p *oauth2pkjwt.Provider, v *providers.VersionRef) {
	t.Helper()
	res, err := p.Activate(t.Context(), providers.ActivateRequest{Common: providers.Common{CredentialID: "client-key", VersionID: v.VersionID}, Value: v.Value, Metadata: v.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	for k, x := range res.Metadata {
		v.Metadata[k] = x
	}
}

func verify(p *oauth2pkjwt.Provider, ctx context.Context, v providers.VersionRef) error {
	_, err := p.Verify(ctx, providers.VerifyRequest{Common: providers.Common{CredentialID: "client-key", VersionID: v.VersionID}, Value: v.Value, Metadata: v.Metadata})
	return err
}

func kids(t *testing.T, path string) []string {
	t.Helper()
	var set jose.JWKS
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		if k.D != "" || k.P != "" {
			t.Fatalf("jwks_file holds private members: %s", raw)
		}
		out = append(out, k.Kid)
	}
	slices.Sort(out)
	return out
}

// TestStageWait shows why stage_wait exists: the server caches the JWKS
// and does not refetch on an unknown kid, so a new key verified at once is
// refused; with stage_wait at least the cache TTL, it is accepted.
func TestStageWait(t *testing.T) {
	const ttl = 700 * time.Millisecond
	f := newFixture(t, ttl)
	logs := &testlog.Buffer{}
	noWait := f.provider(t, slog.New(slog.NewJSONHandler(logs, nil)), nil)
	withWait := f.provider(t, slog.New(slog.NewJSONHandler(logs, nil)), map[string]any{"stage_wait": "800ms"})

	first := mint(t, noWait, "v1", nil)
	activate(t, noWait, &first)
	if err := verify(noWait, t.Context(), first); err != nil { // first fetch: the cache now holds v1 only
		t.Fatal(err)
	}
	second := mint(t, noWait, "v2", &first)
	activate(t, noWait, &second)
	if want := []string{first.Metadata["kid"], second.Metadata["kid"]}; !slices.Equal(kids(t, f.jwksFile), slices.Sorted(slices.Values(want))) {
		t.Fatalf("jwks_file kids = %v, want current and pending %v", kids(t, f.jwksFile), want)
	}
	err := verify(noWait, t.Context(), second)
	if !errors.Is(err, oauth2pkjwt.ErrKeyRejected) {
		t.Fatalf("Verify right after publication = %v, want ErrKeyRejected (the server's cache still lacks the key)", err)
	}
	if !strings.Contains(err.Error(), "stage_wait") {
		t.Errorf("the error does not point at stage_wait: %v", err)
	}

	third := mint(t, withWait, "v3", &first)
	activate(t, withWait, &third)
	start := time.Now()
	if err := verify(withWait, t.Context(), third); err != nil {
		t.Fatalf("Verify with stage_wait: %v", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("Verify waited %s, want about stage_wait (800ms)", d)
	}
	// A re-run of Verify later does not wait again.
	start = time.Now()
	if err := verify(withWait, t.Context(), third); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("a second Verify waited %s; the stage wait is counted from publication", d)
	}
	// A wait longer than the step's context gives up with the cause.
	fourth := mint(t, withWait, "v4", &first)
	activate(t, withWait, &fourth)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := verify(withWait, ctx, fourth); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify under a short deadline = %v, want DeadlineExceeded", err)
	}
}

// TestServerRejects checks the authorization server's side of the
// protocol, so that the tests above can fail: a replayed assertion, a key
// that is not in the JWKS, and a wrong audience or issuer are refused.
func TestServerRejects(t *testing.T) {
	f := newFixture(t, 0)
	p := f.provider(t, nil, nil)
	v := mint(t, p, "v1", nil)
	activate(t, p, &v)
	key, _ := jose.ParsePrivateKey(v.Value)
	kid := v.Metadata["kid"]
	a, _ := jose.ClientAssertion(key, kid, "mcp-gateway", f.as.TokenURL(), time.Now(), time.Minute)
	form := func(a string) url.Values {
		return url.Values{"client_assertion_type": {jose.AssertionType}, "client_assertion": {a}}
	}
	if ok, err := f.token(t.Context(), form(a)); !ok || err != nil {
		t.Fatalf("first use of an assertion refused: %v %v", ok, err)
	}
	if ok, _ := f.token(t.Context(), form(a)); ok {
		t.Error("a replayed assertion (same jti) was accepted")
	}
	unpublished := mint(t, p, "v2", &v)
	k2, _ := jose.ParsePrivateKey(unpublished.Value)
	a2, _ := jose.ClientAssertion(k2, unpublished.Metadata["kid"], "mcp-gateway", f.as.TokenURL(), time.Now(), time.Minute)
	if ok, _ := f.token(t.Context(), form(a2)); ok {
		t.Error("an assertion by a key not in the JWKS was accepted")
	}
	if err := verify(p, t.Context(), unpublished); !errors.Is(err, oauth2pkjwt.ErrNotPublished) {
		t.Errorf("Verify of a key never activated = %v, want ErrNotPublished", err)
	}
	a3, _ := jose.ClientAssertion(key, kid, "mcp-gateway", "https://elsewhere.example/token", time.Now(), time.Minute)
	if ok, _ := f.token(t.Context(), form(a3)); ok {
		t.Error("an assertion for another audience was accepted")
	}
	a4, _ := jose.ClientAssertion(key, kid, "someone-else", f.as.TokenURL(), time.Now(), time.Minute)
	if ok, _ := f.token(t.Context(), form(a4)); ok {
		t.Error("an assertion with another issuer was accepted")
	}
	a5, _ := jose.ClientAssertion(key, kid, "mcp-gateway", f.as.TokenURL(), time.Now().Add(-2*time.Minute), time.Minute)
	if ok, _ := f.token(t.Context(), form(a5)); ok {
		t.Error("an expired assertion was accepted")
	}
	rej := strings.Join(f.as.Rejections(), "\n")
	for _, want := range []string{"jti replayed", "is not in the client's JWKS", "aud", "unknown client someone-else", "expired"} {
		if !strings.Contains(rej, want) {
			t.Errorf("no rejection for %q in:\n%s", want, rej)
		}
	}
}

// TestNoKeyInOutput is the canary: the PEM body of every minted key
// appears in no log line, error, metadata, evidence or JWKS file.
func TestNoKeyInOutput(t *testing.T) {
	f := newFixture(t, 0)
	logs := &testlog.Buffer{}
	p := f.provider(t, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	var seen []string
	var vals []secret.Value
	v := mint(t, p, "v1", nil)
	vals = append(vals, v.Value)
	activate(t, p, &v)
	if err := verify(p, t.Context(), v); err != nil {
		t.Fatal(err)
	}
	w := mint(t, p, "v2", &v)
	vals = append(vals, w.Value)
	activate(t, p, &w)
	res, err := p.Verify(t.Context(), providers.VerifyRequest{Common: providers.Common{CredentialID: "client-key", VersionID: "v2"}, Value: w.Value, Metadata: w.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, strings.Join(slices.Collect(mapValues(res.Evidence)), " "))
	// Errors on paths that handle the key: a corrupt key, a revoked key.
	broken := secret.New(append([]byte{}, v.Value.Reveal()[:len(v.Value.Reveal())-40]...))
	for _, err := range []error{
		verify(p, t.Context(), providers.VersionRef{VersionID: "bad", Value: broken, Metadata: v.Metadata}),
		p.Revoke(t.Context(), providers.RevokeRequest{Common: providers.Common{VersionID: "bad"}, Value: broken}),
	} {
		if err == nil {
			t.Fatal("a corrupt key was accepted")
		}
		seen = append(seen, err.Error())
	}
	if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: providers.Common{VersionID: "v1"}, Value: v.Value}); err != nil {
		t.Fatal(err)
	}
	if err := verify(p, t.Context(), v); err == nil {
		t.Fatal("Verify succeeds for a revoked key")
	} else {
		seen = append(seen, err.Error())
	}
	raw, _ := os.ReadFile(f.jwksFile)
	seen = append(seen, logs.String(), string(raw))
	for _, m := range []map[string]string{v.Metadata, w.Metadata} {
		seen = append(seen, strings.Join(slices.Collect(mapValues(m)), " "))
	}
	for _, val := range vals {
		body := pemBody(val.RevealString())
		for _, s := range seen {
			for i := 0; i+24 <= len(body); i += 8 {
				if strings.Contains(s, body[i:i+24]) {
					t.Fatalf("24 bytes of a private key's PEM body appear in output:\n%s", s)
				}
			}
		}
	}
	if got := kids(t, f.jwksFile); !slices.Equal(got, []string{w.Metadata["kid"]}) {
		t.Errorf("jwks_file after revoking v1 holds %v, want only v2's kid", got)
	}
}

func pemBody(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "-----") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for name, c := range map[string]struct {
		s     settings.Map
		field string
		msg   string
	}{
		"algorithm":   {settings.Map{"token_url": "https://a.example/token", "client_id": "c", "algorithm": "HS256"}, "algorithm", "must be one of ES256, RS256"},
		"stage_wait":  {settings.Map{"token_url": "https://a.example/token", "client_id": "c", "stage_wait": "10m"}, "stage_wait", "must be between 0s and 1m50s"},
		"private_key": {settings.Map{"token_url": "https://a.example/token", "client_id": "c", "private_key": "${file:/k.pem}"}, "private_key", "mints the client's private keys itself"},
		"http":        {settings.Map{"token_url": "http://a.example/token", "client_id": "c"}, "token_url", "use https"},
		"format":      {settings.Map{"token_url": "https://a.example/token", "client_id": "c", "format": "der"}, "format", "must be one of pem, jwk"},
	} {
		t.Run(name, func(t *testing.T) {
			errs := oauth2pkjwt.ValidateProvider(c.s)
			if len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Msg, c.msg) {
				t.Fatalf("errors = %v, want one on %s containing %q", errs, c.field, c.msg)
			}
		})
	}
	if errs := oauth2pkjwt.ValidateCredential(settings.Map{"role": "x"}); len(errs) != 1 || errs[0].Field != "role" {
		t.Errorf("ValidateCredential = %v, want one error on role", errs)
	}
}
