package ledger

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"remediator/internal/pg"
)

// PGStore keeps decisions in PostgreSQL, so API replicas on several hosts
// share one ledger. Same semantics as the file store (*Store).
type PGStore struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ Ledger = (*PGStore)(nil)

// OpenPostgres connects to url (a postgres:// URL or key=value DSN), applies
// the embedded migrations and returns the store. An unreachable database is
// an error. Close the store when done.
func OpenPostgres(ctx context.Context, url string) (*PGStore, error) {
	cfg, err := pg.PoolConfig("ledger", url)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger: postgres: %w", err)
	}
	if err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &PGStore{pool: pool, now: time.Now}, nil
}

// Close releases the pool's connections.
func (s *PGStore) Close() { s.pool.Close() }

// Ping checks that the database answers (for readiness probes).
func (s *PGStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		s.dropConnsOnLoss(err)
		return fmt.Errorf("ledger: postgres: %w", err)
	}
	return nil
}

// Create stores d under the id derived from key, or returns the existing
// record for that key unchanged (ErrConflict if it is about another change).
func (s *PGStore) Create(ctx context.Context, key string, d Decision) (Decision, error) {
	d.ID = IDFor(key)
	// timestamptz keeps microseconds; the columns and the document agree.
	now := s.now().UTC().Truncate(time.Microsecond)
	d.Status = StatusPending
	d.CreatedAt, d.UpdatedAt = now, now
	doc, err := encodeDoc(d)
	if err != nil {
		return Decision{}, err
	}
	// No target on ON CONFLICT: the id is derived from the key, so racing
	// inserts collide on both unique indexes, and a conflict on the one not
	// named as arbiter would be raised as an error instead of skipped.
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO remediator_decisions (id, key, remediation_id, repo, status, created_at, updated_at, doc)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT DO NOTHING`,
		d.ID, []byte(key), d.RemediationID, d.Repo, d.Status, d.CreatedAt, d.UpdatedAt, doc)
	if err != nil {
		s.dropConnsOnLoss(err)
		return Decision{}, fmt.Errorf("ledger: create %s: %w", d.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return d, nil
	}
	// The key exists: a separate statement (a fresh snapshot) sees the row
	// even when a concurrent insert committed after this one started.
	existing, err := scanDoc(s.pool.QueryRow(ctx, `SELECT doc FROM remediator_decisions WHERE key = $1`, []byte(key)))
	if errors.Is(err, ErrNotFound) {
		// ON CONFLICT matched the id, not the key: IDFor collided.
		return Decision{}, fmt.Errorf("ledger: create %s: the id already names a decision under another key", d.ID)
	}
	if err != nil {
		s.dropConnsOnLoss(err)
		return Decision{}, fmt.Errorf("ledger: create %s: %w", d.ID, err)
	}
	if !sameChange(existing, d) {
		return Decision{}, ErrConflict
	}
	return existing, nil
}

// Get returns one decision.
func (s *PGStore) Get(ctx context.Context, id string) (Decision, error) {
	if !idPattern.MatchString(id) {
		return Decision{}, ErrNotFound
	}
	d, err := scanDoc(s.pool.QueryRow(ctx, `SELECT doc FROM remediator_decisions WHERE id = $1`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.dropConnsOnLoss(err)
		return Decision{}, fmt.Errorf("ledger: get %s: %w", id, err)
	}
	return d, err
}

// Record writes the outcome; recording the same outcome twice is harmless.
func (s *PGStore) Record(ctx context.Context, id string, o Outcome) (Decision, error) {
	if !idPattern.MatchString(id) {
		return Decision{}, ErrNotFound
	}
	var d Decision
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		d, err = scanDoc(tx.QueryRow(ctx, `SELECT doc FROM remediator_decisions WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		applyOutcome(&d, o, s.now().UTC().Truncate(time.Microsecond))
		doc, err := encodeDoc(d)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE remediator_decisions SET status = $2, updated_at = $3, doc = $4 WHERE id = $1`,
			id, d.Status, d.UpdatedAt, doc)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Decision{}, ErrNotFound
	}
	if err != nil {
		s.dropConnsOnLoss(err)
		return Decision{}, fmt.Errorf("ledger: record %s: %w", id, err)
	}
	return d, nil
}

// dropConnsOnLoss empties the pool when err says the server went away
// (restart, failover, terminated backends): the pool's other idle
// connections are dead too, and without this each would fail one call in
// turn. The call that saw the error still fails (the caller retries); the
// next one dials afresh.
func (s *PGStore) dropConnsOnLoss(err error) {
	if pg.ConnLost(err) {
		s.pool.Reset()
	}
}

// encodeDoc is the JSON document stored in the doc column: the same JSON
// the file store writes (modulo whitespace and key order, which JSONB does
// not keep).
func encodeDoc(d Decision) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("ledger: encode %s: %w", d.ID, err)
	}
	// JSONB refuses \u0000; say so instead of surfacing a driver error.
	if bytes.Contains(b, []byte(`\u0000`)) {
		return "", fmt.Errorf("ledger: decision %s holds a NUL character, which PostgreSQL cannot store", d.ID)
	}
	return string(b), nil
}

func scanDoc(row pgx.Row) (Decision, error) {
	var b []byte
	if err := row.Scan(&b); errors.Is(err, pgx.ErrNoRows) {
		return Decision{}, ErrNotFound
	} else if err != nil {
		return Decision{}, err
	}
	var d Decision
	if err := json.Unmarshal(b, &d); err != nil {
		return Decision{}, fmt.Errorf("ledger: corrupt record: %w", err)
	}
	return d, nil
}

// migrations: migrations/NNN_name.sql, applied in order, each once, under
// an advisory lock (internal/pg); applied versions are rows of
// remediator_schema_migrations.

//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrations = pg.Set{
	Component: "ledger", Files: migrationFiles, Dir: "migrations",
	// The lock key is "remediat" in ASCII.
	Table: "remediator_schema_migrations", Lock: 0x72656d6564696174,
}
