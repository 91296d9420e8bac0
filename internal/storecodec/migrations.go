package storecodec

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migrations are plain SQL files, named NNNN_what.sql, with the same
// numbers and meaning in both stores, so that a database of either kind at
// version N holds the same data. Each store embeds its own files (the SQL
// dialects differ); reading them and deciding what to apply is shared.

// MigrationsTable records what was applied; the same DDL serves both
// dialects.
const MigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`

type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Sub is fs.Sub for an embedded directory that is known to exist.
func Sub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// LoadMigrations reads the migrations in version order, refusing names
// that would make the order ambiguous.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		num, _, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(text)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].Name, ms[i].Name)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// Needed says whether m is still to apply to a database that has the
// versions applied (ascending), of the migrations ms this binary knows. It
// refuses a schema written by a newer deploybot, and one that would take m
// out of order: either could be run with a schema this binary does not
// understand.
func Needed(ms []Migration, applied []int, m Migration) (bool, error) {
	latest := ms[len(ms)-1].Version
	for _, v := range applied {
		if !slices.ContainsFunc(ms, func(k Migration) bool { return k.Version == v }) {
			return false, fmt.Errorf("database schema has migration %d, which this deploybot does not know (it knows up to %d): it was written by a newer deploybot; run that version or restore a backup", v, latest)
		}
	}
	if slices.Contains(applied, m.Version) {
		return false, nil
	}
	if len(applied) > 0 && applied[len(applied)-1] > m.Version {
		return false, fmt.Errorf("database schema has migration %d but lacks %d; refusing to apply migrations out of order", applied[len(applied)-1], m.Version)
	}
	return true, nil
}
