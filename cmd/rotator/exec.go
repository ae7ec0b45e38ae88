package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/delivery"
	mcpexec "github.com/rotatorhq/rotator/internal/mcp/exec"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
)

// exitCodeError ends rotator with the given code and no message: exec
// passes its child's exit code through.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

const execLong = `Start a stdio MCP server with credentials in its environment (--env) or in
files (--file, mode 0600, written atomically), and keep it supplied through
every rotation. The MCP client's configuration then holds only this command
line, never a secret.

On a cutover of one of its credentials exec acts per --on-rotate:
  restart    (the default) exec relays the MCP stdio transport between the
             client and the server. It starts a new server with the new
             values and replays the client's initialize handshake to it while
             the old one goes on serving; then it holds the client's new
             requests until no request is in flight, moves the client over
             and stops the old server (SIGTERM, SIGKILL after --stop-timeout).
             The client sees no error and no restart.
             If the server is still busy when the previous value's grace
             period is about to end, exec says so on stderr, records an
             exec.late_cutover audit event and switches anyway: new requests
             go to the new server, the old one may finish its own.
  signal:SIG rewrite the --file paths, then send SIG (HUP, USR1, ...) to the
             server, which re-reads them.
  none       only rewrite the --file paths (a server that reads them per use).

exec forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
server and exits with its exit code (128+N when signal N killed it). Values
reach the server only: exec prints credential ids, versions and fingerprints,
never a value, and the server does not inherit rotator's master key or
database variables. The --file paths are removed when exec ends. Every read
is recorded as a value.read audit event.

Values are read from the local store by default (this host holds the
database and the master key), from the service's Unix socket with --socket
(authorised by exec's uid against the config's delivery: rules), or from its
consume API with --url and --token-ref; through the service, exec learns of
a cutover by a long poll. The service does not tell the grace period: exec
then switches within --drain-timeout, or before the previous value expires,
whichever comes first, and reports a late switch on stderr only.

Exit codes: the server's; 1 when it could not be started (a credential
without a value, a command not found), 2 usage, 3 unknown credential.`

const execExample = `  # Claude Code: the server gets GITHUB_PERSONAL_ACCESS_TOKEN, rotated in place
  claude mcp add github -- rotator exec \
    --env GITHUB_PERSONAL_ACCESS_TOKEN=github-mcp-token \
    -- npx -y @modelcontextprotocol/server-github

  # Claude Desktop (claude_desktop_config.json): no secret in the file
  {"mcpServers": {"github": {
    "command": "rotator",
    "args": ["exec", "--database", "/Users/me/.rotator/rotator.db",
             "--env", "GITHUB_PERSONAL_ACCESS_TOKEN=github-mcp-token",
             "--", "npx", "-y", "@modelcontextprotocol/server-github"]}}}

  # A server that reloads a token file on SIGHUP
  rotator exec --file /run/mcp/notes.token=notes-api-key --on-rotate signal:HUP \
    -- notes-mcp --token-file /run/mcp/notes.token`

func (a *app) execCommand() *cobra.Command {
	var (
		envs, files  []string
		onRotate     string
		drainTimeout time.Duration
		stopTimeout  time.Duration
		source       sourceFlags
	)
	cmd := &cobra.Command{
		Use:     "exec [flags] -- COMMAND [ARG...]",
		Short:   "Run a stdio MCP server with credentials in its environment or files, through rotations",
		Long:    execLong,
		Example: execExample,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := mcpexec.Options{Command: args, DrainTimeout: drainTimeout, StopTimeout: stopTimeout, Redactor: a.redactor}
			for _, s := range envs {
				b, err := mcpexec.ParseEnv(s)
				if err != nil {
					return usageError{err}
				}
				opts.Env = append(opts.Env, b)
			}
			for _, s := range files {
				b, err := mcpexec.ParseFile(s)
				if err != nil {
					return usageError{err}
				}
				opts.Files = append(opts.Files, b)
			}
			if onRotate != "" {
				m, err := mcpexec.ParseOnRotate(onRotate)
				if err != nil {
					return usageError{err}
				}
				opts.OnRotate = m
			}
			if len(opts.Env) == 0 && len(opts.Files) == 0 {
				return usagef("nothing to deliver: give at least one --env NAME=CREDENTIAL or --file PATH=CREDENTIAL")
			}
			return a.exec(cmd.Context(), opts, source)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringArrayVar(&envs, "env", nil, "set the environment variable NAME to the current value of credential CRED (NAME=CRED; repeatable)")
	cmd.Flags().StringArrayVar(&files, "file", nil, "write the current value of credential CRED to the file PATH, mode 0600 (PATH=CRED; repeatable)")
	cmd.Flags().StringVar(&onRotate, "on-rotate", "", "what to do on a cutover: restart (default), signal:NAME (e.g. signal:HUP) or none")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", mcpexec.DefaultDrainTimeout,
		"restart: how long to wait for the server to go idle when the credential's grace period is unknown, and how long a replaced server may take to finish its requests")
	cmd.Flags().DurationVar(&stopTimeout, "stop-timeout", mcpexec.DefaultStopTimeout, "how long a stopped server has between SIGTERM and SIGKILL")
	source.register(cmd)
	return cmd
}

// exec runs the command with values read from the source the flags name.
func (a *app) exec(ctx context.Context, opts mcpexec.Options, sf sourceFlags) error {
	src, err := a.openSource(ctx, sf)
	if err != nil {
		return err
	}
	defer src.release()
	opts.Source = src.Source
	opts.GraceEnd = src.graceEnd()
	opts.DropEnv = []string{storeopen.EnvURL}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	// A client that goes away must not kill exec with SIGPIPE before it
	// has stopped the server: writes fail with EPIPE instead.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	opts.Signals = sigs

	// exec ends when the server does: a SIGINT or SIGTERM is the server's
	// to act on, so the command's context (cancelled by them) is not used.
	code, err := mcpexec.Run(context.WithoutCancel(ctx), opts)
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		return notFound(fmt.Errorf("%w; see 'rotator credentials list'", err))
	case err != nil:
		return err
	case code != 0:
		return exitCodeError{code}
	}
	return nil
}

// localReader names this process's user for value.read events.
func localReader() string {
	uid := os.Getuid()
	if u, err := user.Current(); err == nil && u.Username != "" {
		return fmt.Sprintf("uid:%d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid:%d", uid)
}
