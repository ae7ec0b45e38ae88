package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/slack"
)

// The path of an incoming-webhook URL is its secret.
// rotator:ignore: test fixture (canary)
const urlToken = "/services/T000CANARY/B000CANARY/XXXXcanaryXXXX"

type bundle struct {
	mu     sync.Mutex
	bodies [][]byte
	status int
	header http.Header
}

func setup(t *testing.T, status int) (notify.Receiver, *bundle) {
	t.Helper()
	b := &bundle{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != urlToken || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		// Slack answers "invalid_payload" to a message it cannot render.
		var p slack.Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Text == "" || len(p.Attachments) != 1 || len(p.Attachments[0].Blocks) > 50 {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		for _, blk := range p.Attachments[0].Blocks {
			if blk.Text != nil && len(blk.Text.Text) > 3000 {
				http.Error(w, "invalid_blocks", http.StatusBadRequest)
				return
			}
		}
		b.mu.Lock()
		b.bodies = append(b.bodies, body)
		b.mu.Unlock()
		for k, v := range b.header {
			w.Header()[k] = v
		}
		if b.status != 0 {
			w.WriteHeader(b.status)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	rcv, err := slack.New(notify.NewRequest{Name: "oncall", Settings: settings.Map{"url": secret.NewString(srv.URL + urlToken)}})
	if err != nil {
		t.Fatal(err)
	}
	return rcv, b
}

func event(i int, kind notify.Kind) notify.Event {
	id := fmt.Sprintf("cred-%04d", i)
	return notify.Event{ID: fmt.Sprintf("ev%d", i), Kind: kind, Time: time.Unix(1_800_000_000, 0).UTC(), CredentialID: id,
		Consumer: "mcp-server-x", RunID: fmt.Sprintf("RUN%d", i), Runbook: "runbooks/generated.md#rotation",
		Links:   &notify.Links{Run: "https://rotator.example.com/runs/RUN", Runbook: "https://git.example.com/runbooks/generated.md#rotation"},
		Summary: "rotation of " + id + " rolled back", Reason: "provider returned 500"}
}

func TestSlack(t *testing.T) {
	t.Parallel()
	t.Run("one event: blocks with colour, credential, consumer and links", func(t *testing.T) {
		t.Parallel()
		rcv, b := setup(t, 0)
		if _, err := rcv.Notify(context.Background(), notify.Message{DeliveryID: "d1", Receiver: "oncall", Events: []notify.Event{event(1, notify.KindNeedsAttention)}}); err != nil {
			t.Fatal(err)
		}
		var p slack.Payload
		_ = json.Unmarshal(b.bodies[0], &p)
		text := string(b.bodies[0])
		if p.Attachments[0].Color != "#d00000" {
			t.Errorf("colour %s, want red for needs_attention", p.Attachments[0].Color)
		}
		for _, want := range []string{"cred-0001", "mcp-server-x", "<https://rotator.example.com/runs/RUN|RUN1>", "https://git.example.com/runbooks/generated.md#rotation"} {
			if !strings.Contains(text, want) {
				t.Errorf("payload lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("a burst of 1000 is one message naming all of them", func(t *testing.T) {
		t.Parallel()
		rcv, b := setup(t, 0)
		msg := notify.Message{DeliveryID: "d2", Receiver: "oncall"}
		for i := range 1000 {
			msg.Events = append(msg.Events, event(i, notify.KindRolledBack))
		}
		if _, err := rcv.Notify(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		if len(b.bodies) != 1 {
			t.Fatalf("%d messages", len(b.bodies))
		}
		for i := range 1000 {
			if !strings.Contains(string(b.bodies[0]), fmt.Sprintf("`cred-%04d`", i)) {
				t.Fatalf("the summary does not name cred-%04d", i)
			}
		}
	})
	t.Run("429 with Retry-After is retryable; the URL stays out of errors", func(t *testing.T) {
		t.Parallel()
		rcv, b := setup(t, 429)
		b.header = http.Header{"Retry-After": {"30"}}
		retry, err := rcv.Notify(context.Background(), notify.Message{DeliveryID: "d3", Events: []notify.Event{event(1, notify.KindRunFailed)}})
		ra, ok := err.(interface{ Unwrap() error })
		_ = ra
		if !retry || err == nil || !ok {
			t.Fatalf("retry %v err %v", retry, err)
		}
		var rae *notify.RetryAfterError
		if !asRetryAfter(err, &rae) || rae.After != 30*time.Second {
			t.Fatalf("no Retry-After of 30s in %v", err)
		}
		if strings.Contains(err.Error(), "CANARY") {
			t.Fatalf("error shows the webhook URL: %v", err)
		}
		for _, body := range b.bodies {
			if strings.Contains(string(body), "canary") || strings.Contains(string(body), "CANARY") {
				t.Fatalf("payload holds the webhook token")
			}
		}
	})
	t.Run("400 is not retried", func(t *testing.T) {
		t.Parallel()
		rcv, _ := setup(t, 400)
		if retry, err := rcv.Notify(context.Background(), notify.Message{DeliveryID: "d4", Events: []notify.Event{event(1, notify.KindRunFailed)}}); retry || err == nil {
			t.Fatalf("retry %v err %v", retry, err)
		}
	})
}

func asRetryAfter(err error, target **notify.RetryAfterError) bool {
	for err != nil {
		if r, ok := err.(*notify.RetryAfterError); ok {
			*target = r
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestValidate(t *testing.T) {
	t.Parallel()
	errs := slack.Factory().Validate(settings.Map{"url": "https://hooks.slack.com" + urlToken})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "must be a reference") || strings.Contains(errs[0].Error(), "CANARY") {
		t.Fatalf("a literal webhook URL: %v", errs)
	}
	if errs := slack.Factory().Validate(settings.Map{"url": "${env:SLACK_URL}", "username": "rotator"}); len(errs) != 0 {
		t.Fatalf("valid settings: %v", errs)
	}
}
