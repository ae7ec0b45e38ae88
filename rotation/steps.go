package rotation

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/targets"
)

// This file holds what keeps the records of a run truthful: a step is
// recorded ok only when it did what its name says (state.go, StepState).

// recordAs appends a step row in state (failed whenever err is set) and its
// audit event; they are written by the next commit.
func (x *execution) recordAs(name string, started time.Time, state StepState, err error, evidence map[string]string) {
	now := x.e.now()
	st := store.Step{RunID: x.run.ID, Seq: x.seq, Name: name, State: string(state), Attempt: x.run.Attempt, StartedAt: started, FinishedAt: now, Evidence: evidence}
	if err != nil {
		st.State = string(StepFailed)
		st.Error = x.scrub(err)
	}
	x.seq++
	x.steps = append(x.steps, st)
	if o := x.e.opts.Observer; o != nil {
		o.StepFinished(StepFinished{Name: name, Outcome: st.State, Duration: now.Sub(started)})
	}
	data := map[string]any{"step": name, "outcome": st.State}
	if st.Error != "" {
		data["error"] = st.Error
	}
	if len(evidence) > 0 {
		data["evidence"] = evidence
	}
	x.event("run."+name, data)
}

// recordRevoke records a revoke step (revoke_first, revoke_previous,
// rollback_revoke) of version v: ok when the provider revoked the value,
// skipped when the provider cannot revoke values (its Revoke, if called,
// invalidated nothing), failed with err.
func (x *execution) recordRevoke(step string, started time.Time, err error, v store.Version) {
	ev := map[string]string{"version": v.ID, "fingerprint": v.Fingerprint}
	state := StepOK
	if !x.caps.Revocable {
		state = StepSkipped
		ev["reason"] = stillValid(x.cred.Provider, v)
	}
	x.recordAs(step, started, state, err, ev)
}

// skipRevoke records a revoke step that was not attempted because the
// provider cannot revoke values.
func (x *execution) skipRevoke(step string, v store.Version) {
	x.recordRevoke(step, x.e.now(), nil, v)
}

// stillValid says that a value the provider cannot revoke stays valid, and
// until when.
func stillValid(provider string, v store.Version) string {
	until := "it expires"
	if v.ExpiresAt.IsZero() {
		until = "it is removed at the resource (it has no expiry)"
	} else {
		until += " at " + v.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("provider %s cannot revoke values: this value stays valid until %s", provider, until)
}

// recordStage records a stage step: skipped when the target published
// nothing and did not need to (targets.ErrSkipped, with its reason), else ok
// or failed. It returns err unless the step was skipped.
func (x *execution) recordStage(step string, started time.Time, err error) error {
	if errors.Is(err, targets.ErrSkipped) {
		x.recordAs(step, started, StepSkipped, nil, map[string]string{"reason": skipReason(x.scrub(err))})
		return nil
	}
	x.record(step, started, err, nil)
	return err
}

// skipReason is the text of a targets.ErrSkipped error after "skipped: ".
func skipReason(msg string) string {
	_, reason, ok := strings.Cut(msg, targets.ErrSkipped.Error()+": ")
	if !ok {
		return msg
	}
	return reason
}

// mintedScope is the granted scope a new version records: none when the
// resource did not report one (then it is unknown, not empty).
func mintedScope(resp providers.MintResponse) []string {
	if resp.ScopeNotReported {
		return nil
	}
	return resp.GrantedScope
}

// versionMetadata is the metadata a new version records: the provider's,
// plus the value's SHA-256 (store.MetaSHA256) and, when the resource did not
// report the granted scope, store.MetaGrantedScope.
func versionMetadata(resp providers.MintResponse) map[string]string {
	meta := make(map[string]string, len(resp.Metadata)+2)
	maps.Copy(meta, resp.Metadata)
	meta[store.MetaSHA256] = valueSHA256(resp.Value)
	delete(meta, store.MetaGrantedScope)
	if resp.ScopeNotReported {
		meta[store.MetaGrantedScope] = store.ScopeNotReported
	}
	return meta
}

// valueSHA256 returns "sha256:" and the hex SHA-256 of v, the form in which
// servers commonly log the tokens they receive.
func valueSHA256(v secret.Value) string {
	sum := sha256.Sum256(v.Reveal())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// applyVerifiedScope records in v the scope verification observed: it
// replaces what Mint reported when verification saw a non-empty scope, and
// it settles a scope Mint did not report whenever verification reported one
// (even empty).
func applyVerifiedScope(v *store.Version, ver providers.VerifyResponse) {
	switch {
	case ver.ScopeNotReported:
	case !v.ScopeReported():
		v.GrantedScope = ver.GrantedScope
		if v.GrantedScope == nil {
			v.GrantedScope = []string{}
		}
		delete(v.Metadata, store.MetaGrantedScope)
	case len(ver.GrantedScope) > 0:
		v.GrantedScope = ver.GrantedScope
	}
}
