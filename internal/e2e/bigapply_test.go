//go:build soak

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/testconfig"
)

// bigApplyMaxRSS is the acceptance limit on apply's peak resident memory
// for 100,000 credentials (issue 9).
const bigApplyMaxRSS = 400 << 20

// TestBigApply applies a generated inventory of 100,000 credentials (about
// 42 MB; E2E_BIG_APPLY_N to change) to an empty database and again
// (nothing changes), on SQLite and Postgres, and checks that each run's
// peak resident memory stays at most 400 MB. It logs time and memory.
func TestBigApply(t *testing.T) {
	n := 100_000
	if s := os.Getenv("E2E_BIG_APPLY_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("E2E_BIG_APPLY_N: %v", err)
		}
	}
	for _, kind := range databases {
		t.Run(kind, func(t *testing.T) {
			h := newEmptyHarness(t, kind)
			path, err := testconfig.WriteFiles(h.dir, "big.yaml", n)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d credentials, %d bytes", path, n, st.Size())
			for _, round := range []string{"first", "again"} {
				out, rss, took := h.measure(t, "apply", "-f", path, "--max-config-size", "64MiB")
				t.Logf("%s apply on %s: %.1f s, peak RSS %d MB: %s", round, kind, took.Seconds(), rss>>20, lastLine(out))
				if rss > bigApplyMaxRSS {
					t.Errorf("%s apply on %s peaked at %d MB RSS, over %d MB", round, kind, rss>>20, bigApplyMaxRSS>>20)
				}
				want := fmt.Sprintf("%d created", n+5+2*testconfig.Targets)
				if round == "again" {
					want = "no changes"
				}
				if !strings.Contains(out, want) {
					t.Errorf("%s apply: %q, want %q", round, lastLine(out), want)
				}
			}
		})
	}
}

// measure runs rotator to its end and returns its standard output, its
// peak resident memory in bytes and its wall time.
func (h *harness) measure(t *testing.T, args ...string) (string, int64, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, args...)
	cmd.Dir = h.dir
	cmd.Env = h.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("rotator %s: %v\n%s", args[0], err, tail(stderr.String(), 20))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no resource usage for the child")
	}
	return stdout.String(), ru.Maxrss << 10, took // Maxrss is in KiB on Linux
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
