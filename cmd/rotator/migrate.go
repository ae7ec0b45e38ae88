package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/store/storeopen"
)

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema",
		Long: `Apply every pending migration to the database named by ROTATOR_DATABASE_URL
(default sqlite://./rotator.db). apply and serve migrate automatically; run this
to upgrade ahead of a deploy. Safe to run more than once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			_, err = fmt.Fprintf(a.stdout, "database %s is up to date\n", storeopen.Redact(storeopen.FromEnv()))
			return err
		},
	}
}
