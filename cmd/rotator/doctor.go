package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/doctor"
	"github.com/rotatorhq/rotator/internal/duration"
)

// errDoctorBroken reports that doctor found a broken part (exit 1).
var errDoctorBroken = errors.New("doctor found broken parts")

func (a *app) doctorCommand() *cobra.Command {
	var (
		output, file, maxAge, baseDir string
		dirs                          []string
		timeout                       time.Duration
		maxConfigSize                 int64
		noService                     bool
	)
	cmd := &cobra.Command{
		Use:   "doctor [-f CONFIG] [-o json]",
		Short: "Check every part rotator depends on and name what is broken, with what to do",
		Long: `Check every part rotator depends on, read-only, and name each broken part with
what to do about it:

  database     it opens (reachable, credentials accepted)
  migrations   rotator's and the job queue's migrations are current
  master-key   the configured master key opens every stored value
  service      a 'rotator serve' process leads (broken when none does: then
               scheduled rotations, retirements, audit sealing and
               notifications all wait), and the work only its leader does
               gets done: notification events waiting to be routed,
               unsealed audit events and due credentials with no run
               started (warning when the oldest is over 5 minutes old)
  provider     each provider's system is reachable and accepts its credentials
               (a read-only probe each provider type defines; nothing is minted)
  target       each target's destination exists and may be written
  runbook      every credential's runbook and anchor exist; front matter current
  audit-chain  the hash chain of the audit log is intact

With -f, providers, targets and credentials come from the configuration file
(references resolved here), so they are checked even when the database is
down; without it, from the database. Nothing is created, migrated, generated,
minted or published, and no secret is shown.

Exits 1 when any part is broken, no leading serve included (warnings do not
fail): run it where and when the service should be running. A deployment
that runs no serve on purpose (rotations from 'rotator rotate' and a cron
'rotator runs resume') passes --no-service: the leader check is skipped and
the backlogs are still reported.`,
		Example: `  rotator doctor
  rotator doctor -f rotator.yaml
  rotator doctor --no-service        # no serve on purpose: cron runs 'rotator runs resume'
  ROTATOR_DATABASE_URL=postgres://rotator@db/rotator rotator doctor -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			age, err := duration.Parse(maxAge)
			if err != nil || age <= 0 {
				return usagef("--max-age %q: use a positive duration such as 180d", maxAge)
			}
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			db, err := a.database()
			if err != nil {
				return err
			}
			opts := doctor.Options{
				Database: db.String(), Open: a.openDatabase, MasterKey: a.keyring,
				RunbookDir: baseDir, RunbookDirs: dirs, RunbookMaxAge: age,
				Redactor: a.redactor, Logger: a.logger, Timeout: timeout, NoService: noService,
			}
			a.keyNoCreate = true
			if file != "" {
				var cfg *config.Config
				if cfg, err = loadConfigForRunbooks(file, maxConfigSize); err != nil {
					return err
				}
				opts.Config = cfg
				if opts.RunbookDir == "" {
					opts.RunbookDir = filepath.Dir(file)
				}
			}
			rep := doctor.Run(cmd.Context(), opts)
			if isData(output) {
				err = writeData(a.stdout, output, rep)
			} else {
				err = a.printDoctor(a.stdout, rep)
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("%w: %d broken, %d warning(s)", errDoctorBroken, rep.Broken, rep.Warnings)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "take providers, targets and credentials from this configuration file instead of the database")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up on each check (and each probe) after this long")
	cmd.Flags().BoolVar(&noService, "no-service", false, "this deployment runs no 'rotator serve' (cron runs 'rotator runs resume'): skip the leader check")
	cmd.Flags().StringVar(&maxAge, "max-age", "180d", "warn about runbooks whose reviewed date is older than this")
	cmd.Flags().StringSliceVar(&dirs, "dir", nil, "also check every .md file in this directory (repeatable; default: the runbooks/ directory)")
	cmd.Flags().StringVar(&baseDir, "runbook-dir", "", "directory relative runbook paths are resolved from (default: the config file's directory, or the working directory)")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	maxConfigSizeFlag(cmd.Flags(), &maxConfigSize)
	return cmd
}

// printDoctor prints the checks as a table, then what to do about each
// broken or doubtful part, in full.
func (a *app) printDoctor(w io.Writer, rep doctor.Report) error {
	colour := func(cell string) string {
		switch doctor.Status(cell) {
		case doctor.Broken:
			return "31"
		case doctor.Warn:
			return "33"
		case doctor.OK:
			return "32"
		case doctor.Skipped:
		}
		return ""
	}
	t := a.newTextTable(column{name: "COMPONENT"}, column{name: "NAME"}, column{name: "STATUS", colour: colour}, column{name: "DETAIL", flex: true})
	for _, c := range rep.Checks {
		t.row(c.Component, c.Name, string(c.Status), oneLine(c.Detail))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if rep.Broken+rep.Warnings == 0 {
		_, err := fmt.Fprintln(w, "\nNothing is broken.")
		return err
	}
	fmt.Fprintf(w, "\n%d broken, %d warning(s):\n", rep.Broken, rep.Warnings)
	for _, c := range rep.Checks {
		if c.Status != doctor.Broken && c.Status != doctor.Warn {
			continue
		}
		fmt.Fprintf(w, "  - %s %s (%s): %s\n", c.Component, c.Name, c.Status, oneLine(c.Detail))
		if c.Fix != "" {
			fmt.Fprintf(w, "    to fix: %s\n", oneLine(c.Fix))
		}
	}
	return nil
}
