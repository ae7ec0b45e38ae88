package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// notifyConfig: one generated credential published to a dotenv file, and a
// webhook receiver that opts in to cut-over events. group_wait is long
// enough for the test to kill serve between the commit and the delivery.
const notifyConfig = `providers:
  gen:
    type: generated
    length: 40
    prefix: "rtr_"
targets:
  env:
    type: file
    path: %q
    format: dotenv
credentials:
  - id: notify-key
    consumer: mcp-server-notify
    provider: gen
    owner: e2e
    labels: {env: prod}
    max_age: 30d
    runbook: runbooks/e2e.md#rotation
    targets:
      - {target: env, key: NOTIFY_KEY}
notify:
  receivers:
    hook:
      type: webhook
      url: %s
      secret: ${file:%s}
  route:
    receiver: hook
    group_wait: 4s
    group_interval: 1s
    routes:
      - receiver: hook
        kinds: [rotation.cut_over, rotation.retired]
`

// hookServer records webhook deliveries by webhook-id, verifying each
// signature per the Standard Webhooks specification.
type hookServer struct {
	mu     sync.Mutex
	secret string
	byID   map[string]int
	bodies []string
	heads  []string
	bad    []string
}

func (s *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !hmac.Equal([]byte(r.Header.Get("webhook-signature")), []byte(want)) {
		s.bad = append(s.bad, id)
	}
	s.byID[id]++
	s.bodies = append(s.bodies, string(body))
	var hs []string
	for k, v := range r.Header {
		hs = append(hs, k+": "+strings.Join(v, ","))
	}
	s.heads = append(s.heads, strings.Join(hs, "\n"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *hookServer) snapshot() (map[string]int, []string, []string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]int{}
	for k, v := range s.byID {
		ids[k] = v
	}
	return ids, append([]string(nil), s.bodies...), append([]string(nil), s.heads...), append([]string(nil), s.bad...)
}

// TestNotifyAfterKill: serve is killed with SIGKILL right after the
// cut-over commit, before the notification could be sent; the restarted
// serve delivers it, exactly once per delivery id, signed, and no payload
// or header carries the credential's value or the signing secret.
func TestNotifyAfterKill(t *testing.T) {
	t.Parallel()
	for _, kind := range databases {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			if kind == postgresDB {
				pgSlots <- struct{}{}
				defer func() { <-pgSlots }()
			}
			h := newHarness(t, kind, 4)
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			hook := &hookServer{secret: "whsec_" + base64.StdEncoding.EncodeToString(key), byID: map[string]int{}}
			srv := httptest.NewServer(hook)
			t.Cleanup(srv.Close)
			secretFile := filepath.Join(h.dir, "webhook-secret")
			writeFile(t, secretFile, hook.secret+"\n")
			envFile := filepath.Join(h.dir, "run", "mcp.env")
			config := filepath.Join(h.dir, "rotator.yaml")
			writeFile(t, config, fmt.Sprintf(notifyConfig, envFile, srv.URL+"/hooks/rotator", secretFile))

			p1 := h.serve("serve-1", config)
			var cutID string
			waitFor(t, 60*time.Second, "the cut-over's outbox row", func() (bool, error) {
				if p1.exited() {
					return false, fmt.Errorf("serve-1 exited: %v", p1.err)
				}
				var err error
				cutID, err = h.outboxEvent(string(notify.KindCutOver))
				return cutID != "", err
			})
			p1.kill()
			killedAt := time.Now()
			// Committed with the run, and not sent: group_wait (4s) had not
			// passed.
			runs, err := h.runs("notify-key")
			if err != nil || len(runs) != 1 || runs[0].State != string(rotation.StateSucceeded) {
				t.Fatalf("runs %+v, %v", runs, err)
			}
			if ids, _, _, _ := hook.snapshot(); len(ids) != 0 {
				t.Fatalf("delivered before the kill: %v", ids)
			}

			p2 := h.serve("serve-2", config)
			waitFor(t, 60*time.Second, "the delivery after the restart", func() (bool, error) {
				if p2.exited() {
					return false, fmt.Errorf("serve-2 exited: %v", p2.err)
				}
				ids, _, _, _ := hook.snapshot()
				return len(ids) > 0, nil
			})
			// Leave time for a duplicate to show (more ticks, the job's
			// retries) before counting.
			time.Sleep(5 * time.Second)
			if err := p2.stop(30 * time.Second); err != nil {
				t.Errorf("stopping serve-2: %v", err)
			}
			t.Logf("delivered %.1fs after the kill", time.Since(killedAt).Seconds())
			ids, bodies, heads, bad := hook.snapshot()
			if len(bad) > 0 {
				t.Fatalf("signatures that do not verify: %v", bad)
			}
			seen := 0
			for id, n := range ids {
				if n != 1 {
					t.Errorf("delivery %s arrived %d times", id, n)
				}
			}
			for _, b := range bodies {
				var body struct {
					DeliveryID string         `json:"delivery_id"`
					Events     []notify.Event `json:"events"`
				}
				if err := json.Unmarshal([]byte(b), &body); err != nil {
					t.Fatal(err)
				}
				for _, ev := range body.Events {
					if ev.ID == cutID {
						seen++
						if ev.CredentialID != "notify-key" || ev.NewVersion == nil || ev.NewVersion.Fingerprint == "" || ev.Labels["env"] != "prod" {
							t.Errorf("cut_over event %+v", ev)
						}
					}
				}
			}
			if seen != 1 {
				t.Fatalf("the cut_over event arrived %d times, want 1", seen)
			}
			// The canary: the credential's value is in the target file and
			// nowhere in what the receiver got.
			env, err := readDotenv(envFile)
			if err != nil || len(env["NOTIFY_KEY"]) < 40 {
				t.Fatalf("target file: %v %v", env, err)
			}
			all := strings.Join(bodies, "\n") + strings.Join(heads, "\n")
			for what, v := range map[string]string{"credential value": env["NOTIFY_KEY"], "signing secret": hook.secret,
				"signing key": strings.TrimPrefix(hook.secret, "whsec_"), "master key": masterKey} {
				if strings.Contains(all, v) {
					t.Fatalf("the %s reached the webhook", what)
				}
			}
			// Recorded: the delivery and its attempt, shown by notify list.
			out, err := h.cli("notify", "list", "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				Deliveries []struct {
					ID       string
					State    string
					Attempts []struct{ Status string }
				}
			}
			if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Deliveries) == 0 {
				t.Fatalf("notify list: %v\n%s", err, out)
			}
			for _, d := range list.Deliveries {
				if ids[d.ID] != 1 || d.State != store.DeliveryDelivered || len(d.Attempts) != 1 {
					t.Errorf("delivery %+v (received %d times)", d, ids[d.ID])
				}
			}
			if strings.Contains(out, env["NOTIFY_KEY"]) {
				t.Fatal("notify list shows the credential's value")
			}
		})
	}
}

// outboxEvent returns the id of an outbox event of the kind, routed or not,
// still in the engine's outbox row or moved ("" if none).
func (h *harness) outboxEvent(kind string) (string, error) {
	evs, err := h.st.ListNotifyEvents(context.Background(), kind, time.Time{})
	if err != nil || len(evs) == 0 {
		return "", err
	}
	return evs[0].ID, nil
}
