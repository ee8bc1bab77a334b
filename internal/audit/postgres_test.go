package audit

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"remediator/internal/pgtest"
)

func openPG(t *testing.T, url string) *PGStore {
	t.Helper()
	s, err := OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// superuser runs fn on a connection of the test's (superuser) role with
// the append-only triggers disabled, as only the table's owner or a
// superuser could.
func superuser(t *testing.T, url string, fn func(conn *pgx.Conn)) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER USER`); err != nil {
		t.Fatal(err)
	}
	fn(conn)
	if _, err := conn.Exec(ctx, `ALTER TABLE audit_events ENABLE TRIGGER USER`); err != nil {
		t.Fatal(err)
	}
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgBackend() backend {
	urls := map[Store]string{}
	var mu sync.Mutex
	urlOf := func(s Store) string { mu.Lock(); defer mu.Unlock(); return urls[s] }
	return backend{
		open: func(t *testing.T) (Store, func(t *testing.T) Store) {
			url := pgtest.NewDatabase(t)
			s := openPG(t, url)
			mu.Lock()
			urls[s] = url
			mu.Unlock()
			// Another process: its own pool, its own connections.
			return s, func(t *testing.T) Store { return openPG(t, url) }
		},
		rewrite: func(t *testing.T, s Store, index int64, fn func(*Record)) {
			superuser(t, urlOf(s), func(conn *pgx.Conn) {
				r, err := scanRecord(conn.QueryRow(context.Background(), `SELECT `+recordColumns+` FROM audit_events WHERE chain_index = $1`, index))
				if err != nil {
					t.Fatal(err)
				}
				fn(&r)
				mustExec(t, conn, `UPDATE audit_events SET hash = $2, recorded_at = $3, actor = $4, detail = $5, kind = $6 WHERE chain_index = $1`,
					index, r.Hash, r.RecordedAt, r.Actor, r.Detail, r.Kind)
			})
		},
		remove: func(t *testing.T, s Store, index int64) {
			superuser(t, urlOf(s), func(conn *pgx.Conn) {
				mustExec(t, conn, `DELETE FROM audit_events WHERE chain_index = $1`, index)
			})
		},
		swap: func(t *testing.T, s Store, index int64) {
			superuser(t, urlOf(s), func(conn *pgx.Conn) {
				mustExec(t, conn, `UPDATE audit_events SET chain_index = 1000000 WHERE chain_index = $1`, index)
				mustExec(t, conn, `UPDATE audit_events SET chain_index = $1 WHERE chain_index = $2`, index, index+1)
				mustExec(t, conn, `UPDATE audit_events SET chain_index = $1 WHERE chain_index = 1000000`, index+1)
			})
		},
	}
}

func TestAuditPostgresConformance(t *testing.T) {
	testStoreConformance(t, pgBackend())
}

// The table refuses UPDATE, DELETE and TRUNCATE, whoever asks.
func TestAuditPostgresTableIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := openPG(t, url)
	fill(t, s, 3)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`UPDATE audit_events SET actor = 'mallory' WHERE chain_index = 2`,
		`UPDATE audit_events SET hash = hash`,
		`DELETE FROM audit_events WHERE chain_index = 3`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
	} {
		_, err := conn.Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: want the trigger's refusal, got %v", sql, err)
		}
	}
	if rep := verify(t, s); !rep.OK || rep.Records != 3 {
		t.Fatalf("nothing changed: %+v", rep)
	}
}

// Replicas starting together apply the migrations once; reopening applies
// nothing; a read-only connect needs the table.
func TestAuditPostgresMigrationsAndConnect(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if _, err := ConnectPostgres(ctx, url); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("connect before the table exists: %v", err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			s, err := OpenPostgres(ctx, url)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	s := openPG(t, url)
	fill(t, s, 2)
	ro, err := ConnectPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rep := verify(t, ro); !rep.OK || rep.Records != 2 {
		t.Fatalf("verify: %+v", rep)
	}
	if err := ro.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_schema_migrations`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("migrations applied: %d %v", n, err)
	}
}

// ExportSQL gives the JSON lines the documentation's script verifies: the
// same records, times in the canonical form.
func TestAuditPostgresExportIsTheFileShape(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := openPG(t, url)
	fill(t, s, 2)
	whole := ev("rem-b", 1, "vote")
	whole.At = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC) // no fraction at all
	tenth := ev("rem-b", 2, "vote")
	tenth.At = time.Date(2030, 1, 2, 3, 4, 50, 100000000, time.UTC) // trailing zeros trimmed
	noRoles := ev("rem-b", 3, "outcome")
	noRoles.Roles, noRoles.Actor, noRoles.Detail = nil, "", "a\nb \"c\" ü"
	if err := s.Append(ctx, whole, tenth, noRoles); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, ExportSQL)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 {
		t.Fatalf("%d lines", len(lines))
	}
	prev := GenesisHash
	for i, l := range lines {
		r, err := decodeRecord([]byte(l))
		if err != nil {
			t.Fatalf("line %d %s: %v", i+1, l, err)
		}
		if r.Index != int64(i+1) || r.PrevHash != prev || ComputeHash(r) != r.Hash {
			t.Fatalf("line %d does not verify: %s", i+1, l)
		}
		var raw map[string]any
		_ = json.Unmarshal([]byte(l), &raw)
		if at := raw["at"].(string); at != formatTime(r.At) {
			t.Fatalf("line %d: at %q, canonical %q", i+1, at, formatTime(r.At))
		}
		prev = r.Hash
	}
	for _, want := range []string{`"2030-01-02T03:04:00Z"`, `"2030-01-02T03:04:50.1Z"`} {
		if !strings.Contains(strings.Join(lines, "\n"), want) {
			t.Errorf("export lacks %s", want)
		}
	}
}

// After the server dropped every connection an append fails at most once
// (retryably: neither a conflict nor invalid) and its retry completes the
// chain.
func TestAuditPostgresAppendAfterConnectionLoss(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := openPG(t, url)
	fill(t, s, 1)
	pgtest.TerminateBackends(t, url)
	var err error
	for range 3 { // the first call may see the dead connection
		if err = s.Append(ctx, ev("rem-a", 2, "phase")); err == nil {
			break
		}
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
			t.Fatalf("a lost connection is neither a conflict nor invalid: %v", err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, s); !rep.OK || rep.Records != 2 {
		t.Fatalf("verify: %+v", rep)
	}
}
