package incidenttest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"remediator/internal/incident/incidenttest"
)

func send(t *testing.T, s *incidenttest.Server, method, url, body string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, resp.Header, out
}

func TestCreateUpdateAndInspect(t *testing.T) {
	s := incidenttest.New(t)
	code, _, out := send(t, s, "POST", s.URL(), `{"title":"t","summary":"s","severity":"SEV-2","metadata":{"a":1,"b":{"c":2}}}`, nil)
	if code != 200 || out["incident_id"] != "INC-1" {
		t.Fatalf("create = %d %v", code, out)
	}
	code, _, out = send(t, s, "PUT", s.URL()+"/INC-1", `{"metadata":{"b":3,"d":4},"status":"resolved"}`, nil)
	if code != 200 || out["status"] != "resolved" {
		t.Fatalf("update = %d %v", code, out)
	}
	rec, ok := s.Incident("INC-1")
	if !ok || rec.Title != "t" || rec.Summary != "s" || rec.Severity != "SEV-2" || rec.Status != "resolved" {
		t.Fatalf("record = %+v", rec)
	}
	if rec.Metadata["a"] != float64(1) || rec.Metadata["b"] != float64(3) || rec.Metadata["d"] != float64(4) {
		t.Errorf("metadata not merged shallowly: %v", rec.Metadata)
	}
	if len(rec.Updates) != 1 || rec.Updates[0]["status"] != "resolved" {
		t.Errorf("updates = %v", rec.Updates)
	}
	rec.Metadata["a"] = "changed"
	if again, _ := s.Incident("INC-1"); again.Metadata["a"] != float64(1) {
		t.Error("Incident returned the fake's own map")
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Method != "POST" || reqs[1].Path != "/api/incidents/INC-1" || !strings.Contains(string(reqs[1].Body), "resolved") {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestValidationAndNotFound(t *testing.T) {
	s := incidenttest.New(t)
	for _, body := range []string{`nope`, `{"severity":"SEV-1"}`, `{"title":"t","severity":"SEV-5"}`, `{"title":"t","severity":"SEV-1","metadata":[1]}`} {
		if code, _, _ := send(t, s, "POST", s.URL(), body, nil); code != 422 {
			t.Errorf("create %s = %d, want 422", body, code)
		}
	}
	if code, _, out := send(t, s, "PUT", s.URL()+"/INC-9", `{"metadata":{}}`, nil); code != 404 || out["detail"] == nil {
		t.Errorf("update unknown = %d %v", code, out)
	}
	if len(s.Incidents()) != 0 {
		t.Errorf("invalid creates were stored: %v", s.Incidents())
	}
}

func TestIDFieldAndIdempotencyKey(t *testing.T) {
	s := incidenttest.New(t)
	s.IDField("id")
	h := http.Header{"Idempotency-Key": {"rem-1"}}
	_, _, first := send(t, s, "POST", s.URL(), `{"title":"t","severity":"SEV-3"}`, h)
	_, _, second := send(t, s, "POST", s.URL(), `{"title":"t","severity":"SEV-3"}`, h)
	if first["id"] != "INC-1" || second["id"] != "INC-1" || first["incident_id"] != nil {
		t.Errorf("replies = %v, %v", first, second)
	}
	if got := s.Incidents(); len(got) != 1 || got[0].IdempotencyKey != "rem-1" {
		t.Errorf("incidents = %+v", got)
	}
}

func TestRequireTokenAndFailNext(t *testing.T) {
	s := incidenttest.New(t)
	s.RequireToken("tok")
	if code, _, _ := send(t, s, "POST", s.URL(), `{"title":"t","severity":"SEV-3"}`, nil); code != 401 {
		t.Errorf("no token = %d, want 401", code)
	}
	s.FailNext(2, 503, "<html>down</html>", http.Header{"Retry-After": {"5"}})
	auth := http.Header{"Authorization": {"Bearer tok"}}
	for range 2 {
		code, h, _ := send(t, s, "POST", s.URL(), `{"title":"t","severity":"SEV-3"}`, auth)
		if code != 503 || h.Get("Retry-After") != "5" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Errorf("injected = %d %v", code, h)
		}
	}
	if code, _, out := send(t, s, "POST", s.URL(), `{"title":"t","severity":"SEV-3"}`, auth); code != 200 || out["incident_id"] != "INC-1" {
		t.Errorf("after failures = %d %v", code, out)
	}
	if n := len(s.Requests()); n != 4 {
		t.Errorf("recorded %d requests, want 4", n)
	}
}

func TestConcurrentCreates(t *testing.T) {
	s := incidenttest.New(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp, err := s.Client().Post(s.URL(), "application/json", strings.NewReader(`{"title":"t","severity":"SEV-4"}`))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, r := range s.Incidents() {
		seen[r.ID] = true
	}
	if len(seen) != 20 {
		t.Errorf("got %d distinct incidents, want 20", len(seen))
	}
}
