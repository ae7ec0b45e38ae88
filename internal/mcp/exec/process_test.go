package exec_test

import (
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcess checks, on real processes, that exec passes the exit code
// through (128+N for a signal), forwards signals, keeps rotator's master
// key from the child, and fails clearly before starting anything.
func TestProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1m")
	n := len(h.value(t, h.current(t)))
	type tc struct {
		spec execSpec
		// signal is sent to exec once the child printed "ready" on stderr.
		signal syscall.Signal
		code   int
		says   string
	}
	sh := func(script string) []string { return []string{"sh", "-c", script} }
	ready := "echo ready >&2; while :; do sleep 0.05; done"
	cases := map[string]tc{
		"exit code": {spec: execSpec{Env: []string{"TOK=" + credID}, Command: sh("exit 7")}, code: 7},
		"killed by a signal": {spec: execSpec{Env: []string{"TOK=" + credID}, Command: sh("kill -KILL $$")},
			code: 128 + int(syscall.SIGKILL)},
		"value set, master key dropped": {spec: execSpec{Env: []string{"TOK=" + credID},
			Command: sh(`test -n "$TOK" && test -z "$ROTATOR_MASTER_KEY" && test "${#TOK}" -eq ` + strconv.Itoa(n) + ` && exit 9; exit 1`)}, code: 9},
		"SIGTERM forwarded (restart)": {spec: execSpec{Env: []string{"TOK=" + credID}, Command: sh(`trap "exit 42" TERM; ` + ready)},
			signal: syscall.SIGTERM, code: 42},
		"SIGHUP forwarded (restart)": {spec: execSpec{Env: []string{"TOK=" + credID}, Command: sh(`trap "exit 43" HUP; ` + ready)},
			signal: syscall.SIGHUP, code: 43},
		"SIGTERM forwarded (none)": {spec: execSpec{Env: []string{"TOK=" + credID}, OnRotate: "none", Command: sh(`trap "exit 44" TERM; ` + ready)},
			signal: syscall.SIGTERM, code: 44},
		"SIGTERM kills a child without a handler": {spec: execSpec{Env: []string{"TOK=" + credID}, Command: sh(ready)},
			signal: syscall.SIGTERM, code: 128 + int(syscall.SIGTERM)},
		"unknown credential": {spec: execSpec{Env: []string{"TOK=no-such-credential"}, Command: sh("exit 0")},
			code: 1, says: `credential "no-such-credential": credential not found`},
		"command not found": {spec: execSpec{Env: []string{"TOK=" + credID}, Command: []string{"no-such-command-xyz"}},
			code: 1, says: `command "no-such-command-xyz" not found in PATH`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd, stderr := h.execCmd(t, c.spec)
			// The client's end stays open: exec must not take an EOF for
			// the end of the session.
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			cmd.Stdout = io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if c.signal != 0 {
				waitFor(t, "the child to be ready", stderr, func() bool { return strings.Contains(stderr.String(), "ready") })
				time.Sleep(50 * time.Millisecond) // the trap is set before the echo; exec's signal handler long before
				if err := cmd.Process.Signal(c.signal); err != nil {
					t.Fatal(err)
				}
			}
			if code := exitCode(t, cmd); code != c.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			if !strings.Contains(stderr.String(), c.says) {
				t.Errorf("stderr does not say %q:\n%s", c.says, stderr)
			}
			h.canary(t, "stderr", stderr.String())
		})
	}
}
