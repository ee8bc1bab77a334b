// Package incidenttest is a fake incident API for tests: it speaks the
// replaced service's contract (POST {base} creates, PUT {base}/{id}
// updates, JSON bodies, FastAPI-style {"detail": ...} errors), keeps every
// incident and every request for inspection, and can be told to fail.
// End-to-end tests run the whole loop against it.
//
// Only tests import this package.
package incidenttest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Prefix is the path of the incidents collection on the fake's host.
const Prefix = "/api/incidents"

// maxBody caps what the fake reads of a request.
const maxBody = 1 << 20

// Record is one incident as the fake stores it.
type Record struct {
	ID, Title, Summary, Severity, Status string
	Metadata                             map[string]any
	// Updates holds each update's JSON body, in arrival order.
	Updates []map[string]any
	// IdempotencyKey is the Idempotency-Key of the create, if any.
	IdempotencyKey string
}

// Request is one request the fake received, injected failures included.
type Request struct {
	Method string
	Path   string // the escaped path, e.g. "/api/incidents/INC-1"
	Header http.Header
	Body   []byte
}

type failure struct {
	status int
	body   string
	header http.Header
}

// Server is the fake. All its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	idField   string
	token     string
	seq       int
	incidents []*Record
	byID      map[string]*Record
	byKey     map[string]*Record
	requests  []Request
	failures  []failure
}

// New starts a fake on 127.0.0.1 that answers creates with "incident_id"
// and needs no token; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{idField: "incident_id", byID: map[string]*Record{}, byKey: map[string]*Record{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base to configure as KLYNX_INCIDENT_API_BASE.
func (s *Server) URL() string { return s.srv.URL + Prefix }

// Client is a plain HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// IDField chooses the field that carries the id in create replies:
// "incident_id" (the contract) or "id" (as the seed's own services did).
func (s *Server) IDField(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idField = name
}

// RequireToken makes every request need "Authorization: Bearer <token>";
// "" turns the check off.
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// FailNext answers the next n requests, whatever they are, with status,
// body and header instead of handling them; they are still recorded. Calls
// queue up. Without a Content-Type in header, a body starting with '{' or
// '[' is sent as JSON and anything else as HTML, as a proxy's error page is.
func (s *Server) FailNext(n, status int, body string, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, body: body, header: header.Clone()})
	}
}

// Incidents returns copies of every incident, oldest first.
func (s *Server) Incidents() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.incidents))
	for _, r := range s.incidents {
		out = append(out, r.clone())
	}
	return out
}

// Incident returns a copy of incident id.
func (s *Server) Incident(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	if !ok {
		return Record{}, false
	}
	return r.clone(), true
}

// Requests returns copies of every request received, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.requests))
	for _, r := range s.requests {
		out = append(out, Request{Method: r.Method, Path: r.Path, Header: r.Header.Clone(), Body: bytes.Clone(r.Body)})
	}
	return out
}

// clone copies r deeply, so a test can neither change the fake's state nor
// see it change under it.
func (r *Record) clone() Record {
	c := *r
	c.Metadata = deepCopy(r.Metadata).(map[string]any)
	c.Updates = make([]map[string]any, 0, len(r.Updates))
	for _, u := range r.Updates {
		c.Updates = append(c.Updates, deepCopy(u).(map[string]any))
	}
	return c
}

// deepCopy copies the maps and slices of a decoded JSON value.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body})

	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		for k, vs := range f.header {
			w.Header()[k] = vs
		}
		if w.Header().Get("Content-Type") == "" {
			if b := strings.TrimSpace(f.body); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
				w.Header().Set("Content-Type", "application/json")
			} else {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
			}
		}
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
		return
	}
	if s.token != "" {
		want := "Bearer " + s.token
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			detail(w, http.StatusUnauthorized, "Not authenticated")
			return
		}
	}

	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), Prefix)
	switch {
	case !ok:
		detail(w, http.StatusNotFound, "Not Found")
	case rest == "" || rest == "/":
		if r.Method != http.MethodPost {
			detail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		s.create(w, r, body)
	case strings.Count(rest, "/") == 1:
		id := strings.TrimPrefix(rest, "/")
		switch r.Method {
		case http.MethodPut:
			s.update(w, id, body)
		case http.MethodGet:
			if rec, ok := s.byID[id]; ok {
				writeJSON(w, http.StatusOK, rec.wire())
			} else {
				detail(w, http.StatusNotFound, "incident not found")
			}
		default:
			detail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		}
	default:
		detail(w, http.StatusNotFound, "Not Found")
	}
}

// create answers POST {base}: title and a SEV-1..SEV-4 severity are
// required, summary must be a string and metadata an object. A repeated
// Idempotency-Key returns the incident it created first.
func (s *Server) create(w http.ResponseWriter, r *http.Request, body []byte) {
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		detail(w, http.StatusUnprocessableEntity, "body must be a JSON object")
		return
	}
	title, _ := in["title"].(string)
	severity, _ := in["severity"].(string)
	summary, summaryOK := in["summary"].(string)
	metadata, metaOK := in["metadata"].(map[string]any)
	switch {
	case title == "":
		detail(w, http.StatusUnprocessableEntity, "title is required")
		return
	case severity != "SEV-1" && severity != "SEV-2" && severity != "SEV-3" && severity != "SEV-4":
		detail(w, http.StatusUnprocessableEntity, "severity must be SEV-1..SEV-4")
		return
	case in["summary"] != nil && !summaryOK:
		detail(w, http.StatusUnprocessableEntity, "summary must be a string")
		return
	case in["metadata"] != nil && !metaOK:
		detail(w, http.StatusUnprocessableEntity, "metadata must be an object")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if rec, ok := s.byKey[key]; ok && key != "" {
		writeJSON(w, http.StatusOK, map[string]any{s.idField: rec.ID, "status": "created"})
		return
	}
	s.seq++
	rec := &Record{
		ID:             "INC-" + strconv.Itoa(s.seq),
		Title:          title,
		Summary:        summary,
		Severity:       severity,
		Status:         "open",
		Metadata:       maps.Clone(metadata),
		IdempotencyKey: key,
	}
	if rec.Metadata == nil {
		rec.Metadata = map[string]any{}
	}
	s.incidents = append(s.incidents, rec)
	s.byID[rec.ID] = rec
	if key != "" {
		s.byKey[key] = rec
	}
	writeJSON(w, http.StatusOK, map[string]any{s.idField: rec.ID, "status": "created"})
}

// update answers PUT {base}/{id}: metadata is merged shallowly, summary and
// status replace the stored ones when non-empty, and the body is kept.
func (s *Server) update(w http.ResponseWriter, id string, body []byte) {
	rec, ok := s.byID[id]
	if !ok {
		detail(w, http.StatusNotFound, "incident not found")
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		detail(w, http.StatusUnprocessableEntity, "body must be a JSON object")
		return
	}
	summary, summaryOK := in["summary"].(string)
	status, statusOK := in["status"].(string)
	metadata, metaOK := in["metadata"].(map[string]any)
	switch {
	case in["summary"] != nil && !summaryOK, in["status"] != nil && !statusOK:
		detail(w, http.StatusUnprocessableEntity, "summary and status must be strings")
		return
	case in["metadata"] != nil && !metaOK:
		detail(w, http.StatusUnprocessableEntity, "metadata must be an object")
		return
	}
	maps.Copy(rec.Metadata, metadata)
	if summary != "" {
		rec.Summary = summary
	}
	if status != "" {
		rec.Status = status
	}
	rec.Updates = append(rec.Updates, in)
	writeJSON(w, http.StatusOK, rec.wire())
}

// wire is an incident as the API shows it.
func (r *Record) wire() map[string]any {
	return map[string]any{
		"incident_id": r.ID, "title": r.Title, "summary": r.Summary,
		"severity": r.Severity, "status": r.Status, "metadata": r.Metadata,
	}
}

func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"detail": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
