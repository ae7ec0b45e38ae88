package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	preg "github.com/rotatorhq/rotator/providers/registry"
	"github.com/rotatorhq/rotator/targets"
	treg "github.com/rotatorhq/rotator/targets/registry"
)

// Removal is what a credential removed from the inventory (apply --prune)
// leaves outside the database: its value published at its targets and its
// values still valid at its provider. PlanRemoval reads it in the
// transaction that removes the credential, while the provider and target
// rows that the same prune may delete are still there; Engine.Withdraw acts
// on it after that transaction committed.
type Removal struct {
	// Credential is the credential as it was, with Current.
	Credential store.Credential
	// Versions are its current, previous and pending versions, newest first.
	Versions []store.Version
	// Provider is its provider's row.
	Provider store.Provider
	// Targets are the rows of the targets it was published at, by name.
	Targets map[string]store.Target
	// Others are, by target, the credentials that remain published there.
	Others map[string][]targets.Binding
}

// PlanRemoval reads in tx what Withdraw needs to clean up after credential
// c, which tx is about to remove. others are, by target name, the
// credentials that remain published at each target.
func PlanRemoval(ctx context.Context, tx store.Tx, c store.Credential, others map[string][]targets.Binding) (Removal, error) {
	r := Removal{Credential: c, Targets: map[string]store.Target{}, Others: map[string][]targets.Binding{}}
	vs, err := tx.ListVersions(ctx, c.ID, store.StageCurrent, store.StagePrevious, store.StagePending)
	if err != nil {
		return r, fmt.Errorf("credential %s: listing versions: %w", c.ID, err)
	}
	r.Versions = vs
	if r.Provider, err = tx.GetProvider(ctx, c.Provider); err != nil {
		return r, fmt.Errorf("credential %s: provider %s: %w", c.ID, c.Provider, err)
	}
	for _, b := range c.Targets {
		if _, ok := r.Targets[b.Target]; ok {
			continue
		}
		t, err := tx.GetTarget(ctx, b.Target)
		if err != nil {
			return r, fmt.Errorf("credential %s: target %s: %w", c.ID, b.Target, err)
		}
		r.Targets[b.Target] = t
		for _, o := range others[b.Target] {
			if o.CredentialID != c.ID {
				r.Others[b.Target] = append(r.Others[b.Target], o)
			}
		}
	}
	return r, nil
}

// Actions of Withdraw.
const (
	// ActionWithdraw removes a value from a target.
	ActionWithdraw = "withdraw"
	// ActionRevoke revokes a value at the provider.
	ActionRevoke = "revoke"
)

// WithdrawOptions tune Withdraw.
type WithdrawOptions struct {
	// Revoke revokes the removed credentials' current, previous and pending
	// values at their providers; it needs the keyring that sealed them.
	// Without it each such value is reported skipped: it stays valid at the
	// provider until it expires.
	Revoke bool
	// Actor is recorded in the audit events.
	Actor string
}

// WithdrawAction is one thing Withdraw did, or left undone, for a removed
// credential. Outcome is a StepState: ok, skipped (with Detail saying why
// and what stays valid) or failed (with Error).
type WithdrawAction struct {
	Credential  string `json:"credential"`
	Action      string `json:"action"`
	Target      string `json:"target,omitempty"`
	Version     string `json:"version,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// ExpiresAt is when a value left valid expires (revoke actions).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Outcome   StepState  `json:"outcome"`
	Detail    string     `json:"detail,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// Withdraw cleans up after credentials removed from the inventory, once the
// removal has committed: it withdraws each credential's value from every
// target it was published at (targets.Withdrawer) and, with opts.Revoke,
// revokes its current, previous and pending values at the provider and
// retires them. Each action is recorded as an audit event
// (credential.withdraw, credential.revoke) with its outcome; a failure is
// reported in the returned actions and does not stop the others, nor undo
// the removal. The error is for what kept the actions from being recorded.
func (e *Engine) Withdraw(ctx context.Context, removals []Removal, opts WithdrawOptions) ([]WithdrawAction, error) {
	var (
		out     []WithdrawAction
		events  []store.AuditEvent
		retired []store.Version
	)
	add := func(c string, a WithdrawAction) {
		a.Credential = c
		if a.Error != "" {
			a.Error = e.opts.Redactor.Scrub(a.Error)
		}
		out = append(out, a)
		data, _ := json.Marshal(a)
		events = append(events, store.AuditEvent{OccurredAt: e.now(), Actor: opts.Actor, Action: "credential." + a.Action, CredentialID: c, Data: data})
	}
	for _, r := range removals {
		c := r.Credential
		ids := make([]string, 0, len(r.Versions))
		for _, v := range r.Versions {
			ids = append(ids, v.ID)
		}
		current := ""
		if c.Current != nil {
			current = c.Current.ID
		}
		for _, b := range c.Targets {
			a := e.withdrawAt(ctx, r, b, current, ids)
			add(c.ID, a)
		}
		for _, v := range r.Versions {
			a, done := e.revokeRemoved(ctx, r, v, opts.Revoke)
			add(c.ID, a)
			if done {
				v.Stage, v.RetiredAt, v.Sealed = store.StageRetired, e.now(), nil
				retired = append(retired, v)
			}
		}
	}
	if len(events) == 0 {
		return out, nil
	}
	err := e.store.InTx(context.WithoutCancel(ctx), func(tx store.Tx) error {
		for _, v := range retired {
			if err := tx.UpdateVersion(ctx, v); err != nil {
				return err
			}
		}
		return tx.InsertAuditEvents(ctx, events...)
	})
	if err != nil {
		return out, fmt.Errorf("recording what was withdrawn: %w", err)
	}
	return out, nil
}

// withdrawAt withdraws a removed credential's value from one target.
func (e *Engine) withdrawAt(ctx context.Context, r Removal, b store.TargetBinding, current string, versions []string) WithdrawAction {
	a := WithdrawAction{Action: ActionWithdraw, Target: b.Target}
	row, ok := r.Targets[b.Target]
	if !ok {
		a.Outcome, a.Error = StepFailed, fmt.Sprintf("target %s was not read before the removal", b.Target)
		return a
	}
	t, l, err := e.plugins.targetFrom(ctx, row)
	if err != nil {
		a.Outcome, a.Error = StepFailed, err.Error()
		return a
	}
	defer l.release()
	w, ok := t.(targets.Withdrawer)
	if !ok {
		a.Outcome = StepSkipped
		a.Detail = fmt.Sprintf("target type %s cannot withdraw values: the value stays published at %s; remove it there by hand", row.Type, b.Target)
		return a
	}
	req := targets.WithdrawRequest{
		Common: targets.Common{
			CredentialID: r.Credential.ID, VersionID: current, Key: b.Key,
			IdempotencyKey: "prune/" + r.Credential.ID + "/withdraw:" + b.Target,
		},
		VersionIDs: versions,
		Others:     r.Others[b.Target],
	}
	var resp targets.WithdrawResponse
	err = e.callStep(ctx, "withdraw:"+b.Target, func(ctx context.Context) error {
		var err error
		resp, err = w.Withdraw(ctx, req)
		return err
	})
	switch {
	case errors.Is(err, targets.ErrSkipped):
		a.Outcome, a.Detail = StepSkipped, skipReason(err.Error())
	case err != nil:
		a.Outcome, a.Error = StepFailed, err.Error()
	default:
		a.Outcome, a.Detail = StepOK, resp.Detail
	}
	return a
}

// revokeRemoved revokes one value of a removed credential, when asked and
// possible; done reports that the value is revoked and may be retired.
func (e *Engine) revokeRemoved(ctx context.Context, r Removal, v store.Version, revoke bool) (a WithdrawAction, done bool) {
	a = WithdrawAction{Action: ActionRevoke, Version: v.ID, Fingerprint: v.Fingerprint}
	if !v.ExpiresAt.IsZero() {
		exp := v.ExpiresAt.UTC()
		a.ExpiresAt = &exp
	}
	if !revoke {
		a.Outcome = StepSkipped
		a.Detail = "not revoked (apply without --revoke): " + stillValidAt(r.Provider.Name, v)
		return a, false
	}
	p, l, err := e.plugins.providerFrom(ctx, r.Provider)
	if err != nil {
		a.Outcome, a.Error = StepFailed, err.Error()
		return a, false
	}
	defer l.release()
	caps := p.Capabilities()
	if !caps.Revocable {
		a.Outcome, a.Detail = StepSkipped, stillValid(r.Provider.Name, v)
		return a, false
	}
	var val secret.Value
	if len(v.Sealed) > 0 {
		val, err = e.opts.Keyring.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
		if err != nil {
			a.Outcome, a.Error = StepFailed, fmt.Sprintf("opening version %s to revoke it: %v", v.ID, err)
			return a, false
		}
		e.opts.Redactor.Register(val)
		defer e.opts.Redactor.Forget(val)
	}
	step := "revoke:" + v.ID
	err = e.callStep(ctx, step, func(ctx context.Context) error {
		return p.Revoke(ctx, providers.RevokeRequest{
			Common: providers.Common{
				CredentialID: v.CredentialID, VersionID: v.ID, IdempotencyKey: "prune/" + v.CredentialID + "/" + step,
				Scope: r.Credential.Scope, Settings: r.Credential.Settings,
			},
			Value: val, Metadata: v.Metadata,
		})
	})
	if err != nil {
		// Scrubbed here, while the redactor still knows the value.
		a.Outcome, a.Error = StepFailed, e.opts.Redactor.Scrub(secret.ScrubError(err, val).Error())
		return a, false
	}
	a.Outcome, a.Detail = StepOK, fmt.Sprintf("revoked at provider %s and retired", r.Provider.Name)
	return a, true
}

// stillValidAt says until when a value left unrevoked stays valid.
func stillValidAt(provider string, v store.Version) string {
	if v.ExpiresAt.IsZero() {
		return fmt.Sprintf("the value stays valid at provider %s until it is removed there (it has no expiry)", provider)
	}
	return fmt.Sprintf("the value stays valid at provider %s until it expires at %s", provider, v.ExpiresAt.UTC().Format(time.RFC3339))
}

// callStep runs one plugin call for Withdraw with the step timeout.
func (e *Engine) callStep(ctx context.Context, step string, fn func(ctx context.Context) error) (err error) {
	cctx, cancel := context.WithTimeoutCause(ctx, e.opts.StepTimeout, fmt.Errorf("%s timed out after %s", step, e.opts.StepTimeout))
	defer cancel()
	defer recoverPlugin(step, &err)
	err = fn(cctx)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", context.Cause(cctx), err)
	}
	return err
}

// providerFrom returns, through the plugin cache, the provider a stored
// row configures: a removal's provider may have been deleted from the store
// by the same prune, so the row read before the removal is used. Release
// the lease when done.
func (p *plugins) providerFrom(ctx context.Context, row store.Provider) (providers.Provider, lease, error) {
	return acquire(ctx, p, p.providers, row.Name, row.SpecHash,
		func(context.Context) (pluginRow, error) {
			return pluginRow{typ: row.Type, hash: row.SpecHash, settings: row.Settings}, nil
		},
		func(ctx context.Context, pr pluginRow, resolved settings.Map) (providers.Provider, error) {
			f, ok := preg.Lookup(pr.typ)
			if !ok {
				return nil, fmt.Errorf("provider %s has unknown type %q: %w", row.Name, pr.typ, providers.ErrPermanent)
			}
			prov, err := f.New(ctx, providers.Env{Name: row.Name, Settings: resolved, Logger: p.e.log.With(slog.String("provider", row.Name))})
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", row.Name, err)
			}
			return prov, nil
		})
}

// targetFrom returns the target a stored row configures, as providerFrom.
func (p *plugins) targetFrom(ctx context.Context, row store.Target) (targets.Target, lease, error) {
	return acquire(ctx, p, p.targets, row.Name, row.SpecHash,
		func(context.Context) (pluginRow, error) {
			return pluginRow{typ: row.Type, hash: row.SpecHash, settings: row.Settings}, nil
		},
		func(ctx context.Context, pr pluginRow, resolved settings.Map) (targets.Target, error) {
			f, ok := treg.Lookup(pr.typ)
			if !ok {
				return nil, fmt.Errorf("target %s has unknown type %q: %w", row.Name, pr.typ, targets.ErrPermanent)
			}
			t, err := f.New(ctx, targets.Env{Name: row.Name, Settings: resolved, Logger: p.e.log.With(slog.String("target", row.Name))})
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", row.Name, err)
			}
			return t, nil
		})
}

// NewForWithdraw returns an Engine for Withdraw, which unlike New accepts
// options without a keyring: withdrawing values from targets needs none
// (apply --prune works without the master key); revoking opens the values
// and fails without it. With a keyring it is New.
func NewForWithdraw(opts Options) (*Engine, error) {
	if opts.Keyring.ActiveKeyID() != "" {
		return New(opts)
	}
	if opts.Store == nil {
		return nil, errors.New("rotation engine needs a store")
	}
	return newEngine(opts), nil
}
