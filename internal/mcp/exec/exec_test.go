package exec_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/store"
)

// slowResult is the outcome of a slow call.
type slowResult struct {
	w   whoami
	err error
	at  time.Time // when it returned
}

// TestRestartOnRotation drives `rotator exec` with the SDK client over
// stdio, rotates the credential with the real engine during the session,
// and checks that no call fails, a slow call in flight at the cutover
// completes on the old server, and the next calls see the new value on a
// new server: under the stateless revision (no initialize; a long-lived
// subscriptions/listen stream open) and under 2025-11-25 (initialize
// replayed).
func TestRestartOnRotation(t *testing.T) {
	for name, protocol := range map[string]string{"stateless": "", "initialize-2025-11-25": "2025-11-25", "initialize-2025-06-18": "2025-06-18"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "1m")
			fp1 := fingerprint(h.value(t, h.current(t)))
			cs, cmd, stderr := h.connect(t, execSpec{Env: []string{"TEST_TOKEN=" + credID}}, protocol)
			ctx := t.Context()

			first, err := call(ctx, cs, "whoami", nil)
			if err != nil {
				t.Fatalf("whoami: %v\nstderr:\n%s", err, stderr)
			}
			if first.Fingerprint != fp1 {
				t.Fatalf("the server sees fingerprint %s, want the current value's %s", first.Fingerprint, fp1)
			}
			if first.MasterKeyVisible {
				t.Errorf("the server inherited %s", "ROTATOR_MASTER_KEY")
			}

			slow := make(chan slowResult, 1)
			go func() {
				w, err := call(ctx, cs, "slow", slowIn{MS: 1500})
				slow <- slowResult{w, err, time.Now()}
			}()
			time.Sleep(300 * time.Millisecond) // the slow call reaches the server
			calls := startCaller(ctx, cs, 50*time.Millisecond)
			v2 := h.rotate(t)
			fp2 := fingerprint(h.value(t, v2))
			waitFor(t, "a call answered with the new value", stderr, func() bool { return calls.saw(fp2) })
			time.Sleep(200 * time.Millisecond)
			results, errs := calls.finish()

			for _, err := range errs {
				t.Errorf("a call failed during the rotation: %v", err)
			}
			s := <-slow
			if s.err != nil {
				t.Fatalf("the slow call in flight at the cutover failed: %v", s.err)
			}
			if s.w.PID != first.PID || s.w.Fingerprint != fp1 || s.w.Slept != 1500 {
				t.Errorf("the slow call was answered by pid %d with %s (slept %d ms); want the first server (pid %d, %s, 1500 ms)",
					s.w.PID, s.w.Fingerprint, s.w.Slept, first.PID, fp1)
			}
			// Calls see the old value, then only the new one.
			seenNew := false
			for _, r := range results {
				switch {
				case r.Fingerprint == fp2:
					seenNew = true
					if r.PID == first.PID {
						t.Errorf("the new value came from the first server (pid %d): no restart?", r.PID)
					}
				case seenNew:
					t.Errorf("a call saw %s after one saw the new value", r.Fingerprint)
				case r.Fingerprint != fp1:
					t.Errorf("a call saw fingerprint %s, neither the old nor the new value", r.Fingerprint)
				}
			}
			after, err := call(ctx, cs, "whoami", nil)
			if err != nil || after.Fingerprint != fp2 || after.MasterKeyVisible {
				t.Errorf("after the rotation: %+v, %v", after, err)
			}

			if err := cs.Close(); err != nil {
				t.Errorf("closing the session: %v", err)
			}
			if code := exitCode(t, cmd); code != 0 {
				t.Errorf("exec exited %d; stderr:\n%s", code, stderr)
			}
			out := stderr.String()
			t.Logf("exec's stderr:\n%s", out)
			if !strings.Contains(out, "now runs with version "+v2.ID) {
				t.Errorf("stderr does not report the restart:\n%s", out)
			}
			h.canary(t, "exec's stderr", out)
			h.checkAudit(t, 2, 0)
		})
	}
}

// TestLateCutover: the server is still busy when the previous version's
// grace period ends. exec says so on stderr and in the audit log, switches
// new requests to a new server, and lets the old one finish its call.
func TestLateCutover(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1s")
	fp1 := fingerprint(h.value(t, h.current(t)))
	cs, cmd, stderr := h.connect(t, execSpec{Env: []string{"TEST_TOKEN=" + credID}}, "2025-11-25")
	ctx := t.Context()
	first, err := call(ctx, cs, "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The busy call outlasts the grace period (1s) by far, and the new
	// server's start even on a loaded machine.
	slow := make(chan slowResult, 1)
	go func() {
		w, err := call(ctx, cs, "slow", slowIn{MS: 15000})
		slow <- slowResult{w, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	calls := startCaller(ctx, cs, 50*time.Millisecond)
	v2 := h.rotate(t)
	fp2 := fingerprint(h.value(t, v2))
	waitFor(t, "a call answered with the new value", stderr, func() bool { return calls.saw(fp2) })
	sawNew := time.Now()
	_, errs := calls.finish()
	for _, err := range errs {
		t.Errorf("a call failed: %v", err)
	}
	if w, err := call(ctx, cs, "whoami", nil); err != nil || w.Fingerprint != fp2 || w.PID == first.PID {
		t.Errorf("a call after the late cutover: %+v, %v", w, err)
	}
	s := <-slow
	if s.err != nil || s.w.PID != first.PID || s.w.Fingerprint != fp1 {
		t.Errorf("the slow call on the old server: %+v, %v", s.w, s.err)
	}
	if !sawNew.Before(s.at) {
		t.Errorf("the new value was seen only after the busy call ended: exec waited for it instead of switching when the grace period ran out")
	}
	_ = cs.Close()
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("exec exited %d", code)
	}
	out := stderr.String()
	t.Logf("exec's stderr:\n%s", out)
	if !strings.Contains(out, "grace period was about to end") {
		t.Errorf("stderr does not say the cutover was late:\n%s", out)
	}
	h.canary(t, "exec's stderr", out)
	h.checkAudit(t, 2, 1)
}

// TestSignalOnRotation: --file with --on-rotate signal:HUP rewrites the
// file and signals the same server, which reloads it.
func TestSignalOnRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1m")
	fp1 := fingerprint(h.value(t, h.current(t)))
	path := filepath.Join(h.dir, "run", "token")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	cs, cmd, stderr := h.connect(t, execSpec{
		Files: []string{path + "=" + credID}, OnRotate: "signal:HUP", ChildEnv: []string{envTokenFile + "=" + path},
	}, "")
	ctx := t.Context()
	first, err := call(ctx, cs, "whoami", nil)
	if err != nil || first.Fingerprint != fp1 {
		t.Fatalf("whoami: %+v, %v (want %s)", first, err, fp1)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	calls := startCaller(ctx, cs, 50*time.Millisecond)
	v2 := h.rotate(t)
	fp2 := fingerprint(h.value(t, v2))
	waitFor(t, "a call answered with the new value", stderr, func() bool { return calls.saw(fp2) })
	results, errs := calls.finish()
	for _, err := range errs {
		t.Errorf("a call failed: %v", err)
	}
	for _, r := range results {
		if r.PID != first.PID {
			t.Errorf("a call was answered by pid %d, not the one server (pid %d): restarted?", r.PID, first.PID)
		}
	}
	_ = cs.Close()
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("exec exited %d; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the token file outlived exec: %v", err)
	}
	out := stderr.String()
	t.Logf("exec's stderr:\n%s", out)
	if !strings.Contains(out, "sent SIGHUP") {
		t.Errorf("stderr does not report the signal:\n%s", out)
	}
	h.canary(t, "exec's stderr", out)
}

// checkAudit checks the credential's value.read events (by the exec test
// reader) and exec.late_cutover events, and that none holds a value.
func (h *harness) checkAudit(t *testing.T, reads, late int) {
	t.Helper()
	var gotReads, gotLate int
	var all strings.Builder
	err := h.st.ScanAuditEvents(context.WithoutCancel(t.Context()), store.AuditFilter{CredentialID: credID}, func(ev store.AuditEvent) error {
		b, _ := json.Marshal(ev)
		all.Write(b)
		switch ev.Action {
		case delivery.ActionValueRead:
			var d delivery.ReadEvent
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.Reader != "uid:0 (exec-test)" || d.Purpose != "exec" {
				t.Errorf("value.read event %s: %+v, %v", ev.Data, d, err)
			}
			gotReads++
		case delivery.ActionExecLate:
			gotLate++
			var d struct {
				InFlight        int    `json:"in_flight"`
				Version         string `json:"version"`
				PreviousVersion string `json:"previous_version"`
			}
			// In flight: the busy call, and maybe a quick one that had not
			// been answered yet.
			if err := json.Unmarshal(ev.Data, &d); err != nil || ev.Actor != "uid:0 (exec-test)" || d.InFlight < 1 || d.Version == "" || d.PreviousVersion == "" {
				t.Errorf("exec.late_cutover event: actor %q, data %s", ev.Actor, ev.Data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotReads != reads || gotLate != late {
		t.Errorf("audit: %d value.read and %d exec.late_cutover events, want %d and %d", gotReads, gotLate, reads, late)
	}
	h.canary(t, "the audit log", all.String())
}

// TestServerRequestInFlight: a request from the server to the client
// (sampling) is in flight too: the restart waits for the client's answer,
// which reaches the server that asked.
func TestServerRequestInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1m")
	asked, release := make(chan struct{}, 1), make(chan struct{})
	cs, cmd, stderr := h.connectWith(t, execSpec{Env: []string{"TEST_TOKEN=" + credID}}, "2025-11-25", &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, _ *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			asked <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &mcp.CreateMessageResult{Model: "test", Role: "assistant", Content: &mcp.TextContent{Text: "hi"}}, nil
		},
	})
	ctx := t.Context()
	first, err := call(ctx, cs, "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := make(chan slowResult, 1)
	go func() {
		w, err := call(ctx, cs, "ask", nil)
		ask <- slowResult{w, err, time.Now()}
	}()
	<-asked
	v2 := h.rotate(t)
	waitFor(t, "exec to see the cutover", stderr, func() bool { return strings.Contains(stderr.String(), "rotated to version "+v2.ID) })
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(stderr.String(), "now runs with version") {
		t.Fatalf("exec restarted the server while its request to the client was in flight:\n%s", stderr)
	}
	close(release)
	a := <-ask
	if a.err != nil || a.w.PID != first.PID {
		t.Fatalf("the tool that asked the client: %+v, %v", a.w, a.err)
	}
	fp2 := fingerprint(h.value(t, v2))
	waitFor(t, "the new value", stderr, func() bool {
		w, err := call(ctx, cs, "whoami", nil)
		return err == nil && w.Fingerprint == fp2 && w.PID != first.PID
	})
	_ = cs.Close()
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("exec exited %d", code)
	}
	h.canary(t, "exec's stderr", stderr.String())
}

// TestCancelledRequest: a request the client cancelled is no longer in
// flight (the server need not answer it), so it does not hold the restart.
func TestCancelledRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1m")
	cs, cmd, stderr := h.connect(t, execSpec{Env: []string{"TEST_TOKEN=" + credID}}, "2025-11-25")
	ctx := t.Context()
	cctx, cancel := context.WithCancel(ctx)
	slow := make(chan error, 1)
	go func() {
		_, err := call(cctx, cs, "slow", slowIn{MS: 60000, Stubborn: true})
		slow <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-slow; err == nil {
		t.Fatal("the cancelled call succeeded")
	}
	start := time.Now()
	v2 := h.rotate(t)
	fp2 := fingerprint(h.value(t, v2))
	waitFor(t, "the new value", stderr, func() bool {
		w, err := call(ctx, cs, "whoami", nil)
		return err == nil && w.Fingerprint == fp2
	})
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the restart took %v: it waited for the cancelled call", took)
	}
	_ = cs.Close()
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("exec exited %d", code)
	}
}

// TestReplaysLogLevel: the log level the client set reaches the new server
// (the SDK server sends no log message until a level is set).
func TestReplaysLogLevel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1m")
	logs := make(chan string, 16)
	cs, cmd, stderr := h.connectWith(t, execSpec{Env: []string{"TEST_TOKEN=" + credID}}, "2025-11-25", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) { logs <- fmt.Sprint(req.Params.Data) },
	})
	ctx := t.Context()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	logged := func() (whoami, string) {
		t.Helper()
		w, err := call(ctx, cs, "log", nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-logs:
			return w, l
		case <-time.After(5 * time.Second):
			return w, ""
		}
	}
	first, l := logged()
	if want := fmt.Sprintf("pid %d", first.PID); l != want {
		t.Fatalf("log message %q before the rotation, want %q", l, want)
	}
	v2 := h.rotate(t)
	fp2 := fingerprint(h.value(t, v2))
	waitFor(t, "the new value", stderr, func() bool {
		w, err := call(ctx, cs, "whoami", nil)
		return err == nil && w.Fingerprint == fp2
	})
	second, l := logged()
	if second.PID == first.PID {
		t.Fatal("no restart")
	}
	if want := fmt.Sprintf("pid %d", second.PID); l != want {
		t.Errorf("log message %q from the new server, want %q: the log level was not replayed", l, want)
	}
	_ = cs.Close()
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("exec exited %d", code)
	}
}

// TestNewServerFailsToStart: when the new server dies before it is ready,
// the old one keeps serving (the previous value is still valid), exec says
// so, and tries again until the new one starts.
func TestNewServerFailsToStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1m")
	fp1 := fingerprint(h.value(t, h.current(t)))
	failIf := filepath.Join(h.dir, "fail")
	cs, cmd, stderr := h.connect(t, execSpec{Env: []string{"TEST_TOKEN=" + credID}, ChildEnv: []string{envFailIf + "=" + failIf}}, "2025-11-25")
	ctx := t.Context()
	first, err := call(ctx, cs, "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(failIf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	calls := startCaller(ctx, cs, 50*time.Millisecond)
	v2 := h.rotate(t)
	fp2 := fingerprint(h.value(t, v2))
	waitFor(t, "exec to report the failed start", stderr, func() bool {
		return strings.Contains(stderr.String(), "the new server exited with code 3 before it was ready; the running server keeps the previous value")
	})
	time.Sleep(300 * time.Millisecond)
	if calls.saw(fp2) {
		t.Fatal("a call saw the new value though no new server started")
	}
	if !calls.saw(fp1) {
		t.Fatal("no call was answered meanwhile")
	}
	if err := os.Remove(failIf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new value", stderr, func() bool { return calls.saw(fp2) })
	results, errs := calls.finish()
	for _, err := range errs {
		t.Errorf("a call failed: %v", err)
	}
	for _, r := range results {
		if r.Fingerprint == fp1 && r.PID != first.PID {
			t.Errorf("the old value came from pid %d", r.PID)
		}
	}
	t.Logf("exec's stderr:\n%s", stderr)
	h.canary(t, "exec's stderr", stderr.String())
	_ = cs.Close()
	if code := exitCode(t, cmd); code != 0 {
		t.Errorf("exec exited %d", code)
	}
}
