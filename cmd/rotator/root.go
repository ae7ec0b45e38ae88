package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// Exit codes (DESIGN.md §12).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitNotFound: what the command was asked about does not exist (an
	// unknown credential or run id; a selection matching nothing).
	exitNotFound = 3
)

// usageError marks an error caused by how rotator was invoked or configured
// (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// app holds what every command shares; it is built once in run.
type app struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	redactor       *secret.Redactor
	logLevel       string
	logFormat      string
	term           terminal
	// retryBackoff is the engine's first retry delay (--retry-backoff).
	retryBackoff time.Duration
	// logRuns: the engine logs one line per finished run (serve).
	logRuns bool
	// notifyKinds: the notification kinds the engine writes (serve, from
	// its notify: section; nil: the kinds for people).
	notifyKinds func(notify.Kind) bool
	// databaseFlag is --database; db is the database it (or the
	// environment) names, resolved by database(); createsDB says the
	// command may create it (database.go).
	databaseFlag string
	db           storeopen.Database
	createsDB    bool
	// keyNoCreate: keyring never generates a key file (doctor).
	keyNoCreate bool
	// observer is told about finished runs and steps (serve's metrics).
	observer rotation.Observer
}

// run builds the command tree, executes it and maps the outcome to an exit code.
func run(args []string, stdout, stderr io.Writer) int {
	out := &stickyWriter{w: stdout}
	a := &app{stdout: out, stderr: stderr, redactor: &secret.Redactor{}, term: detectTerminal(stdout, stderr, os.Getenv)}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	if out.err != nil && (err == nil || errors.Is(err, out.err)) {
		// The output was lost (the command may have done its work): a
		// script reading it must not take the truncation for the whole.
		err = fmt.Errorf("writing the output: %w", out.err)
	}
	if err == nil {
		return exitOK
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	msg := a.redactor.Scrub(err.Error())
	var ue usageError
	var ce *config.Errors
	var nf notFoundError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "rotator: configuration is invalid (%d problem(s)):\n%s\n", len(ce.List), msg)
		return exitUsage
	case errors.As(err, &nf):
		fmt.Fprintf(stderr, "rotator: %s\n", msg)
		return exitNotFound
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintf(stderr, "rotator: %s\nRun '%s --help' for usage.\n", msg, cmd.CommandPath())
		return exitUsage
	case errors.Is(err, errRunsFailed):
		fmt.Fprintf(stderr, "rotator: %s\n", msg)
		return exitFailure
	default:
		fmt.Fprintf(stderr, "rotator: %s\n", msg)
		return exitFailure
	}
}

// errRunsFailed reports that at least one rotation failed under --wait.
var errRunsFailed = errors.New("one or more runs failed")

// isCobraUsage recognises cobra's own argument and flag errors, which it
// returns as plain errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "required flag", "if any flags in the group"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "rotator",
		Short: "Rotate the credentials of MCP servers and clients",
		Long: `rotator keeps an inventory of the credentials your MCP servers and clients use
(their consumer, scope, age and policy), mints short-lived replacements through
provider plugins on schedules, stages and verifies each new value before cutover,
and records every rotation as a documented, runbook-linked audit record.

Configuration holds references to secrets (${env:NAME}, ${file:/path},
${aws-sm:secret-id}), never values. State lives in the database named by
--database or ROTATOR_DATABASE_URL: an SQLite file (default ./rotator.db) or
a postgres:// URL.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,
3 not found (an unknown credential or run id; a selection that matches no
credential).

Output: -o json and -o yaml print one object with stable field names; tables
fit the terminal (COLUMNS overrides its width), -o wide shows every column.
Colour only on a terminal, never with NO_COLOR set.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setupLogger(); err != nil {
				return err
			}
			return a.prepare(cmd)
		},
	}
	root.PersistentFlags().StringVar(&a.databaseFlag, "database", "", "the database: an SQLite file (./rotator.db) or a postgres:// URL (default $ROTATOR_DATABASE_URL, else ./rotator.db)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetUsageTemplate(usageTemplate(helpWidth(a.term)))
	root.AddCommand(
		a.migrateCommand(),
		a.applyCommand(),
		a.credentialsCommand(),
		a.serveCommand(),
		a.rotateCommand(),
		a.runsCommand(),
		a.auditCommand(),
		a.notifyCommand(),
		a.runbooksCommand(),
		a.reportCommand(),
		a.keysCommand(),
		a.tokensCommand(),
		a.headersCommand(),
		a.loginCommand(),
		a.healthCommand(),
		a.execCommand(),
		a.proxyCommand(),
		a.doctorCommand(),
		a.versionCommand(),
		a.scanCommand(),
		a.importCommand(),
	)
	root.InitDefaultCompletionCmd()
	requireSubcommand(root)
	a.registerCompletions(root)
	return root
}

func (a *app) setupLogger() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usagef("--log-level %q: use debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch a.logFormat {
	case "text":
		h = slog.NewTextHandler(a.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(a.stderr, opts)
	default:
		return usagef("--log-format %q: use text or json", a.logFormat)
	}
	a.logger = slog.New(secret.NewHandler(h, a.redactor))
	return nil
}

// openStore opens the database named by --database or
// ROTATOR_DATABASE_URL and applies pending migrations, rotator's and
// River's, under one lock. An SQLite file that does not exist is created
// only by the commands annotated as creating their database (database.go);
// the others fail (exit 2).
func (a *app) openStore(ctx context.Context) (store.Store, error) {
	st, err := a.openDatabase(ctx)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, st); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// migrate applies rotator's and River's pending migrations to st, under
// one lock.
func migrate(ctx context.Context, st store.Store) error {
	if err := rotation.Migrate(ctx, st); err != nil {
		return fmt.Errorf("migrating database: %w", err)
	}
	return nil
}

// actor names who runs a command: --actor, else the OS user.
func actor(flag string) string {
	if flag != "" {
		return flag
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}
