package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/store"
)

// errRunbookProblems reports that runbooks check found problems (exit 1).
var errRunbookProblems = errors.New("runbook problems found")

func (a *app) runbooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "runbooks",
		Aliases: []string{"runbook"},
		Short:   "Check the runbooks credentials link to",
	}
	cmd.AddCommand(a.runbooksCheckCommand())
	return cmd
}

func (a *app) runbooksCheckCommand() *cobra.Command {
	var (
		output, file, maxAge, baseDir string
		dirs                          []string
		maxConfigSize                 int64
	)
	cmd := &cobra.Command{
		Use:   "check [-f CONFIG]",
		Short: "Check that every linked runbook and anchor exists and was reviewed recently",
		Long: `Check the runbooks of the inventory (from the database, or from a configuration
file with -f):

  - every credential names a runbook whose file and anchor exist;
  - every runbook (those credentials link, and every .md file in --dir,
    by default the runbooks/ directory) opens with front matter holding
    id, version, owner and reviewed (a date), with unique ids;
  - reviewed is no older than --max-age.

Lists every problem and exits with code 1 if there is any.`,
		Example: `  rotator runbooks check
  rotator runbooks check -f rotator.yaml --max-age 90d
  rotator runbooks check --dir runbooks --dir ops/runbooks -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			age, err := duration.Parse(maxAge)
			if err != nil || age <= 0 {
				return usagef("--max-age %q: use a positive duration such as 180d", maxAge)
			}
			ctx := cmd.Context()
			var creds []runbook.CredentialRef
			base := baseDir
			if file != "" {
				cfg, err := loadConfigForRunbooks(file, maxConfigSize)
				if err != nil {
					return err
				}
				if base == "" {
					base = filepath.Dir(file)
				}
				for _, c := range cfg.Credentials {
					creds = append(creds, runbook.CredentialRef{ID: c.ID, Ref: c.Runbook})
				}
			} else {
				if base == "" {
					base = "."
				}
				if creds, err = a.storedRunbooks(ctx); err != nil {
					return err
				}
			}
			if len(dirs) == 0 {
				if d, ok := runbook.FindDir(base, "runbooks"); ok {
					dirs = []string{d}
				}
			}
			res, err := runbook.Check(creds, base, dirs, age, time.Now().UTC())
			if derr := (*runbook.DirError)(nil); errors.As(err, &derr) {
				return usageError{err}
			} else if err != nil {
				return err
			}
			if isData(output) {
				if err := writeData(a.stdout, output, res); err != nil {
					return err
				}
			} else if err := printRunbooks(a.stdout, res); err != nil {
				return err
			}
			if len(res.Problems) > 0 {
				return fmt.Errorf("%w: %d problem(s)", errRunbookProblems, len(res.Problems))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "check the credentials of this configuration file instead of the database")
	cmd.Flags().StringVar(&maxAge, "max-age", "180d", "flag runbooks whose reviewed date is older than this")
	cmd.Flags().StringSliceVar(&dirs, "dir", nil, "also check every .md file in this directory (repeatable; default: the runbooks/ directory)")
	cmd.Flags().StringVar(&baseDir, "runbook-dir", "", "directory relative runbook paths are resolved from (default: the config file's directory, or the working directory)")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	maxConfigSizeFlag(cmd.Flags(), &maxConfigSize)
	return cmd
}

// loadConfigForRunbooks parses a configuration file without failing on
// runbook problems, which the check reports itself.
func loadConfigForRunbooks(file string, maxSize int64) (*config.Config, error) {
	data, err := config.ReadFile(file, maxSize)
	if err != nil {
		if err := configSizeError(err); errors.As(err, new(usageError)) {
			return nil, err
		}
		return nil, usagef("reading config %s: %v", file, err)
	}
	return config.Parse(file, data, config.Options{BaseDir: filepath.Dir(file)})
}

// storedRunbooks lists every live credential's runbook reference, a page at
// a time.
func (a *app) storedRunbooks(ctx context.Context) ([]runbook.CredentialRef, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var out []runbook.CredentialRef
	after := ""
	for {
		page, err := st.ListCredentials(ctx, store.CredentialFilter{AfterID: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("listing credentials: %w", err)
		}
		for _, c := range page {
			out = append(out, runbook.CredentialRef{ID: c.ID, Ref: c.Runbook})
		}
		if len(page) < 1000 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

func printRunbooks(w io.Writer, res runbook.CheckResult) error {
	t := newTable(w, "RUNBOOK", "ID", "VERSION", "OWNER", "REVIEWED", "STATUS")
	for _, r := range res.Runbooks {
		status := "ok"
		if len(r.Problems) > 0 {
			status = fmt.Sprintf("%d problem(s)", len(r.Problems))
		}
		t.row(r.File, orDash(r.ID), orDash(r.Version), orDash(r.Owner), orDash(r.Reviewed), status)
	}
	if err := t.flush(); err != nil {
		return err
	}
	bad := slices.IndexFunc(res.Credentials, func(l runbook.LinkCheck) bool { return l.Problem != nil }) >= 0
	fmt.Fprintf(w, "\n%d credential(s) checked", len(res.Credentials))
	if !bad {
		fmt.Fprintln(w, ": every runbook link resolves.")
	} else {
		fmt.Fprintln(w, ".")
	}
	if len(res.Problems) == 0 {
		_, err := fmt.Fprintln(w, "No problems.")
		return err
	}
	fmt.Fprintf(w, "\n%d problem(s):\n", len(res.Problems))
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return nil
}
