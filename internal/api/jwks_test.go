package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/jose"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testauthz"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/rotation"
)

// TestServedJWKS rotates an oauth2-private-key-jwt credential through the
// engine with its JWKS served by JWKSHandler (as rotator serve does), and
// an oauth2-client-credentials credential whose client authenticates with
// private_key: {credential: gateway-key}: the authorization server fetches
// the served JWKS, tokens are minted before and after a rotation of the
// key, the served set holds current and previous during grace and drops the
// previous after it, and no private key reaches the audit log, a run error
// or the log.
func TestServedJWKS(t *testing.T) {
	st := deliverytest.OpenStore(t, "sqlite")
	logs := &testlog.Buffer{}
	mux := http.NewServeMux()
	mux.Handle(api.JWKSPath, api.JWKSHandler(st, nil))
	jwks := httptest.NewServer(mux)
	t.Cleanup(jwks.Close)
	as := testauthz.New(t)
	as.CacheTTL = 0
	as.Register(testauthz.Client{ID: "mcp-gateway", JWKSURL: jwks.URL + "/.well-known/jwks/gateway-keys.json"})

	yaml := fmt.Sprintf(`
providers:
  gateway-keys:
    type: oauth2-private-key-jwt
    token_url: %[1]s
    client_id: mcp-gateway
  gateway:
    type: oauth2-client-credentials
    token_url: %[1]s
    client_id: mcp-gateway
    client_auth: private_key_jwt
    private_key: {credential: gateway-key}
credentials:
  - id: gateway-key
    consumer: mcp-gateway
    provider: gateway-keys
    max_age: 720h
    grace: 0s
    runbook: runbooks/generated.md#rotation
  - id: gateway-token
    consumer: mcp-gateway
    provider: gateway
    max_age: 1h
    grace: 0s
    runbook: runbooks/generated.md#rotation
`, as.TokenURL())
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "rotator.yaml"), []byte(yaml), config.Options{BaseDir: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	kr, _ := secret.NewKeyring(secret.GenerateKey())
	e, err := rotation.New(rotation.Options{Store: st, Keyring: kr, Redactor: &secret.Redactor{}, RunbookDir: root, StepTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if _, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	rotate := func(id string) store.Run {
		t.Helper()
		started, err := e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{id}}, Trigger: store.TriggerManual, Actor: "test", Reason: "test"})
		if err != nil || len(started) != 1 {
			t.Fatalf("rotate %s: %v %v", id, started, err)
		}
		local := &rotation.Local{E: e, Concurrency: 1, WaitRetired: true, Deadline: time.Now().Add(time.Minute)}
		res := local.Drive(ctx, []string{started[0].RunID})
		if len(res) != 1 {
			t.Fatalf("rotate %s: %+v", id, res)
		}
		return res[0].Run
	}
	served := func() []string {
		t.Helper()
		resp, err := http.Get(jwks.URL + "/.well-known/jwks/gateway-keys.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set jose.JWKS
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, k := range set.Keys {
			if k.D != "" || k.P != "" {
				t.Fatal("the served JWKS holds a private member")
			}
			kids = append(kids, k.Kid)
		}
		return kids
	}

	// Before the key exists, the token credential cannot rotate.
	if r := rotate("gateway-token"); r.State == string(rotation.StateSucceeded) {
		t.Fatal("gateway-token rotated before gateway-key had a value")
	}
	if r := rotate("gateway-key"); r.State != string(rotation.StateSucceeded) {
		t.Fatalf("gateway-key: %+v", r)
	}
	k1 := served()
	if len(k1) != 1 {
		t.Fatalf("served kids after the first rotation: %v", k1)
	}
	if r := rotate("gateway-token"); r.State != string(rotation.StateSucceeded) {
		t.Fatalf("gateway-token with the first key: %+v", r)
	}
	if r := rotate("gateway-key"); r.State != string(rotation.StateSucceeded) {
		t.Fatalf("gateway-key second rotation: %+v", r)
	}
	k2 := served()
	if len(k2) != 1 || slices.Contains(k2, k1[0]) {
		t.Fatalf("served kids after the second rotation and retirement: %v (first %v)", k2, k1)
	}
	if r := rotate("gateway-token"); r.State != string(rotation.StateSucceeded) {
		t.Fatalf("gateway-token with the rotated key: %+v", r)
	}
	if resp, _ := http.Get(jwks.URL + "/.well-known/jwks/gateway.json"); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("a provider of another type is served: %v", resp)
	} else {
		resp.Body.Close()
	}

	// Canary: neither key's PEM body in the audit log, runs or logs.
	var texts []string
	_ = st.ScanAuditEvents(ctx, store.AuditFilter{}, func(ev store.AuditEvent) error {
		texts = append(texts, string(ev.Data))
		return nil
	})
	texts = append(texts, logs.String())
	c, _ := st.GetCredential(ctx, "gateway-key")
	vers, _ := st.ListVersions(ctx, "gateway-key")
	for _, v := range vers {
		b, _ := json.Marshal(v.Metadata)
		texts = append(texts, string(b))
	}
	cur := c.Current
	val, err := kr.Open(cur.CredentialID, cur.ID, cur.KeyID, cur.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Join(strings.Split(val.RevealString(), "\n")[1:3], "")
	for _, s := range texts {
		if strings.Contains(s, body) {
			t.Fatalf("the private key appears in output:\n%s", s)
		}
	}
}
