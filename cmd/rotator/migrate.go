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
ROTATOR_DATABASE_URL (default ./rotator.db), creating it if it does not exist.
apply and serve migrate automatically; run this to create the database or to
upgrade it ahead of a deploy. Safe to run more than once.`,
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
