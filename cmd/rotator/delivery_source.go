package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
)

// sourceFlags choose where a delivery command reads values: the local
// store (default), the service's socket, or its URL with a token given by
// reference.
type sourceFlags struct {
	socket, url, tokenRef string
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.socket, "socket", "", "read values from the service's Unix socket (rotator serve --socket PATH)")
	cmd.Flags().StringVar(&f.url, "url", "", "read values from the service's consume API at this URL (https, or http on loopback); needs --token-ref")
	cmd.Flags().StringVar(&f.tokenRef, "token-ref", "", "reference to the API token for --url: ${env:NAME} or ${file:/path} (never the token itself)")
}

// open returns the Source the flags name and a function that releases it.
func (a *app) openSource(ctx context.Context, f sourceFlags) (delivery.Source, func(), error) {
	switch {
	case f.socket != "" && f.url != "":
		return nil, nil, usagef("give --socket or --url, not both")
	case f.url == "" && f.tokenRef != "":
		return nil, nil, usagef("--token-ref goes with --url")
	case f.socket != "":
		src, err := delivery.NewAPI(delivery.APIOptions{Socket: f.socket})
		if err != nil {
			return nil, nil, usageError{err}
		}
		return src, func() { _ = src.Close() }, nil
	case f.url != "":
		if f.tokenRef == "" {
			return nil, nil, usagef("--url needs --token-ref, a reference to an API token such as ${env:ROTATOR_TOKEN} or ${file:/path/to/token}")
		}
		if !secret.IsRef(f.tokenRef) {
			return nil, nil, usagef("--token-ref must be a reference such as ${env:ROTATOR_TOKEN} or ${file:/path/to/token}, not a token (flags show up in ps)")
		}
		var r secret.Resolver
		tok, err := r.ResolveString(ctx, f.tokenRef)
		if err != nil {
			return nil, nil, usagef("--token-ref: %v", err)
		}
		a.redactor.Register(tok)
		src, err := delivery.NewAPI(delivery.APIOptions{URL: f.url, Token: tok})
		if err != nil {
			return nil, nil, usageError{err}
		}
		return src, func() { _ = src.Close() }, nil
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	kr, err := a.keyring(ctx, st)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	src, err := delivery.NewLocal(delivery.LocalOptions{Store: st, Keyring: kr, Reader: localReader(), Logger: a.logger})
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return src, func() { _ = src.Close(); _ = st.Close() }, nil
}
