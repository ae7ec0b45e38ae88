package main

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/rotatorhq/rotator/migrations"
)

// TestMigrateSaysWhatItChanged: rotator migrate reports creating the
// schema, upgrading it (here from one version back, as after installing a
// newer rotator), or nothing to do, with the schema version each time.
func TestMigrateSaysWhatItChanged(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	path := c.path("rotator.db")

	r := c.must(t, 0, "migrate")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	sources := p.ListSources()
	latest := sources[len(sources)-1].Version
	for _, want := range []string{
		fmt.Sprintf("created rotator's schema at version %d in ", latest),
		"brought the job queue's tables up to date",
		fmt.Sprintf("database %s is up to date (schema version %d)", path, latest),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("first migrate does not say %q:\n%s", want, r)
		}
	}

	r = c.must(t, 0, "migrate")
	if want := fmt.Sprintf("database %s is up to date (schema version %d)\n", path, latest); r.stdout != want {
		t.Errorf("second migrate: want only %q:\n%s", want, r)
	}

	// Undo the newest migration, as a database of the previous release.
	if _, err := p.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v, err := p.GetDBVersion(t.Context()); err != nil || v != latest-1 {
		t.Fatalf("after goose down the schema is at %d (%v), want %d", v, err, latest-1)
	}
	r = c.must(t, 0, "migrate")
	if want := fmt.Sprintf("upgraded rotator's schema from version %d to %d in ", latest-1, latest); !strings.Contains(r.stdout, want) ||
		strings.Contains(r.stdout, "job queue") {
		t.Errorf("migrate after a downgrade does not say %q (and only that the queue is current):\n%s", want, r)
	}
}
