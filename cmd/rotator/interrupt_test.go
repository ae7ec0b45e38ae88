package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRotateInterrupted presses Ctrl-C while `rotate --wait` executes runs
// itself (no service): it must exit 1 at once, report each credential's run
// as it stands in the store (runs whose last commit completed after the
// interrupt included), and leave every minted value recorded, so that the
// runs resume with it.
func TestRotateInterrupted(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)
			c.copyRunbooks(t)
			var cfg strings.Builder
			cfg.WriteString("providers:\n  gen:\n    type: generated\n    length: 40\ntargets:\n")
			for i := range 5 {
				fmt.Fprintf(&cfg, "  env%d:\n    type: file\n    path: ./run/env%d.env\n    format: dotenv\n", i, i)
			}
			cfg.WriteString("credentials:\n")
			const n = 200
			for i := range n {
				fmt.Fprintf(&cfg, "  - id: cred-%03d\n    consumer: mcp-%d\n    provider: gen\n    labels: {team: x}\n    max_age: 30d\n"+
					"    runbook: runbooks/generated.md#rotation\n    targets:\n      - {target: env%d, key: K%03d}\n", i, i%5, i%5, i)
			}
			writeFile(t, c.path("rotator.yaml"), cfg.String())
			c.must(t, 0, "apply", "-f", "rotator.yaml")

			cmd := exec.Command(rotatorBin, "rotate", "--selector", "team=x", "--wait", "-o", "json")
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
			var stderr strings.Builder
			var interrupted time.Time
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				stderr.WriteString(sc.Text() + "\n")
				if interrupted.IsZero() && strings.HasPrefix(sc.Text(), "rotating: ") {
					// The first progress line: runs are being executed.
					if err := cmd.Process.Signal(os.Interrupt); err != nil {
						t.Fatal(err)
					}
					interrupted = time.Now()
				}
			}
			err = cmd.Wait()
			r := result{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
			var ee *exec.ExitError
			if interrupted.IsZero() || !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("interrupted rotate: %v, want exit code 1 after Ctrl-C\n%s", err, r)
			}
			if d := time.Since(interrupted); d > 10*time.Second {
				t.Errorf("rotate took %s to stop after Ctrl-C", d)
			}
			if strings.Contains(r.stderr, "could not be recorded") {
				t.Errorf("a minted value was given up:\n%s", r)
			}
			reported := decodeWait(t, r.stdout)
			if len(reported) != n {
				t.Fatalf("%d credentials reported, want %d\n%s", len(reported), n, r)
			}

			// Each reported state is the stored one.
			var runs struct {
				Runs []struct {
					ID, State  string
					NewVersion *string `json:"new_version"`
				}
			}
			stored := c.must(t, 0, "runs", "list", "--limit", "1000", "-o", "json")
			if err := json.Unmarshal([]byte(stored.stdout), &runs); err != nil {
				t.Fatalf("runs list: %v\n%s", err, stored)
			}
			states, pending := map[string]string{}, map[string]string{}
			for _, run := range runs.Runs {
				states[run.ID] = run.State
				if run.State == "minted" && run.NewVersion != nil {
					pending[run.ID] = *run.NewVersion
				}
			}
			finished, minted := 0, 0
			for cred, w := range reported {
				if states[w.Run] != w.State {
					t.Errorf("%s: reported run %s %q, stored %q (error %q)", cred, w.Run, w.State, states[w.Run], w.Error)
				}
				switch w.State {
				case "succeeded":
					finished++
				case "minted":
					minted++
					if pending[w.Run] == "" {
						t.Errorf("%s: run %s is minted without its new version", cred, w.Run)
					}
				}
			}
			if finished == n {
				t.Fatalf("every run finished before Ctrl-C took effect; the test interrupted nothing\n%s", r)
			}
			t.Logf("at Ctrl-C: %d of %d succeeded, %d minted", finished, n, minted)

			// The interrupted runs resume, each with the value it minted.
			c.must(t, 0, "runs", "resume", "-o", "json")
			stored = c.must(t, 0, "runs", "list", "--limit", "1000", "-o", "json")
			if err := json.Unmarshal([]byte(stored.stdout), &runs); err != nil {
				t.Fatalf("runs list: %v\n%s", err, stored)
			}
			for _, run := range runs.Runs {
				if run.State != "succeeded" {
					t.Errorf("run %s is %s after resuming", run.ID, run.State)
				}
				if v, ok := pending[run.ID]; ok && (run.NewVersion == nil || *run.NewVersion != v) {
					t.Errorf("run %s minted %s before Ctrl-C but cut over to %v", run.ID, v, run.NewVersion)
				}
			}
			if len(runs.Runs) != n {
				t.Errorf("%d runs after resuming, want %d (one per credential)", len(runs.Runs), n)
			}
		})
	}
}
