package rotation_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers/faulty"
	"github.com/rotatorhq/rotator/rotation"
)

// A Stateful provider's state (a rotated refresh token) is sealed and
// stored with the pending version, and every Mint gets the newest one back:
// also after a run that rolled back (its version discarded, but the state
// its Mint consumed is gone at the resource). The faulty provider refuses any state but the last it
// issued, as a server with refresh token reuse detection does.
func TestProviderStateIsWriteAhead(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("chained", "fst", "max_age: 1h", "out=CHAINED"), setupOpts{})
		res := faulty.New(faulty.Config{StateDir: filepath.Join(b.dir, "chain"), Stateful: true})
		stored := func() string {
			t.Helper()
			ps, err := st.GetProviderState(t.Context(), "chained")
			if err != nil {
				t.Fatalf("provider state: %v", err)
			}
			if ps.KeyID != b.kr.ActiveKeyID() {
				t.Errorf("provider state sealed under %q, want the active key %q", ps.KeyID, b.kr.ActiveKeyID())
			}
			val, err := b.kr.Open("chained", store.ProviderStateAAD, ps.KeyID, ps.Sealed)
			if err != nil {
				t.Fatalf("open provider state: %v", err)
			}
			if bytes.Contains(ps.Sealed, val.Reveal()) {
				t.Error("the provider state is stored in clear")
			}
			return faulty.StateDigest(val)
		}

		b.rotateOK(t, "chained")
		if got, want := stored(), res.LastState(); got != want || want == "" {
			t.Fatalf("stored state %s, resource's last %s", got, want)
		}
		b.rotateOK(t, "chained")

		// Verify fails: the run rolls back, its version is discarded, but
		// the state its Mint produced is the one the resource expects next.
		b.control(t, "")
		if err := os.WriteFile(filepath.Join(b.dir, "control-fst.json"), []byte(`{"fail": ["verify"]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("chained")}))
		if r.State != string(rotation.StateRolledBack) {
			t.Fatalf("run with a failing verify: %s (%s), want rolled_back", r.State, r.Error)
		}
		if v := b.version(t, r.NewVersionID); v.Stage != store.StageDiscarded {
			t.Fatalf("pending version %s, want discarded", v.Stage)
		}
		if got, want := stored(), res.LastState(); got != want {
			t.Fatalf("after the rollback the stored state %s is not the resource's last %s", got, want)
		}
		if err := os.Remove(filepath.Join(b.dir, "control-fst.json")); err != nil {
			t.Fatal(err)
		}
		b.rotateOK(t, "chained")

		for _, line := range strings.Split(b.logs.String(), "\n") {
			if strings.Contains(line, "chain_") {
				t.Errorf("a provider state appears in the log: %s", line)
			}
		}
	})
}
