package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
)

const defaultTestRedisURL = "redis://127.0.0.1:6379/0"

func testRedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return defaultTestRedisURL
}

// redactURL hides any password in u for log messages.
func redactURL(u string) string {
	opts, err := redis.ParseURL(u)
	if err != nil {
		return "(unparseable REDIS_URL)"
	}
	return opts.Addr
}

func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "remediator-test:rl:" + hex.EncodeToString(b)
}

// requireRedis returns the Redis URL and a fresh key prefix whose keys are
// deleted when the test ends. It skips the test, loudly, when Redis is not
// reachable, except under CI=true where that is a failure.
func requireRedis(t *testing.T) (url, prefix string) {
	t.Helper()
	url = testRedisURL()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	opts.DialTimeout = time.Second
	opts.MaxRetries = -1
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		msg := "REDIS NOT REACHABLE at " + redactURL(url) + ": skipping (" + err.Error() + "); set REDIS_URL or start redis"
		if os.Getenv("CI") == "true" {
			t.Fatal(strings.Replace(msg, "skipping", "failing because CI=true", 1))
		}
		t.Skip(msg)
	}
	prefix = randomPrefix(t)
	t.Cleanup(func() {
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup: scanning %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := client.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("cleanup: deleting %d keys: %v", len(keys), err)
			}
		}
	})
	return url, prefix
}

func mustRates(t *testing.T, spec map[string]string) map[string]limiter.Rate {
	t.Helper()
	rules, err := ParseRules("", spec)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func newStore(t *testing.T, url, prefix string) *Store {
	t.Helper()
	s, err := NewStore(url, prefix)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newLimiter(t *testing.T, s *Store, rules map[string]limiter.Rate, reg prometheus.Registerer) *Limiter {
	t.Helper()
	l, err := New(s, rules, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

func take(t *testing.T, l *Limiter, rule, key string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := l.Take(ctx, rule, key)
	if err != nil {
		t.Fatalf("Take(%s, %s): %v", rule, key, err)
	}
	return res
}

func TestMemoryStoreLimit(t *testing.T) {
	s := newStore(t, "", randomPrefix(t))
	if s.Shared() {
		t.Error("memory store claims to be shared")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("memory Ping: %v", err)
	}
	reg := prometheus.NewRegistry()
	l := newLimiter(t, s, mustRates(t, map[string]string{"generate": "5-M"}), reg)

	start := time.Now()
	for i := range 5 {
		res := take(t, l, "generate", "alice")
		if res.Limited {
			t.Fatalf("request %d limited", i+1)
		}
		if res.Limit != 5 || res.Remaining != int64(4-i) {
			t.Errorf("request %d: limit %d remaining %d, want 5 and %d", i+1, res.Limit, res.Remaining, 4-i)
		}
	}
	res := take(t, l, "generate", "alice")
	if !res.Limited {
		t.Fatal("6th request allowed")
	}
	if res.Remaining != 0 {
		t.Errorf("6th request: remaining %d, want 0", res.Remaining)
	}
	if !res.Reset.After(start) || res.Reset.After(start.Add(time.Minute+time.Second)) {
		t.Errorf("Reset %v not within the next minute of %v", res.Reset, start)
	}
	if got := l.Count("generate", OutcomeAllowed); got != 5 {
		t.Errorf("allowed counter = %v, want 5", got)
	}
	if got := l.Count("generate", OutcomeLimited); got != 1 {
		t.Errorf("limited counter = %v, want 1", got)
	}
	if got := l.Count("generate", OutcomeError); got != 0 {
		t.Errorf("error counter = %v, want 0", got)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == MetricName {
			found = true
			if n := len(mf.GetMetric()); n != 3 {
				t.Errorf("%s has %d series, want 3 (one per outcome)", MetricName, n)
			}
		}
	}
	if !found {
		t.Errorf("%s not registered", MetricName)
	}
}

func TestSharedBudgetAcrossReplicas(t *testing.T) {
	url, prefix := requireRedis(t)
	rules := mustRates(t, map[string]string{"generate": "5-M"})
	// Two Stores, as two API replicas would have.
	a := newLimiter(t, newStore(t, url, prefix), rules, nil)
	storeB := newStore(t, url, prefix)
	if !storeB.Shared() {
		t.Error("redis store does not claim to be shared")
	}
	if err := storeB.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	b := newLimiter(t, storeB, rules, nil)

	allowed := 0
	for _, l := range []*Limiter{a, a, a, b, b, b} {
		if !take(t, l, "generate", "alice").Limited {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d requests allowed across two replicas, want exactly 5", allowed)
	}
	if got := a.Count("generate", OutcomeAllowed) + b.Count("generate", OutcomeAllowed); got != 5 {
		t.Errorf("allowed counters sum to %v, want 5", got)
	}
	if got := b.Count("generate", OutcomeLimited); got != 1 {
		t.Errorf("replica B limited counter = %v, want 1", got)
	}
}

func TestSharedBudgetConcurrent(t *testing.T) {
	url, prefix := requireRedis(t)
	rules := mustRates(t, map[string]string{"generate": "10-M"})
	replicas := []*Limiter{
		newLimiter(t, newStore(t, url, prefix), rules, nil),
		newLimiter(t, newStore(t, url, prefix), rules, nil),
	}
	var (
		mu      sync.Mutex
		allowed int
		wg      sync.WaitGroup
	)
	for i := range 30 {
		wg.Go(func() {
			res, err := replicas[i%2].Take(context.Background(), "generate", "alice")
			if err != nil {
				t.Error(err)
				return
			}
			if !res.Limited {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 10 {
		t.Fatalf("%d of 30 concurrent requests allowed, want exactly 10", allowed)
	}
}

func TestSeparateBudgets(t *testing.T) {
	backends := map[string]func(t *testing.T) *Store{
		"memory": func(t *testing.T) *Store { return newStore(t, "", randomPrefix(t)) },
		"redis": func(t *testing.T) *Store {
			url, prefix := requireRedis(t)
			return newStore(t, url, prefix)
		},
	}
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			l := newLimiter(t, mk(t), mustRates(t, map[string]string{"generate": "2-M", "approvals": "2-M"}), nil)
			for range 2 {
				if take(t, l, "generate", "alice").Limited {
					t.Fatal("alice limited within budget")
				}
			}
			if !take(t, l, "generate", "alice").Limited {
				t.Fatal("alice not limited after exhausting budget")
			}
			if res := take(t, l, "generate", "bob"); res.Limited || res.Remaining != 1 {
				t.Errorf("bob shares alice's budget: %+v", res)
			}
			if res := take(t, l, "approvals", "alice"); res.Limited || res.Remaining != 1 {
				t.Errorf("approvals shares generate's budget: %+v", res)
			}
			if _, err := l.Take(context.Background(), "nope", "alice"); !errors.Is(err, ErrUnknownRule) {
				t.Errorf("unknown rule: got %v, want ErrUnknownRule", err)
			}
			if errors.Is(ErrUnknownRule, ErrStoreUnavailable) {
				t.Error("unknown rule must not look like a store outage")
			}
		})
	}
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestRedisDown(t *testing.T) {
	addr := closedAddr(t)
	s, err := NewStore("redis://"+addr+"/0", randomPrefix(t))
	if err != nil {
		t.Fatalf("NewStore must not fail while Redis is down: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !s.Shared() {
		t.Error("redis store does not claim to be shared")
	}
	l := newLimiter(t, s, mustRates(t, DefaultRules()), prometheus.NewRegistry())

	ctx := context.Background()
	start := time.Now()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping succeeded against a closed port")
	}
	res, err := l.Take(ctx, "generate", "alice")
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Take: got %v, want an error wrapping ErrStoreUnavailable", err)
	}
	if res.Limit != 50 {
		t.Errorf("Result on error: %+v, want Limit 50", res)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("failing took %v; an outage must fail fast", elapsed)
	}
	if got := l.Count("generate", OutcomeError); got != 1 {
		t.Errorf("error counter = %v, want 1", got)
	}
	if got := l.Count("generate", OutcomeAllowed) + l.Count("generate", OutcomeLimited); got != 0 {
		t.Errorf("allowed+limited counters = %v, want 0", got)
	}
}

// TestRedisHung covers a Redis that accepts connections but never answers
// (overloaded, or a half-open network path): Take must time out, not hang.
func TestRedisHung(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()

	s := newStore(t, "redis://"+ln.Addr().String()+"/0", randomPrefix(t))
	l := newLimiter(t, s, mustRates(t, DefaultRules()), nil)
	start := time.Now()
	_, err = l.Take(context.Background(), "approvals", "alice")
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Take: got %v, want ErrStoreUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Take against a hung Redis took %v", elapsed)
	}
	if l.Count("approvals", OutcomeError) != 1 {
		t.Errorf("error counter = %v, want 1", l.Count("approvals", OutcomeError))
	}

	// A caller deadline shorter than the client timeouts is honoured.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s.Ping(ctx); !errors.Is(err, ErrStoreUnavailable) {
		t.Errorf("Ping against a hung server: got %v, want ErrStoreUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 400*time.Millisecond {
		t.Errorf("Ping ignored the caller's 100ms deadline: took %v", elapsed)
	}
}

// proxy forwards connections accepted on ln to target until ln is closed.
func proxy(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { _, _ = io.Copy(u, c) }()
			_, _ = io.Copy(c, u)
		}()
	}
}

// TestRedisRecovers checks that a store created while Redis was down starts
// working once Redis is reachable, without a restart.
func TestRedisRecovers(t *testing.T) {
	url, prefix := requireRedis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if opts.TLSConfig != nil || opts.Password != "" || opts.Username != "" {
		t.Skip("recovery test needs a plain, password-less REDIS_URL")
	}
	addr := closedAddr(t)
	s := newStore(t, "redis://"+addr+"/"+strconv.Itoa(opts.DB), prefix)
	l := newLimiter(t, s, mustRates(t, map[string]string{"generate": "5-M"}), nil)
	if _, err := l.Take(context.Background(), "generate", "alice"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Take while down: got %v, want ErrStoreUnavailable", err)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("could not re-listen on %s to simulate Redis coming back: %v", addr, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go proxy(ln, opts.Addr)

	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := l.Take(context.Background(), "generate", "alice")
		if err == nil {
			if res.Limited || res.Limit != 5 {
				t.Fatalf("after recovery: %+v", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping after recovery: %v", err)
	}
}

func TestNewStoreBadURL(t *testing.T) {
	_, err := NewStore("redis://:hunter2@host:notaport/0", "")
	if err == nil {
		t.Fatal("malformed URL accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
	if _, err := NewStore("http://127.0.0.1:6379", ""); err == nil {
		t.Error("non-redis scheme accepted")
	}
}

func TestNewValidation(t *testing.T) {
	s := newStore(t, "", "")
	if _, err := New(nil, mustRates(t, DefaultRules()), nil); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := New(s, nil, nil); err == nil {
		t.Error("no rules accepted")
	}
	if _, err := New(s, map[string]limiter.Rate{"x": {}}, nil); err == nil {
		t.Error("zero rate accepted")
	}
	// Two Limiters on one registry share the counter instead of failing.
	reg := prometheus.NewRegistry()
	newLimiter(t, s, mustRates(t, DefaultRules()), reg)
	newLimiter(t, s, mustRates(t, DefaultRules()), reg)

	l := newLimiter(t, s, mustRates(t, DefaultRules()), nil)
	var names []string
	for _, r := range l.Rules() {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "approvals,auth_failures,general,generate,pr,webhooks" {
		t.Errorf("Rules() names = %s", got)
	}
	if l.Count("nope", OutcomeAllowed) != 0 || l.Count("generate", "bogus") != 0 {
		t.Error("Count of unknown series is not 0")
	}
}

func TestParseRules(t *testing.T) {
	got, err := ParseRules(" generate=5-M , approvals=10-s,,custom=3-D", DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		limit  int64
		period time.Duration
	}{
		"generate":  {5, time.Minute},
		"approvals": {10, time.Second},
		"webhooks":  {1000, time.Hour},
		"general":   {1000, time.Hour},
		"custom":    {3, 24 * time.Hour},
		"pr":        {100, time.Hour},
		// auth_failures is a default too.
		"auth_failures": {20, time.Minute},
	}
	if len(got) != len(want) {
		t.Errorf("got %d rules, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		r, ok := got[name]
		if !ok || r.Limit != w.limit || r.Period != w.period {
			t.Errorf("rule %s = %+v, want limit %d per %v", name, r, w.limit, w.period)
		}
	}

	defaults, err := ParseRules("", DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	if defaults["generate"].Limit != 50 || defaults["approvals"].Limit != 20 ||
		defaults["webhooks"].Limit != 1000 || defaults["general"].Limit != 1000 ||
		defaults["auth_failures"].Limit != 20 {
		t.Errorf("defaults = %v", defaults)
	}
	for name, r := range defaults {
		want := time.Hour
		if name == "auth_failures" {
			want = time.Minute
		}
		if r.Period != want {
			t.Errorf("default %s period = %v, want %v", name, r.Period, want)
		}
	}
	if over, err := ParseRules("auth_failures=5-S", DefaultRules()); err != nil || over["auth_failures"].Limit != 5 || over["auth_failures"].Period != time.Second {
		t.Errorf("auth_failures is overridable like the others: %v %v", over["auth_failures"], err)
	}

	d := DefaultRules()
	d["generate"] = "1-S"
	if DefaultRules()["generate"] != "50-H" {
		t.Error("DefaultRules returns shared state")
	}

	for _, spec := range []string{
		"generate",
		"generate=",
		"=5-M",
		"generate=5",
		"generate=x-H",
		"generate=5-Y",
		"generate=5-M-S",
		"generate=0-H",
		"generate=-1-H",
		"generate=1-H,generate=2-H",
		"bad name=1-H",
		"bad:name=1-H",
	} {
		if _, err := ParseRules(spec, DefaultRules()); err == nil {
			t.Errorf("ParseRules(%q) accepted", spec)
		}
	}
	if _, err := ParseRules("", map[string]string{"generate": "lots"}); err == nil {
		t.Error("invalid default accepted")
	}
}

// peekThenTake drives a failure budget as the API does: Peek before the
// request, Take only when it "fails". It returns how many of n attempts were
// let through to evaluation.
func peekThenTake(t *testing.T, l *Limiter, key string, n int) int {
	t.Helper()
	ctx := context.Background()
	passed := 0
	for range n {
		res, err := l.Peek(ctx, "auth_failures", key)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if res.Limited {
			if res.Remaining != 0 || res.Reset.IsZero() {
				t.Errorf("a refusal carries Remaining 0 and a Reset: %+v", res)
			}
			continue
		}
		passed++
		if _, err := l.Take(ctx, "auth_failures", key); err != nil {
			t.Fatalf("Take: %v", err)
		}
	}
	return passed
}

func testPeek(t *testing.T, s *Store) {
	l := newLimiter(t, s, mustRates(t, map[string]string{"auth_failures": "3-M"}), nil)
	ctx := context.Background()
	for range 5 {
		res, err := l.Peek(ctx, "auth_failures", "ip:198.51.100.9")
		if err != nil || res.Limited || res.Remaining != 3 || res.Limit != 3 {
			t.Fatalf("Peek must not consume budget: %+v %v", res, err)
		}
	}
	if got := l.Count("auth_failures", OutcomeAllowed); got != 0 {
		t.Errorf("a Peek with budget left is not a request: allowed counter = %v", got)
	}
	if passed := peekThenTake(t, l, "ip:198.51.100.9", 6); passed != 3 {
		t.Fatalf("a budget of 3 failures let %d attempts through", passed)
	}
	if got := l.Count("auth_failures", OutcomeLimited); got != 3 {
		t.Errorf("refused Peeks are counted as limited: %v", got)
	}
	if passed := peekThenTake(t, l, "ip:198.51.100.10", 1); passed != 1 {
		t.Fatal("another key has its own budget")
	}
	if _, err := l.Peek(ctx, "nope", "k"); !errors.Is(err, ErrUnknownRule) {
		t.Errorf("unknown rule: %v", err)
	}
}

func TestPeekMemory(t *testing.T) { testPeek(t, newStore(t, "", randomPrefix(t))) }

func TestPeekRedis(t *testing.T) {
	url, prefix := requireRedis(t)
	testPeek(t, newStore(t, url, prefix))
}

func TestPeekRedisDown(t *testing.T) {
	s, err := NewStore("redis://"+closedAddr(t)+"/0", randomPrefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	l := newLimiter(t, s, mustRates(t, DefaultRules()), nil)
	if _, err := l.Peek(context.Background(), "auth_failures", "ip:x"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Peek: got %v, want ErrStoreUnavailable", err)
	}
	if got := l.Count("auth_failures", OutcomeError); got != 1 {
		t.Errorf("error counter = %v, want 1", got)
	}
}
