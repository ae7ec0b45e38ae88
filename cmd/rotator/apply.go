package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
)

func (a *app) applyCommand() *cobra.Command {
	var (
		file          string
		dryRun, prune bool
		output        string
		actorName     string
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Load a configuration file into the inventory",
		Long: `Validate a configuration file and write its providers and credentials to the
database, in one transaction: if anything is invalid, nothing changes.

Prints what was created, updated, left unchanged and removed. Applying the same
file twice reports no changes. Credentials the file no longer declares are kept
(and listed) unless --prune is given; their history is never deleted.`,
		Example: `  rotator apply -f examples/quickstart.yaml --dry-run
  rotator apply -f rotator.yaml
  rotator apply -f rotator.yaml --prune -o json`,
		Args:        cobra.NoArgs,
		Annotations: createsDatabase(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			cfg, err := loadConfig(file)
			if err != nil {
				return err
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			diff, err := inventory.Apply(cmd.Context(), st, cfg, inventory.Options{DryRun: dryRun, Prune: prune, Actor: actor(actorName)})
			if err != nil {
				return fmt.Errorf("applying %s: %w", file, err)
			}
			if output == "json" {
				return writeJSON(a.stdout, diff)
			}
			return a.printDiff(diff)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file (YAML) to apply")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show the changes without writing them")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove providers and credentials the file does not declare")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&actorName, "actor", "", "who is applying, for the audit log (default: the OS user)")
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

// loadConfig loads a configuration file; a file that cannot be read is a
// usage error (exit 2), like an invalid one.
func loadConfig(file string) (*config.Config, error) {
	cfg, err := config.Load(file)
	var ce *config.Errors
	if err != nil && !errors.As(err, &ce) {
		return nil, usageError{err}
	}
	return cfg, err
}
