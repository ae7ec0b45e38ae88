//go:build soak

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// TestQuickstart runs `rotator serve -f examples/quickstart.yaml` on SQLite
// for 3 minutes (E2E_SOAK_DURATION): notes-api-key (@every 1m, grace 30s)
// must rotate at least twice, its value in run/mcp.env must change at every
// cutover, and each previous version must be retired once its grace ends.
func TestQuickstart(t *testing.T) {
	h := newHarness(t, sqliteDB, 0)
	d := soakDuration(t, 3*time.Minute)
	_, self, _, _ := runtime.Caller(0)
	config := filepath.Join(filepath.Dir(self), "..", "..", "examples", "quickstart.yaml")
	if _, err := os.Stat(config); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(h.dir, "run", "mcp.env")
	ctx := context.Background()

	start := time.Now()
	p := h.serve("serve", config)

	// Watch the published value.
	var seen []string
	for time.Since(start) < d {
		if p.exited() {
			t.Fatalf("serve exited early: %v", p.err)
		}
		if env, err := readDotenv(envFile); err == nil {
			if v := env["NOTES_API_KEY"]; v != "" && (len(seen) == 0 || seen[len(seen)-1] != v) {
				seen = append(seen, v)
				t.Logf("%5.1fs: NOTES_API_KEY changed (%d)", time.Since(start).Seconds(), len(seen))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := p.stop(30 * time.Second); err != nil {
		t.Errorf("stopping serve: %v", err)
	}

	runs, err := h.runs("notes-api-key")
	if err != nil {
		t.Fatal(err)
	}
	succeeded := 0
	for _, r := range runs {
		t.Logf("run %s: %s, trigger %s, started %+.1fs, finished %+.1fs", r.ID, r.State, r.Trigger, r.StartedAt.Sub(start).Seconds(), r.FinishedAt.Sub(start).Seconds())
		switch rotation.State(r.State) {
		case rotation.StateSucceeded:
			succeeded++
		case rotation.StateRolledBack, rotation.StateFailed:
			t.Errorf("run %s ended %s: %s", r.ID, r.State, r.Error)
		}
	}
	if succeeded < 2 {
		t.Errorf("%d succeeded runs of notes-api-key in %s, want at least 2", succeeded, d)
	}

	// Every cutover published a new value: the values seen in the file
	// are the runs' versions, in order, each different from the last.
	var cutOver []store.Run
	for _, r := range runs {
		if s := rotation.State(r.State); s == rotation.StateSucceeded || s == rotation.StateCutOver || s == rotation.StateRetiringPrevious {
			cutOver = append(cutOver, r)
		}
	}
	if len(seen) != len(cutOver) {
		t.Errorf("the file showed %d values, but %d runs cut over", len(seen), len(cutOver))
	}
	for i, r := range cutOver {
		v, err := h.st.GetVersion(ctx, r.NewVersionID)
		if err != nil {
			t.Fatal(err)
		}
		if i < len(seen) && len(v.Sealed) > 0 && h.open(v) != seen[i] {
			t.Errorf("the %d-th value in the file is not the version of run %s", i+1, r.ID)
		}
	}

	// Each previous version was retired after its 30s grace (and soon after).
	for _, r := range runs {
		if r.OldVersionID == "" || r.State != string(rotation.StateSucceeded) {
			continue
		}
		old, err := h.st.GetVersion(ctx, r.OldVersionID)
		if err != nil {
			t.Fatal(err)
		}
		retireAfter := rotation.OptionsOf(r).RetireAfter
		steps, err := h.st.ListSteps(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var cut time.Time
		for _, s := range steps {
			if s.Name == "cutover" {
				cut = s.StartedAt
			}
		}
		switch {
		case old.Stage != store.StageRetired || len(old.Sealed) > 0:
			t.Errorf("previous version %s is %s after run %s", old.ID, old.Stage, r.ID)
		case (retireAfter.Sub(cut) - 30*time.Second).Abs() > time.Millisecond:
			t.Errorf("run %s: retire_after is %s after the cutover, want the 30s grace", r.ID, retireAfter.Sub(cut))
		case old.RetiredAt.Before(retireAfter) || old.RetiredAt.Sub(retireAfter) > 5*time.Second:
			t.Errorf("run %s: previous version retired %s after the end of grace, want within [0, 5s]", r.ID, old.RetiredAt.Sub(retireAfter))
		default:
			t.Logf("run %s: previous version retired %.1fs after cutover", r.ID, old.RetiredAt.Sub(cut).Seconds())
		}
	}

	// The other credentials got their first value, published to their files.
	creds, err := h.st.ListCredentials(ctx, store.CredentialFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 4 {
		t.Errorf("%d credentials, want the quickstart's 4", len(creds))
	}
	for _, c := range creds {
		if c.Current == nil {
			t.Errorf("%s has no current version", c.ID)
		}
	}
	if data, err := os.ReadFile(filepath.Join(h.dir, "run", "claude-desktop.json")); err != nil || len(data) == 0 {
		t.Errorf("run/claude-desktop.json was not written: %v", err)
	}
	assertNoLeak(t, []*proc{p}, seen...)
}
