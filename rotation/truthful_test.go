package rotation_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// A provider that cannot revoke (generated) never has a revoke step
// recorded ok: revoke_first and revoke_previous are skipped, with evidence
// that the value stays valid; a file target's stage step is skipped, since a
// file has no pending slot.
func TestStepsAreTruthful(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("plain", "gen", "max_age: 1h; grace: 1h", "out=PLAIN"), setupOpts{})
		v1 := b.version(t, b.rotateOK(t, "plain").NewVersionID)

		r := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("plain"), Emergency: true, RevokeFirst: true, Reason: "forced", Actor: "alice"}))
		if r.State != string(rotation.StateSucceeded) {
			t.Fatalf("run: %s %q", r.State, r.Error)
		}
		steps := b.checkSteps(t, r.ID, "revoke_first:skipped", "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok",
			"promote:out:ok", "cutover:ok", "revoke_previous:skipped")
		for _, i := range []int{0, 7} {
			ev := steps[i].Evidence
			if ev["version"] != v1.ID || ev["fingerprint"] != v1.Fingerprint ||
				!strings.Contains(ev["reason"], "provider gen cannot revoke values: this value stays valid until") {
				t.Errorf("%s evidence %v, want version %s and why the value stays valid", steps[i].Name, ev, v1.ID)
			}
		}
		if ev := steps[3].Evidence; !strings.Contains(ev["reason"], "a file has no pending slot") {
			t.Errorf("stage evidence %v", ev)
		}
		// The step that was skipped did not retire the value before minting:
		// the old version is retired at cutover, like any emergency's.
		if v := b.version(t, v1.ID); v.Stage != store.StageRetired {
			t.Errorf("old version %s, want retired at cutover", v.Stage)
		}
		// The audit events say so too.
		var outcomes []string
		for _, ev := range b.audit(t, store.AuditFilter{RunID: r.ID}) {
			var d struct {
				Outcome string `json:"outcome"`
			}
			if json.Unmarshal(ev.Data, &d) == nil && d.Outcome != "" {
				outcomes = append(outcomes, strings.TrimPrefix(ev.Action, "run.")+":"+d.Outcome)
			}
		}
		for _, want := range []string{"revoke_first:skipped", "stage:out:skipped", "revoke_previous:skipped"} {
			if !slices.Contains(outcomes, want) {
				t.Errorf("audit outcomes %v lack %s", outcomes, want)
			}
		}
	})
}

// Every version records the SHA-256 of its value, as servers log tokens.
func TestVersionRecordsValueHash(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("hashed", "flt", "max_age: 1h", "out=HASHED"), setupOpts{})
		v := b.version(t, b.rotateOK(t, "hashed").NewVersionID)
		sum := sha256.Sum256(b.open(t, v).Reveal())
		if got, want := v.Metadata[store.MetaSHA256], "sha256:"+hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("metadata sha256 %q, want %q", got, want)
		}
	})
}

// A granted scope the resource did not report is recorded as not reported,
// and no over-scope violation is inferred; one that verification reports
// settles it.
func TestUnreportedScope(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("quiet", "flt", "max_age: 1h; scope: [notes:read]", "out=QUIET"), setupOpts{})

		// The resource grants more, but says nothing about it.
		b.control(t, `{"grant": ["notes:admin"], "unreported_scope": ["mint", "verify"]}`)
		r := b.rotateOK(t, "quiet")
		v := b.version(t, r.NewVersionID)
		if v.ScopeReported() || len(v.GrantedScope) != 0 || v.Metadata[store.MetaGrantedScope] != store.ScopeNotReported {
			t.Errorf("version scope %q, metadata %v: want not reported", v.GrantedScope, v.Metadata)
		}
		if acts := auditActions(b.audit(t, store.AuditFilter{RunID: r.ID})); slices.Contains(acts, "policy.over_scoped") {
			t.Errorf("policy.over_scoped inferred from an unreported scope: %v", acts)
		}

		// Mint says nothing, verification (introspection) reports the grant.
		b.control(t, `{"grant": ["notes:admin"], "unreported_scope": ["mint"]}`)
		r = b.rotateOK(t, "quiet")
		v = b.version(t, r.NewVersionID)
		if !v.ScopeReported() || !slices.Equal(v.GrantedScope, []string{"notes:read", "notes:admin"}) {
			t.Errorf("version scope %q reported=%t, want what verification reported", v.GrantedScope, v.ScopeReported())
		}
		if acts := auditActions(b.audit(t, store.AuditFilter{RunID: r.ID})); !slices.Contains(acts, "policy.over_scoped") {
			t.Errorf("no policy.over_scoped for a reported over-grant: %v", acts)
		}
	})
}
