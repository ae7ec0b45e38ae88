package apitoken_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func TestTokenForm(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		tok, hash := apitoken.New()
		if !apitoken.WellFormed(tok) || len(tok) != 79 || !strings.HasPrefix(tok, apitoken.Prefix) || seen[tok] {
			t.Fatalf("New() = a token of length %d, well formed %v, repeated %v", len(tok), apitoken.WellFormed(tok), seen[tok])
		}
		seen[tok] = true
		if string(hash) != string(apitoken.Hash(tok)) || len(hash) != 32 {
			t.Fatal("New's hash is not Hash(token)")
		}
		// One changed digit breaks the checksum.
		i := len(apitoken.Prefix) + 10
		c := byte('0')
		if tok[i] == '0' {
			c = '1'
		}
		if apitoken.WellFormed(tok[:i] + string(c) + tok[i+1:]) {
			t.Fatal("a token with one digit changed is taken as well formed")
		}
		if kind, ok := secret.DetectToken("leaked: " + tok + " in a log"); !ok || kind != "rotator API token" {
			t.Fatalf("the secret scanner finds %q (%v) in a line holding a token", kind, ok)
		}
	}
	for _, s := range []string{"", "rtrtok_", "Bearer x", strings.Repeat("a", 79), "rtrtok_" + strings.Repeat("G", 72)} {
		if apitoken.WellFormed(s) {
			t.Errorf("WellFormed(%q) = true", s)
		}
	}
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"consume:github-mcp":             "consume:github-mcp",
		"consume:team=platform, env=dev": "consume:env=dev,team=platform",
		"consume:*":                      "consume:*",
		"read":                           "read",
		"admin":                          "admin",
	} {
		s, err := apitoken.ParseScope(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseScope(%q) = %q, %v; want %q", in, s, err, want)
		}
	}
	for in, want := range map[string]string{
		"consume":       "consume needs a credential",
		"consume:":      "empty credential selector",
		"consume:Bad":   "not a credential id",
		"write:x":       "unknown",
		"admin:x":       "takes no credential",
		"rotate:github": "takes no credential",
	} {
		if _, err := apitoken.ParseScope(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseScope(%q) error %v; want one containing %q", in, err, want)
		}
	}
}

func TestService(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		st := deliverytest.OpenStore(t, dialect)
		ctx := t.Context()
		var now atomic.Int64
		now.Store(time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC).UnixMicro())
		clock := func() time.Time { return time.UnixMicro(now.Load()).UTC() }
		svc := apitoken.NewService(st, clock, nil)

		if _, err := svc.Create(ctx, apitoken.CreateRequest{Actor: "alice"}); err == nil {
			t.Error("a token without scopes was created")
		}
		if _, err := svc.Create(ctx, apitoken.CreateRequest{Scopes: []string{"consume:Bad"}}); err == nil {
			t.Error("a token with a bad scope was created")
		}
		a, err := svc.Create(ctx, apitoken.CreateRequest{Name: "laptop", Scopes: []string{"consume:dt-a", "consume:team=x"}, TTL: time.Hour, Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := svc.Create(ctx, apitoken.CreateRequest{Scopes: []string{"consume:*"}, Actor: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Record.ID, "tok_") || !a.Record.ExpiresAt.Equal(clock().Add(time.Hour)) || !b.Record.ExpiresAt.IsZero() {
			t.Errorf("records: %+v, %+v", a.Record, b.Record)
		}

		got, err := svc.Authenticate(ctx, a.Token)
		if err != nil || got.ID != a.Record.ID || got.Identity() != "token:"+a.Record.ID+" (laptop)" {
			t.Fatalf("Authenticate(a) = %+v, %v", got, err)
		}
		for id, labels := range map[string]map[string]string{"dt-a": nil, "other": {"team": "x"}} {
			if !got.CanConsume(id, labels) {
				t.Errorf("a cannot consume %s %v", id, labels)
			}
		}
		if got.CanConsume("dt-b", map[string]string{"team": "y"}) {
			t.Error("a token scoped consume:dt-a,team=x may read dt-b")
		}
		forged, _ := apitoken.New()
		for tok, want := range map[string]error{"": apitoken.ErrInvalid, "rtrtok_x": apitoken.ErrInvalid, forged: apitoken.ErrUnknown} {
			if _, err := svc.Authenticate(ctx, tok); !errors.Is(err, want) {
				t.Errorf("Authenticate(%.12s...) error %v; want %v", tok, err, want)
			}
		}

		now.Add(time.Hour.Microseconds())
		if _, err := svc.Authenticate(ctx, a.Token); !errors.Is(err, apitoken.ErrExpired) {
			t.Errorf("an hour later, Authenticate(a) error %v; want ErrExpired", err)
		}
		if _, err := svc.Revoke(ctx, b.Record.ID, "carol"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Revoke(ctx, b.Record.ID, "carol"); err != nil {
			t.Errorf("revoking twice: %v", err)
		}
		if _, err := svc.Authenticate(ctx, b.Token); !errors.Is(err, apitoken.ErrRevoked) {
			t.Errorf("after revoke, Authenticate(b) error %v; want ErrRevoked", err)
		}
		if _, err := svc.Revoke(ctx, "tok_none", "carol"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking an unknown id: %v; want ErrNotFound", err)
		}

		list, err := svc.List(ctx)
		if err != nil || len(list) != 2 || list[1].RevokedAt.IsZero() {
			t.Fatalf("List = %+v, %v", list, err)
		}
		// Audit: one created per token, one revoked (not two); no token
		// anywhere; all sealed.
		var actions []string
		err = st.ScanAuditEvents(ctx, store.AuditFilter{}, func(e store.AuditEvent) error {
			raw, _ := json.Marshal(e)
			for _, tok := range []string{a.Token, b.Token, a.Token[len(apitoken.Prefix):]} {
				if strings.Contains(string(raw)+string(e.Data), tok) {
					t.Errorf("audit event %s holds a token", e.Action)
				}
			}
			if e.Seq == 0 {
				t.Errorf("audit event %s is not sealed", e.Action)
			}
			actions = append(actions, e.Action+" "+e.Actor)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := "token.created alice,token.created bob,token.revoked carol"; strings.Join(actions, ",") != want {
			t.Errorf("audit actions %v; want %s", actions, want)
		}
	})
}
