package migrations

import (
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pgOnly names objects that exist only in the Postgres schema, with the
// reason.
var pgOnly = map[string]string{
	"credentials_labels_idx": "GIN index for jsonb @>; SQLite filters labels with json_each",
	"audit_events_seq_key":   "partial unique index replacing the column's UNIQUE (00003); SQLite keeps the column's automatic index, which it cannot drop without rebuilding the table",
}

func TestDialectsInStep(t *testing.T) {
	pg := read(t, Postgres)
	lite := read(t, SQLite)
	if got, want := slices.Sorted(maps.Keys(lite)), slices.Sorted(maps.Keys(pg)); !slices.Equal(got, want) {
		t.Fatalf("migration files differ between dialects: sqlite %v, postgres %v", got, want)
	}
	if len(pg) == 0 {
		t.Fatal("no migrations embedded")
	}
	tables := regexp.MustCompile(`(?m)^CREATE TABLE (\w+)`)
	indexes := regexp.MustCompile(`(?m)^CREATE (?:UNIQUE )?INDEX (\w+)`)
	for name, pgSQL := range pg {
		liteSQL := lite[name]
		for _, sql := range []string{pgSQL, liteSQL} {
			if !strings.Contains(sql, "-- +goose Up") || !strings.Contains(sql, "-- +goose Down") {
				t.Errorf("%s: want both -- +goose Up and -- +goose Down annotations", name)
			}
		}
		for _, re := range []*regexp.Regexp{tables, indexes} {
			pgNames := names(re, pgSQL)
			liteNames := names(re, liteSQL)
			if !slices.Equal(pgNames, liteNames) {
				t.Errorf("%s: objects differ between dialects (%s):\npostgres %v\nsqlite   %v", name, re, pgNames, liteNames)
			}
		}
	}
}

func read(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatalf("read migrations: %v", err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			t.Fatalf("read migration %s: %v", e.Name(), err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func names(re *regexp.Regexp, sql string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(sql, -1) {
		if _, skip := pgOnly[m[1]]; !skip {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}
