package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"remediator/internal/auth"
)

// CookieName is the console's session cookie: a random 32-byte id; the
// session itself stays on the server.
const CookieName = "remediator_ui_session"

// Session is one browser's state. Before sign-in it holds only the CSRF
// token of the sign-in form and, during an OpenID Connect sign-in, the
// state, PKCE verifier and nonce; after it, the principal.
type Session struct {
	Principal auth.Principal `json:"principal"`
	CSRF      string         `json:"csrf"`
	Expires   time.Time      `json:"expires"`
	State     string         `json:"state,omitempty"`
	Verifier  string         `json:"verifier,omitempty"`
	Nonce     string         `json:"nonce,omitempty"`
	Next      string         `json:"next,omitempty"`

	id string
}

// checkCSRF compares a submitted token with the session's in constant time.
func (s Session) checkCSRF(token string) bool {
	return s.CSRF != "" && token != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(token)) == 1
}

// SessionStore keeps sessions by id until they expire.
type SessionStore interface {
	Get(ctx context.Context, id string) (Session, bool, error)
	Put(ctx context.Context, id string, s Session) error
	Delete(ctx context.Context, id string) error
}

// MemorySessions keeps sessions in this process: with several API replicas
// behind a load balancer, use sticky sessions or RedisSessions. It holds at
// most maxMemorySessions (anonymous visitors of the sign-in page get one
// each): when full, new sessions are refused until some expire.
type MemorySessions struct {
	mu   sync.Mutex
	m    map[string]Session
	puts int
}

const maxMemorySessions = 100_000

// ErrTooManySessions: the in-memory store is full.
var ErrTooManySessions = errors.New("console: too many sessions")

// NewMemorySessions is an empty in-memory store.
func NewMemorySessions() *MemorySessions { return &MemorySessions{m: map[string]Session{}} }

func (m *MemorySessions) Get(_ context.Context, id string) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[id]
	if ok && time.Now().After(s.Expires) {
		delete(m.m, id)
		return Session{}, false, nil
	}
	return s, ok, nil
}

func (m *MemorySessions) Put(_ context.Context, id string, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, exists := m.m[id]
	if m.puts++; m.puts%256 == 0 || (!exists && len(m.m) >= maxMemorySessions) {
		now := time.Now()
		for k, v := range m.m {
			if now.After(v.Expires) {
				delete(m.m, k)
			}
		}
	}
	if !exists && len(m.m) >= maxMemorySessions {
		return ErrTooManySessions
	}
	m.m[id] = s
	return nil
}

func (m *MemorySessions) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, id)
	return nil
}

// RedisSessions keeps sessions in Redis (REDIS_URL), shared by every API
// replica; keys are the SHA-256 of the session id under Prefix and expire
// with the session.
type RedisSessions struct {
	Client redis.UniversalClient
	Prefix string
}

func (r RedisSessions) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return r.Prefix + hex.EncodeToString(sum[:])
}

func (r RedisSessions) Get(ctx context.Context, id string) (Session, bool, error) {
	b, err := r.Client.Get(ctx, r.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, err
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return Session{}, false, err
	}
	return s, time.Now().Before(s.Expires), nil
}

func (r RedisSessions) Put(ctx context.Context, id string, s Session) error {
	ttl := time.Until(s.Expires)
	if ttl <= 0 {
		return r.Delete(ctx, id)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return r.Client.Set(ctx, r.key(id), b, ttl).Err()
}

func (r RedisSessions) Delete(ctx context.Context, id string) error {
	return r.Client.Del(ctx, r.key(id)).Err()
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loadSession reads the request's session, if any and not expired.
func (c *Console) loadSession(r *http.Request) (Session, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || len(ck.Value) != 43 {
		return Session{}, false
	}
	s, ok, err := c.opts.Sessions.Get(r.Context(), ck.Value)
	if err != nil {
		c.opts.Logger.WarnContext(r.Context(), "console: reading a session failed", "error", err)
		return Session{}, false
	}
	if !ok || c.opts.Now().After(s.Expires) {
		return Session{}, false
	}
	s.id = ck.Value
	return s, true
}

// startSession stores s under a new id (dropping the request's old
// session: a sign-in never keeps the id it started with) and sets the
// cookie.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, s Session, ttl time.Duration) (Session, error) {
	if old, ok := c.loadSession(r); ok {
		_ = c.opts.Sessions.Delete(r.Context(), old.id)
	}
	s.id = randomToken()
	if s.CSRF == "" {
		s.CSRF = randomToken()
	}
	s.Expires = c.opts.Now().Add(ttl)
	if err := c.opts.Sessions.Put(r.Context(), s.id, s); err != nil {
		return Session{}, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: s.id, Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: secureRequest(r), Expires: s.Expires,
	})
	return s, nil
}

// endSession deletes the request's session and its cookie.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request) {
	if s, ok := c.loadSession(r); ok {
		_ = c.opts.Sessions.Delete(r.Context(), s.id)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: secureRequest(r), MaxAge: -1})
}

// secureRequest says whether the cookie must be Secure: always, except
// for plain HTTP to a loopback address (`remediator dev`, tests), where a
// Secure cookie would never come back.
func secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip == nil || !ip.IsLoopback()
}

// safeNext keeps a post-sign-in destination inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/ui/"
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
