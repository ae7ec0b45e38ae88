package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/rotation"
)

func (a *app) applyCommand() *cobra.Command {
	var (
		file                          string
		dryRun, prune, revoke, strict bool
		output                        string
		actorName                     string
		maxConfigSize                 int64
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Load a configuration file into the inventory",
		Long: `Validate a configuration file and write its providers and credentials to the
database, in one transaction: if anything is invalid, nothing changes.

Prints what was created, updated, left unchanged and removed. Applying the same
file twice reports no changes. Credentials the file no longer declares are kept
(and listed) unless --prune is given; their history is never deleted.

Before writing, apply checks on this host what the file names: it resolves every
reference in provider and target settings and checks every exec plugin's
executable, and reports each problem as file:line: field: what is wrong and what
would fix it. These are warnings (the file is applied; the service resolves
references in its own environment at each run), or errors with --strict (exit 2,
nothing applied). No resolved value is ever printed.

With --prune, once the removal has committed, each removed credential's value is
withdrawn from its targets (a file target removes its key, or the raw file; an
aws-secretsmanager target schedules the secret's deletion with a recovery window),
and with --revoke its current, previous and pending values are revoked at the
provider (this needs the master key). Without --revoke those values stay valid at
the provider until they expire, and apply warns about each. A failed withdrawal
or revocation is reported (exit 1) and recorded in the audit log; the removal
stays committed.`,
		Example: `  rotator apply -f examples/quickstart.yaml --dry-run
  rotator apply -f rotator.yaml --strict
  rotator apply -f rotator.yaml --prune --revoke -o json`,
		Args:        cobra.NoArgs,
		Annotations: createsDatabase(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			if revoke && !prune {
				return usagef("--revoke revokes the values of the credentials --prune removes; add --prune")
			}
			cfg, err := loadConfig(file, maxConfigSize)
			if err != nil {
				return err
			}
			if problems := config.Check(cmd.Context(), cfg, config.CheckOptions{}); len(problems) > 0 {
				if strict {
					return &config.Errors{List: problems}
				}
				cfg.Warnings = append(cfg.Warnings, problems...)
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			who := actor(actorName)
			diff, err := inventory.Apply(cmd.Context(), st, cfg, inventory.Options{DryRun: dryRun, Prune: prune, Actor: who})
			if err != nil {
				return fmt.Errorf("applying %s: %w", file, err)
			}
			res := applyResult{Diff: diff, Withdrawals: []rotation.WithdrawAction{}}
			if len(diff.Removals) > 0 && !dryRun {
				if res.Withdrawals, err = a.withdraw(cmd.Context(), st, diff.Removals, rotation.WithdrawOptions{Revoke: revoke, Actor: who}); err != nil {
					return err
				}
			}
			if isData(output) {
				err = writeData(a.stdout, output, res)
			} else {
				err = a.printApply(res, revoke)
			}
			a.warnStillValid(res.Withdrawals, revoke)
			if err == nil && res.failed() {
				err = errWithdrawFailed
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file (YAML) to apply")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show the changes without writing them")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove providers and credentials the file does not declare, and withdraw their values from their targets")
	cmd.Flags().BoolVar(&revoke, "revoke", false, "with --prune, also revoke the removed credentials' values at their providers (needs the master key)")
	cmd.Flags().BoolVar(&strict, "strict", false, "treat problems found on this host (unresolvable references, missing plugin executables) as errors: exit 2, apply nothing")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	cmd.Flags().StringVar(&actorName, "actor", "", "who is applying, for the audit log (default: the OS user)")
	maxConfigSizeFlag(cmd.Flags(), &maxConfigSize)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func (a *app) printDiff(d inventory.Diff) error {
	for _, w := range d.Warnings {
		fmt.Fprintf(a.stderr, "warning: %s\n", w)
	}
	t := newTable(a.stdout, "KIND", "NAME", "CHANGE", "DETAIL")
	for _, c := range d.Changes {
		detail := c.Note
		if len(c.Fields) > 0 {
			detail = strings.Join(c.Fields, ", ")
		}
		if detail == "" {
			detail = "-"
		}
		t.row(c.Kind, c.Name, c.Action, detail)
	}
	if err := t.flush(); err != nil {
		return err
	}
	prefix := "Applied"
	if d.DryRun {
		prefix = "Dry run (nothing written)"
	}
	if !d.Changed() {
		_, err := fmt.Fprintf(a.stdout, "%s: no changes (%d unchanged).\n", prefix, d.Count(inventory.Unchanged))
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "%s: %d created, %d updated, %d unchanged, %d removed.\n", prefix,
		d.Count(inventory.Created), d.Count(inventory.Updated), d.Count(inventory.Unchanged), d.Count(inventory.Removed))
	return err
}

// loadConfig loads a configuration file of at most maxSize bytes; a file
// that cannot be read or is too large is a usage error (exit 2), like an
// invalid one.
func loadConfig(file string, maxSize int64) (*config.Config, error) {
	cfg, err := config.LoadLimit(file, maxSize)
	if err != nil {
		err = configSizeError(err)
	}
	var ce *config.Errors
	if err != nil && !errors.As(err, &ce) {
		return nil, usageError{err}
	}
	return cfg, err
}
