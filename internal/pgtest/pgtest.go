// Package pgtest gives tests a throwaway PostgreSQL database on the real
// server (never a mock). The server is REMEDIATOR_TEST_DATABASE_URL, by
// default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
// Without a reachable server tests are skipped loudly, except under
// CI=true, where they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server used when REMEDIATOR_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// BaseURL is the maintenance database the throwaway databases are created
// from.
func BaseURL() string {
	if u := os.Getenv("REMEDIATOR_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates a uniquely named database (remediator_test_<random>),
// drops it when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := BaseURL()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: REMEDIATOR_TEST_DATABASE_URL must be a postgres:// URL, got %q", base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connect(t, ctx, base)
	defer conn.Close(ctx)

	name := "remediator_test_" + randomHex(t, 8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { drop(t, base, name) })

	dbURL := *u
	dbURL.Path = "/" + name
	dbURL.RawPath = ""
	return dbURL.String()
}

// TerminateBackends ends every other session on the database of dbURL, as a
// PostgreSQL restart would, from a connection of its own, and waits until
// they are gone. It returns how many sessions it ended.
func TerminateBackends(t testing.TB, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connect(t, ctx, dbURL)
	defer conn.Close(ctx)
	var n int
	err := conn.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()
		) t`).Scan(&n)
	if err != nil {
		t.Fatalf("pgtest: terminate backends: %v", err)
	}
	return n
}

func connect(t testing.TB, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: database URL: %v", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL is unreachable at %s:%d (%v); set REMEDIATOR_TEST_DATABASE_URL to a reachable server", cfg.Host, cfg.Port, err)
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: %s (CI=true: PostgreSQL tests may not be skipped)", msg)
		}
		t.Skipf("pgtest: !!! SKIPPING POSTGRESQL TEST !!! %s", msg)
	}
	return conn
}

func drop(t testing.TB, base, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		t.Errorf("pgtest: terminate connections to %s: %v", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return hex.EncodeToString(b)
}
