package dragontest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"remediator/internal/dragon"
	"remediator/internal/dragon/dragontest"
)

func do(t *testing.T, s *dragontest.Server, method, path, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Token", token)
	req.Header.Set("X-Org-Id", "org")
	req.Header.Set("X-Region", "region")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp, out
}

func TestAuthentication(t *testing.T) {
	s := dragontest.New(t, "tok", "org", "region")
	resp, body := do(t, s, http.MethodGet, "/api/decisions", "wrong", "")
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" || body["error"] != "unauthorized" {
		t.Fatalf("wrong token: %d %v", resp.StatusCode, body)
	}
	if resp, _ := do(t, s, http.MethodGet, "/api/decisions", "tok", ""); resp.StatusCode != 200 {
		t.Fatalf("right token: %d", resp.StatusCode)
	}
	if n := len(s.Requests()); n != 2 {
		t.Fatalf("requests = %d, want refused ones recorded too", n)
	}
}

func TestCreateDecideGetAndLookup(t *testing.T) {
	s := dragontest.New(t, "tok", "org", "region")
	resp, created := do(t, s, http.MethodPost, "/api/decisions", "tok", `{"client_reference":"ref-1","repository":"a/b","status":"approved"}`)
	if resp.StatusCode != 201 || created["id"] != "dec-1" || created["status"] != "pending" {
		t.Fatalf("create: %d %v (a client cannot approve its own decision)", resp.StatusCode, created)
	}
	s.Decide("dec-1", "rejected", "bob", "not now")
	_, got := do(t, s, http.MethodGet, "/api/decisions/dec-1", "tok", "")
	if got["status"] != "rejected" || got["approver"] != "bob" || got["reason"] != "not now" || got["repository"] != "a/b" {
		t.Fatalf("get: %v", got)
	}
	_, list := do(t, s, http.MethodGet, "/api/decisions?client_reference=ref-1", "tok", "")
	if items, _ := list["decisions"].([]any); len(items) != 1 {
		t.Fatalf("lookup: %v", list)
	}
	_, list = do(t, s, http.MethodGet, "/api/decisions?client_reference=ref-2", "tok", "")
	if items, _ := list["decisions"].([]any); len(items) != 0 {
		t.Fatalf("lookup of another reference: %v", list)
	}
	if resp, _ := do(t, s, http.MethodGet, "/api/decisions/dec-9", "tok", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown decision: %d", resp.StatusCode)
	}
	s.DisableLookup()
	if resp, _ := do(t, s, http.MethodGet, "/api/decisions?client_reference=ref-1", "tok", ""); resp.StatusCode != 404 {
		t.Fatalf("disabled lookup: %d", resp.StatusCode)
	}
	if resp, _ := do(t, s, http.MethodPost, "/api/decisions/dec-1/outcome", "tok", `{"outcome":"rejected"}`); resp.StatusCode != 202 {
		t.Fatalf("outcome: %d", resp.StatusCode)
	}
	if o := s.Outcomes("dec-1"); len(o) != 1 || o[0]["outcome"] != "rejected" {
		t.Fatalf("outcomes: %v", o)
	}
	// Returned records are copies.
	d, _ := s.Decision("dec-1")
	d["status"] = "approved"
	if again, _ := s.Decision("dec-1"); again["status"] != "rejected" {
		t.Fatal("Decision returned the fake's own map")
	}
}

func TestFailNextQueues(t *testing.T) {
	s := dragontest.New(t, "tok", "org", "region")
	s.FailNext(2, 503, "<html>down</html>", http.Header{"Retry-After": {"3"}})
	s.FailNext(1, 200, "garbage", http.Header{"Content-Type": {"text/plain"}})
	for i, want := range []int{503, 503, 200, 200} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/decisions", nil)
		// No credentials: injected answers come before authentication.
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch i {
		case 0, 1:
			if resp.StatusCode != want || resp.Header.Get("Retry-After") != "3" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("request %d: %d %v", i, resp.StatusCode, resp.Header)
			}
		case 2:
			if resp.StatusCode != 200 || string(data) != "garbage" || resp.Header.Get("Content-Type") != "text/plain" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, data)
			}
		case 3:
			if resp.StatusCode != 401 {
				t.Fatalf("request %d: %d, want the fake itself again", i, resp.StatusCode)
			}
		}
	}
}

func TestLoseNextRepliesProcessesTheRequest(t *testing.T) {
	s := dragontest.New(t, "tok", "org", "region")
	s.LoseNextReplies(1, http.MethodPost)
	if resp, _ := do(t, s, http.MethodGet, "/api/decisions", "tok", ""); resp.StatusCode != 200 {
		t.Fatalf("GET was affected: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/api/decisions", strings.NewReader(`{"client_reference":"r"}`))
	req.Header = http.Header{"X-Token": {"tok"}, "X-Org-Id": {"org"}, "X-Region": {"region"}, "Content-Type": {"application/json"}}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the reply was not lost: %d", resp.StatusCode)
	}
	if s.Creates() != 1 || len(s.Decisions()) != 1 {
		t.Fatalf("creates = %d", s.Creates())
	}
}

func TestNotifySignsTheCallback(t *testing.T) {
	s := dragontest.New(t, "tok", "org", "region")
	id := s.Seed(map[string]any{"client_reference": "r"})
	s.Decide(id, "approved", "alice", "")
	secret := []byte("hook-secret")
	var got dragon.WebhookEvent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := dragon.VerifyWebhook(secret, body, r.Header.Get(dragon.TimestampHeader), r.Header.Get(dragon.SignatureHeader), time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		ev, err := dragon.ParseWebhookEvent(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = ev
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	if resp := s.Notify(t, hook.URL, secret, id); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("callback: %d", resp.StatusCode)
	}
	if got.Event != "decision.updated" || got.Decision.ID != id || got.Decision.Status != "approved" {
		t.Fatalf("event = %+v", got)
	}
	resp := s.Notify(t, hook.URL, []byte("wrong"), id)
	if data, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusUnauthorized || len(data) == 0 {
		t.Fatalf("wrongly signed callback: %d %q", resp.StatusCode, data)
	}
}
