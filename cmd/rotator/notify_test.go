package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// attemptLines returns the lines of stderr that report an attempt.
func attemptLines(stderr string) []string {
	var out []string
	for l := range strings.Lines(stderr) {
		if strings.HasPrefix(l, "attempt ") {
			out = append(out, strings.TrimSuffix(l, "\n"))
		}
	}
	return out
}

// TestNotifyTestProgress: notify test reports every attempt on stderr as
// it happens (stdout keeps the result, the bare document with -o json),
// --attempts bounds the tries (1: no retry) and is checked, Ctrl-C ends it
// at once with the delivery recorded failed, and the receiver's URL
// password and token (canaries) are never printed.
func TestNotifyTestProgress(t *testing.T) {
	t.Parallel()
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var requests atomic.Int32
			failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				requests.Add(1)
				w.WriteHeader(http.StatusInternalServerError)
			}))
			t.Cleanup(failing.Close)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			refused := ln.Addr().String()
			_ = ln.Close() // nothing listens there: connection refused
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
			withCanaries := func(hostport string) string {
				// rotator:ignore: test fixture, a receiver URL whose password and token are canaries
				return "http://oncall:canary-pw-7f3a@" + hostport + "/hook?token=canary-tok-7f3a"
			}
			c := newCLI(t, kind, "HOOK_SECRET="+secret, "REFUSED_URL="+withCanaries(refused),
				"FAILING_URL="+withCanaries(strings.TrimPrefix(failing.URL, "http://")))
			writeFile(t, c.path("rotator.yaml"), `notify:
  receivers:
    refused:
      type: webhook
      url: ${env:REFUSED_URL}
      secret: ${env:HOOK_SECRET}
    failing:
      type: webhook
      url: ${env:FAILING_URL}
      secret: ${env:HOOK_SECRET}
  route:
    receiver: refused
`)
			c.must(t, 0, "migrate")

			for _, n := range []string{"0", "101"} {
				r := c.must(t, 2, "notify", "test", "refused", "-f", "rotator.yaml", "--attempts", n)
				if !strings.Contains(r.stderr, "--attempts "+n+": use a number from 1 to 100") {
					t.Fatalf("--attempts %s:\n%s", n, r)
				}
			}

			start := time.Now()
			r := c.must(t, 1, "notify", "test", "refused", "-f", "rotator.yaml", "--attempts", "2")
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("two attempts took %s", d)
			}
			lines := attemptLines(r.stderr)
			if len(lines) != 2 ||
				!regexp.MustCompile(`^attempt 1 failed: receiver refused: request failed: .*connection refused; next attempt in [0-9.]+m?s$`).MatchString(lines[0]) ||
				!regexp.MustCompile(`^attempt 2 failed: .*connection refused; giving up$`).MatchString(lines[1]) {
				t.Fatalf("want two attempt lines:\n%s", r)
			}
			if !strings.Contains(r.stdout, "failed after 2 attempt(s)") {
				t.Fatalf("stdout:\n%s", r)
			}
			// The error names the delivery and the last attempt's cause
			// once each, not the retry stage's account around them.
			if !regexp.MustCompile(`(?m)^rotator: test notification to refused: delivery [0-9A-Z]{26} failed after 2 attempt\(s\): receiver refused: request failed: dial tcp [^ ]+: connect: connection refused$`).MatchString(r.stderr) {
				t.Fatalf("want the last attempt's error as the command's error:\n%s", r)
			}

			r = c.must(t, 1, "notify", "test", "failing", "-f", "rotator.yaml", "--attempts", "1", "-o", "json")
			if n := requests.Load(); n != 1 {
				t.Fatalf("the receiver got %d requests, want 1", n)
			}
			ds := array(t, decodeObject(t, r.stdout, "deliveries"), "deliveries")
			if len(ds) != 1 || str(t, ds[0], "state") != "failed" {
				t.Fatalf("notify test -o json:\n%s", r)
			}
			if lines := attemptLines(r.stderr); len(lines) != 1 || lines[0] != "attempt 1 failed: receiver failing: unexpected HTTP status 500 Internal Server Error; giving up" {
				t.Fatalf("want one attempt line:\n%s", r)
			}

			// Ctrl-C during the retry stage's wait (8 attempts would take
			// over a minute).
			cmd := exec.Command(rotatorBin, "notify", "test", "refused", "-f", "rotator.yaml")
			cmd.Dir, cmd.Env = c.dir, c.env
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stderrLines := make(chan string)
			go func() {
				defer close(stderrLines)
				sc := bufio.NewScanner(pipe)
				for sc.Scan() {
					stderrLines <- sc.Text()
				}
			}()
			var stderr strings.Builder
			deadline := time.After(30 * time.Second)
		wait:
			for {
				select {
				case l, ok := <-stderrLines:
					if !ok {
						break wait
					}
					stderr.WriteString(l + "\n")
					if strings.HasPrefix(l, "attempt 1 failed") {
						if err := cmd.Process.Signal(os.Interrupt); err != nil {
							t.Fatal(err)
						}
						start = time.Now()
					}
				case <-deadline:
					_ = cmd.Process.Kill()
					for l := range stderrLines {
						stderr.WriteString(l + "\n")
					}
					_ = cmd.Wait()
					t.Fatalf("notify test did not end after Ctrl-C:\n%s", stderr.String())
				}
			}
			err = cmd.Wait()
			c.mu.Lock()
			c.printed = append(c.printed, stdout.String(), stderr.String())
			c.mu.Unlock()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || time.Since(start) > 5*time.Second {
				t.Fatalf("after Ctrl-C: %v after %s, want exit code 1 at once\n--- stdout:\n%s--- stderr:\n%s", err, time.Since(start), stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), "cancelled: interrupt signal received") || !strings.Contains(stdout.String(), "failed after 1 attempt(s)") {
				t.Fatalf("after Ctrl-C:\n--- stdout:\n%s--- stderr:\n%s", stdout.String(), stderr.String())
			}

			r = c.must(t, 0, "notify", "list", "-o", "json")
			ds = array(t, decodeObject(t, r.stdout, "deliveries"), "deliveries")
			if len(ds) != 3 {
				t.Fatalf("notify list:\n%s", r)
			}
			for i, want := range []struct {
				receiver, lastError string
				attempts            int
			}{{"refused", "cancelled: interrupt signal received", 1}, {"failing", "gave up retrying", 1}, {"refused", "connection refused", 2}} {
				d := ds[i] // newest first
				if str(t, d, "receiver") != want.receiver || str(t, d, "state") != "failed" || len(array(t, d, "attempts")) != want.attempts ||
					!strings.Contains(str(t, d, "last_error"), want.lastError) {
					t.Fatalf("delivery %d: %v, want %+v", i, d, want)
				}
			}

			c.mu.Lock()
			defer c.mu.Unlock()
			for _, p := range c.printed {
				if strings.Contains(p, "canary") || strings.Contains(p, secret) || strings.Contains(p, strings.TrimPrefix(secret, "whsec_")) {
					t.Fatalf("a command printed a secret:\n%s", p)
				}
			}
		})
	}
}
