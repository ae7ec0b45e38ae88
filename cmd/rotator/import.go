package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/scan"
)

func (a *app) importCommand() *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Turn the secrets in MCP client configs into a rotator configuration (references only)",
		Long: `Read MCP client configurations (Claude Desktop, Claude Code, VS Code,
Cursor, Windsurf, Zed, Continue, Codex, Gemini CLI, MCP registry server.json)
and print a rotator configuration with one credential per secret found:

  - consumer: the MCP server's name in the client configuration;
  - provider: guessed from the value's shape: an exec plugin per vendor
    (GitHub, Slack, OpenAI, Anthropic, Stripe, ...), postgres-role for a
    PostgreSQL connection string, oauth2-client-credentials for a JWT,
    generated for other secrets;
  - scope, owner and policy: left to fill in, marked TODO.

The output holds references only: no value found is printed. Each credential
is preceded by where its value was found (masked) and the delivery command
that replaces the literal. Every value found is exposed: rotate it after
'rotator apply'.`,
		Example: `  rotator import ~/Library/Application\ Support/Claude/claude_desktop_config.json > rotator.yaml
  rotator import .vscode/mcp.json .cursor/mcp.json --out rotator.yaml
  rotator apply -f rotator.yaml --dry-run`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, n, err := scan.Import(args, time.Now())
			if err != nil {
				// A missing file or one that is not an MCP client
				// configuration: the invocation is wrong.
				return usageError{err}
			}
			if outFile != "" {
				if err := os.WriteFile(outFile, out, 0o600); err != nil {
					return err
				}
			} else if _, err := a.stdout.Write(out); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%d credential(s) imported; every value found is exposed: rotate each after 'rotator apply'\n", n)
			return nil
		},
	}
	cmd.Flags().StringVar(&outFile, "out", "", "write the configuration to `FILE` (mode 0600) instead of standard output")
	return cmd
}
