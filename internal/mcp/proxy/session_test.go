package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

type echoIn struct {
	N int `json:"n"`
}

type watchOut struct {
	Sent int `json:"sent"`
}

// mcpServer is an official SDK server with two tools: echo, and watch,
// which sends progress notifications on its response stream until stop is
// closed, each only after the client has received the one before (so a
// proxy that buffered the stream would stall it).
type mcpServer struct {
	srv   *mcp.Server
	stop  chan struct{}
	acked atomic.Int64 // the last progress the client received
}

func newMCPServer() *mcpServer {
	s := &mcpServer{srv: mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil), stop: make(chan struct{})}
	mcp.AddTool(s.srv, &mcp.Tool{Name: "echo", Description: "echoes n"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoIn, error) {
		return nil, in, nil
	})
	mcp.AddTool(s.srv, &mcp.Tool{Name: "watch", Description: "streams progress"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, watchOut, error) {
		tok := req.Params.GetProgressToken()
		for k := 1; ; k++ {
			if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(k), Message: "tick"}); err != nil {
				return nil, watchOut{}, fmt.Errorf("progress %d: %w", k, err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for s.acked.Load() < int64(k) {
				if time.Now().After(deadline) {
					return nil, watchOut{}, fmt.Errorf("progress %d did not reach the client within 5s: the stream is buffered", k)
				}
				time.Sleep(time.Millisecond)
			}
			select {
			case <-s.stop:
				return nil, watchOut{Sent: k}, nil
			case <-ctx.Done():
				return nil, watchOut{}, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	return s
}

// TestSessionThroughTwentyRotations is the acceptance test of issue 10:
// the official SDK client → rotator proxy → the official SDK
// streamable-HTTP server behind a check of the bearer token against the
// real store; 20 rotations by the real engine during one session, with a
// tool call every 50 ms, a progress stream open on a POST and the GET
// stream carrying server notifications: no call fails, and the client's
// own Authorization never reaches the upstream.
func TestSessionThroughTwentyRotations(t *testing.T) {
	for name, tc := range map[string]struct {
		grace    string
		poll     time.Duration
		interval time.Duration // after the proxy delivered a rotation's value, before the next
	}{
		// The upstream accepts the previous value until it is retired,
		// at once: the proxy's watch lags (up to its poll), so requests
		// meet 401s and are sent again with the value re-read. (Sent
		// once: the next rotation must not retire that value before the
		// retry arrives, hence an interval longer than the poll.)
		"previous retired at cutover": {grace: "0s", poll: 200 * time.Millisecond, interval: 500 * time.Millisecond},
		// The upstream accepts the previous value during the grace
		// period, as a server with overlap does: the watch picks up the
		// new value before it ends. (Grace periods are whole seconds.)
		"previous valid during grace": {grace: "1s", poll: 100 * time.Millisecond, interval: 50 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testSession(t, tc.grace, tc.poll, tc.interval)
		})
	}
}

func testSession(t *testing.T, grace string, poll, interval time.Duration) {
	w := newWorld(t, grace, poll)
	up := newMCPServer()
	rec := &seen{}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up.srv }, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	upstream := httptest.NewServer(requireBearer(h, rec, func(ctx context.Context) (map[string]bool, error) { return w.valid(ctx, "api") }))
	defer upstream.Close()

	p, err := proxy.New(w.src, []proxy.Upstream{{
		Name: "default", Listen: "127.0.0.1:0", URL: upstream.URL + "/mcp",
		Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}},
	}}, proxy.Options{Logger: w.log, Redactor: w.red})
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := startProxy(t, p)

	const clientSupplied = "Bearer client-supplied-passthrough-attempt"
	var progress, logs atomic.Int64
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			progress.Store(int64(r.Params.Progress))
			up.acked.Store(int64(r.Params.Progress))
		},
		LoggingMessageHandler: func(context.Context, *mcp.LoggingMessageRequest) { logs.Add(1) },
	})
	ctx := t.Context()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   proxyURL,
		HTTPClient: &http.Client{Transport: addHeader{name: "Authorization", value: clientSupplied, base: http.DefaultTransport}},
		MaxRetries: -1, // a broken stream must show, not be papered over
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}

	// The server sends a notification on the session's GET stream every
	// 100 ms.
	notifyCtx, stopNotify := context.WithCancel(ctx)
	var notifyWG sync.WaitGroup
	notifyWG.Go(func() {
		for k := 0; notifyCtx.Err() == nil; k++ {
			for ss := range up.srv.Sessions() {
				_ = ss.Log(notifyCtx, &mcp.LoggingMessageParams{Level: "info", Data: k})
			}
			select {
			case <-notifyCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	// The long stream.
	type result struct {
		res *mcp.CallToolResult
		err error
	}
	watchDone := make(chan result, 1)
	go func() {
		params := &mcp.CallToolParams{Name: "watch", Arguments: map[string]any{}}
		params.SetProgressToken("watch-1")
		res, err := cs.CallTool(ctx, params)
		watchDone <- result{res, err}
	}()

	// A tool call every 50 ms, each in its own goroutine so that a slow
	// answer does not thin out the calls (at most 8 at once: a machine
	// too slow for that skips a tick rather than pile calls up).
	var calls, failed, skipped, inFlight atomic.Int64
	var failMu sync.Mutex
	var failures []string
	callCtx, stopCalls := context.WithCancel(ctx)
	var callWG sync.WaitGroup
	call := func(n int) {
		defer callWG.Done()
		defer inFlight.Add(-1)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"n": n}})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %v", res.Content)
		}
		if err == nil && !strings.Contains(fmt.Sprint(res.StructuredContent), fmt.Sprint(n)) {
			err = fmt.Errorf("call %d answered %v", n, res.StructuredContent)
		}
		if err != nil {
			failed.Add(1)
			failMu.Lock()
			failures = append(failures, err.Error())
			failMu.Unlock()
		}
	}
	callWG.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-callCtx.Done():
				return
			case <-tick.C:
			}
			if inFlight.Load() >= 8 {
				skipped.Add(1)
				continue
			}
			calls.Add(1)
			inFlight.Add(1)
			callWG.Add(1)
			go call(n)
		}
	})

	time.Sleep(300 * time.Millisecond)
	before := w.current(t, "api")
	began := time.Now()
	for range 20 {
		w.rotate(t, "api")
		// The next rotation waits until the proxy delivered this one's
		// value (the upstream accepted it), as rotations minutes apart
		// do: a source slower than the rotations (a loaded machine under
		// -race) would otherwise hand out values already retired.
		cur := "Bearer " + w.current(t, "api")
		for deadline := time.Now().Add(time.Minute); !rec.accepted(cur); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the upstream saw no request with the new value within a minute of the rotation")
			}
		}
		time.Sleep(interval)
	}
	took := time.Since(began)
	if w.current(t, "api") == before {
		t.Fatal("the credential did not rotate")
	}
	logsAfterRotations := logs.Load()
	progressAfterRotations := progress.Load()
	time.Sleep(500 * time.Millisecond)
	stopCalls()
	callWG.Wait()
	close(up.stop)
	watch := <-watchDone
	stopNotify()
	notifyWG.Wait()
	if err := cs.Close(); err != nil {
		t.Errorf("closing the session: %v", err)
	}

	st := p.Stats()
	t.Logf("grace %s: 20 rotations in %v; %d calls (%d ticks skipped), %d failed; %d progress notifications on the POST stream, %d on the GET stream; proxy: %+v",
		grace, took.Round(time.Millisecond), calls.Load(), skipped.Load(), failed.Load(), progress.Load(), logs.Load(), st)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d tool calls failed, such as: %s", n, calls.Load(), failures[0])
		for l := range strings.Lines(w.logs.String()) {
			if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
				t.Log(l)
			}
		}
	}
	if calls.Load() < 40 {
		t.Errorf("only %d tool calls were made during %v of rotations (one every 50 ms; %d ticks skipped with 8 calls in flight)", calls.Load(), took, skipped.Load())
	}
	if watch.err != nil || watch.res.IsError {
		t.Errorf("the progress stream failed: %v %v", watch.err, watch.res)
	}
	if progress.Load() <= progressAfterRotations || progressAfterRotations < 20 {
		t.Errorf("the progress stream stalled: %d progress notifications after the rotations, %d at the end", progressAfterRotations, progress.Load())
	}
	if logs.Load() <= logsAfterRotations || logsAfterRotations < 10 {
		t.Errorf("the GET stream stalled: %d notifications after the rotations, %d at the end", logsAfterRotations, logs.Load())
	}
	if grace == "0s" && st.Retried == 0 {
		t.Errorf("no request was retried after a 401, although the previous value died at each cutover: %+v", st)
	}

	auth, headers, rejects := rec.snapshot()
	valid := map[string]bool{}
	for _, v := range w.everyValue(t, "api") {
		valid["Bearer "+v] = true
	}
	for _, a := range auth {
		if a == clientSupplied {
			t.Fatal("the client's own Authorization reached the upstream")
		}
		if !valid[a] {
			t.Fatalf("the upstream saw an Authorization that is no value of the credential")
		}
	}
	if int64(rejects) != st.Unauthorized {
		t.Errorf("the upstream rejected %d requests, the proxy counted %d 401s", rejects, st.Unauthorized)
	}
	var gets, deletes int
	sid := ""
	for _, h := range headers {
		if s := h.Get("Mcp-Session-Id"); s != "" {
			if sid != "" && s != sid {
				t.Errorf("two session ids reached the upstream: %s and %s", sid, s)
			}
			sid = s
		}
		if h.Get("X-Test-Method") == http.MethodGet {
			gets++
		}
		if h.Get("X-Test-Method") == http.MethodDelete {
			deletes++
		}
	}
	if sid == "" {
		t.Error("no request carried Mcp-Session-Id to the upstream")
	}
	if gets == 0 || deletes == 0 {
		t.Errorf("the upstream saw %d GET and %d DELETE requests; want the session's stream and its end", gets, deletes)
	}
	w.noCanary(t, "the logs", w.logs.String(), "api")
	w.noCanary(t, "the failures", strings.Join(failures, "\n"), "api")
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("the test's context ended early")
	}
}
