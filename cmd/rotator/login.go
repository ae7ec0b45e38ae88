package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/rotation"
)

func (a *app) loginCommand() *cobra.Command {
	var (
		output    string
		actorName string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "login CREDENTIAL",
		Short: "Obtain a credential's refresh token interactively (OAuth device grant)",
		Long: `Obtain the refresh token of an oauth2-refresh-token credential with the OAuth
2.0 device authorization grant (RFC 8628): it asks the provider's
device_authorization_url for a code, prints the verification URL and the code
on stderr, and waits while you open the URL in a browser, sign in and approve.
The refresh token is then stored sealed as the credential's provider state
(never printed, never in a file), replacing the one it had, and the next
rotation starts from it. Use it to start a credential, and to renew one whose
grant died (a refresh refused with invalid_grant). See
runbooks/oauth2-refresh-token.md.`,
		Example: `  rotator login saas-mcp-token
  rotator rotate saas-mcp-token --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			setup, err := a.newEngine(ctx, "")
			if err != nil {
				return err
			}
			defer setup.store.Close()
			defer setup.engine.Close()
			res, err := setup.engine.Login(ctx, args[0], actor(actorName), func(p providers.LoginPrompt) {
				if p.VerificationURIComplete != "" {
					fmt.Fprintf(a.stderr, "Open %s\n  (or open %s and enter the code %s)\n", p.VerificationURIComplete, p.VerificationURI, p.UserCode)
				} else {
					fmt.Fprintf(a.stderr, "Open %s and enter the code %s\n", p.VerificationURI, p.UserCode)
				}
				if !p.ExpiresAt.IsZero() {
					fmt.Fprintf(a.stderr, "Waiting for the approval (the code expires at %s)...\n", p.ExpiresAt.Format(time.RFC3339))
				}
			})
			switch {
			case errors.Is(err, store.ErrNotFound):
				return notFound(fmt.Errorf("%w; see 'rotator credentials list'", err))
			case errors.Is(err, rotation.ErrLoginUnsupported), errors.Is(err, rotation.ErrRotating):
				return usageError{err}
			case err != nil:
				return err
			}
			if isData(output) {
				return writeData(a.stdout, output, res)
			}
			_, err = fmt.Fprintf(a.stdout, "Stored a new refresh token for %s (%s), sealed under key %s; the next rotation uses it.\n",
				res.CredentialID, res.Metadata["refresh_token_hash"], res.KeyID)
			return err
		},
	}
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	cmd.Flags().StringVar(&actorName, "actor", "", "who logs in, for the audit log (default: the OS user)")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "give up waiting for the approval after this long")
	return cmd
}
