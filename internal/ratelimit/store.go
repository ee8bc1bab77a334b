// Package ratelimit applies per-route request budgets (for example
// "generate: 50 per hour per caller") with github.com/ulule/limiter/v3.
//
// With Redis configured the budgets are shared by every API replica that
// points at the same Redis and key prefix, so scaling out does not multiply
// the allowed rate; without Redis each process counts on its own, which is
// only suitable for a single replica or local development.
//
// Callers decide what to do when the store is unavailable: Take reports it as
// an error wrapping ErrStoreUnavailable, and write endpoints are expected to
// fail closed (refuse the request) rather than run unlimited.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"
)

// DefaultPrefix is the key prefix used when NewStore is given an empty one, so
// that rate-limit keys never collide with other data in a shared Redis.
const DefaultPrefix = "remediator:rl"

// Client-side timeouts applied when the Redis URL does not set its own
// (dial_timeout, read_timeout, write_timeout, max_retries query parameters).
// They are short on purpose: a rate-limit check sits in front of every
// request, and an unreachable Redis must turn into a prompt error (and a
// refusal) rather than requests hanging for go-redis' multi-second defaults.
const (
	redisDialTimeout = 500 * time.Millisecond
	redisIOTimeout   = 500 * time.Millisecond
	redisMaxRetries  = 1
	redisDialRetries = 2
)

// Store wraps a limiter.Store and knows how to check its health, so the
// service can report on /health whether budgets are actually being enforced
// and shared.
type Store struct {
	client  *redis.Client // nil for the in-memory store
	backend limiter.Store
}

// NewStore returns an in-memory store when redisURL is empty, and otherwise a
// Redis-backed store using a go-redis v9 client built with redis.ParseURL
// (e.g. "redis://:password@host:6379/0"; use "rediss://" for TLS). All keys
// live under prefix + ":" (DefaultPrefix when prefix is empty); replicas that
// must share budgets must use the same Redis and the same prefix.
//
// NewStore performs no network I/O and does not fail when Redis is down, so
// the service can start and report the problem; call Ping to check. Only a
// malformed URL is an error. Timeouts not set in the URL default to 500ms and
// retries to 1, so that an outage fails requests quickly.
func NewStore(redisURL, prefix string) (*Store, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if redisURL == "" {
		return &Store{backend: memory.NewStoreWithOptions(limiter.StoreOptions{
			Prefix:          prefix,
			CleanUpInterval: limiter.DefaultCleanUpInterval,
		})}, nil
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		// A *url.Error quotes the whole URL, password included: keep only
		// its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("ratelimit: invalid redis URL: %w", err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisIOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisIOTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = redisMaxRetries
	}
	if opts.DialerRetries == 0 {
		opts.DialerRetries = redisDialRetries
	}
	// Let the caller's context deadline bound each call as well.
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)
	return &Store{client: client, backend: &lazyRedisStore{client: client, prefix: prefix}}, nil
}

// Ping reports whether the store can be used: always nil for the in-memory
// store, the result of a Redis PING otherwise. It is meant for /health and
// start-up diagnostics; Take does not need it to be called first.
func (s *Store) Ping(ctx context.Context) error {
	if s.client == nil {
		return nil
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return nil
}

// Shared reports whether budgets are shared between processes (true for
// Redis). An in-memory store counts per process, so with N replicas the
// effective limit is N times the configured one; /health should say so.
func (s *Store) Shared() bool { return s.client != nil }

// Close releases the Redis connection pool (a no-op for the in-memory store).
// Limiters built on the store must not be used afterwards.
func (s *Store) Close() error {
	if s.client == nil {
		return nil
	}
	return s.client.Close()
}

// lazyRedisStore defers building the limiter's Redis store until the first
// use that succeeds. redisstore.NewStoreWithOptions loads its Lua scripts
// into Redis and fails when Redis is unreachable; doing that lazily is what
// lets the service start during a Redis outage and recover without a restart
// once Redis is back. After construction, the limiter store itself reloads
// the scripts if Redis loses them (NOSCRIPT), e.g. after a Redis restart.
type lazyRedisStore struct {
	client *redis.Client
	prefix string

	mu    sync.Mutex
	store limiter.Store
}

var _ limiter.Store = (*lazyRedisStore)(nil)

// get returns the underlying store, building it if needed. The mutex is not
// held while talking to Redis, so during an outage concurrent requests each
// fail on their own timeout instead of queueing behind one another. The
// limiter loads its scripts with context.Background(), so that one call is
// bounded by the client timeouts rather than by the caller's context.
func (l *lazyRedisStore) get() (limiter.Store, error) {
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := redisstore.NewStoreWithOptions(l.client, limiter.StoreOptions{Prefix: l.prefix})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store == nil {
		l.store = s
	}
	return l.store, nil
}

func (l *lazyRedisStore) Get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	s, err := l.get()
	if err != nil {
		return limiter.Context{}, err
	}
	return s.Get(ctx, key, rate)
}

func (l *lazyRedisStore) Peek(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	s, err := l.get()
	if err != nil {
		return limiter.Context{}, err
	}
	return s.Peek(ctx, key, rate)
}

func (l *lazyRedisStore) Reset(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	s, err := l.get()
	if err != nil {
		return limiter.Context{}, err
	}
	return s.Reset(ctx, key, rate)
}

func (l *lazyRedisStore) Increment(ctx context.Context, key string, count int64, rate limiter.Rate) (limiter.Context, error) {
	s, err := l.get()
	if err != nil {
		return limiter.Context{}, err
	}
	return s.Increment(ctx, key, count, rate)
}
