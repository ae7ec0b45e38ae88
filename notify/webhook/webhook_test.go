package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/webhook"
)

// verify is a Standard Webhooks verifier written from the specification
// (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
// independent of the signer: the secret is whsec_ + base64(key); the
// signed content is "{webhook-id}.{webhook-timestamp}.{body}"; the header
// holds space-separated "v1,<base64 HMAC-SHA256>" entries, any of which may
// match; timestamps outside a tolerance are refused.
func verify(secretStr string, h http.Header, body []byte, now time.Time) error {
	keyB64, ok := strings.CutPrefix(secretStr, "whsec_")
	if !ok {
		return errors.New("secret without whsec_ prefix")
	}
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing required headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("invalid timestamp")
	}
	if math.Abs(float64(now.Unix()-sec)) > 300 {
		return errors.New("timestamp outside tolerance")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

type request struct {
	header http.Header
	body   []byte
}

type bundle struct {
	secret string
	mu     sync.Mutex
	got    []request
	status []int
	srv    *httptest.Server
}

func (b *bundle) requests() []request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]request(nil), b.got...)
}

const canary = "CANARY-s3cr3t-credential-value-7f3a"

func setup(t *testing.T, status ...int) (notify.Receiver, *bundle) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b := &bundle{secret: "whsec_" + base64.StdEncoding.EncodeToString(key), status: status}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, request{header: r.Header.Clone(), body: body})
		code := 204
		if n := len(b.got) - 1; n < len(b.status) {
			code = b.status[n]
		}
		b.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(b.srv.Close)
	rcv, err := webhook.New(notify.NewRequest{Name: "hook", Settings: settings.Map{
		"url": secret.NewString(b.srv.URL + "/hooks/rotator"), "secret": secret.NewString(b.secret),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return rcv, b
}

func message() notify.Message {
	return notify.Message{DeliveryID: "msg_01JEXAMPLE", Receiver: "hook", GroupKey: "0:hook:{kind=rotation.cut_over}",
		Events: []notify.Event{{ID: "01JEV", Kind: notify.KindCutOver, Time: time.Now().UTC().Truncate(time.Second),
			CredentialID: "github-mcp-token", Consumer: "mcp-server-github", RunID: "01JRUN",
			NewVersion: &notify.Version{ID: "01JVER", Fingerprint: "a1b2c3d4e5f60708"}, Summary: "github-mcp-token cut over"}}}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	t.Run("signature verifies with the specification's algorithm", func(t *testing.T) {
		t.Parallel()
		rcv, b := setup(t)
		msg := message()
		if retry, err := rcv.Notify(context.Background(), msg); err != nil || retry {
			t.Fatalf("retry %v, err %v", retry, err)
		}
		got := b.requests()
		if len(got) != 1 {
			t.Fatalf("%d requests", len(got))
		}
		if err := verify(b.secret, got[0].header, got[0].body, time.Now()); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
		if got[0].header.Get("webhook-id") != msg.DeliveryID {
			t.Fatalf("webhook-id %q, want the delivery id", got[0].header.Get("webhook-id"))
		}
		var body webhook.Body
		if err := json.Unmarshal(got[0].body, &body); err != nil {
			t.Fatal(err)
		}
		if body.SchemaVersion != 1 || body.DeliveryID != msg.DeliveryID || len(body.Events) != 1 || body.Events[0].NewVersion.Fingerprint != "a1b2c3d4e5f60708" {
			t.Fatalf("body %s", got[0].body)
		}
		// A tampered body or another secret fails.
		if verify(b.secret, got[0].header, append(got[0].body, ' '), time.Now()) == nil {
			t.Fatal("a tampered body verified")
		}
		if verify("whsec_"+base64.StdEncoding.EncodeToString(make([]byte, 32)), got[0].header, got[0].body, time.Now()) == nil {
			t.Fatal("another secret verified")
		}
	})
	t.Run("the delivery id is the same on a retry", func(t *testing.T) {
		t.Parallel()
		rcv, b := setup(t, 503)
		r := notify.Retrier{Sleep: func(context.Context, time.Duration) error { return nil }}
		if err := r.Deliver(context.Background(), rcv, message(), nil); err != nil {
			t.Fatal(err)
		}
		got := b.requests()
		if len(got) != 2 || got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") || string(got[0].body) != string(got[1].body) {
			t.Fatalf("%d requests; ids %q %q", len(got), got[0].header.Get("webhook-id"), got[len(got)-1].header.Get("webhook-id"))
		}
		for _, g := range got {
			if err := verify(b.secret, g.header, g.body, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("classification", func(t *testing.T) {
		t.Parallel()
		for code, want := range map[int]bool{500: true, 502: true, 429: true, 400: false, 401: false, 404: false} {
			rcv, _ := setup(t, code)
			retry, err := rcv.Notify(context.Background(), message())
			if err == nil || retry != want {
				t.Errorf("status %d: retry %v err %v, want retry %v", code, retry, err, want)
			}
		}
	})
	t.Run("no secret in payload, headers or errors", func(t *testing.T) {
		t.Parallel()
		rcv, b := setup(t, 500)
		msg := message()
		msg.Events[0].Reason = "provider said no" // what the engine writes: never a value
		_, err := rcv.Notify(context.Background(), msg)
		for _, g := range b.requests() {
			all := string(g.body) + headerText(g.header)
			keyPart := strings.TrimPrefix(b.secret, "whsec_")
			if strings.Contains(all, canary) || strings.Contains(all, keyPart) {
				t.Fatalf("a secret reached the request:\n%s", all)
			}
		}
		if err == nil || strings.Contains(err.Error(), b.secret) || strings.Contains(err.Error(), "/hooks/rotator") {
			t.Fatalf("error %v names a secret or the URL path", err)
		}
	})
}

func headerText(h http.Header) string {
	var sb strings.Builder
	for k, v := range h {
		sb.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	return sb.String()
}

func TestValidate(t *testing.T) {
	t.Parallel()
	v := webhook.Factory().Validate
	cases := map[string]struct {
		s    settings.Map
		want string
	}{
		"ok":             {settings.Map{"url": "https://example.com/h", "secret": "${env:WH}"}, ""},
		"literal secret": {settings.Map{"url": "https://example.com/h", "secret": "whsec_abc"}, "secret: must be a reference"},
		"no url":         {settings.Map{"secret": "${env:WH}"}, "url: is required"},
		"bad url":        {settings.Map{"url": "ftp://x", "secret": "${env:WH}"}, "url: must be an http(s) URL"},
		"unknown key":    {settings.Map{"url": "https://example.com/h", "secret": "${env:WH}", "sekret": 1}, "sekret"},
	}
	for name, c := range cases {
		errs := v(c.s)
		var text []string
		for _, e := range errs {
			text = append(text, e.Error())
		}
		joined := strings.Join(text, "; ")
		if (c.want == "") != (len(errs) == 0) || !strings.Contains(joined, c.want) {
			t.Errorf("%s: errors %q, want %q", name, joined, c.want)
		}
		if strings.Contains(joined, "whsec_abc") {
			t.Errorf("%s: an error shows the secret", name)
		}
	}
	// A resolved secret of the wrong form is refused by New, without its value.
	_, err := webhook.New(notify.NewRequest{Name: "h", Settings: settings.Map{"url": secret.NewString("https://example.com"), "secret": secret.NewString(canary)}})
	if err == nil || strings.Contains(err.Error(), canary) {
		t.Fatalf("New with a malformed secret: %v", err)
	}
}
