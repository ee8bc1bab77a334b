package console

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"remediator/internal/auth"
)

// testStore exercises a SessionStore: put, get, expiry, delete.
func testStore(t *testing.T, s SessionStore) {
	t.Helper()
	ctx := context.Background()
	id := randomToken()
	want := Session{Principal: auth.Principal{Subject: "alice", Roles: []string{"approver"}, Repos: []string{"teamA/*"}, Method: MethodOIDC},
		CSRF: randomToken(), Expires: time.Now().Add(time.Minute).Truncate(time.Second)}
	if err := s.Put(ctx, id, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, id)
	if err != nil || !ok || got.Principal.Subject != "alice" || got.CSRF != want.CSRF || !got.Expires.Equal(want.Expires) || got.Principal.Repos[0] != "teamA/*" {
		t.Fatalf("Get = %+v, %v, %v", got, ok, err)
	}
	if _, ok, _ := s.Get(ctx, randomToken()); ok {
		t.Error("an unknown id has a session")
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, id); ok {
		t.Error("a deleted session is still there")
	}
	expired := want
	expired.Expires = time.Now().Add(-time.Second)
	_ = s.Put(ctx, id, expired)
	if _, ok, _ := s.Get(ctx, id); ok {
		t.Error("an expired session is still valid")
	}
}

func TestMemorySessions(t *testing.T) { testStore(t, NewMemorySessions()) }

// TestRedisSessions runs against the machine's Redis (REDIS_URL, default
// 127.0.0.1:6379): skipped when unreachable, except under CI=true.
func TestRedisSessions(t *testing.T) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.DialTimeout, opts.MaxRetries = time.Second, -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := "REDIS NOT REACHABLE: skipping (" + err.Error() + ")"
		if os.Getenv("CI") == "true" {
			t.Fatal(strings.Replace(msg, "skipping", "failing because CI=true", 1))
		}
		t.Skip(msg)
	}
	prefix := "remediator-test:ui-session:" + randomToken()[:12] + ":"
	s := RedisSessions{Client: c, Prefix: prefix}
	testStore(t, s)
	// Keys are hashes of the id, never the id itself.
	id := randomToken()
	_ = s.Put(context.Background(), id, Session{CSRF: "x", Expires: time.Now().Add(time.Minute)})
	keys, _ := c.Keys(context.Background(), prefix+"*").Result()
	if len(keys) != 1 || strings.Contains(keys[0], id) {
		t.Errorf("keys %v", keys)
	}
	if ttl := c.TTL(context.Background(), keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %v, want the session's remaining time", ttl)
	}
	_ = s.Delete(context.Background(), id)
}
