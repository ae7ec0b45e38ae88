package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
)

// ErrLoginUnsupported is returned by Login for a credential whose provider
// has no interactive login.
var ErrLoginUnsupported = errors.New("the credential's provider has no login")

// ErrRotating is returned by Login while a run of the credential is active.
var ErrRotating = errors.New("a rotation of the credential is in progress")

// LoginResult is what a login recorded.
type LoginResult struct {
	CredentialID string            `json:"credential"`
	Provider     string            `json:"provider"`
	KeyID        string            `json:"key_id"`
	Metadata     map[string]string `json:"metadata"`
}

// Login starts a credential's provider state interactively (a refresh
// token from the OAuth device grant): the provider prompts the operator
// through prompt, and the state it obtains is sealed and stored, replacing
// the credential's, with a credential.login audit event. The next rotation
// uses it. It refuses while a run of the credential is active (ErrRotating),
// and for providers without a login (ErrLoginUnsupported).
func (e *Engine) Login(ctx context.Context, credentialID, actor string, prompt func(providers.LoginPrompt)) (LoginResult, error) {
	cred, err := e.store.GetCredential(ctx, credentialID)
	if err != nil {
		return LoginResult{}, err
	}
	if cred.State.Status == store.StatusRotating {
		return LoginResult{}, fmt.Errorf("credential %s: %w; wait for it to end (rotator runs list --credential %s)", cred.ID, ErrRotating, cred.ID)
	}
	row, err := e.store.GetProvider(ctx, cred.Provider)
	if err != nil {
		return LoginResult{}, fmt.Errorf("provider %s: %w", cred.Provider, err)
	}
	prov, l, err := e.plugins.provider(ctx, cred.Provider, row.SpecHash)
	if err != nil {
		return LoginResult{}, err
	}
	defer l.release()
	lg, ok := prov.(providers.Loginer)
	if !ok || !prov.Capabilities().Stateful {
		return LoginResult{}, fmt.Errorf("credential %s: provider %s (type %s): %w", cred.ID, cred.Provider, row.Type, ErrLoginUnsupported)
	}
	resp, err := func() (resp providers.LoginResponse, err error) {
		defer recoverPlugin("login", &err)
		return lg.Login(ctx, providers.LoginRequest{
			Common: providers.Common{CredentialID: cred.ID, IdempotencyKey: "login/" + cred.ID, Scope: cred.Scope, Settings: cred.Settings},
			Prompt: prompt,
		})
	}()
	if err != nil {
		return LoginResult{}, fmt.Errorf("credential %s: login: %w", cred.ID, err)
	}
	if resp.State.IsZero() {
		return LoginResult{}, fmt.Errorf("credential %s: provider %s returned no state from its login", cred.ID, cred.Provider)
	}
	e.opts.Redactor.Register(resp.State)
	defer e.opts.Redactor.Forget(resp.State)
	keyID, sealed, err := e.opts.Keyring.Seal(cred.ID, store.ProviderStateAAD, resp.State)
	if err != nil {
		return LoginResult{}, err
	}
	res := LoginResult{CredentialID: cred.ID, Provider: cred.Provider, KeyID: keyID, Metadata: resp.Metadata}
	data, _ := json.Marshal(map[string]any{"provider": cred.Provider, "key_id": keyID, "metadata": resp.Metadata})
	err = e.store.InTx(context.WithoutCancel(ctx), func(tx store.Tx) error {
		if err := tx.PutProviderState(ctx, store.ProviderState{CredentialID: cred.ID, KeyID: keyID, Sealed: sealed, UpdatedAt: e.now()}); err != nil {
			return err
		}
		return tx.InsertAuditEvents(ctx, store.AuditEvent{OccurredAt: e.now(), Actor: actor, Action: "credential.login", CredentialID: cred.ID, Data: data})
	})
	if err != nil {
		return LoginResult{}, fmt.Errorf("credential %s: storing the login's state: %w", cred.ID, err)
	}
	return res, nil
}
