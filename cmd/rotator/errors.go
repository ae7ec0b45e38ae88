package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// notFoundf returns a not-found error (exit code 3, see notFoundError)
// that wraps store.ErrNotFound; the message says what is missing and where
// to look.
func notFoundf(format string, args ...any) error {
	return notFound(messageError{msg: fmt.Sprintf(format, args...), err: store.ErrNotFound})
}

// messageError is an error with its own message that wraps another.
type messageError struct {
	msg string
	err error
}

func (e messageError) Error() string { return e.msg }
func (e messageError) Unwrap() error { return e.err }

// selectionError classifies an error of rotation.Engine.Select: an unknown
// credential id is not found (3), an empty selection a usage error (2),
// anything else a runtime failure (1).
func selectionError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFoundf("%v; see 'rotator credentials list'", err)
	case errors.Is(err, rotation.ErrEmptySelection):
		return usageError{err}
	}
	return err
}

// requireSubcommand makes every command group under c (a command with
// subcommands and nothing to run itself) fail on an unknown subcommand, as
// the root does, instead of printing its help and exiting 0. Without
// arguments a group still prints its help.
func requireSubcommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireSubcommand(sub)
	}
	if !c.HasParent() || c.Runnable() || !c.HasSubCommands() {
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		hint := ""
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			hint = "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usagef("unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	c.DisableFlagsInUseLine = true
}
