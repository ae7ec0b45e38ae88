package rotation_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// A run that needs a value sealed under a master key its process was not
// given ends failed at once, naming the key, instead of being retried; the
// credential needs attention and nothing is changed. Before cutover the
// current value is what cannot be opened; after it, the previous one at
// retirement.
func TestUnopenableValueFailsTheRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		keyA, keyB := secret.GenerateKey(), secret.GenerateKey()
		keyring := func(active secret.Key, older ...secret.Key) setupOpts {
			kr, err := secret.NewKeyring(active, older...)
			if err != nil {
				t.Fatal(err)
			}
			// No workers: each test step executes its run here, once.
			return setupOpts{noStart: true, engine: func(o *rotation.Options) { o.Keyring = kr }}
		}
		creds := credYAML("api", "gen", "max_age: 1h; grace: 1s", "out=API_KEY")
		execute := func(b *bundle, runID string, want rotation.Outcome) {
			t.Helper()
			got, _, err := b.e.Execute(ctx, runID)
			if err != nil || got != want {
				t.Fatalf("Execute(%s) = %v, %v; want outcome %v and no error (nothing to retry)", runID, got, err, want)
			}
		}
		checkFailed := func(b *bundle, runID string) store.Run {
			t.Helper()
			r := b.run(t, runID)
			if r.State != string(rotation.StateFailed) || r.Active {
				t.Fatalf("run %s: %s (active %v), want failed", runID, r.State, r.Active)
			}
			for _, want := range []string{keyA.ID, secret.EnvMasterKeyPrevious, "runbooks/master-key-rotation.md"} {
				if !strings.Contains(r.Error, want) {
					t.Errorf("run error %q does not name %q", r.Error, want)
				}
			}
			if c := b.cred(t, "api"); c.State.Status != store.StatusNeedsAttention {
				t.Errorf("credential status %s, want needs_attention", c.State.Status)
			}
			acts := auditActions(b.audit(t, store.AuditFilter{RunID: runID}))
			for _, want := range []string{"run.failed", "credential.needs_attention"} {
				if !slices.Contains(acts, want) {
					t.Errorf("audit events of run %s lack %s: %v", runID, want, acts)
				}
			}
			if evs := b.notes.events(); len(evs) != 1 || evs[0].Kind != notify.KindNeedsAttention || evs[0].RunID != runID {
				t.Errorf("notifications %+v, want one needs_attention for run %s", evs, runID)
			}
			// Terminal: executing it again (a retried job) does nothing.
			execute(b, runID, rotation.Done)
			return r
		}

		// The first value, sealed under key A.
		a := setup(t, st, creds, keyring(keyA))
		r1 := a.rotate(t, rotation.Request{Selection: ids("api")})
		execute(a, r1, rotation.Done)
		if r := a.run(t, r1); r.State != string(rotation.StateSucceeded) {
			t.Fatalf("run 1: %s %q", r.State, r.Error)
		}
		v1 := a.version(t, a.run(t, r1).NewVersionID)

		// Key B alone cannot open the current value: the run fails before
		// minting, and the current version is untouched.
		b := setup(t, st, creds, keyring(keyB))
		r2 := b.rotate(t, rotation.Request{Selection: ids("api")})
		execute(b, r2, rotation.Done)
		checkFailed(b, r2)
		if steps := b.steps(t, r2); len(steps) != 0 {
			t.Errorf("steps of run 2: %v, want none (nothing was called)", stepSummary(steps))
		}
		if got := b.version(t, v1.ID); got.Stage != store.StageCurrent || string(got.Sealed) != string(v1.Sealed) || got.KeyID != keyA.ID {
			t.Errorf("v1 after run 2: %s under %s, want current and unchanged under %s", got.Stage, got.KeyID, keyA.ID)
		}
		if vs := b.versions(t, "api"); len(vs) != 1 {
			t.Errorf("%d versions after run 2, want 1", len(vs))
		}

		// With B active and A previous, a rotation cuts over: the new value is
		// sealed under B, v1 (under A) waits for its grace.
		ba := setup(t, st, creds, keyring(keyB, keyA))
		r3 := ba.rotate(t, rotation.Request{Selection: ids("api")})
		execute(ba, r3, rotation.RetireLater)
		if c := ba.cred(t, "api"); c.State.Status == store.StatusNeedsAttention {
			t.Errorf("a rotation that cut over left the credential needs_attention")
		}
		time.Sleep(time.Until(rotation.OptionsOf(ba.run(t, r3)).RetireAfter.Add(50 * time.Millisecond)))

		// B alone retires it: v1 cannot be opened, the run fails at
		// retirement; the new value stays current.
		bb := setup(t, st, creds, keyring(keyB))
		execute(bb, r3, rotation.Done)
		run3 := checkFailed(bb, r3)
		if c := bb.cred(t, "api"); c.Current == nil || c.Current.ID != run3.NewVersionID {
			t.Errorf("current after run 3: %v, want the new version %s", c.Current, run3.NewVersionID)
		}
		if got := bb.version(t, v1.ID); got.Stage != store.StagePrevious || len(got.Sealed) == 0 {
			t.Errorf("v1 after run 3: %s with %d sealed bytes, want previous and kept", got.Stage, len(got.Sealed))
		}
	})
}
