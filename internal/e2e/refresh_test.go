package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokenServer is an OAuth 2.0 token endpoint (client credentials grant)
// that accepts one client secret at a time, as an authorization server
// does after the secret was rotated there.
type tokenServer struct {
	mu     sync.Mutex
	secret string
	seen   []string
	n      int
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		_ = r.ParseForm()
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	s.seen = append(s.seen, secret)
	valid := id == "mcp-gateway" && secret == s.secret
	s.n++
	n := s.n
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !valid {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("tok_%d_%d", time.Now().UnixNano(), n), "token_type": "Bearer", "expires_in": 3600, "scope": "notes:read",
	})
}

func (s *tokenServer) set(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = secret
}

func (s *tokenServer) secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// TestServeUsesCurrentClientSecret: with the service running, a client
// secret file changed after it started is what the next run uses (every
// run resolves references when it starts), whichever process executes it.
func TestServeUsesCurrentClientSecret(t *testing.T) {
	t.Parallel()
	for _, kind := range databases {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, kind, 0)
			srv := &tokenServer{secret: "first-client-secret-0123456789"}
			ts := httptest.NewServer(srv)
			t.Cleanup(ts.Close)
			secretFile := filepath.Join(h.dir, "client_secret")
			writeFile(t, secretFile, "first-client-secret-0123456789\n")
			config := filepath.Join(h.dir, "rotator.yaml")
			writeFile(t, config, fmt.Sprintf(`providers:
  idp:
    type: oauth2-client-credentials
    token_url: %s/token
    client_id: mcp-gateway
    client_secret: ${file:%s}
credentials:
  - id: gateway-token
    consumer: mcp-gateway
    provider: idp
    scope: [notes:read]
    max_age: 24h
    runbook: runbooks/e2e.md#rotation
`, ts.URL, secretFile))
			p := h.serve("serve", config)
			waitFor(t, 30*time.Second, "serve to lead the queue", func() (bool, error) {
				if p.exited() {
					return false, fmt.Errorf("serve exited: %v\n%s", p.err, p.log())
				}
				return strings.Contains(p.log(), "rotator serving"), nil
			})
			out, err := h.cli("rotate", "gateway-token", "--wait", "-o", "json")
			if err != nil {
				t.Fatalf("first rotation: %v\n%s", err, out)
			}

			// The secret is rotated at the authorization server and in the
			// file; the service is not restarted.
			srv.set("second-client-secret-9876543210")
			writeFile(t, secretFile, "second-client-secret-9876543210\n")
			before := len(srv.secrets())
			out, err = h.cli("rotate", "gateway-token", "--wait", "-o", "json")
			if err != nil {
				t.Fatalf("rotation after the secret changed: %v\n%s", err, out)
			}
			if !strings.Contains(out, `"executed_by": "service `) || !strings.Contains(out, `"state": "succeeded"`) {
				t.Errorf("the running service did not execute the rotation:\n%s", out)
			}
			after := srv.secrets()[before:]
			if len(after) == 0 || after[len(after)-1] != "second-client-secret-9876543210" {
				t.Errorf("the token endpoint saw %q after the change, want the new secret", after)
			}
			for _, s := range after {
				if s == "first-client-secret-0123456789" {
					t.Error("the run used the old client secret after the file changed")
				}
			}
			for _, s := range []string{"first-client-secret", "second-client-secret"} {
				if strings.Contains(p.log(), s) || strings.Contains(out, s) {
					t.Errorf("the client secret %s… appears in the output", s)
				}
			}
		})
	}
}
