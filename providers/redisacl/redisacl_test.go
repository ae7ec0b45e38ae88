package redisacl

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testproxy"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// redisAddr is the test server: ROTATOR_TEST_REDIS_ADDR or 127.0.0.1:6379,
// without authentication for the default user. An unreachable server fails
// the tests: a skipped test is not a passed one.
func redisAddr() string {
	if a := os.Getenv("ROTATOR_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func newClient(addr, user, pw string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Username: user, Password: pw, Protocol: 2, PoolSize: 1, MaxRetries: -1,
		DisableIdentity: true, ContextTimeoutEnabled: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// newUser returns a unique ACL user name, deleted when the test ends.
func newUser(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	user := "rtr_test_" + hex.EncodeToString(b)
	admin := newClient(redisAddr(), "", "")
	if err := admin.Ping(t.Context()).Err(); err != nil {
		admin.Close()
		t.Fatalf("redis at %s: %v (start it, or set ROTATOR_TEST_REDIS_ADDR)", redisAddr(), err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if err := admin.Do(context.Background(), "ACL", "DELUSER", user).Err(); err != nil {
			t.Errorf("ACL DELUSER %s: %v", user, err)
		}
	})
	return user
}

// resource authenticates as a consumer would, directly (not through the proxy).
type resource struct {
	user  string
	proxy *testproxy.Proxy
}

func (r *resource) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	c := newClient(redisAddr(), r.user, v.Value.RevealString())
	defer c.Close()
	err := c.Ping(ctx).Err()
	switch {
	case err == nil:
		return true, nil
	case isWrongPass(err):
		return false, nil
	}
	return false, errors.New("cannot reach redis")
}

// Stall implements providertest.Staller.
func (r *resource) Stall(t *testing.T) func() { return r.proxy.Stall() }

func newProvider(t *testing.T, logger *slog.Logger) (*Provider, *testproxy.Proxy) {
	t.Helper()
	px := testproxy.New(t, redisAddr())
	prov, err := Factory().New(t.Context(), providers.Env{Name: "redis-test", Logger: logger, Settings: settings.Map{"addr": px.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prov.(*Provider).Close() })
	return prov.(*Provider), px
}

const rules = "~mcp:* +get +set +ping"

func TestExercise(t *testing.T) {
	t.Parallel()
	providertest.Exercise(t, providertest.Harness{
		Factory:  Factory(),
		Scope:    []string{"~mcp:*", "+get", "+set"},
		Parallel: true,
		New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
			user := newUser(t)
			prov, px := newProvider(t, logger)
			return providertest.Instance{
				Provider: prov,
				Resource: &resource{user: user, proxy: px},
				Settings: settings.Map{"user": user, "rules": rules},
			}
		},
	})
}

func common(user string, n int, step string) providers.Common {
	return providers.Common{CredentialID: "cache-mcp", VersionID: fmt.Sprintf("v%03d", n), IdempotencyKey: fmt.Sprintf("run%03d/%s", n, step), Settings: settings.Map{"user": user, "rules": rules}}
}

func rotate(t *testing.T, p *Provider, user string, n int) providers.VersionRef {
	t.Helper()
	ctx := t.Context()
	m, err := p.Mint(ctx, providers.MintRequest{Common: common(user, n, "mint")})
	if err != nil {
		t.Fatalf("rotation %d: mint: %v", n, err)
	}
	if _, err := p.Activate(ctx, providers.ActivateRequest{Common: common(user, n, "activate"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatalf("rotation %d: activate: %v", n, err)
	}
	if _, err := p.Verify(ctx, providers.VerifyRequest{Common: common(user, n, "verify"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatalf("rotation %d: verify: %v", n, err)
	}
	return providers.VersionRef{VersionID: fmt.Sprintf("v%03d", n), Value: m.Value, Metadata: m.Metadata}
}

// TestZeroDisruption: clients keep connecting with whatever password is
// published while 50 rotations run in the engine's order (activate →
// verify → promote → after grace revoke the previous); none may fail AUTH.
func TestZeroDisruption(t *testing.T) {
	t.Parallel()
	user := newUser(t)
	p, _ := newProvider(t, nil)
	const rotations = 50
	r := providertest.ZeroDisruption{
		Rotations: rotations, Clients: 4,
		Rotate: func(n int, _ *providers.VersionRef) providers.VersionRef { return rotate(t, p, user, n) },
		Revoke: func(n int, prev providers.VersionRef) {
			if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: common(user, n, "revoke_previous"), Value: prev.Value, Metadata: prev.Metadata}); err != nil {
				t.Fatalf("rotation %d: revoke previous: %v", n, err)
			}
		},
		Use: func(ctx context.Context, client int, ref providers.VersionRef) error {
			c := newClient(redisAddr(), user, ref.Value.RevealString())
			defer c.Close()
			key := fmt.Sprintf("mcp:zd:%s:%d", user, client)
			if err := c.Set(ctx, key, ref.VersionID, time.Minute).Err(); err != nil {
				return err
			}
			return c.Get(ctx, key).Err()
		},
		AuthFailure: isWrongPass,
	}.Run(t)
	n, failed, cur := r.Attempts, r.AuthFailures, r.Last
	t.Logf("zero-disruption (redis-acl): %d rotations, %d client connections, %d authentication failures", rotations, n, failed)
	if failed != 0 {
		t.Fatalf("%d of %d client connections failed AUTH during rotation", failed, n)
	}
	if n < rotations {
		t.Fatalf("only %d client connections over %d rotations; the clients did not overlap the rotations", n, rotations)
	}
	// Exactly one password is left: the current one.
	admin := newClient(redisAddr(), "", "")
	defer admin.Close()
	has, exists, err := hasPassword(t.Context(), admin, user, hash(cur.Value))
	if err != nil || !exists || !has {
		t.Fatalf("current password missing (has=%v exists=%v err=%v)", has, exists, err)
	}
	res, err := admin.Do(t.Context(), "ACL", "GETUSER", user).Slice()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(res); i += 2 {
		if res[i] == "passwords" {
			if l, _ := res[i+1].([]any); len(l) != 1 {
				t.Fatalf("the user has %d passwords after 50 rotations, want 1", len(l))
			}
		}
	}
}

// TestPasswordsTravelHashed: Activate and Revoke send only SHA-256 hashes
// (the consumer's AUTH, and Verify's, necessarily send the password).
func TestPasswordsTravelHashed(t *testing.T) {
	t.Parallel()
	user := newUser(t)
	p, px := newProvider(t, nil)
	m, err := p.Mint(t.Context(), providers.MintRequest{Common: common(user, 1, "mint")})
	if err != nil {
		t.Fatal(err)
	}
	px.Reset()
	if _, err := p.Activate(t.Context(), providers.ActivateRequest{Common: common(user, 1, "activate"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: common(user, 1, "revoke"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		t.Fatal(err)
	}
	wire := px.Sent()
	if !bytes.Contains(wire, []byte("#"+hash(m.Value))) || !bytes.Contains(wire, []byte("!"+hash(m.Value))) {
		t.Fatal("the proxy did not see the hashed password rules; it records nothing")
	}
	if bytes.Contains(wire, m.Value.Reveal()) {
		t.Fatal("the password crossed the wire in clear during Activate or Revoke")
	}
}

// TestRulesAreExact: rules removed from the configuration are removed from
// the user at the next activation; passwords survive.
func TestRulesAreExact(t *testing.T) {
	t.Parallel()
	user := newUser(t)
	p, _ := newProvider(t, nil)
	activate := func(n int, rules string) providers.VersionRef {
		t.Helper()
		c := providers.Common{VersionID: fmt.Sprint(n), Settings: settings.Map{"user": user, "rules": rules}}
		m, err := p.Mint(t.Context(), providers.MintRequest{Common: c})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Activate(t.Context(), providers.ActivateRequest{Common: c, Value: m.Value, Metadata: m.Metadata}); err != nil {
			t.Fatal(err)
		}
		return providers.VersionRef{Value: m.Value}
	}
	v1 := activate(1, "~mcp:* +get +set +del +ping")
	v2 := activate(2, "~mcp:* +get +ping")
	c := newClient(redisAddr(), user, v1.Value.RevealString())
	defer c.Close()
	if err := c.Get(t.Context(), "mcp:x").Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET with the first password: %v", err)
	}
	if err := c.Set(t.Context(), "mcp:x", "1", 0).Err(); !isNoPerm(err) {
		t.Fatalf("SET after +set was dropped from the rules: %v, want NOPERM", err)
	}
	if ok, _ := (&resource{user: user}).Accepts(t.Context(), v2); !ok {
		t.Fatal("second password rejected")
	}
}

func TestRevokeUnknownUserCreatesNothing(t *testing.T) {
	t.Parallel()
	user := newUser(t)
	p, _ := newProvider(t, nil)
	err := p.Revoke(t.Context(), providers.RevokeRequest{Common: common(user, 1, "revoke"), Value: secret.NewString("never-issued-password-123456")})
	if err != nil {
		t.Fatal(err)
	}
	admin := newClient(redisAddr(), "", "")
	defer admin.Close()
	if _, exists, err := hasPassword(t.Context(), admin, user, "x"); err != nil || exists {
		t.Fatalf("Revoke created the user (exists=%v, err=%v)", exists, err)
	}
}

func TestAdminErrorsArePermanentAndScrubbed(t *testing.T) {
	t.Parallel()
	user := newUser(t)
	const adminPW = "canary-admin-password-0123456789"
	prov, err := Factory().New(t.Context(), providers.Env{Name: "r", Settings: settings.Map{
		"addr": redisAddr(), "username": user, "password": secret.NewString(adminPW),
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := prov.(*Provider)
	t.Cleanup(func() { _ = p.Close() })
	m, _ := p.Mint(t.Context(), providers.MintRequest{Common: common(user, 1, "mint")})
	_, err = p.Activate(t.Context(), providers.ActivateRequest{Common: common(user, 1, "activate"), Value: m.Value, Metadata: m.Metadata})
	if err == nil || !errors.Is(err, providers.ErrPermanent) {
		t.Fatalf("activate with a wrong admin password: %v, want a permanent error", err)
	}
	for _, s := range []string{adminPW, m.Value.RevealString(), hash(m.Value)} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a secret: %v", err)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	prov := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"minimal":  {settings.Map{"addr": "redis:6379"}, nil},
		"full":     {settings.Map{"addr": "redis.internal:6380", "username": "rotator", "password": "${env:REDIS_ADMIN_PASSWORD}", "tls": true, "password_length": 64}, nil},
		"no addr":  {settings.Map{}, []string{"addr"}},
		"bad addr": {settings.Map{"addr": "redis"}, []string{"addr"}},
		"bad tls":  {settings.Map{"addr": "r:1", "tls": "yes"}, []string{"tls"}},
		"short":    {settings.Map{"addr": "r:1", "password_length": 8}, []string{"password_length"}},
		"unknown":  {settings.Map{"addr": "r:1", "user": "x"}, []string{"user"}},
		"pool":     {settings.Map{"addr": "r:1", "max_admin_connections": 16}, nil},
		"no pool":  {settings.Map{"addr": "r:1", "max_admin_connections": 0}, []string{"max_admin_connections"}},
	}
	for name, tc := range prov {
		var got []string
		for _, e := range ValidateProvider(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("provider %s: %v, want %v", name, got, tc.fields)
		}
	}
	cred := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"string rules": {settings.Map{"user": "mcp-cache", "rules": "~mcp:* +get +set"}, nil},
		"list rules":   {settings.Map{"user": "mcp-cache", "rules": []any{"~mcp:*", "+@read"}}, nil},
		"no user":      {settings.Map{"rules": "+get"}, []string{"user"}},
		"nopass":       {settings.Map{"user": "u", "rules": "nopass +get"}, []string{"rules"}},
		"password":     {settings.Map{"user": "u", "rules": ">literal-password +get"}, []string{"rules"}},
		"reset":        {settings.Map{"user": "u", "rules": "reset"}, []string{"rules"}},
		"space user":   {settings.Map{"user": "a b"}, []string{"user"}},
	}
	for name, tc := range cred {
		var got []string
		errs := ValidateCredential(tc.in)
		for _, e := range errs {
			got = append(got, e.Field)
			if strings.Contains(e.Msg, "literal-password") {
				t.Errorf("%s: the error quotes the password rule: %s", name, e.Msg)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("credential %s: %v, want %v", name, got, tc.fields)
		}
	}
}
