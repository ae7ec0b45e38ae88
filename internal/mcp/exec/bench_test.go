package exec_test

import (
	"bufio"
	"context"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/mcp/exec"
	"github.com/rotatorhq/rotator/internal/secret"
)

// BenchmarkCutoverIdle measures the restart of an idle server on a
// cutover: exec runs in this process between the SDK client (over pipes,
// protocol 2025-11-25, so the initialize handshake is replayed) and the
// test server (a real process); each iteration rotates the credential with
// the engine on SQLite and waits for the switch.
//
// Metrics: ms-slowest-call is the slowest of the calls a client makes back
// to back through all the cutovers (the pause a client sees); ms-ready/op is the time from the decision to restart (the new
// server started) to the new server ready (it answered the replayed
// initialize), while the old server still serves; ms-pause/op is the time
// from then to the client moved over, the longest a request arriving
// meanwhile is held (the old server being idle).
//
//	go test -run '^$' -bench CutoverIdle -benchtime 20x ./internal/mcp/exec/
func BenchmarkCutoverIdle(b *testing.B) {
	h := newHarness(b, "0s")
	ctx := b.Context()
	st := h.st
	src, err := delivery.NewLocal(delivery.LocalOptions{Store: st, Keyring: h.kr, Reader: "bench", Poll: 5 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	switches := make(chan exec.Switch, 1)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envRole+"=") {
			env = append(env, kv)
		}
	}
	tok, _ := exec.ParseEnv("TEST_TOKEN=" + credID)
	opts := exec.Options{
		Source: src, Command: []string{os.Args[0]}, Environ: append(env, envRole+"="+roleServer),
		Env: []exec.Binding{tok}, Stdin: inR, Stdout: outW, Stderr: io.Discard, Redactor: &secret.Redactor{},
		OnSwitch: func(s exec.Switch) { switches <- s },
	}
	done := make(chan int, 1)
	go func() {
		code, err := exec.Run(context.WithoutCancel(ctx), opts)
		if err != nil {
			b.Error(err)
		}
		_ = outW.Close()
		done <- code
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := call(ctx, cs, "whoami", nil); err != nil {
		b.Fatal(err)
	}
	// The slowest of back-to-back calls without a cutover, for comparison
	// (on a loaded machine the scheduler makes some calls slow).
	var quiet time.Duration
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		start := time.Now()
		if _, err := call(ctx, cs, "whoami", nil); err != nil {
			b.Fatal(err)
		}
		quiet = max(quiet, time.Since(start))
	}
	// A client calling the server back to back through every cutover:
	// its slowest call is the pause a client sees.
	var slowest time.Duration
	stopCalls, callsDone := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopCalls:
				callsDone <- nil
				return
			default:
			}
			start := time.Now()
			if _, err := call(ctx, cs, "whoami", nil); err != nil {
				callsDone <- err
				return
			}
			slowest = max(slowest, time.Since(start))
		}
	}()
	var ready, pause time.Duration
	for b.Loop() {
		v := h.rotate(b)
		s := <-switches
		ready += s.Ready.Sub(s.Decided)
		pause += s.Switched.Sub(s.Ready)
		b.StopTimer()
		w, err := call(ctx, cs, "whoami", nil)
		if err != nil || w.Fingerprint != fingerprint(h.value(b, v)) {
			b.Fatalf("after the switch: %+v, %v", w, err)
		}
		b.StartTimer()
	}
	close(stopCalls)
	if err := <-callsDone; err != nil {
		b.Errorf("a call during the cutovers failed: %v", err)
	}
	b.ReportMetric(float64(slowest.Microseconds())/1000, "ms-slowest-call")
	b.ReportMetric(float64(quiet.Microseconds())/1000, "ms-slowest-call-no-cutover")
	b.ReportMetric(float64(ready.Microseconds())/1000/float64(b.N), "ms-ready/op")
	b.ReportMetric(float64(pause.Microseconds())/1000/float64(b.N), "ms-pause/op")
	_ = cs.Close()
	if code := <-done; code != 0 {
		b.Errorf("exec ended with %d", code)
	}
}

// BenchmarkServerStart is the baseline of BenchmarkCutoverIdle: the test
// server started directly (no exec) until it answers initialize. The
// difference between the two is exec's own part of a restart.
//
//	go test -run '^$' -bench ServerStart -benchtime 20x ./internal/mcp/exec/
func BenchmarkServerStart(b *testing.B) {
	init := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}` + "\n")
	for b.Loop() {
		cmd := osexec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envRole+"="+roleServer)
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if _, err := in.Write(init); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.Contains(line, `"id":1`) {
			b.Fatalf("initialize: %q, %v", line, err)
		}
		b.StopTimer()
		_ = in.Close()
		_ = cmd.Wait()
		b.StartTimer()
	}
}
