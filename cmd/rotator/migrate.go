package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/rotation"
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
than once, and from several processes at once.

It prints what changed (rotator's schema created, or upgraded from one
version to another, with the time it took; the job queue's tables brought
up to date), then the schema version the database is at.`,
		Args:        cobra.NoArgs,
		Annotations: createsDatabase(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := a.openDatabase(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			before, err := rotation.MigrationStatus(ctx, st)
			if err != nil {
				return fmt.Errorf("reading the migrations of %s: %w", a.db, err)
			}
			t0 := time.Now()
			if err := migrate(ctx, st); err != nil {
				return err
			}
			took := time.Since(t0)
			after, err := rotation.MigrationStatus(ctx, st)
			if err != nil {
				return fmt.Errorf("reading the migrations of %s: %w", a.db, err)
			}
			_, err = fmt.Fprint(a.stdout, migrateReport(a.db.String(), before, after, took))
			return err
		},
	}
}

// migrateReport says what rotator migrate changed: the schema version
// before and after (another process may have applied some of it; the
// versions are the database's either way) and whether the job queue's
// tables were brought up to date.
func migrateReport(db string, before, after rotation.MigrationState, took time.Duration) string {
	var b strings.Builder
	switch {
	case after.Current != before.Current && before.Current == 0:
		fmt.Fprintf(&b, "created rotator's schema at version %d in %s\n", after.Current, took.Round(time.Millisecond))
	case after.Current != before.Current:
		fmt.Fprintf(&b, "upgraded rotator's schema from version %d to %d in %s\n", before.Current, after.Current, took.Round(time.Millisecond))
	}
	if len(before.QueueProblems) > 0 && len(after.QueueProblems) == 0 {
		b.WriteString("brought the job queue's tables up to date\n")
	}
	fmt.Fprintf(&b, "database %s is up to date (schema version %d)\n", db, after.Current)
	return b.String()
}
