package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/delivery"
	mcpexec "github.com/rotatorhq/rotator/internal/mcp/exec"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
)

// sourceFlags choose where a delivery command (exec, headers, proxy) reads
// values: the local store (default), the service's socket, or its URL with
// a token given by reference.
type sourceFlags struct {
	socket, url, tokenRef string
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.socket, "socket", "", "read values from the service's Unix socket (rotator serve --socket PATH)")
	cmd.Flags().StringVar(&f.url, "url", "", "read values from the service's consume API at this URL (https, or http on loopback); needs --token-ref")
	cmd.Flags().StringVar(&f.tokenRef, "token-ref", "", "reference to the API token for --url: ${env:NAME} or ${file:/path} (never the token itself)")
}

// openedSource is a delivery source and what comes with it.
type openedSource struct {
	delivery.Source
	// store is the local store the source reads (nil for the consume API).
	store store.Store
	// release closes the source (and the store it opened).
	release func()
}

// graceEnd returns exec's Options.GraceEnd: the store's runs for a local
// source; nil for the consume API, which does not tell it (exec's
// --drain-timeout and the previous version's expiry bound the wait).
func (s openedSource) graceEnd() func(ctx context.Context, credentialID, version string) (time.Time, error) {
	if s.store == nil {
		return nil
	}
	return mcpexec.StoreGraceEnd(s.store)
}

// openSource returns the Source the flags name. Every delivery command
// opens its source here, so exec, headers and proxy read the same way.
func (a *app) openSource(ctx context.Context, f sourceFlags) (openedSource, error) {
	switch {
	case f.socket != "" && f.url != "":
		return openedSource{}, usagef("give --socket or --url, not both")
	case f.url == "" && f.tokenRef != "":
		return openedSource{}, usagef("--token-ref goes with --url")
	case f.socket != "":
		src, err := delivery.NewAPI(delivery.APIOptions{Socket: f.socket})
		if err != nil {
			return openedSource{}, usageError{err}
		}
		return openedSource{Source: src, release: func() { _ = src.Close() }}, nil
	case f.url != "":
		if f.tokenRef == "" {
			return openedSource{}, usagef("--url needs --token-ref, a reference to an API token such as ${env:ROTATOR_TOKEN} or ${file:/path/to/token}")
		}
		if !secret.IsRef(f.tokenRef) {
			return openedSource{}, usagef("--token-ref must be a reference such as ${env:ROTATOR_TOKEN} or ${file:/path/to/token}, not a token (flags show up in ps)")
		}
		var r secret.Resolver
		tok, err := r.ResolveString(ctx, f.tokenRef)
		if err != nil {
			return openedSource{}, usagef("--token-ref: %v", err)
		}
		a.redactor.Register(tok)
		src, err := delivery.NewAPI(delivery.APIOptions{URL: f.url, Token: tok})
		if err != nil {
			return openedSource{}, usageError{err}
		}
		return openedSource{Source: src, release: func() { _ = src.Close() }}, nil
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return openedSource{}, err
	}
	kr, err := a.keyring(ctx, st)
	if err != nil {
		_ = st.Close()
		return openedSource{}, err
	}
	src, err := delivery.NewLocal(delivery.LocalOptions{Store: st, Keyring: kr, Reader: localReader(), Logger: a.logger})
	if err != nil {
		_ = st.Close()
		return openedSource{}, err
	}
	return openedSource{Source: src, store: st, release: func() { _ = src.Close(); _ = st.Close() }}, nil
}
