package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"remediator/internal/pg"
	"remediator/internal/pgtest"
)

// testLedgerConformance is the behaviour every Ledger shares; open returns a
// fresh, empty ledger for each subtest.
func testLedgerConformance(t *testing.T, open func(t *testing.T) Ledger) {
	ctx := context.Background()
	change := Decision{RemediationID: "rem-1", Repo: "/r/a", BaseSHA: "b1", DiffDigest: "d1", ProposedAction: "apply_autofix"}

	t.Run("CreateIsIdempotentByKey", func(t *testing.T) {
		l := open(t)
		key := "rem-1\x00run-1" // activities join remediation and run ids with NUL
		first, err := l.Create(ctx, key, change)
		if err != nil {
			t.Fatal(err)
		}
		if first.ID != IDFor(key) || !idPattern.MatchString(first.ID) || first.Status != StatusPending || first.CreatedAt.IsZero() || !first.CreatedAt.Equal(first.UpdatedAt) {
			t.Fatalf("first create: %+v", first)
		}
		again, err := l.Create(ctx, key, change)
		if err != nil || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("the same change is answered with its record: %+v %v", again, err)
		}
		other, err := l.Create(ctx, "rem-1\x00run-2", change)
		if err != nil || other.ID == first.ID {
			t.Fatalf("another key is another decision: %+v %v", other, err)
		}
	})

	t.Run("CreateRefusesAnotherChange", func(t *testing.T) {
		l := open(t)
		if _, err := l.Create(ctx, "rem-1", change); err != nil {
			t.Fatal(err)
		}
		for _, other := range []Decision{
			{RemediationID: "rem-2", Repo: "/r/a", BaseSHA: "b1", DiffDigest: "d1"},
			{RemediationID: "rem-1", Repo: "/r/b", BaseSHA: "b1", DiffDigest: "d1"},
			{RemediationID: "rem-1", Repo: "/r/a", BaseSHA: "b2", DiffDigest: "d1"},
			{RemediationID: "rem-1", Repo: "/r/a", BaseSHA: "b1", DiffDigest: "d2"},
		} {
			if _, err := l.Create(ctx, "rem-1", other); !errors.Is(err, ErrConflict) {
				t.Errorf("%+v: want ErrConflict, got %v", other, err)
			}
		}
		// Fields outside the change (rationale, requester...) do not conflict.
		same := change
		same.Rationale, same.Requester = "other words", "bob"
		if d, err := l.Create(ctx, "rem-1", same); err != nil || d.Rationale != "" {
			t.Fatalf("same change, other wording: %+v %v", d, err)
		}
	})

	t.Run("GetReturnsTheRecordExactly", func(t *testing.T) {
		l := open(t)
		created, err := l.Create(ctx, "rem-full", fullDecision())
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Get(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := mustJSON(t, created), mustJSON(t, got); a != b {
			t.Fatalf("record does not round-trip:\ncreated %s\ngot     %s", a, b)
		}
		want := fullDecision()
		want.ID, want.Status, want.CreatedAt, want.UpdatedAt = created.ID, StatusPending, created.CreatedAt, created.UpdatedAt
		if a, b := mustJSON(t, want), mustJSON(t, got); a != b {
			t.Fatalf("record differs from its input:\nwant %s\ngot  %s", a, b)
		}
	})

	t.Run("RecordOutcome", func(t *testing.T) {
		l := open(t)
		d, err := l.Create(ctx, "rem-1", change)
		if err != nil {
			t.Fatal(err)
		}
		votes := []Vote{{Actor: "alice", Approved: true, Comment: "ok", Channel: "slack", At: time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)}}
		o := Outcome{Phase: "Completed", Reason: "merged", PRURL: "https://example.com/pr/1", Votes: votes}
		rec, err := l.Record(ctx, d.ID, o)
		if err != nil || rec.Status != StatusApproved || rec.Outcome != "Completed" || rec.Reason != "merged" || rec.PRURL != o.PRURL || len(rec.Votes) != 1 || rec.UpdatedAt.Before(rec.CreatedAt) {
			t.Fatalf("record: %+v %v", rec, err)
		}
		got, err := l.Get(ctx, d.ID)
		if err != nil || mustJSON(t, got) != mustJSON(t, rec) {
			t.Fatalf("get after record:\n%s\n%s (%v)", mustJSON(t, got), mustJSON(t, rec), err)
		}
		if !got.Votes[0].At.Equal(votes[0].At) {
			t.Fatalf("vote time lost precision: %v", got.Votes[0].At)
		}
		if again, err := l.Record(ctx, d.ID, o); err != nil || again.Status != StatusApproved {
			t.Fatalf("recording twice is harmless: %+v %v", again, err)
		}
		if c, err := l.Create(ctx, "rem-1", change); err != nil || c.Status != StatusApproved || len(c.Votes) != 1 {
			t.Fatalf("create after outcome must return the stored record, got %+v %v", c, err)
		}
		for phase, status := range map[string]string{
			"Rejected": StatusRejected, "Expired": StatusExpired, "Cancelled": StatusCancelled, "Superseded": StatusCancelled,
			"Failed": StatusFailed, "Running": StatusPending, "Completed": StatusApproved,
		} {
			if r, err := l.Record(ctx, d.ID, Outcome{Phase: phase}); err != nil || r.Status != status {
				t.Errorf("%s: want %s, got %+v %v", phase, status, r.Status, err)
			}
			if g, _ := l.Get(ctx, d.ID); g.Status != status || g.Votes != nil || g.PRURL != "" {
				t.Errorf("%s: stored %+v", phase, g)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		l := open(t)
		for _, id := range []string{IDFor("never-created"), "dec_000000000000000000000000", "../etc/passwd", "", "dec_zz", "dec_' OR 1=1 --"} {
			if _, err := l.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("get %q: want ErrNotFound, got %v", id, err)
			}
			if _, err := l.Record(ctx, id, Outcome{Phase: "Failed"}); !errors.Is(err, ErrNotFound) {
				t.Errorf("record %q: want ErrNotFound, got %v", id, err)
			}
		}
	})

	t.Run("ConcurrentCreatesShareOneDecision", func(t *testing.T) {
		l := open(t)
		ids := make([]string, 8)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				d, err := l.Create(ctx, "rem-race", change)
				if err != nil {
					t.Error(err)
				}
				ids[i] = d.ID
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] || id == "" {
				t.Fatalf("concurrent creates returned different ids: %v", ids)
			}
		}
	})
}

func fullDecision() Decision {
	return Decision{
		AlertID: "alert-1", Proposer: "remediator", ProposedAction: "apply_autofix",
		Rationale:     `bump "x" on /r/a — ünïcode, <html> & \ backslash`,
		RemediationID: "rem-full", Repo: "/r/a", Requester: "alice", IncidentID: "inc-1", CorrelationID: "corr-1",
		Files: []string{"go.mod", "go.sum"}, DiffDigest: "sha256:abc", BaseSHA: "0123456789abcdef",
		RiskLevel: "low", RiskScore: 12, RiskReason: "small", FixSource: "recipe", Validation: "passed",
		Links: map[string]string{"ci": "https://ci.example.com/1", "runbook": "https://example.com/rb"},
	}
}

func mustJSON(t *testing.T, d Decision) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func openPG(t *testing.T, url string) *PGStore {
	t.Helper()
	s, err := OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestFileStoreConformance(t *testing.T) {
	testLedgerConformance(t, func(t *testing.T) Ledger {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPostgresConformance(t *testing.T) {
	testLedgerConformance(t, func(t *testing.T) Ledger {
		return openPG(t, pgtest.NewDatabase(t))
	})
}

// TestPostgresWritesTheFileStoreJSON: with one clock, both stores produce
// the same record, byte for byte.
func TestPostgresWritesTheFileStoreJSON(t *testing.T) {
	ctx := context.Background()
	clock := func() time.Time { return time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.FixedZone("X", 3600)) }
	pg := openPG(t, pgtest.NewDatabase(t))
	pg.now = clock
	fs, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs.now = clock
	o := Outcome{Phase: "Rejected", Reason: "no", Votes: []Vote{{Actor: "bob", Channel: "api", At: clock()}}}
	for _, l := range []Ledger{pg, fs} {
		d, err := l.Create(ctx, "rem-json", fullDecision())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Record(ctx, d.ID, o); err != nil {
			t.Fatal(err)
		}
	}
	fromPG, err := pg.Get(ctx, IDFor("rem-json"))
	if err != nil {
		t.Fatal(err)
	}
	fileJSON, err := os.ReadFile(filepath.Join(fs.dir, IDFor("rem-json")+".json"))
	if err != nil {
		t.Fatal(err)
	}
	pgJSON, _ := json.MarshalIndent(fromPG, "", "  ")
	if string(pgJSON) != string(fileJSON) {
		t.Fatalf("records differ:\npostgres %s\nfile     %s", pgJSON, fileJSON)
	}
}

func TestPostgresMigrationsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	ms, err := migrations.Load()
	if err != nil || len(ms) == 0 {
		t.Fatalf("embedded migrations: %v %v", ms, err)
	}
	type row struct {
		Version   int32
		Name      string
		AppliedAt time.Time
	}
	applied := func(s *PGStore) []row {
		rows, _ := s.pool.Query(ctx, `SELECT version, name, applied_at FROM remediator_schema_migrations ORDER BY version`)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := openPG(t, url)
	before := applied(first)
	if len(before) != len(ms) || int(before[len(before)-1].Version) != ms[len(ms)-1].Version || before[0].Name != "001_decisions" {
		t.Fatalf("schema versions: %+v", before)
	}
	if _, err := first.Create(ctx, "rem-1", Decision{RemediationID: "rem-1"}); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := openPG(t, url) // a no-op: nothing re-applied, data kept
	if after := applied(second); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("second open changed the migrations table:\n%+v\n%+v", before, after)
	}
	if _, err := second.Get(ctx, IDFor("rem-1")); err != nil {
		t.Fatalf("data survives a second open: %v", err)
	}
}

// TestPostgresReplicasMigrateAtOnce: replicas starting together on an empty
// database apply each migration once (the advisory lock serialises them).
func TestPostgresReplicasMigrateAtOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	stores := make([]*PGStore, 6)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = OpenPostgres(context.Background(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(stores[i].Close)
	}
	ms, _ := migrations.Load()
	var n int
	if err := stores[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM remediator_schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("want %d migration rows, got %d (%v)", len(ms), n, err)
	}
}

// TestPostgresConcurrentCreatesFromTwoPools: two replicas race the same key;
// exactly one decision exists and everyone is answered with it.
func TestPostgresConcurrentCreatesFromTwoPools(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	a, b := openPG(t, url), openPG(t, url)
	d := Decision{RemediationID: "rem-race", Repo: "/r/a", BaseSHA: "b1", DiffDigest: "d1"}
	for round := range 5 {
		key := fmt.Sprintf("rem-race-%d", round)
		start := make(chan struct{})
		results := make([]Decision, 16)
		var wg sync.WaitGroup
		for i := range results {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				var err error
				if results[i], err = s.Create(ctx, key, d); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, r := range results {
			if r.ID != IDFor(key) || !r.CreatedAt.Equal(results[0].CreatedAt) {
				t.Fatalf("round %d: replicas got different decisions: %+v vs %+v", round, r, results[0])
			}
		}
		var n int
		if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM remediator_decisions WHERE key = $1`, []byte(key)).Scan(&n); err != nil || n != 1 {
			t.Fatalf("round %d: want exactly one decision, got %d (%v)", round, n, err)
		}
	}
}

// TestPostgresSurvivesTerminatedBackends: every session killed (as a
// PostgreSQL restart does); the first call after may fail, the retry works.
func TestPostgresSurvivesTerminatedBackends(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := openPG(t, url)
	d, err := s.Create(ctx, "rem-1", Decision{RemediationID: "rem-1", Repo: "/r/a"})
	if err != nil {
		t.Fatal(err)
	}
	retry := func(what string, f func() error) {
		t.Helper()
		var err error
		for attempt := range 2 {
			if err = f(); err == nil {
				return
			}
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
				t.Fatalf("%s: a lost connection must not look like %v", what, err)
			}
			t.Logf("%s: attempt %d after terminate: %v", what, attempt, err)
		}
		t.Fatalf("%s: still failing after retries: %v", what, err)
	}
	for round := range 3 {
		// Fill the pool so several idle connections are killed.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := s.Get(ctx, d.ID); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := pgtest.TerminateBackends(t, url); n == 0 {
			t.Fatalf("round %d: no session terminated", round)
		}
		switch round {
		case 0:
			retry("get", func() error { _, err := s.Get(ctx, d.ID); return err })
		case 1:
			retry("record", func() error { _, err := s.Record(ctx, d.ID, Outcome{Phase: "Completed"}); return err })
		case 2:
			retry("ping", func() error { return s.Ping(ctx) })
			retry("create", func() error { _, err := s.Create(ctx, "rem-2", Decision{RemediationID: "rem-2"}); return err })
		}
	}
	if got, err := s.Get(ctx, d.ID); err != nil || got.Status != StatusApproved {
		t.Fatalf("after the restarts: %+v %v", got, err)
	}
}

// TestPostgresUnreachableIsAnError: a database that is gone is an error
// (activities retry), never ErrNotFound or an empty answer.
func TestPostgresUnreachableIsAnError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, err := OpenPostgres(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"); err == nil {
		s.Close()
		t.Fatal("open of an unreachable database succeeded")
	}

	url := pgtest.NewDatabase(t)
	s := openPG(t, url)
	d, err := s.Create(ctx, "rem-1", Decision{RemediationID: "rem-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name string
	if err := s.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("ping of a dropped database succeeded")
	}
	if _, err := s.Get(ctx, d.ID); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("get: want a database error, got %v", err)
	}
	if _, err := s.Record(ctx, d.ID, Outcome{Phase: "Failed"}); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("record: want a database error, got %v", err)
	}
	if _, err := s.Create(ctx, "rem-2", Decision{}); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("create: want a database error, got %v", err)
	}
}

// TestPostgresColumnsMirrorTheDocument: the queried columns follow the
// document through create and record.
func TestPostgresColumnsMirrorTheDocument(t *testing.T) {
	ctx := context.Background()
	s := openPG(t, pgtest.NewDatabase(t))
	d, err := s.Create(ctx, "rem-cols", fullDecision())
	if err != nil {
		t.Fatal(err)
	}
	if d, err = s.Record(ctx, d.ID, Outcome{Phase: "Failed", Reason: "boom"}); err != nil {
		t.Fatal(err)
	}
	var (
		key                  []byte
		remID, repo, status  string
		createdAt, updatedAt time.Time
		docStatus            string
	)
	err = s.pool.QueryRow(ctx, `SELECT key, remediation_id, repo, status, created_at, updated_at, doc->>'status' FROM remediator_decisions WHERE id = $1`, d.ID).
		Scan(&key, &remID, &repo, &status, &createdAt, &updatedAt, &docStatus)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != "rem-cols" || remID != d.RemediationID || repo != d.Repo || status != StatusFailed || docStatus != StatusFailed ||
		!createdAt.Equal(d.CreatedAt) || !updatedAt.Equal(d.UpdatedAt) {
		t.Fatalf("columns %q %s %s %s %v %v disagree with %+v", key, remID, repo, status, createdAt, updatedAt, d)
	}
}

func TestOpenPostgresPoolSettings(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := openPG(t, url)
	cfg := s.pool.Config()
	if cfg.MaxConns != pg.DefaultMaxConns || cfg.ConnConfig.ConnectTimeout != pg.DefaultConnectTimeout || cfg.HealthCheckPeriod != pg.DefaultHealthCheckPeriod {
		t.Fatalf("defaults: max %d timeout %v health %v", cfg.MaxConns, cfg.ConnConfig.ConnectTimeout, cfg.HealthCheckPeriod)
	}
	s2 := openPG(t, url+"&pool_max_conns=2&connect_timeout=3")
	if cfg := s2.pool.Config(); cfg.MaxConns != 2 || cfg.ConnConfig.ConnectTimeout != 3*time.Second {
		t.Fatalf("URL settings ignored: max %d timeout %v", cfg.MaxConns, cfg.ConnConfig.ConnectTimeout)
	}
}
