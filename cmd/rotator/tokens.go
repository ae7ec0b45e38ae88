package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/store"
)

func (a *app) tokensCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Manage API tokens of the consume and management APIs (create, list, revoke)",
		Long: `API tokens authorise requests to rotator serve --listen, sent as
"Authorization: Bearer TOKEN": reads of the consume API
(GET /v1/credentials/{id}/value, consume: scopes) and the management API under
/v1 (read, rotate and admin scopes; docs/api.md). A token is
256 bits of randomness, printed once by 'tokens create' and stored only as its
SHA-256; it starts with rtrtok_ so secret scanners recognise a leaked one.
Each token has scopes and may expire; creating and revoking one are audit
events. On the same host as the service, prefer its Unix socket
(rotator serve --socket), which needs no token at all.`,
	}
	cmd.AddCommand(a.tokensCreateCommand(), a.tokensListCommand(), a.tokensRevokeCommand())
	return cmd
}

// tokenJSON is a token in -o json output; never the token itself, except
// in the field token of 'tokens create'.
type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Status     string     `json:"status"`
}

func toTokenJSON(t store.APIToken, now time.Time) tokenJSON {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	status := "active"
	switch {
	case !t.RevokedAt.IsZero():
		status = "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		status = "expired"
	}
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return tokenJSON{ID: t.ID, Name: t.Name, Scopes: scopes, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: opt(t.ExpiresAt), RevokedAt: opt(t.RevokedAt), LastUsedAt: opt(t.LastUsedAt), Status: status}
}

func (a *app) tokensCreateCommand() *cobra.Command {
	var (
		scopes    []string
		ttl       string
		name      string
		output    string
		actorName string
	)
	cmd := &cobra.Command{
		Use:   "create --scope SCOPE [--scope ...] [--ttl D] [--name N]",
		Short: "Create an API token and print it once",
		Long: `Create an API token with the given scopes and print it, once: it is stored only
as its hash and cannot be shown again (revoke it and create another if it is
lost). Scopes:

  consume:ID               read the value of the credential ID
  consume:key=value[,...]  read the values of credentials with these labels
  consume:*                read every credential's value
  read                     the management API's GET routes (credentials,
                           runs, report, audit verify; never a value)
  rotate                   read, and start rotations (POST .../rotate)
  admin                    every management route, config reload included

consume: scopes are the only ones that read values; read, rotate and admin
serve the management API under /v1 (docs/api.md).

--ttl sets how long the token is valid (Go durations plus d for days: 30d);
without it the token does not expire. With -o json the token is the field
"token". Keep it out of config files and command lines: give it to a client
by reference (a file or an environment variable).`,
		Example: `  rotator tokens create --scope consume:github-mcp --ttl 30d --name laptop
  rotator tokens create --scope consume:team=platform -o json > token.json
  rotator tokens create --scope rotate --ttl 7d --name ci-emergency`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			if len(scopes) == 0 {
				return usagef("name at least one --scope, for example --scope consume:github-mcp")
			}
			var d time.Duration
			if ttl != "" {
				var err error
				if d, err = duration.Parse(ttl); err != nil || d <= 0 {
					return usagef("--ttl %q: give a positive duration such as 12h or 30d", ttl)
				}
			}
			for _, s := range scopes {
				if _, err := apitoken.ParseScope(s); err != nil {
					return usagef("--scope: %v", err)
				}
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			created, err := apitoken.NewService(st, nil, a.logger).Create(ctx, apitoken.CreateRequest{Name: name, Scopes: scopes, TTL: d, Actor: actor(actorName)})
			if err != nil {
				return err
			}
			rec := toTokenJSON(created.Record, time.Now())
			if isData(output) {
				return writeData(a.stdout, output, struct {
					Token string `json:"token"`
					tokenJSON
				}{created.Token, rec})
			}
			expiry := "never expires"
			if rec.ExpiresAt != nil {
				expiry = "expires " + rec.ExpiresAt.Format(time.RFC3339)
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n\nToken %s (%s; %s). This is the only time it is shown: store it now,\nand give it to clients by reference (a file or an environment variable).\n",
				created.Token, rec.ID, strings.Join(rec.Scopes, ", "), expiry)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "what the token allows: consume:ID, consume:key=value[,...], consume:*, read, rotate or admin (repeatable)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the token is valid, e.g. 12h or 30d (default: no expiry)")
	cmd.Flags().StringVar(&name, "name", "", "a name that says who or what holds the token")
	cmd.Flags().StringVar(&actorName, "actor", "", "who creates the token, for the audit log (default: the OS user)")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	return cmd
}

func (a *app) tokensListCommand() *cobra.Command {
	var lo listOutput
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never the tokens themselves)",
		Long: `List every API token with its scopes, expiry and status (active, expired or
revoked), oldest first. The tokens themselves are not stored and never shown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lo.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			list, err := apitoken.NewService(st, nil, a.logger).List(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			out := make([]tokenJSON, 0, len(list))
			for _, t := range list {
				out = append(out, toTokenJSON(t, now))
			}
			if isData(lo.format) {
				return writeData(a.stdout, lo.format, struct {
					Tokens []tokenJSON `json:"tokens"`
				}{out})
			}
			t := a.newListTable(lo,
				column{name: "ID", id: true},
				column{name: "NAME", flex: true},
				column{name: "SCOPES", flex: true},
				column{name: "STATUS"},
				column{name: "EXPIRES"},
				column{name: "LAST USED", wide: true},
				column{name: "CREATED BY", wide: true},
			)
			for _, tok := range out {
				t.row(tok.ID, orDash(tok.Name), strings.Join(tok.Scopes, ","), tok.Status, relTime(tok.ExpiresAt, now),
					relTime(tok.LastUsedAt, now), orDash(tok.CreatedBy))
			}
			return t.flush()
		},
	}
	addListFlags(cmd, &lo)
	return cmd
}

func (a *app) tokensRevokeCommand() *cobra.Command {
	var (
		output    string
		actorName string
	)
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token at once",
		Long: `Revoke the API token with this id (as 'tokens list' shows it, tok_...): its next
request is refused with 401. Revoking a revoked token changes nothing.`,
		Example: `  rotator tokens revoke tok_01jexample`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			rec, err := apitoken.NewService(st, nil, a.logger).Revoke(ctx, args[0], actor(actorName))
			if errors.Is(err, store.ErrNotFound) {
				return notFound(fmt.Errorf("no API token has id %q (see rotator tokens list)", args[0]))
			}
			if err != nil {
				return err
			}
			if isData(output) {
				return writeData(a.stdout, output, toTokenJSON(rec, time.Now()))
			}
			_, err = fmt.Fprintf(a.stdout, "Token %s revoked at %s.\n", rec.ID, rec.RevokedAt.UTC().Format(time.RFC3339))
			return err
		},
	}
	cmd.Flags().StringVar(&actorName, "actor", "", "who revokes the token, for the audit log (default: the OS user)")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	return cmd
}
