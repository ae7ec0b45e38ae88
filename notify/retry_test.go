package notify_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/notify"
)

// httpReceiver posts to url and classifies the response with the shared
// helpers, as every HTTP receiver does.
func httpReceiver(url string) notify.Receiver {
	return notify.ReceiverFunc(func(ctx context.Context, msg notify.Message) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(msg.DeliveryID))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return notify.PostError(ctx, msg.Receiver, err)
		}
		return notify.CheckResponse(resp, time.Unix(1_800_000_000, 0))
	})
}

// fakeClock records the retry stage's sleeps instead of sleeping.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func setupRetry(t *testing.T, statuses []int, header http.Header) (*notify.Retrier, *fakeClock, *atomic.Int32, string) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body before answering, as a real receiver does: an
		// answer to an unread body can close the connection under the
		// client's write, which the client sees as a (retryable) network
		// error, and the test would then count a second request.
		_, _ = io.Copy(io.Discard, r.Body)
		i := int(n.Add(1)) - 1
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(statuses[min(i, len(statuses)-1)])
	}))
	t.Cleanup(srv.Close)
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	r := &notify.Retrier{Initial: time.Second, Max: 8 * time.Second, MaxAttempts: 5, Now: clk.Now, Sleep: clk.Sleep,
		Rand: func() float64 { return 0.5 }}
	return r, clk, &n, srv.URL
}

func TestRetrier(t *testing.T) {
	t.Parallel()
	msg := notify.Message{DeliveryID: "d1", Receiver: "hook"}
	t.Run("retries 5xx until delivered", func(t *testing.T) {
		t.Parallel()
		r, clk, n, url := setupRetry(t, []int{500, 502, 503, 200}, nil)
		var attempts []notify.Attempt
		if err := r.Deliver(context.Background(), httpReceiver(url), msg, func(a notify.Attempt) { attempts = append(attempts, a) }); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 4 || len(attempts) != 4 || attempts[3].Status != notify.AttemptDelivered {
			t.Fatalf("requests %d, attempts %+v", n.Load(), attempts)
		}
		// Exponential with jitter 0.5: d/2 + 0.5·d/2 = 0.75·d for d = 1s, 2s, 4s.
		want := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second}
		if len(clk.sleeps) != 3 || clk.sleeps[0] != want[0] || clk.sleeps[1] != want[1] || clk.sleeps[2] != want[2] {
			t.Fatalf("sleeps %v, want %v", clk.sleeps, want)
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		t.Parallel()
		r, clk, n, url := setupRetry(t, []int{429, 200}, http.Header{"Retry-After": {"7"}})
		if err := r.Deliver(context.Background(), httpReceiver(url), msg, nil); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 2 || len(clk.sleeps) != 1 || clk.sleeps[0] != 7*time.Second {
			t.Fatalf("requests %d, sleeps %v; want one sleep of 7s", n.Load(), clk.sleeps)
		}
	})
	t.Run("429 with an HTTP date", func(t *testing.T) {
		t.Parallel()
		at := time.Unix(1_800_000_000, 0).Add(20 * time.Second).UTC().Format(http.TimeFormat)
		r, clk, _, url := setupRetry(t, []int{429, 200}, http.Header{"Retry-After": {at}})
		if err := r.Deliver(context.Background(), httpReceiver(url), msg, nil); err != nil {
			t.Fatal(err)
		}
		if len(clk.sleeps) != 1 || clk.sleeps[0] != 20*time.Second {
			t.Fatalf("sleeps %v; want 20s", clk.sleeps)
		}
	})
	for _, code := range []int{400, 401, 403, 404, 410, 422} {
		t.Run("no retry on "+http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			r, clk, n, url := setupRetry(t, []int{code, 200}, nil)
			var attempts []notify.Attempt
			err := r.Deliver(context.Background(), httpReceiver(url), msg, func(a notify.Attempt) { attempts = append(attempts, a) })
			if !errors.Is(err, notify.ErrStatus) || n.Load() != 1 || len(clk.sleeps) != 0 {
				t.Fatalf("err %v, requests %d, sleeps %v", err, n.Load(), clk.sleeps)
			}
			if len(attempts) != 1 || attempts[0].Status != notify.AttemptFailed {
				t.Fatalf("attempts %+v", attempts)
			}
		})
	}
	t.Run("connection errors are retried, bounded", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String()
		_ = ln.Close() // nothing listens: connection refused
		clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
		var buf testlog.Buffer
		r := &notify.Retrier{MaxAttempts: 4, Now: clk.Now, Sleep: clk.Sleep, Logger: slog.New(slog.NewTextHandler(&buf, nil))}
		var attempts []notify.Attempt
		err = r.Deliver(context.Background(), httpReceiver(url), msg, func(a notify.Attempt) { attempts = append(attempts, a) })
		if !errors.Is(err, notify.ErrGaveUp) || len(attempts) != 4 || len(clk.sleeps) != 3 {
			t.Fatalf("err %v, attempts %d, sleeps %v", err, len(attempts), clk.sleeps)
		}
		if attempts[3].Status != notify.AttemptFailed || attempts[0].Status != notify.AttemptRetry {
			t.Fatalf("attempts %+v", attempts)
		}
		// The same error four times is logged once.
		if c := strings.Count(buf.String(), "notification attempt failed"); c != 1 {
			t.Fatalf("logged %d times, want 1:\n%s", c, buf.String())
		}
	})
	t.Run("logs again when the error changes", func(t *testing.T) {
		t.Parallel()
		r, _, _, url := setupRetry(t, []int{500, 500, 503, 503, 200}, nil)
		var buf testlog.Buffer
		r.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		if err := r.Deliver(context.Background(), httpReceiver(url), msg, nil); err != nil {
			t.Fatal(err)
		}
		if c := strings.Count(buf.String(), "notification attempt failed"); c != 2 {
			t.Fatalf("logged %d times, want 2:\n%s", c, buf.String())
		}
	})
	t.Run("a Retry-After beyond the time bound gives up", func(t *testing.T) {
		t.Parallel()
		r, clk, n, url := setupRetry(t, []int{503, 200}, http.Header{"Retry-After": {"3600"}})
		r.MaxElapsed = time.Minute
		err := r.Deliver(context.Background(), httpReceiver(url), msg, nil)
		if !errors.Is(err, notify.ErrGaveUp) || n.Load() != 1 || len(clk.sleeps) != 0 {
			t.Fatalf("err %v, requests %d, sleeps %v", err, n.Load(), clk.sleeps)
		}
	})
}

func TestBackoffBounded(t *testing.T) {
	t.Parallel()
	r := notify.Retrier{Initial: time.Second, Max: 10 * time.Second, Rand: func() float64 { return 0.999 }}
	for n := 1; n < 100; n++ {
		if d := r.Backoff(n); d > 10*time.Second || d < 500*time.Millisecond {
			t.Fatalf("Backoff(%d) = %s, want within [0.5s, 10s]", n, d)
		}
	}
}
