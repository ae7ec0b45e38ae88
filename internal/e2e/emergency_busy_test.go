package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// TestEmergencyAmidScheduledRuns: `rotate --all --emergency --wait` from
// the CLI while the service is busy with scheduled runs of the same
// credentials rotates every one of them, exit code 0. A scheduled run that
// ends (or that a worker takes) between the emergency's look at it and its
// cancel or its insert must not get the credential reported as skipped,
// "already rotating", with exit code 1 (seen by hand before the fix: 5
// skipped credentials in 2 of 5 emergencies over 300 credentials on
// "@every 10s").
func TestEmergencyAmidScheduledRuns(t *testing.T) {
	t.Parallel()
	for _, kind := range databases {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			const n, emergencies = 300, 8
			h := newHarness(t, kind, 8)
			var cfg strings.Builder
			cfg.WriteString("providers:\n  gen:\n    type: generated\n    length: 32\ncredentials:\n")
			for i := range n {
				fmt.Fprintf(&cfg, "  - id: busy-%03d\n    consumer: mcp-server-busy\n    provider: gen\n    schedule: \"@every 3s\"\n    max_age: 1h\n    grace: 0s\n    runbook: runbooks/e2e.md#rotation\n", i)
			}
			config := filepath.Join(h.dir, "rotator.yaml")
			writeFile(t, config, cfg.String())
			p := h.serve("serve", config)
			waitServing(t, p)
			for i := range emergencies {
				// Each emergency meets a burst of scheduled runs at another
				// point: the credentials fall due together, every 3s.
				list, err := h.st.ListCredentials(t.Context(), store.CredentialFilter{})
				if err != nil {
					t.Fatal(err)
				}
				due := list[0].State.NextRotationAt
				for _, c := range list {
					if c.State.NextRotationAt.Before(due) {
						due = c.State.NextRotationAt
					}
				}
				time.Sleep(time.Until(due.Add(time.Duration(i%4) * 60 * time.Millisecond)))
				out, err := h.cli("rotate", "--all", "--emergency", "--reason", fmt.Sprintf("drill %d", i), "--wait", "-o", "json")
				var res struct {
					Runs []struct {
						Credential string `json:"credential"`
						State      string `json:"state"`
						Skipped    bool   `json:"skipped"`
						Note       string `json:"note"`
					} `json:"runs"`
				}
				if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
					t.Fatalf("emergency %d: %v; output %q (%v)", i, jerr, out, err)
				}
				bad := 0
				for _, r := range res.Runs {
					if r.Skipped || r.State != "succeeded" {
						bad++
						t.Errorf("emergency %d: %s %s (skipped %v, %q)", i, r.Credential, r.State, r.Skipped, r.Note)
					}
				}
				if err != nil || len(res.Runs) != n {
					t.Errorf("emergency %d: %d runs, %d not rotated; %v", i, len(res.Runs), bad, err)
				}
			}
		})
	}
}
