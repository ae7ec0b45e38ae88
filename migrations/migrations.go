// Package migrations embeds rotator's goose migrations, one folder per
// dialect. Both folders describe the same schema: the same tables, columns,
// constraints and index names, numbered alike, so a change lands in both in
// one commit. A migration, once released, is never edited; changes go in a
// new numbered file (goose create NAME sql).
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed postgres/*.sql
var postgresFiles embed.FS

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

// Postgres holds the Postgres migrations at its root, for goose.NewProvider.
var Postgres fs.FS = mustSub(postgresFiles, "postgres")

// SQLite holds the SQLite migrations at its root, for goose.NewProvider.
var SQLite fs.FS = mustSub(sqliteFiles, "sqlite")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("migrations: " + err.Error()) // unreachable: dir is a literal embedded above
	}
	return sub
}
