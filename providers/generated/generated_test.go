package generated

import (
	"context"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

func mint(t *testing.T, p *Provider, s settings.Map) secret.Value {
	t.Helper()
	resp, err := p.Mint(context.Background(), providers.MintRequest{Common: providers.Common{CredentialID: "c", VersionID: "v", Settings: s, Scope: []string{"read"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GrantedScope) != 1 || resp.GrantedScope[0] != "read" {
		t.Errorf("granted scope = %v, want the declared scope", resp.GrantedScope)
	}
	return resp.Value
}

func TestMint(t *testing.T) {
	t.Parallel()
	p, err := New(settings.Map{"length": 24, "prefix": "rtr_", "alphabet": "hex"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 200 {
		v := mint(t, p, nil).RevealString()
		if !strings.HasPrefix(v, "rtr_") || len(v) != 28 || strings.Trim(v[4:], "0123456789abcdef") != "" {
			t.Fatalf("value has the wrong shape (len %d)", len(v))
		}
		if seen[v] {
			t.Fatal("two mints gave the same value")
		}
		seen[v] = true
	}
	// Credential settings override the provider's.
	if v := mint(t, p, settings.Map{"length": 64}); v.Len() != 68 {
		t.Fatalf("override length: got %d, want 68", v.Len())
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	p, err := New(settings.Map{"length": 32})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v := mint(t, p, nil)
	if _, err := p.Verify(ctx, providers.VerifyRequest{Value: v}); err != nil {
		t.Fatalf("verify of a minted value: %v", err)
	}
	_, err = p.Verify(ctx, providers.VerifyRequest{Value: secret.NewString("short-canary-value")})
	if err == nil || strings.Contains(err.Error(), "short-canary-value") {
		t.Fatalf("verify of a wrong value: err = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Mint(cancelled, providers.MintRequest{}); err == nil {
		t.Fatal("mint with a cancelled context succeeded")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"defaults":        {settings.Map{}, nil},
		"named alphabet":  {settings.Map{"alphabet": "base64url", "length": 40}, nil},
		"custom alphabet": {settings.Map{"alphabet": "abcdef"}, nil},
		"too short":       {settings.Map{"length": 8}, []string{"length"}},
		"bad alphabet":    {settings.Map{"alphabet": "aa"}, []string{"alphabet"}},
		"bad ttl":         {settings.Map{"ttl": "soon"}, []string{"ttl"}},
		"unknown":         {settings.Map{"size": 3}, []string{"size"}},
	}
	for name, tc := range cases {
		var got []string
		for _, e := range ValidateProvider(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%s: fields %v, want %v", name, got, tc.fields)
		}
	}
}
