package oauth2refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/oauth2"

	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// Login implements providers.Loginer with the device authorization grant
// (RFC 8628), through golang.org/x/oauth2: it asks device_authorization_url
// for a user code (with the scopes and resource), hands the verification
// URI and code to req.Prompt, polls the token endpoint until the operator
// approves (or ctx ends, or the code expires), and returns the refresh
// token it got as the credential's new state. The chain this process knew
// for the credential is dropped: the new grant starts a new lineage.
func (p *Provider) Login(ctx context.Context, req providers.LoginRequest) (providers.LoginResponse, error) {
	if p.cfg.DeviceAuthorizationURL == "" {
		return providers.LoginResponse{}, fmt.Errorf("provider %s has no device_authorization_url: set it to the server's RFC 8628 endpoint, or put a refresh token where refresh_token's reference points: %w", p.name, providers.ErrPermanent)
	}
	style := oauth2.AuthStyleAutoDetect
	switch {
	case p.cfg.ClientSecret.IsZero() || p.cfg.AuthStyle == AuthStyleParams:
		style = oauth2.AuthStyleInParams
	case p.cfg.AuthStyle == AuthStyleHeader:
		style = oauth2.AuthStyleInHeader
	}
	cfg := &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret.RevealString(), Scopes: p.cfg.Scopes,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: p.cfg.DeviceAuthorizationURL, TokenURL: p.cfg.TokenURL, AuthStyle: style},
	}
	var opts []oauth2.AuthCodeOption
	if p.cfg.Resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", p.cfg.Resource))
	}
	octx := context.WithValue(ctx, oauth2.HTTPClient, p.client)
	da, err := cfg.DeviceAuth(octx, opts...)
	if err != nil {
		return providers.LoginResponse{}, p.clean(fmt.Errorf("device authorization at %s: %w", p.cfg.DeviceAuthorizationURL, oauthCause(err)))
	}
	if req.Prompt != nil {
		req.Prompt(providers.LoginPrompt{
			VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
			UserCode: da.UserCode, ExpiresAt: da.Expiry.UTC(),
		})
	}
	tok, err := cfg.DeviceAccessToken(octx, da, opts...)
	if err != nil {
		return providers.LoginResponse{}, p.clean(fmt.Errorf("waiting for the authorization of user code %s at %s: %w", da.UserCode, p.cfg.TokenURL, oauthCause(err)))
	}
	if tok.RefreshToken == "" {
		return providers.LoginResponse{}, fmt.Errorf("the authorization server at %s issued no refresh token; the client may need the offline_access scope or the refresh_token grant enabled: %w", p.cfg.TokenURL, providers.ErrPermanent)
	}
	rt := secret.NewString(tok.RefreshToken)
	c, unlock, err := p.lock(ctx, req.CredentialID)
	if err != nil {
		return providers.LoginResponse{}, err
	}
	c.consumed, c.latest = nil, secret.Value{}
	unlock()
	meta := map[string]string{"refresh_token_hash": hash(rt)}
	if s, ok := tok.Extra("scope").(string); ok {
		meta["scope"] = strings.Join(strings.Fields(s), " ")
	}
	p.log.Info("obtained a refresh token with the device grant",
		slog.String("credential", req.CredentialID), slog.String("refresh_token_hash", meta["refresh_token_hash"]))
	return providers.LoginResponse{State: encodeState(rt, hash(p.cfg.RefreshToken)), Metadata: meta}, nil
}

// oauthCause shortens a golang.org/x/oauth2 error to its OAuth error code
// and description, without the response body.
func oauthCause(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorCode
		if msg == "" && re.Response != nil {
			msg = re.Response.Status
		}
		if re.ErrorDescription != "" {
			msg += fmt.Sprintf(" (%q)", remote.Printable(re.ErrorDescription, 200))
		}
		perm := error(nil)
		switch re.ErrorCode {
		case "access_denied", "expired_token", "invalid_client", "unauthorized_client", "invalid_scope", "invalid_target":
			perm = providers.ErrPermanent
		}
		if perm != nil {
			return fmt.Errorf("%s: %w", remote.Printable(msg, 300), perm)
		}
		return errors.New(remote.Printable(msg, 300))
	}
	return netx.TransportCause(err)
}

var _ providers.Loginer = (*Provider)(nil)
