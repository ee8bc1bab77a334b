// Package dragontest is a fake Dragon for tests: an httptest server that
// speaks Dragon's decision API (X-Token, X-Org-Id and X-Region on every
// request, JSON bodies and JSON errors), keeps every decision, outcome and
// request for inspection, plays the people who decide, injects failures and
// sends signed callbacks. Other packages' end-to-end tests run the whole
// approval loop against it.
//
// Only tests import this package.
package dragontest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"remediator/internal/dragon"
)

// Request is one request the fake received, as sent.
type Request struct {
	Method string
	Path   string // unescaped, e.g. "/api/decisions/dec-1"
	Query  url.Values
	Header http.Header // X-Token, X-Correlation-ID, Idempotency-Key…
	Body   []byte
}

// failure is one injected answer.
type failure struct {
	status int
	body   string
	header http.Header
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	t                  testing.TB
	srv                *httptest.Server
	token, org, region string

	mu         sync.Mutex
	seq        int
	order      []string                  // decision ids in creation order
	decisions  map[string]map[string]any // id → stored record
	outcomes   map[string][]map[string]any
	requests   []Request
	failures   []failure
	lose       int
	loseMethod string
	lookupOff  bool
	creates    int
}

// New starts a fake expecting token, org and region in X-Token, X-Org-Id
// and X-Region; a request without them is answered 401 with a JSON error.
// It stops when the test ends.
func New(t testing.TB, token, org, region string) *Server {
	t.Helper()
	s := &Server{
		t: t, token: token, org: org, region: region,
		decisions: map[string]map[string]any{},
		outcomes:  map[string][]map[string]any{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/decisions", s.create)
	mux.HandleFunc("GET /api/decisions", s.list)
	mux.HandleFunc("GET /api/decisions/{id}", s.get)
	mux.HandleFunc("POST /api/decisions/{id}/outcome", s.outcome)
	s.srv = httptest.NewServer(s.front(mux))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base URL to configure (KLYNX_DRAGON_BASE_URL).
func (s *Server) URL() string { return s.srv.URL }

// Decide sets a decision's status as a person in Dragon would, with who
// decided and why (either may be empty).
func (s *Server) Decide(id, status, approver, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.decisions[id]
	if !ok {
		s.t.Errorf("dragontest: Decide: no decision %q", id)
		return
	}
	d["status"] = status
	if approver != "" {
		d["approver"] = approver
	}
	if reason != "" {
		d["reason"] = reason
	}
	d["updated_at"] = time.Now().UTC().Format(time.RFC3339Nano)
}

// Seed stores a record as Dragon would hold it (for state left by someone
// else, or a reply shape to test); it gets an id and "pending" unless the
// record has them (a numeric id stays a JSON number). It returns the id.
func (s *Server) Seed(record map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store(clone(record))
}

// Decision returns a copy of the stored record: every field posted, plus
// id, status, created_at and updated_at, and approver and reason once
// decided.
func (s *Server) Decision(id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.decisions[id]
	if !ok {
		return nil, false
	}
	return clone(d), true
}

// Decisions returns copies of every record in creation order.
func (s *Server) Decisions() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, clone(s.decisions[id]))
	}
	return out
}

// Creates is how many decisions POST /api/decisions created.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// Outcomes returns copies of the outcome write-backs received for id, in
// order.
func (s *Server) Outcomes(id string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.outcomes[id]))
	for _, o := range s.outcomes[id] {
		out = append(out, clone(o))
	}
	return out
}

// Requests returns copies of every request received, injected failures and
// refused ones included, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = Request{Method: r.Method, Path: r.Path, Query: cloneValues(r.Query), Header: r.Header.Clone(), Body: bytes.Clone(r.Body)}
	}
	return out
}

// FailNext answers the next n requests, before any authentication or
// processing, with status, body and header, as a proxy or an overloaded
// Dragon would. Without a Content-Type in header, a body starting with {
// or [ is sent as JSON and anything else as HTML. Calls queue up.
func (s *Server) FailNext(n int, status int, body string, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, body: body, header: header.Clone()})
	}
}

// LoseNextReplies makes the next n requests with the given method ("" for
// any) be processed (a create does create) and their connection then
// closed without an answer, as when a reply is lost on the way back: the
// client sees a network error. Calls replace each other.
func (s *Server) LoseNextReplies(n int, method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose, s.loseMethod = n, method
}

// DisableLookup makes GET /api/decisions answer 404, as a Dragon without
// lookup by client_reference would.
func (s *Server) DisableLookup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookupOff = true
}

// Notify POSTs a callback for decision id, signed with secret as Dragon
// signs it, to callbackURL: {"event":"decision.updated","decision":{id,
// status}} with the decision's current status. The response body is read
// into memory, so the caller need not close it.
func (s *Server) Notify(t testing.TB, callbackURL string, secret []byte, id string) *http.Response {
	t.Helper()
	s.mu.Lock()
	status := ""
	if d, ok := s.decisions[id]; ok {
		status, _ = d["status"].(string)
	}
	s.mu.Unlock()
	body, err := json.Marshal(map[string]any{
		"event":    "decision.updated",
		"decision": map[string]any{"id": id, "status": status},
	})
	if err != nil {
		t.Fatalf("dragontest: Notify: %v", err)
	}
	ts, sig := dragon.SignWebhook(secret, body, time.Now())
	req, err := http.NewRequest(http.MethodPost, callbackURL, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("dragontest: Notify: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(dragon.TimestampHeader, ts)
	req.Header.Set(dragon.SignatureHeader, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("dragontest: Notify: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("dragontest: Notify: read response: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

// front records every request, then plays injected failures, checks the
// credentials and hands over to the API.
func (s *Server) front(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		var f *failure
		if len(s.failures) > 0 {
			f = &s.failures[0]
			s.failures = s.failures[1:]
		}
		lose := s.lose > 0 && (s.loseMethod == "" || s.loseMethod == r.Method)
		if lose && f == nil {
			s.lose--
		}
		s.mu.Unlock()
		if f != nil {
			for k, v := range f.header {
				w.Header()[k] = v
			}
			if w.Header().Get("Content-Type") == "" {
				ct := "text/html; charset=utf-8"
				if t := strings.TrimSpace(f.body); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(f.status)
			_, _ = io.WriteString(w, f.body)
			return
		}
		if r.Header.Get("X-Token") != s.token || r.Header.Get("X-Org-Id") != s.org || r.Header.Get("X-Region") != s.region {
			writeJSON(w, http.StatusUnauthorized, errBody("unauthorized", "invalid token, organisation or region"))
			return
		}
		if !lose {
			api.ServeHTTP(w, r)
			return
		}
		// Process the request for real, then drop the answer on the floor.
		api.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			s.t.Errorf("dragontest: cannot drop the reply: %v", err)
			return
		}
		_ = conn.Close()
	})
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, errBody("unsupported_media_type", "Content-Type must be application/json"))
		return
	}
	var rec map[string]any
	if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec == nil {
		writeJSON(w, http.StatusBadRequest, errBody("invalid_json", "the body must be a JSON object"))
		return
	}
	for _, k := range []string{"id", "status", "approver", "reason", "created_at", "updated_at"} {
		delete(rec, k)
	}
	s.mu.Lock()
	id := s.store(rec)
	s.creates++
	out := clone(s.decisions[id])
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// store files rec under a new id (or its own) with Dragon's fields; the
// caller holds mu.
func (s *Server) store(rec map[string]any) string {
	s.seq++
	id := "dec-" + strconv.Itoa(s.seq)
	if v, ok := rec["id"]; ok && v != nil && v != "" {
		id = fmt.Sprint(v) // a JSON number keeps its type in the record
	} else {
		rec["id"] = id
	}
	if st, _ := rec["status"].(string); st == "" {
		rec["status"] = "pending"
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if _, ok := rec["created_at"]; !ok {
		rec["created_at"] = now
	}
	if _, ok := rec["updated_at"]; !ok {
		rec["updated_at"] = now
	}
	if _, ok := s.decisions[id]; !ok {
		s.order = append(s.order, id)
	}
	s.decisions[id] = rec
	return id
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lookupOff {
		writeJSON(w, http.StatusNotFound, errBody("not_found", "no such route"))
		return
	}
	ref, filter := r.URL.Query()["client_reference"]
	out := []map[string]any{}
	for _, id := range s.order {
		d := s.decisions[id]
		if filter {
			if got, _ := d["client_reference"].(string); len(ref) == 0 || got != ref[0] {
				continue
			}
		}
		out = append(out, clone(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"decisions": out})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.decisions[r.PathValue("id")]
	if !ok {
		writeJSON(w, http.StatusNotFound, errBody("not_found", "decision not found"))
		return
	}
	writeJSON(w, http.StatusOK, clone(d))
}

func (s *Server) outcome(w http.ResponseWriter, r *http.Request) {
	var o map[string]any
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o == nil {
		writeJSON(w, http.StatusBadRequest, errBody("invalid_json", "the body must be a JSON object"))
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.decisions[id]; !ok {
		writeJSON(w, http.StatusNotFound, errBody("not_found", "decision not found"))
		return
	}
	s.outcomes[id] = append(s.outcomes[id], o)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "recorded": true})
}

func errBody(code, msg string) map[string]any {
	return map[string]any{"error": code, "message": msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("dragontest: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// clone deep-copies a JSON-shaped record so callers never share state with
// the fake.
func clone(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
