package rotation_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// TestLocalMintRecordedAtCutover: a Local provider's value (known to no one
// before rotator publishes it) of a credential without targets is recorded
// by the cutover commit, not by a write-ahead commit of its own: while the
// run is between mint and cutover the store holds no trace of the value and
// the run is still planned. A rollback records the minted version as
// discarded, as it does after a write-ahead commit, and a run with a target
// keeps the write-ahead commit.
func TestLocalMintRecordedAtCutover(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		mints := &mintCounter{}
		b := setup(t, st,
			credYAML("loc", "flocal", "max_age: 1h")+
				credYAML("loct", "flocal", "max_age: 1h", "out=LOCT"),
			setupOpts{engine: func(o *rotation.Options) { o.Observer = mints }})
		control := func(js string) {
			t.Helper()
			if err := os.WriteFile(filepath.Join(b.dir, "control-local.json"), []byte(js), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		first := b.rotateOK(t, "loc")
		b.checkSteps(t, first.ID, "mint:ok", "activate:ok", "verify:ok", "cutover:ok")
		if v := b.version(t, first.NewVersionID); v.Stage != store.StageCurrent || len(v.Sealed) == 0 {
			t.Fatalf("first version: stage %s, %d sealed bytes; want current and sealed", v.Stage, len(v.Sealed))
		}

		// Activate is slow: look at the store between mint and cutover.
		control(`{"delay": {"activate": "1500ms"}}`)
		for _, c := range []struct {
			id        string
			wantState rotation.State
		}{{"loc", rotation.StatePlanned}, {"loct", rotation.StateMinted}} {
			n := mints.n()
			runID := b.rotate(t, rotation.Request{Selection: ids(c.id)})
			waitFor(t, "the run of "+c.id+" to have minted", func() (bool, string) {
				return mints.n() > n, fmt.Sprintf("%d mints", mints.n())
			})
			mid := b.run(t, runID)
			pending := b.versions(t, c.id, store.StagePending)
			switch c.wantState {
			case rotation.StatePlanned: // Local, no target: nothing recorded yet
				if mid.State != string(rotation.StatePlanned) || mid.NewVersionID != "" || len(pending) != 0 {
					t.Errorf("%s between mint and cutover: run %s (new version %q), %d pending versions; want planned, none, 0",
						c.id, mid.State, mid.NewVersionID, len(pending))
				}
			default: // with a target the value is published before cutover: write-ahead
				waitFor(t, "the write-ahead commit of "+c.id, func() (bool, string) {
					r := b.run(t, runID)
					return r.State == string(rotation.StateMinted), r.State
				})
				if len(b.versions(t, c.id, store.StagePending)) != 1 {
					t.Errorf("%s: no pending version after the write-ahead commit", c.id)
				}
			}
			done := b.waitDone(t, runID)
			if done.State != string(rotation.StateSucceeded) {
				t.Fatalf("%s: run %s %q, want succeeded", c.id, done.State, done.Error)
			}
			if cur := b.cred(t, c.id).Current; cur == nil || cur.ID != done.NewVersionID {
				t.Errorf("%s: current version %v, want %s", c.id, cur, done.NewVersionID)
			}
		}

		// A verify failure rolls back: the minted version is recorded,
		// discarded, and the current one is untouched.
		before := b.cred(t, "loc").Current
		control(`{"fail": ["verify"]}`)
		rb := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("loc")}))
		if rb.State != string(rotation.StateRolledBack) || rb.NewVersionID == "" {
			t.Fatalf("run %s (new version %q), want rolled_back with its version", rb.State, rb.NewVersionID)
		}
		b.checkSteps(t, rb.ID, "mint:ok", "activate:ok", "verify:failed", "rollback_revoke:ok")
		if v := b.version(t, rb.NewVersionID); v.Stage != store.StageDiscarded || len(v.Sealed) != 0 || v.RetiredAt.IsZero() {
			t.Errorf("rolled-back version: %s, %d sealed bytes, retired %v; want discarded and cleared", v.Stage, len(v.Sealed), v.RetiredAt)
		}
		if cur := b.cred(t, "loc").Current; cur == nil || cur.ID != before.ID {
			t.Errorf("current version changed by a rolled-back run: %v -> %v", before, cur)
		}
		control(`{}`)
		if r := b.rotateOK(t, "loc"); r.State != string(rotation.StateSucceeded) {
			t.Fatalf("rotation after the rollback: %s", r.State)
		}
	})
}

// mintCounter is a rotation.Observer counting finished mint steps.
type mintCounter struct {
	mu    sync.Mutex
	mints int
}

func (m *mintCounter) RunFinished(rotation.RunFinished) {}

func (m *mintCounter) StepFinished(s rotation.StepFinished) {
	if s.Name == "mint" {
		m.mu.Lock()
		m.mints++
		m.mu.Unlock()
	}
}

func (m *mintCounter) n() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mints
}

// TestPermanentFailureIsNotRetried: a provider error wrapping
// providers.ErrPermanent (a revoked grant, a refused permission) ends the
// credential needs_attention at the first failure, unscheduled, instead of
// after MaxAttempts backoffs; an ordinary error is retried.
func TestPermanentFailureIsNotRetried(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("perm", "flt", "max_age: 1h")+credYAML("temp", "flt", "max_age: 1h"),
			setupOpts{engine: func(o *rotation.Options) { o.MaxAttempts = 5 }})
		b.rotateOK(t, "perm")
		b.rotateOK(t, "temp")

		b.control(t, `{"fail": ["verify"]}`)
		tr := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("temp")}))
		if tr.State != string(rotation.StateRolledBack) || strings.Contains(tr.Error, "permanent") {
			t.Fatalf("ordinary failure: run %s %q", tr.State, tr.Error)
		}
		if c := b.cred(t, "temp"); c.State.Status != store.StatusFailing || c.State.NextRotationAt.IsZero() {
			t.Errorf("after an ordinary failure: %s, next %v; want failing and rescheduled", c.State.Status, c.State.NextRotationAt)
		}

		b.control(t, `{"fail": ["verify"], "permanent": ["verify"]}`)
		pr := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("perm")}))
		if pr.State != string(rotation.StateRolledBack) || !strings.Contains(pr.Error, "permanent: not retried") {
			t.Fatalf("permanent failure: run %s %q; want rolled_back, not retried", pr.State, pr.Error)
		}
		c := b.cred(t, "perm")
		if c.State.Status != store.StatusNeedsAttention || !c.State.NextRotationAt.IsZero() || c.State.FailureCount != 1 {
			t.Errorf("after a permanent failure: %s, next %v, failures %d; want needs_attention, unscheduled, 1",
				c.State.Status, c.State.NextRotationAt, c.State.FailureCount)
		}
		if c.Current == nil || !b.resource().Valid(b.open(t, *c.Current)) {
			t.Error("the current value is no longer valid after a rolled-back run")
		}
		b.control(t, "")
		if r := b.rotateOK(t, "perm"); r.State != string(rotation.StateSucceeded) {
			t.Fatalf("rotation after fixing the cause: %s", r.State)
		}
	})
}
