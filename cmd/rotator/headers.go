package main

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/delivery"
)

func (a *app) headersCommand() *cobra.Command {
	var (
		specs []string
		src   sourceFlags
	)
	cmd := &cobra.Command{
		Use:   "headers --header 'Name=Template {CREDENTIAL}' [--header ...]",
		Short: "Print HTTP headers holding current credential values, for a client's header helper",
		Long: `Print a JSON object of HTTP headers whose values hold credentials' current
values, as a client's header helper expects (Claude Code's headersHelper runs
it at each connection, so a rotated value is picked up without a restart).
Each --header is Name=Template; in the template {ID} stands for the current
value of credential ID, and {{ and }} for literal braces.

Values are read from the local store by default (this host holds the
database and the master key), from the service's Unix socket with --socket,
or from its consume API with --url and --token-ref. Each read is recorded as
a value.read audit event (never the value).

When any value cannot be read, nothing is printed on stdout: the command
exits non-zero with the reason on stderr (exit 3 for an unknown credential).`,
		Example: `  rotator headers --header 'Authorization=Bearer {github-mcp}'
  rotator headers --socket /run/rotator/api.sock --header 'X-Api-Key={notes-api-key}'

  # Claude Code, .mcp.json: "headersHelper": "rotator headers --socket
  #   /run/rotator/api.sock --header 'Authorization=Bearer {github-mcp}'"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(specs) == 0 {
				return usagef("give at least one --header, for example --header 'Authorization=Bearer {github-mcp}'")
			}
			headers := make([]delivery.Header, 0, len(specs))
			seen := map[string]bool{}
			for _, s := range specs {
				h, err := delivery.ParseHeader(s)
				if err != nil {
					return usagef("--header: %v", err)
				}
				if seen[h.Name] {
					return usagef("--header %s is given twice", h.Name)
				}
				seen[h.Name] = true
				headers = append(headers, h)
			}
			ctx := cmd.Context()
			source, err := a.openSource(ctx, src)
			if err != nil {
				return err
			}
			defer source.release()
			out, err := delivery.ReadHeaders(ctx, source, headers, "headers")
			if errors.Is(err, delivery.ErrNotFound) {
				return notFound(err)
			}
			if err != nil {
				return err
			}
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(append(b, '\n'))
			return err
		},
	}
	cmd.Flags().StringArrayVar(&specs, "header", nil, "Name=Template, {ID} standing for credential ID's current value (repeatable)")
	src.register(cmd)
	return cmd
}
