// Package pg is the PostgreSQL plumbing the decision ledger and the audit
// store share: pool settings (pool.go), telling a lost connection from a
// refused statement, and embedded migrations.
package pg

// Migrations: a component's files NNN_name.sql, applied in order, each
// once, all in one transaction that holds an advisory lock, so replicas
// starting together apply them once. Applied versions are rows of the
// component's own table.

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Set is one component's migrations.
type Set struct {
	// Component names the owner in errors ("ledger", "audit").
	Component string
	// Files holds Dir/NNN_name.sql.
	Files fs.FS
	Dir   string
	// Table records the applied versions; Lock is the pg_advisory_xact_lock
	// key. Both are the component's own.
	Table string
	Lock  int64
}

var fileName = regexp.MustCompile(`^([0-9]{3})_[a-z0-9_]+\.sql$`)

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Migration is one file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads and orders the set's files; misnamed files and two files of
// one version are errors.
func (s Set) Load() ([]Migration, error) {
	entries, err := fs.ReadDir(s.Files, s.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: migrations: %w", s.Component, err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%s: migration %q is not named NNN_name.sql", s.Component, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("%s: migrations %q and %q share version %d", s.Component, prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(s.Files, path.Join(s.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("%s: migration %s: %w", s.Component, e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Apply applies the migrations not applied yet.
func (s Set) Apply(ctx context.Context, pool *pgxpool.Pool) error {
	if !tableName.MatchString(s.Table) {
		return fmt.Errorf("%s: migrations table %q is not a plain name", s.Component, s.Table)
	}
	ms, err := s.Load()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.Lock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			CREATE TABLE IF NOT EXISTS `+s.Table+` (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT version FROM `+s.Table)
		if err != nil {
			return err
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		applied := map[int]bool{}
		for _, v := range versions {
			applied[int(v)] = true
		}
		for _, m := range ms {
			if applied[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.Table+` (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: migrate: %w", s.Component, err)
	}
	return nil
}
