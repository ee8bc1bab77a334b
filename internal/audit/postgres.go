package audit

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"remediator/internal/pg"
)

// PGStore keeps the chain in the PostgreSQL table audit_events, shared by
// every replica. Appends from any number of processes form one linear
// chain: each Append is one transaction that first takes the transaction
// advisory lock AppendLock, then reads the head (the row with the highest
// chain_index), skips or refuses the events already stored, and inserts the
// rest after the head. The lock is released at commit, when the new rows
// are visible to the next holder's statements. The primary key on
// chain_index and UNIQUE (prev_hash) would refuse a fork even without it.
type PGStore struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ Store = (*PGStore)(nil)

// Advisory lock keys (pg_advisory_xact_lock, per database).
const (
	// AppendLock serialises appends ("remaudit" in ASCII).
	AppendLock int64 = 0x72656d6175646974
	// migrationLock serialises migrations ("remaudmg").
	migrationLock int64 = 0x72656d6175646d67
)

// ExportSQL selects the whole chain as JSON lines in the file store's
// shape, for re-verifying it without this code (see the package
// documentation): psql -XAt -c "$SQL" > audit.jsonl.
const ExportSQL = `SELECT json_build_object(` +
	`'id', event_id, 'remediation_id', remediation_id, 'seq', seq, 'kind', kind, 'phase', phase, 'actor', actor, ` +
	`'roles', to_json(roles), 'channel', channel, ` +
	`'at', rtrim(rtrim(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z', ` +
	`'correlation_id', correlation_id, 'digest', digest, 'base', base, 'detail', detail, ` +
	`'index', chain_index, 'prev_hash', prev_hash, 'hash', hash, ` +
	`'recorded_at', rtrim(rtrim(to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z'` +
	`) FROM audit_events ORDER BY chain_index`

// OpenPostgres connects to url (a postgres:// URL or key=value DSN),
// applies the embedded migrations (under an advisory lock, so replicas
// starting together apply them once) and returns the store. Close it when
// done.
func OpenPostgres(ctx context.Context, url string) (*PGStore, error) {
	return openPostgres(ctx, url, true)
}

// ConnectPostgres connects without applying migrations, for tools that
// only read (`remediator audit verify` with a read-only role); the table
// must exist.
func ConnectPostgres(ctx context.Context, url string) (*PGStore, error) {
	return openPostgres(ctx, url, false)
}

func openPostgres(ctx context.Context, url string, migrate bool) (*PGStore, error) {
	cfg, err := pg.PoolConfig("audit", url)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit: postgres: %w", err)
	}
	if migrate {
		err = migrations.Apply(ctx, pool)
	} else {
		var exists bool
		if err = pool.QueryRow(ctx, `SELECT to_regclass('audit_events') IS NOT NULL`).Scan(&exists); err == nil && !exists {
			err = errors.New("audit: the table audit_events does not exist (an api or worker creates it at start)")
		}
	}
	if err != nil {
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
		return fmt.Errorf("audit: postgres: %w", err)
	}
	return nil
}

const recordColumns = `chain_index, prev_hash, hash, recorded_at, event_id, remediation_id, seq, kind, phase, actor, roles, channel, at, correlation_id, digest, base, detail`

func scanRecord(row pgx.Row) (Record, error) {
	var r Record
	var seq int32
	err := row.Scan(&r.Index, &r.PrevHash, &r.Hash, &r.RecordedAt, &r.ID, &r.RemediationID, &seq, &r.Kind, &r.Phase,
		&r.Actor, &r.Roles, &r.Channel, &r.At, &r.CorrelationID, &r.Digest, &r.Base, &r.Detail)
	r.Seq = int(seq)
	return normalizeRecord(r), err
}

// Append implements Store.
func (s *PGStore) Append(ctx context.Context, events ...Event) error {
	batch, err := prepare(events)
	if err != nil || len(batch) == 0 {
		return err
	}
	ids := make([]string, len(batch))
	for i, e := range batch {
		ids[i] = e.ID
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, AppendLock); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+recordColumns+` FROM audit_events WHERE event_id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) { return scanRecord(row) })
		if err != nil {
			return err
		}
		existing := make(map[string]Event, len(stored))
		for _, r := range stored {
			existing[r.ID] = r.Event
		}
		index, head := int64(0), GenesisHash
		err = tx.QueryRow(ctx, `SELECT chain_index, hash FROM audit_events ORDER BY chain_index DESC LIMIT 1`).Scan(&index, &head)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		inserts := &pgx.Batch{}
		for _, e := range batch {
			if have, ok := existing[e.ID]; ok {
				if !sameContent(have, e) {
					return conflict(e.ID)
				}
				continue
			}
			index++
			r := Record{Event: e, Index: index, PrevHash: head, RecordedAt: now}
			r.Hash = ComputeHash(r)
			roles := r.Roles
			if roles == nil {
				roles = []string{}
			}
			inserts.Queue(`INSERT INTO audit_events (`+recordColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
				r.Index, r.PrevHash, r.Hash, r.RecordedAt, r.ID, r.RemediationID, int32(r.Seq), r.Kind, r.Phase,
				r.Actor, roles, r.Channel, r.At, r.CorrelationID, r.Digest, r.Base, r.Detail)
			head = r.Hash
		}
		if inserts.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, inserts).Close()
	})
	if errors.Is(err, ErrConflict) {
		return err
	}
	if err != nil {
		s.dropConnsOnLoss(err)
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// List implements Store.
func (s *PGStore) List(ctx context.Context, remediationID string) ([]Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+recordColumns+` FROM audit_events WHERE remediation_id = $1 ORDER BY chain_index`, remediationID)
	if err != nil {
		s.dropConnsOnLoss(err)
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) { return scanRecord(row) })
	if err != nil {
		s.dropConnsOnLoss(err)
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	if out == nil {
		out = []Record{}
	}
	return out, nil
}

// Verify implements Store: one query (one snapshot) streams the table in
// chain_index order.
func (s *PGStore) Verify(ctx context.Context) (Report, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+recordColumns+` FROM audit_events ORDER BY chain_index`)
	if err != nil {
		s.dropConnsOnLoss(err)
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	v := newVerifier()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		v.add(r)
	}
	if err := rows.Err(); err != nil {
		s.dropConnsOnLoss(err)
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	return v.report(), nil
}

// dropConnsOnLoss empties the pool when err says the server went away, as
// the decision ledger does: the pool's other idle connections are dead too.
func (s *PGStore) dropConnsOnLoss(err error) {
	if pg.ConnLost(err) {
		s.pool.Reset()
	}
}

// migrations: migrations/NNN_name.sql, applied in order, each once, under
// their own advisory lock (internal/pg), as the decision ledger
// applies its own. Applied versions are rows of audit_schema_migrations
// (the ledger's versions live in a table of their own).

//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrations = pg.Set{
	Component: "audit", Files: migrationFiles, Dir: "migrations",
	Table: "audit_schema_migrations", Lock: migrationLock,
}
