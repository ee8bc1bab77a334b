//go:build !production

package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"remediator/internal/devserver"
	"remediator/internal/dragon/dragontest"
	"remediator/internal/incident/incidenttest"
	"remediator/internal/llm/llmtest"
	"remediator/internal/slack/slacktest"
	"remediator/workflows"
)

const (
	govDragonToken  = "dragon-token-e2e"
	govDragonSecret = "dragon-webhook-secret-e2e"
	govSlackToken   = "xoxb-e2e-token"
	govSlackChannel = "C0E2E0001"
	govSlackSecret  = "slack-signing-secret-e2e"
	govSlackUser    = "U0ALICE01"
	govLLMKey       = "sk-e2e-model-key"
	// govPlanted is a GitHub token pasted into a CI log: it must never reach the model.
	govPlanted = "ghp_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
)

// governance is the loop's outside world: Dragon, the incident API, Slack
// and a model server, all fakes speaking their vendors' wire formats.
type governance struct {
	dragon   *dragontest.Server
	incident *incidenttest.Server
	slack    *slacktest.Server
	llm      *llmtest.Server
	env      []string
}

func newGovernance(t *testing.T) governance {
	g := governance{
		dragon:   dragontest.New(t, govDragonToken, "acme-org", "eu"),
		incident: incidenttest.New(t),
		slack:    slacktest.New(t, govSlackToken, govSlackChannel),
		llm:      llmtest.New(t),
	}
	g.llm.Key = govLLMKey
	g.incident.IDField("id") // as the seed's own incident services answered
	g.env = []string{
		"KLYNX_DRAGON_BASE_URL", g.dragon.URL(), "KLYNX_DRAGON_TOKEN", govDragonToken, "KLYNX_DRAGON_ORG", "acme-org",
		"KLYNX_DRAGON_REGION", "eu", "KLYNX_DRAGON_WEBHOOK_SECRET", govDragonSecret, "KLYNX_DRAGON_POLL_INTERVAL", "1s",
		"KLYNX_INCIDENT_API_BASE", g.incident.URL(),
		"SLACK_BOT_TOKEN", govSlackToken, "SLACK_CHANNEL", govSlackChannel, "SLACK_API_URL", g.slack.APIURL(),
		"SLACK_SIGNING_SECRET", govSlackSecret, "REMEDIATOR_SLACK_USERS", govSlackUser + "=alice:approver:*",
		"REMEDIATOR_LLM_BASE_URL", g.llm.URL(), "REMEDIATOR_LLM_API_KEY", govLLMKey, "REMEDIATOR_LLM_MODEL", "e2e-model",
		"REMEDIATOR_LLM_CHECK", "go build ./...",
		"REMEDIATOR_GENERATE_WAIT", "50s",
	}
	return g
}

// slackMessage is the one message of remediation id in the fake Slack.
func (g governance) slackMessage(t *testing.T, id string) slacktest.Posted {
	t.Helper()
	var found []slacktest.Posted
	for _, m := range g.slack.Messages() {
		if m.Metadata != nil && m.Metadata.EventPayload["remediation_id"] == id {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one Slack message for %s, got %d", id, len(found))
	}
	return found[0]
}

// eventually retries cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestGovernanceLoop runs the seed's whole loop against fakes of all four
// services: failure → fix (recipe, then model) → Dragon decision + incident
// + Slack message → approval in Dragon (its own poll), in Slack (a click)
// and a rejection through Dragon's callback → change → outcome written back
// to Dragon, the incident and the Slack message.
func TestGovernanceLoop(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGovernance(t)
	dataDir := t.TempDir()
	s := startStack(t, dataDir, ports, g.env...)

	t.Run("recipe fix approved in Dragon", func(t *testing.T) {
		id := s.startDemo("dev", "gov-1")
		st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
		decID := st["decision_id"].(string)
		dec, ok := g.dragon.Decision(decID)
		if !ok || dec["remediation_id"] != id || dec["proposed_action"] != "apply_autofix" || dec["risk_level"] == "" ||
			dec["diff_digest"] != st["fix"].(map[string]any)["digest"] || dec["repository"] != s.dev.Demo.Path {
			t.Fatalf("Dragon's decision: %v", dec)
		}
		incID, _ := st["incident_id"].(string)
		if incID == "" || incID == "pending" {
			t.Fatalf("no incident id in the status: %v", st)
		}
		eventually(t, "the incident learns the decision", func() bool {
			rec, ok := g.incident.Incident(incID)
			return ok && rec.Metadata["decision_id"] == decID
		})
		msg := g.slackMessage(t, id)
		if !bytes.Contains(msg.Blocks, []byte("remediation_approve")) || !bytes.Contains(msg.Blocks, []byte(decID)) {
			t.Fatalf("the Slack message carries no Approve button for the decision: %s", msg.Blocks)
		}
		for _, r := range g.dragon.Requests() {
			if r.Header.Get("X-Token") != govDragonToken || r.Header.Get("X-Org-Id") != "acme-org" || r.Header.Get("X-Region") != "eu" {
				t.Fatalf("a Dragon request without the seed's headers: %v", r.Header)
			}
		}

		// The requester approving in Dragon does not count; someone else does.
		g.dragon.Decide(decID, "approved", "dev", "")
		eventually(t, "the self-approval is recorded as ignored", func() bool {
			r := s.call("GET", "/api/remediations/"+id, "dev", nil)
			ig, _ := r.body["ignored_signals"].([]any)
			return len(ig) == 1
		})
		g.dragon.Decide(decID, "allowed", "carol", "fine by me")
		done := s.waitPhase(id, workflows.PhaseCompleted)
		votes := done["votes"].([]any)
		if len(votes) != 1 || votes[0].(map[string]any)["actor"] != "carol" || votes[0].(map[string]any)["channel"] != "dragon" {
			t.Fatalf("votes: %v", votes)
		}
		prURL := done["pr"].(map[string]any)["url"].(string)
		eventually(t, "the outcome reaches Dragon, the incident and Slack", func() bool {
			outs := g.dragon.Outcomes(decID)
			rec, _ := g.incident.Incident(incID)
			m := g.slackMessage(t, id)
			return len(outs) > 0 && outs[len(outs)-1]["pr_url"] == prURL && outs[len(outs)-1]["outcome"] == "completed" &&
				rec.Metadata["pr_url"] == prURL && rec.Status == "mitigated" &&
				m.Updates > 0 && !bytes.Contains(m.Blocks, []byte("remediation_approve")) && bytes.Contains(m.Blocks, []byte("Completed"))
		})
		if g.dragon.Creates() != 1 {
			t.Fatalf("one decision per remediation, got %d creates", g.dragon.Creates())
		}
		// The seed's /api/pr answers with the change once it is opened.
		if r := s.call("POST", "/api/pr", "dev", map[string]string{"draft_id": id}); r.code != 200 || r.body["pr_url"] != prURL {
			t.Fatalf("/api/pr: %d %v", r.code, r.body)
		}
	})

	t.Run("model fix generated, approved in Slack", func(t *testing.T) {
		repo := filepath.Join(dataDir, "svc")
		writeRepo(t, repo, map[string]string{
			"go.mod":  "module example.com/svc\n\ngo 1.22\n",
			"main.go": "package main\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
		})
		g.llm.Queue(llmtest.Fence("diff --git a/main.go b/main.go\n--- a/main.go\n+++ b/main.go\n@@ -1,5 +1,7 @@\n package main\n \n+import \"fmt\"\n+\n func main() {\n \tfmt.Println(\"hi\")\n }\n"))
		before := len(g.llm.Requests())
		generate := func() response {
			return s.call("POST", "/api/generate", "dev", map[string]string{
				"repo":   repo,
				"prompt": "build failed: main.go does not compile\n./main.go:4:2: undefined: fmt\nGITHUB_TOKEN=" + govPlanted,
			}, "Idempotency-Key", "gov-2")
		}
		r := generate()
		if r.code == http.StatusAccepted && r.body["ready"] == false {
			// The check compiles the standard library into the sandbox's
			// empty cache first, which a loaded machine may not do within
			// the wait: the remediation goes on, and asking again (same
			// key) answers with its proposal.
			s.waitPhase(r.body["id"].(string), workflows.PhaseAwaitingApproval)
			if r = generate(); r.body["existing"] != true {
				t.Fatalf("/api/generate again: %d %v", r.code, r.body)
			}
		}
		if r.code != 200 || r.body["ready"] != true {
			t.Fatalf("/api/generate: %d %v", r.code, r.body)
		}
		id := r.body["id"].(string)
		// Asked again: the same remediation, answered from its status (the
		// workflow refuses a second wait before it reaches history).
		if again := generate(); again.code != 200 || again.body["id"] != id || again.body["existing"] != true || again.body["ready"] != true {
			t.Fatalf("/api/generate again: %d %v", again.code, again.body)
		}
		fix := r.body["fix"].(map[string]any)
		if fix["source"] != "model" || fix["validated"] != true || !strings.Contains(fix["diff"].(string), `+import "fmt"`) ||
			r.body["decision_id"] == "" || r.body["risk"].(map[string]any)["level"] == "LOW" {
			t.Fatalf("the model's fix: %v", r.body)
		}
		reqs := g.llm.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("one model call, got %d", len(reqs))
		}
		for _, q := range reqs {
			if bytes.Contains(q.Body, []byte(govPlanted)) || bytes.Contains(q.Body, []byte("ghp_")) {
				t.Fatal("a planted token reached the model server")
			}
			if !strings.Contains(q.Text(), "undefined: fmt") || !strings.Contains(q.Text(), "Println") {
				t.Fatalf("the prompt lacks the failure or the file: %s", q.Text())
			}
		}
		st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
		value := id + "|" + st["decision_id"].(string) + "|" + fix["digest"].(string) + "|" + fix["base_sha"].(string)
		msg := g.slackMessage(t, id)
		if !bytes.Contains(msg.Blocks, []byte(value)) {
			t.Fatalf("the buttons do not carry %q: %s", value, msg.Blocks)
		}
		respURL := g.slack.NewResponseURL()
		body := slacktest.BlockAction(govSlackUser, "remediation_approve", value, "trigger-gov-2", respURL)
		res := s.slackPost(body)
		if res.code != 200 || !strings.Contains(res.body["text"].(string), "Approved by alice") {
			t.Fatalf("slack click: %d %v", res.code, res.body)
		}
		done := s.waitPhase(id, workflows.PhaseCompleted)
		git(t, repo, "rev-parse", "--verify", "refs/heads/autofix/"+id)
		if v := done["votes"].([]any)[0].(map[string]any); v["actor"] != "alice" || v["channel"] != "slack" {
			t.Fatalf("vote: %v", v)
		}
		eventually(t, "the click is answered through response_url", func() bool {
			for _, p := range g.slack.Responses() {
				if p.URL == respURL && p.ReplaceOriginal {
					return true
				}
			}
			return false
		})
	})

	t.Run("rejected in Dragon through its callback", func(t *testing.T) {
		writeRepo(t, filepath.Join(dataDir, "svc2"), map[string]string{"a.txt": "x  \n"})
		id := s.start("dev", "gov-3", filepath.Join(dataDir, "svc2"), "lint: trailing whitespace in a.txt")
		st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
		decID := st["decision_id"].(string)
		callback := s.http.URL + "/webhooks/dragon"
		if res := g.dragon.Notify(t, callback, []byte("wrong-secret-wrong-secret"), decID); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a callback with a wrong signature: %d", res.StatusCode)
		}
		g.dragon.Decide(decID, "denied", "erin", "not during the freeze")
		res := g.dragon.Notify(t, callback, []byte(govDragonSecret), decID)
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode != 200 || (out["status"] != "counted" && out["status"] != "refused") {
			t.Fatalf("callback: %d %v", res.StatusCode, out)
		}
		done := s.waitPhase(id, workflows.PhaseRejected)
		if !strings.Contains(done["reason"].(string), "not during the freeze") {
			t.Fatalf("reason: %v", done["reason"])
		}
		// A replayed callback changes nothing.
		if res := g.dragon.Notify(t, callback, []byte(govDragonSecret), decID); res.StatusCode != 200 {
			t.Fatalf("replayed callback: %d", res.StatusCode)
		}
		eventually(t, "the rejection is written back", func() bool {
			outs := g.dragon.Outcomes(decID)
			return len(outs) > 0 && outs[len(outs)-1]["outcome"] == "rejected"
		})
		if r := s.call("POST", "/api/pr", "dev", map[string]string{"remediation_id": id}); r.code != 409 {
			t.Fatalf("/api/pr of a rejected remediation: %d %v", r.code, r.body)
		}
	})
}

// slackPost sends a Slack interaction signed with the stack's secret.
func (s *stack) slackPost(body []byte) response {
	s.t.Helper()
	ts, sig := slacktest.Sign([]byte(govSlackSecret), body, time.Now())
	req, _ := http.NewRequest("POST", s.http.URL+"/webhooks/slack", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	return s.send(req)
}

// writeRepo makes a git repository at dir with files, one commit on main.
func writeRepo(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "init", "-q", "-b", "main")
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
}
