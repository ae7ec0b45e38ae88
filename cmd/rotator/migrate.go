package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema",
		Long: `Apply every pending migration to the database named by --database or
ROTATOR_DATABASE_URL (default ./rotator.db), creating it if it does not exist:
rotator's schema and the job queue's (River's) tables, in one step under one
lock (a session advisory lock on Postgres, a <database>.migrate.lock file on
SQLite), so processes started together wait for each other instead of
failing. apply, serve and every other command migrate the same way; run this
to create the database or to upgrade it ahead of a deploy. Safe to run more
than once, and from several processes at once.`,
		Args:        cobra.NoArgs,
		Annotations: createsDatabase(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			_, err = fmt.Fprintf(a.stdout, "database %s is up to date\n", a.db)
			return err
		},
	}
}
