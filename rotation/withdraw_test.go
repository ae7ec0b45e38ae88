package rotation_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// prune applies the base configuration with only creds, removing every
// other credential, and returns the diff (with the removals).
func (b *bundle) prune(t *testing.T, creds string) inventory.Diff {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ReplaceAll(baseConfig, "{{dir}}", b.dir) + creds
	cfg, err := config.Parse(filepath.Join(b.dir, "rotator.yaml"), []byte(doc), config.Options{BaseDir: root})
	if err != nil {
		t.Fatal(err)
	}
	diff, err := inventory.Apply(t.Context(), b.st, cfg, inventory.Options{Prune: true, Actor: "test"})
	if err != nil {
		t.Fatalf("apply --prune: %v", err)
	}
	return diff
}

func actionsOf(as []rotation.WithdrawAction) []string {
	var out []string
	for _, a := range as {
		at := a.Target
		if a.Action == rotation.ActionRevoke {
			at = a.Version
		}
		out = append(out, a.Credential+":"+a.Action+":"+at+":"+string(a.Outcome))
	}
	return out
}

func TestWithdrawRemovedCredentials(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		kept := credYAML("kept", "gen", "max_age: 1h", "out=KEPT")
		b := setup(t, st, kept+credYAML("gone", "flt", "max_age: 1h; grace: 1h", "out=GONE")+
			credYAML("plain", "gen", "max_age: 1h", "out2=PLAIN"), setupOpts{})
		res := b.resource()
		b.rotateOK(t, "kept")
		b.rotateOK(t, "plain")
		first := b.version(t, b.rotateOK(t, "gone").NewVersionID)
		r2 := b.rotate(t, rotation.Request{Selection: ids("gone")}) // cuts over; the first stays previous for the grace
		waitFor(t, "the second rotation to cut over", func() (bool, string) {
			r, err := st.GetRun(t.Context(), r2)
			return err == nil && r.State == string(rotation.StateCutOver), r.State
		})
		second := b.version(t, b.cred(t, "gone").Current.ID)
		vals := []secret.Value{b.open(t, first), b.open(t, second)}
		if b.env(t, "out.env")["GONE"] == "" {
			t.Fatal("GONE is not published before the prune")
		}

		diff := b.prune(t, kept)
		if len(diff.Removals) != 2 {
			t.Fatalf("%d removals, want gone and plain", len(diff.Removals))
		}
		acts, err := b.e.Withdraw(t.Context(), diff.Removals, rotation.WithdrawOptions{Revoke: true, Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		got := actionsOf(acts)
		want := []string{
			"gone:withdraw:out:ok", "gone:revoke:" + second.ID + ":ok", "gone:revoke:" + first.ID + ":ok",
			"plain:withdraw:out2:ok", "plain:revoke:" + b.cred0(t, diff, "plain") + ":skipped",
		}
		if !slices.Equal(got, want) {
			t.Errorf("actions\n got %v\nwant %v", got, want)
		}
		for _, a := range acts {
			if a.Credential == "plain" && a.Action == rotation.ActionRevoke && !strings.Contains(a.Detail, "cannot revoke values: this value stays valid until") {
				t.Errorf("plain's skipped revoke says %q", a.Detail)
			}
		}
		env := b.env(t, "out.env")
		if _, ok := env["GONE"]; ok || env["KEPT"] == "" {
			t.Errorf("out.env after withdraw: keys %v, want KEPT only", slices.Sorted(func(y func(string) bool) {
				for k := range env {
					if !y(k) {
						return
					}
				}
			}))
		}
		for i, v := range vals {
			if res.Valid(v) {
				t.Errorf("value %d of the removed credential is still valid at the resource", i)
			}
		}
		for _, v := range []store.Version{first, second} {
			if got := b.version(t, v.ID); got.Stage != store.StageRetired || len(got.Sealed) != 0 {
				t.Errorf("version %s: %s with %d sealed bytes, want retired and cleared", v.ID, got.Stage, len(got.Sealed))
			}
		}
		// Every action is an audit event of its credential, with its outcome.
		var recorded []string
		for _, ev := range b.audit(t, store.AuditFilter{CredentialID: "gone"}) {
			if !strings.HasPrefix(ev.Action, "credential.withdraw") && !strings.HasPrefix(ev.Action, "credential.revoke") {
				continue
			}
			var d rotation.WithdrawAction
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			if ev.Actor != "alice" {
				t.Errorf("%s by %q, want alice", ev.Action, ev.Actor)
			}
			recorded = append(recorded, ev.Action+":"+string(d.Outcome))
		}
		if !slices.Equal(recorded, []string{"credential.withdraw:ok", "credential.revoke:ok", "credential.revoke:ok"}) {
			t.Errorf("audit events %v", recorded)
		}
		for _, text := range []string{b.logs.String(), strings.Join(got, " ")} {
			for _, v := range vals {
				if strings.Contains(text, v.RevealString()) {
					t.Error("a removed credential's value leaked")
				}
			}
		}
	})
}

// cred0 is the id of the current version a removal recorded.
func (b *bundle) cred0(t *testing.T, d inventory.Diff, id string) string {
	t.Helper()
	for _, r := range d.Removals {
		if r.Credential.ID == id && r.Credential.Current != nil {
			return r.Credential.Current.ID
		}
	}
	t.Fatalf("no removal of %s with a current version", id)
	return ""
}

// Without --revoke the values are left valid and each is reported skipped,
// with its expiry; a failing revoke is reported and recorded, and the
// removal stays committed.
func TestWithdrawWithoutRevokeAndFailures(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("a", "flt", "max_age: 1h", "out=A")+credYAML("b", "flt", "max_age: 1h", "out=B"), setupOpts{})
		res := b.resource()
		va := b.version(t, b.rotateOK(t, "a").NewVersionID)
		vb := b.version(t, b.rotateOK(t, "b").NewVersionID)

		diff := b.prune(t, credYAML("b", "flt", "max_age: 1h", "out=B"))
		acts, err := b.e.Withdraw(t.Context(), diff.Removals, rotation.WithdrawOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := actionsOf(acts); !slices.Equal(got, []string{"a:withdraw:out:ok", "a:revoke:" + va.ID + ":skipped"}) {
			t.Fatalf("actions %v", got)
		}
		if d := acts[1].Detail; !strings.Contains(d, "not revoked (apply without --revoke)") || !strings.Contains(d, "stays valid at provider flt until") {
			t.Errorf("detail %q", d)
		}
		if !res.Valid(b.open(t, va)) {
			t.Error("the value was revoked without --revoke")
		}

		b.control(t, `{"fail": ["revoke"]}`)
		diff = b.prune(t, "")
		acts, err = b.e.Withdraw(t.Context(), diff.Removals, rotation.WithdrawOptions{Revoke: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := actionsOf(acts); !slices.Equal(got, []string{"b:withdraw:out:ok", "b:revoke:" + vb.ID + ":failed"}) || !strings.Contains(acts[1].Error, "injected failure") {
			t.Fatalf("actions %v (%q)", got, acts[1].Error)
		}
		if _, err := st.GetCredential(t.Context(), "b"); err == nil {
			t.Error("a failed revoke undid the removal")
		}
		if v := b.version(t, vb.ID); v.Stage == store.StageRetired {
			t.Error("a version whose revoke failed was retired")
		}
		var outcome string
		for _, ev := range b.audit(t, store.AuditFilter{CredentialID: "b"}) {
			if ev.Action == "credential.revoke" {
				var d rotation.WithdrawAction
				_ = json.Unmarshal(ev.Data, &d)
				outcome = string(d.Outcome) + ":" + d.Error
			}
		}
		if !strings.HasPrefix(outcome, "failed:") || !strings.Contains(outcome, "injected failure") {
			t.Errorf("recorded revoke %q, want failed with the error", outcome)
		}
	})
}
