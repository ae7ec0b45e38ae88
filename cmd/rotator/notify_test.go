package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestNotifyCommands: notify test sends a signed test event to a webhook
// and records it; a failing receiver exits 1 with the failure recorded;
// an unknown one exits 3; notify list shows both, in JSON too; no secret
// is printed.
func TestNotifyCommands(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var ids []string
			ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				mu.Lock()
				ids = append(ids, r.Header.Get("webhook-id"))
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(ok.Close)
			gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
			t.Cleanup(gone.Close)
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
			c := newCLI(t, kind, "HOOK_SECRET="+secret)
			writeFile(t, c.path("rotator.yaml"), fmt.Sprintf(`notify:
  receivers:
    hook:
      type: webhook
      url: %s
      secret: ${env:HOOK_SECRET}
    broken:
      type: webhook
      url: %s
      secret: ${env:HOOK_SECRET}
  route:
    receiver: hook
    routes:
      - {receiver: broken, kinds: [rotation.cut_over]}
`, ok.URL, gone.URL))
			c.must(t, 0, "migrate")
			r := c.must(t, 0, "notify", "test", "hook", "-f", "rotator.yaml")
			if !strings.Contains(r.stdout, "delivered after 1 attempt(s)") || len(ids) != 1 || !strings.Contains(r.stdout, ids[0]) {
				t.Fatalf("notify test hook (ids %v):\n%s", ids, r)
			}
			r = c.must(t, 1, "notify", "test", "broken", "-f", "rotator.yaml")
			if !strings.Contains(r.stderr, "410") {
				t.Fatalf("notify test broken:\n%s", r)
			}
			r = c.must(t, 3, "notify", "test", "nobody", "-f", "rotator.yaml")
			if !strings.Contains(r.stderr, `no receiver "nobody"`) {
				t.Fatalf("notify test nobody:\n%s", r)
			}
			r = c.must(t, 0, "notify", "list", "-o", "json")
			o := decodeObject(t, r.stdout, "deliveries")
			ds := array(t, o, "deliveries")
			if len(ds) != 2 {
				t.Fatalf("notify list: %s", r.stdout)
			}
			for _, d := range ds {
				requireKeys(t, "delivery", d, "id", "receiver", "group", "state", "events", "kinds", "credentials", "runs", "attempts", "last_error", "created_at", "finished_at")
			}
			states := str(t, ds[0], "receiver") + "=" + str(t, ds[0], "state") + "," + str(t, ds[1], "receiver") + "=" + str(t, ds[1], "state")
			if states != "broken=failed,hook=delivered" {
				t.Fatalf("states %s", states)
			}
			r = c.must(t, 0, "notify", "list", "--state", "failed")
			if !strings.Contains(r.stdout, "broken") || strings.Contains(r.stdout, "hook ") {
				t.Fatalf("notify list --state failed:\n%s", r)
			}
			c.must(t, 2, "notify", "list", "--state", "lost")
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, p := range c.printed {
				if strings.Contains(p, secret) || strings.Contains(p, strings.TrimPrefix(secret, "whsec_")) {
					t.Fatal("a command printed the signing secret")
				}
			}
		})
	}
}
