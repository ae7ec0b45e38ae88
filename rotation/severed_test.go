package rotation_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/internal/testproxy"
	"github.com/rotatorhq/rotator/rotation"
)

// TestCutoverCommitSevered breaks the database connection just after the
// cutover's commit left for the server, as a database restart or a network
// fault can: the server commits, and the engine gets an error. Every target
// already holds the new value, and the store now says it is current, so the
// engine must not hand the targets the previous value back (the run would
// then retire the value consumers hold). The run resumes from what the
// store holds.
func TestCutoverCommitSevered(t *testing.T) {
	t.Parallel()
	proxy, st := proxiedStore(t)
	b := setup(t, st, credYAML("severed", "flt", "max_age: 1h; grace: 1h", "out=SEV"), setupOpts{noStart: true})
	execute := func(id string) error {
		_, _, err := b.e.Execute(t.Context(), id)
		return err
	}
	first := b.rotate(t, rotation.Request{Selection: ids("severed")})
	if err := execute(first); err != nil {
		t.Fatal(err)
	}
	prev := b.run(t, first).NewVersionID

	second := b.rotate(t, rotation.Request{Selection: ids("severed")})
	// The cutover's commit is the first batch that names the state.
	proxy.SeverAfter([]byte("cut_over"))
	if err := execute(second); err == nil {
		t.Fatal("the severed cutover returned no error: the proxy did not cut the commit's connection")
	}
	r := b.run(t, second)
	if r.State != string(rotation.StateCutOver) || r.NewVersionID == "" {
		t.Fatalf("run after the severed commit: %s, new version %q; want cut_over (the server committed)", r.State, r.NewVersionID)
	}
	cur := b.version(t, r.NewVersionID)
	want := b.open(t, cur).RevealString()
	if got := b.env(t, "out.env")["SEV"]; got != want {
		gotPrev := got == b.open(t, b.version(t, prev)).RevealString()
		t.Errorf("after the severed commit the target holds another value than the current one (the previous: %v)", gotPrev)
	}
	if logs := b.logs.String(); strings.Contains(logs, "restoring the previous value") {
		t.Error("the engine restored the previous value at the targets after a cutover that took effect")
	}

	// Resumed, the run waits out its grace with the new value in place.
	out, _, err := b.e.Execute(t.Context(), second)
	if err != nil || out != rotation.RetireLater {
		t.Fatalf("resumed run: %v, %v; want RetireLater", out, err)
	}
	if got := b.env(t, "out.env")["SEV"]; got != want {
		t.Error("the resumed run left another value than the current one at the target")
	}
	if v := b.version(t, prev); v.Stage != store.StagePrevious {
		t.Errorf("the previous version is %s, want previous (in its grace period)", v.Stage)
	}
}

// TestMintCommitSevered breaks the connection just after the commit that
// records a minted value left: the server records it, so the engine must
// not revoke it (revoke fails here, so that trying shows in the log), and
// the resumed run cuts over to it.
func TestMintCommitSevered(t *testing.T) {
	t.Parallel()
	proxy, st := proxiedStore(t)
	b := setup(t, st, credYAML("severed", "flt", "max_age: 1h", "out=SEV"), setupOpts{noStart: true})
	b.control(t, `{"fail": ["revoke"]}`)
	id := b.rotate(t, rotation.Request{Selection: ids("severed")})
	proxy.SeverAfter([]byte("minted"))
	if _, _, err := b.e.Execute(t.Context(), id); err == nil {
		t.Fatal("the severed mint commit returned no error: the proxy did not cut the commit's connection")
	}
	r := b.run(t, id)
	if r.State != string(rotation.StateMinted) || r.NewVersionID == "" {
		t.Fatalf("run after the severed commit: %s, new version %q; want minted (the server committed)", r.State, r.NewVersionID)
	}
	if logs := b.logs.String(); strings.Contains(logs, "revoking a minted value") {
		t.Errorf("the engine revoked a minted value the store had recorded:\n%s", logs)
	}
	if out, _, err := b.e.Execute(t.Context(), id); err != nil || out != rotation.Done {
		t.Fatalf("resumed run: %v, %v", out, err)
	}
	done := b.run(t, id)
	if done.State != string(rotation.StateSucceeded) || done.NewVersionID != r.NewVersionID {
		t.Fatalf("resumed run: %s %q, new version %s (want %s)", done.State, done.Error, done.NewVersionID, r.NewVersionID)
	}
	if got := b.env(t, "out.env")["SEV"]; got != b.open(t, b.version(t, r.NewVersionID)).RevealString() {
		t.Error("the target does not hold the value minted before the severed commit")
	}
}

// proxiedStore opens a migrated Postgres store whose connections go
// through a testproxy.
func proxiedStore(t *testing.T) (*testproxy.Proxy, store.Store) {
	t.Helper()
	u, err := url.Parse(testpg.New(t) + "&pool_max_conns=4")
	if err != nil {
		t.Fatal(err)
	}
	proxy := testproxy.New(t, u.Host)
	u.Host = proxy.Addr()
	st, err := postgres.Open(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := rotation.MigrateQueue(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	return proxy, st
}

// TestMintCommitLost loses the commit that records a minted value with its
// connection, before it reaches the server: nothing is recorded, so the
// engine revokes the value it minted and rolls the run back, and the
// rollback's commit must not name the version that was never written (it
// failed on runs_new_version_id_fkey, leaving the run planned). The next
// rotation succeeds.
func TestMintCommitLost(t *testing.T) {
	t.Parallel()
	proxy, st := proxiedStore(t)
	b := setup(t, st, credYAML("lost", "flt", "max_age: 1h", "out=LOST"), setupOpts{noStart: true})
	id := b.rotate(t, rotation.Request{Selection: ids("lost")})
	proxy.CutBefore([]byte("minted"))
	_, _, err := b.e.Execute(t.Context(), id)
	t.Logf("Execute with the mint commit lost: %v", err)
	r := b.run(t, id)
	if r.State != string(rotation.StateRolledBack) || r.NewVersionID != "" {
		t.Fatalf("run after the lost commit: %s %q, new version %q; want rolled_back, naming no version", r.State, r.Error, r.NewVersionID)
	}
	if n := b.resourceCount(t); n != 0 {
		t.Errorf("the resource accepts %d values after the rollback, want 0 (the minted value revoked)", n)
	}
	next := b.rotate(t, rotation.Request{Selection: ids("lost")})
	if out, _, err := b.e.Execute(t.Context(), next); err != nil || out != rotation.Done {
		t.Fatalf("next rotation: %v, %v", out, err)
	}
	if r := b.run(t, next); r.State != string(rotation.StateSucceeded) {
		t.Errorf("next rotation: %s %q", r.State, r.Error)
	}
}
