package outbox_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/outbox"
	"github.com/rotatorhq/rotator/rotation"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

// clock is the injected time of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// received is one request a fake receiver got, at the test's clock time.
type received struct {
	at     time.Time
	header http.Header
	body   string
}

// server is an httptest receiver that answers with the statuses queued
// (then 200) and records every request.
type server struct {
	mu     sync.Mutex
	got    []received
	status []int
	clk    *clock
	srv    *httptest.Server
}

func newServer(t *testing.T, clk *clock) *server {
	s := &server{clk: clk}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, received{at: clk.Now(), header: r.Header.Clone(), body: string(b)})
		code := 200
		if len(s.status) > 0 {
			code, s.status = s.status[0], s.status[1:]
		}
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

type bundle struct {
	st          store.Store
	clk         *clock
	hook, slack *server
	hookSecret  string
	d           *outbox.Dispatcher
	// cfg and resolver build more dispatchers on the same store.
	cfg      *config.Config
	resolver *secret.Resolver
}

func noSleep(context.Context, time.Duration) error { return nil }

// rotator:ignore: test fixture (canary)
const slackToken = "/services/T0CANARY/B0CANARY/slackCANARYtoken"

const notifyYAML = `notify:
  links:
    run: https://rotator.example.com/runs/{run_id}
  receivers:
    hook:
      type: webhook
      url: ${env:HOOK_URL}
      secret: ${env:HOOK_SECRET}
    chat:
      type: slack
      url: ${env:SLACK_URL}
  route:
    receiver: chat
    group_wait: 30s
    group_interval: 1m
    repeat_interval: 4h
    routes:
      - receiver: hook
        kinds: [rotation.cut_over]
      - receiver: hook
        continue: true
      - receiver: chat
`

func openStore(t *testing.T, dialect string) store.Store {
	t.Helper()
	var st store.Store
	var err error
	if dialect == "postgres" {
		st, err = postgres.Open(t.Context(), testpg.New(t))
	} else {
		st, err = sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func setup(t *testing.T, dialect string) *bundle {
	t.Helper()
	b := &bundle{st: openStore(t, dialect), clk: &clock{t: time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)}}
	b.hook, b.slack = newServer(t, b.clk), newServer(t, b.clk)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b.hookSecret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	env := map[string]string{"HOOK_URL": b.hook.srv.URL + "/hook", "HOOK_SECRET": b.hookSecret, "SLACK_URL": b.slack.srv.URL + slackToken}
	cfg, err := config.Parse("rotator.yaml", []byte(notifyYAML), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.cfg, b.resolver = cfg, &secret.Resolver{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	b.d, err = outbox.New(outbox.Options{Store: b.st, Config: cfg.Notify, Now: b.clk.Now, Resolver: b.resolver,
		Retrier: notify.Retrier{Sleep: noSleep, MaxAttempts: 3}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// step runs what serve's leader task and delivery jobs do at this moment.
func (b *bundle) step(t *testing.T) {
	t.Helper()
	if err := b.d.Task(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.d.DeliverPending(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func failure(i int, at time.Time) notify.Event {
	id := fmt.Sprintf("cred-%04d", i)
	return notify.Event{ID: rotation.NewID(at), Kind: notify.KindRolledBack, Time: at, CredentialID: id, Consumer: "mcp-server-x",
		RunID: fmt.Sprintf("RUN%04d", i), Labels: map[string]string{"env": "prod"}, Summary: "rotation of " + id + " rolled back", Reason: "provider returned 500"}
}

var dialects = []string{"sqlite", "postgres"}

// TestBurst: 1,000 credentials fail at once (a rollback and a
// needs_attention each). Every receiver gets at most 10 messages in any
// minute, and its messages together name all 1,000.
func TestBurst(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			b := setup(t, dialect)
			var evs []notify.Event
			for i := range 1000 {
				ev := failure(i, b.clk.Now())
				attn := ev
				attn.ID, attn.Kind, attn.Summary = rotation.NewID(b.clk.Now()), notify.KindNeedsAttention, "credential "+ev.CredentialID+" needs attention"
				evs = append(evs, ev, attn)
			}
			if err := rotation.WriteEvents(t.Context(), b.st, evs...); err != nil {
				t.Fatal(err)
			}
			// Ten minutes of the service at 5s ticks; more failures of the
			// same credentials keep arriving during the first three.
			for i := 0; i < 120; i++ {
				if i > 0 && i < 36 && i%6 == 0 {
					more := []notify.Event{failure(i, b.clk.Now())}
					if err := rotation.WriteEvents(t.Context(), b.st, more...); err != nil {
						t.Fatal(err)
					}
				}
				b.step(t)
				b.clk.Add(5 * time.Second)
			}
			for name, srv := range map[string]*server{"hook": b.hook, "chat": b.slack} {
				got := srv.requests()
				if len(got) == 0 {
					t.Fatalf("%s got nothing", name)
				}
				for i := range got {
					n := 0
					for j := i; j < len(got) && got[j].at.Sub(got[i].at) < time.Minute; j++ {
						n++
					}
					if n > 10 {
						t.Fatalf("%s got %d messages in the minute from %s", name, n, got[i].at)
					}
				}
				named := map[string]bool{}
				re := regexp.MustCompile(`cred-\d{4}`)
				for _, r := range got {
					for _, m := range re.FindAllString(r.body, -1) {
						named[m] = true
					}
					if strings.Contains(r.body, b.hookSecret) || strings.Contains(r.body, "CANARY") || strings.Contains(headerText(r.header), "CANARY") ||
						strings.Contains(headerText(r.header), strings.TrimPrefix(b.hookSecret, "whsec_")) {
						t.Fatalf("%s: a secret reached a request", name)
					}
				}
				if len(named) != 1000 {
					t.Fatalf("%s: the messages name %d credentials, want 1000", name, len(named))
				}
				t.Logf("%s: %d messages for 2,006 events over 10 minutes", name, len(got))
			}
		})
	}
}

func headerText(h http.Header) string {
	var sb strings.Builder
	for k, v := range h {
		sb.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	return sb.String()
}

// TestDelivery: retried with the same delivery id, every attempt
// recorded, never sent again once delivered; a 4xx is not retried.
func TestDelivery(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			b := setup(t, dialect)
			b.hook.status = []int{503, 429, 200}
			b.slack.status = []int{404}
			if err := rotation.WriteEvents(t.Context(), b.st, failure(1, b.clk.Now())); err != nil {
				t.Fatal(err)
			}
			b.step(t) // routed; group_wait not over
			if len(b.hook.requests()) != 0 {
				t.Fatal("sent before group_wait")
			}
			b.clk.Add(30 * time.Second)
			b.step(t)
			b.step(t) // nothing more to send
			got := b.hook.requests()
			if len(got) != 3 {
				t.Fatalf("hook got %d requests, want 3 (503, 429, 200)", len(got))
			}
			id := got[0].header.Get("webhook-id")
			for _, r := range got {
				if r.header.Get("webhook-id") != id || r.body != got[0].body {
					t.Fatalf("a retry changed the delivery id or the body")
				}
			}
			if n := len(b.slack.requests()); n != 1 {
				t.Fatalf("slack (404) got %d requests, want 1: no retry on 4xx", n)
			}
			ds, err := b.st.ListNotifyDeliveries(t.Context(), store.DeliveryFilter{RunID: "RUN0001"})
			if err != nil || len(ds) != 2 {
				t.Fatalf("deliveries %+v, %v", ds, err)
			}
			states := map[string]store.NotifyDelivery{}
			for _, d := range ds {
				states[d.Receiver] = d
			}
			if h := states["hook"]; h.ID != id || h.State != store.DeliveryDelivered || h.Attempts != 3 {
				t.Fatalf("hook delivery %+v", h)
			}
			if c := states["chat"]; c.State != store.DeliveryFailed || !strings.Contains(c.LastError, "404") || strings.Contains(c.LastError, "CANARY") {
				t.Fatalf("chat delivery %+v", c)
			}
			as, err := b.st.ListNotifyAttempts(t.Context(), []string{id})
			if err != nil || len(as) != 3 || as[0].Status != notify.AttemptRetry || as[2].Status != notify.AttemptDelivered {
				t.Fatalf("attempts %+v, %v", as, err)
			}
			// Delivering again (a job run twice) sends nothing.
			if err := b.d.Deliver(t.Context(), id, false); err != nil {
				t.Fatal(err)
			}
			if len(b.hook.requests()) != 3 {
				t.Fatal("a delivered delivery was sent again")
			}
			// After the retention (30 days by default) both are pruned.
			b.clk.Add(31 * 24 * time.Hour)
			b.step(t)
			if ds, err := b.st.ListNotifyDeliveries(t.Context(), store.DeliveryFilter{}); err != nil || len(ds) != 0 {
				t.Fatalf("after the retention: %d deliveries, %v", len(ds), err)
			}
		})
	}
}

// TestRouting: machine kinds go only to routes that name them; a lasting
// state is muted within repeat_interval.
func TestRouting(t *testing.T) {
	t.Parallel()
	b := setup(t, "sqlite")
	now := b.clk.Now()
	cut := failure(1, now)
	cut.ID, cut.Kind = rotation.NewID(now), notify.KindCutOver
	attn := failure(2, now)
	attn.ID, attn.Kind = rotation.NewID(now), notify.KindNeedsAttention
	if err := rotation.WriteEvents(t.Context(), b.st, cut, attn); err != nil {
		t.Fatal(err)
	}
	b.clk.Add(time.Minute)
	b.step(t)
	// The same state again within repeat_interval: muted.
	again := attn
	again.ID = rotation.NewID(b.clk.Now())
	if err := rotation.WriteEvents(t.Context(), b.st, again); err != nil {
		t.Fatal(err)
	}
	b.clk.Add(5 * time.Minute)
	b.step(t)
	var kinds []string
	for _, r := range b.hook.requests() {
		var body struct{ Events []notify.Event }
		_ = json.Unmarshal([]byte(r.body), &body)
		for _, ev := range body.Events {
			kinds = append(kinds, string(ev.Kind)+"/"+ev.CredentialID)
		}
	}
	if strings.Join(kinds, ",") != "credential.needs_attention/cred-0002,rotation.cut_over/cred-0001" &&
		strings.Join(kinds, ",") != "rotation.cut_over/cred-0001,credential.needs_attention/cred-0002" {
		t.Fatalf("hook got %v", kinds)
	}
	for _, r := range b.slack.requests() {
		if strings.Contains(r.body, "cut_over") {
			t.Fatal("a machine kind reached the default route")
		}
	}
	if n := len(b.slack.requests()); n != 1 {
		t.Fatalf("chat got %d messages, want 1 (the repeat muted)", n)
	}
}
