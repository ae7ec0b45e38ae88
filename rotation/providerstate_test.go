package rotation_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
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

// Login stores the state a provider's login returns, sealed, with an
// audit event, and the next rotation starts from it; it refuses unknown
// credentials and providers without a login.
func TestLogin(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("chained", "fst", "max_age: 1h", "out=CHAINED")+credYAML("plain", "gen", "max_age: 1h", "out2=PLAIN"), setupOpts{})
		res := faulty.New(faulty.Config{StateDir: filepath.Join(b.dir, "chain"), Stateful: true})
		b.rotateOK(t, "chained")
		before := res.LastState()

		var prompted providers.LoginPrompt
		got, err := b.e.Login(t.Context(), "chained", "alice", func(p providers.LoginPrompt) { prompted = p })
		if err != nil {
			t.Fatalf("Login: %v", err)
		}
		if prompted.UserCode != "FLTY-CODE" || got.KeyID != b.kr.ActiveKeyID() || got.Metadata["state_digest"] == "" {
			t.Errorf("prompt %+v, result %+v", prompted, got)
		}
		after := res.LastState()
		if after == before {
			t.Fatal("the login did not start a new chain")
		}
		ps, err := st.GetProviderState(t.Context(), "chained")
		if err != nil {
			t.Fatal(err)
		}
		val, err := b.kr.Open("chained", store.ProviderStateAAD, ps.KeyID, ps.Sealed)
		if err != nil || faulty.StateDigest(val) != after {
			t.Fatalf("stored state (%v) is not the login's", err)
		}
		var logins []store.AuditEvent
		for _, ev := range b.audit(t, store.AuditFilter{CredentialID: "chained"}) {
			if ev.Action == "credential.login" {
				logins = append(logins, ev)
			}
		}
		if len(logins) != 1 || logins[0].Actor != "alice" || strings.Contains(string(logins[0].Data), "chain_") {
			t.Errorf("login audit events: %+v", logins)
		}
		// The next rotation continues from the login's state (the resource
		// refuses anything else).
		b.rotateOK(t, "chained")

		if _, err := b.e.Login(t.Context(), "plain", "alice", nil); !errors.Is(err, rotation.ErrLoginUnsupported) {
			t.Errorf("Login of a generated credential = %v, want ErrLoginUnsupported", err)
		}
		if _, err := b.e.Login(t.Context(), "nobody", "alice", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Login of an unknown credential = %v, want ErrNotFound", err)
		}
	})
}
