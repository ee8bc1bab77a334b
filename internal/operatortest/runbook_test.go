//go:build operator

package operatortest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestOperatorRunbook runs every command of the README's "Operate" section
// against a real `remediator dev` and asserts what each one shows.
func TestOperatorRunbook(t *testing.T) {
	s := startStack(t)

	// Four remediations of the demo repository's gofmt failure, started as
	// the walk-through does. The fourth names a branch that does not exist
	// yet: its fix cannot be generated, so it ends Failed.
	const missingRef = "operate-hotfix"
	approveID := s.startRemediation(t, "DEV", "operate-approve", "main")
	rejectID := s.startRemediation(t, "ADMIN", "operate-reject", "main")
	cancelID := s.startRemediation(t, "DEV", "operate-cancel", "main")
	failedID := s.startRemediation(t, "DEV", "operate-failed", missingRef)
	awaiting := []string{approveID, rejectID, cancelID}
	for _, id := range awaiting {
		s.waitPhase(t, id, "AwaitingApproval", 5*time.Minute)
		s.waitListed(t, id, "AwaitingApproval")
	}
	s.waitPhase(t, failedID, "Failed", 5*time.Minute)
	s.waitListed(t, failedID, "Failed")

	step(t, "remediator list: what I may vote on")
	r := must(t, s.rem(t, "ALICE", "list", "--phase", "AwaitingApproval"))
	wantAll(t, r.stdout, "ID", "PHASE", "REPO", "REQUESTER", approveID, rejectID, cancelID)
	wantNone(t, r.stdout, failedID)

	step(t, "remediator status: review one")
	r = must(t, s.rem(t, "ALICE", "status", approveID))
	wantRe(t, r.stdout, `(?m)^phase:\s+AwaitingApproval$`, `(?m)^requester:\s+dev$`, `(?m)^decision_id:\s+\S+`,
		`(?m)^\s+recipe:\s+gofmt$`, `(?m)^\s+digest:\s+[0-9a-f]{64}$`, `(?m)^votes:\s+0 of 1 required approvals$`,
		`remediator approve `+approveID+` --digest DIGEST`)
	shownDigest := regexp.MustCompile(`(?m)^\s+digest:\s+([0-9a-f]{64})$`).FindStringSubmatch(r.stdout)[1]

	r = must(t, s.rem(t, "ALICE", "status", approveID, "--json"))
	var st apiStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v", err)
	}
	if st.ID != approveID || st.Phase != "AwaitingApproval" || st.Requester != "dev" || st.DecisionID == "" || st.Fix == nil {
		t.Fatalf("status --json: %+v", st)
	}
	digest := st.Fix.Digest
	if digest != shownDigest {
		t.Fatalf("status shows digest %s, --json %s", shownDigest, digest)
	}

	r = must(t, s.rem(t, "ALICE", "status", approveID, "--diff"))
	wantRe(t, r.stdout, `(?m)^--- a/\S+\.go$`, `(?m)^\+\+\+ b/\S+\.go$`, `(?m)^@@ `)
	if sum := sha256.Sum256([]byte(r.stdout)); hex.EncodeToString(sum[:]) != digest {
		t.Fatalf("the diff printed by --diff does not hash to the digest %s", digest)
	}

	step(t, "Temporal CLI: remediations awaiting approval for longer than an hour")
	// The cut-off is an hour before now: a remediation started just now does
	// not qualify; moving the cut-off past now makes every waiting one
	// qualify, which shows the query selects on exactly that.
	// The README computes the cut-off with GNU date; so does the test.
	r = must(t, s.exec(t, "", "date", "date", s.env, "-u", "-d", "1 hour ago", "+%FT%TZ"))
	cutoff := strings.TrimSpace(r.stdout)
	if c, err := time.Parse(time.RFC3339, cutoff); err != nil || time.Since(c) < 59*time.Minute || time.Since(c) > 61*time.Minute {
		t.Fatalf("date printed %q, want the time an hour ago in RFC 3339 (%v)", cutoff, err)
	}
	older := func(cutoff string) string {
		return fmt.Sprintf("RemediationPhase='AwaitingApproval' AND StartTime < '%s'", cutoff)
	}
	r = must(t, s.tctl(t, "workflow", "list", "--query", older(cutoff)))
	wantNone(t, r.out(), approveID, rejectID, cancelID, failedID)
	r = must(t, s.tctl(t, "workflow", "list", "--query", older(time.Now().UTC().Add(time.Minute).Format(time.RFC3339))))
	wantAll(t, r.stdout, approveID, rejectID, cancelID)
	wantNone(t, r.stdout, failedID)

	step(t, "Temporal CLI: describe and query one")
	r = must(t, s.tctl(t, "workflow", "describe", "--workflow-id", approveID))
	wantAll(t, r.stdout, approveID, "Remediation", "TaskQueue             remediator", "CancelRequested    false",
		"Pending Activities: 0")
	wantRe(t, r.stdout, searchAttr("RemediationPhase", "AwaitingApproval"), searchAttr("RemediationRequester", "dev"))
	r = must(t, s.tctl(t, "workflow", "query", "--workflow-id", approveID, "--type", "status"))
	if q := queryResult(t, r.stdout); q.Phase != "AwaitingApproval" || q.Fix == nil || q.Fix.Digest != digest || q.DecisionID != st.DecisionID {
		t.Fatalf("the status query answered %+v", q)
	} else if len(q.Fix.Patch) == 0 || q.Fix.Diff != "" {
		// The query carries the change only as base64 bytes; the API adds
		// the text (remediator status --diff prints it).
		t.Fatalf("the status query's fix: patch %d bytes, diff %q", len(q.Fix.Patch), q.Fix.Diff)
	}

	step(t, "Web UI: the list, the workflow page, its status query and history")
	code, _ := s.httpGet(t, s.uiURL+"/namespaces/default/workflows")
	if code != http.StatusOK {
		t.Fatalf("Web UI workflows page: HTTP %d", code)
	}
	code, b := s.httpGet(t, s.uiURL+"/api/v1/namespaces/default/workflows")
	if code != http.StatusOK {
		t.Fatalf("Web UI API list: HTTP %d", code)
	}
	wantAll(t, string(b), approveID, rejectID, cancelID, failedID)
	code, b = s.httpGet(t, s.uiURL+"/api/v1/namespaces/default/workflows?query="+url.QueryEscape("RemediationPhase='AwaitingApproval'"))
	if code != http.StatusOK {
		t.Fatalf("Web UI API list with a query: HTTP %d", code)
	}
	wantAll(t, string(b), approveID, rejectID, cancelID)
	wantNone(t, string(b), failedID)
	// links.ui of the status is the remediation's page in the Web UI.
	if want := s.uiURL + "/namespaces/default/workflows/" + approveID; st.Links.UI != want {
		t.Fatalf("links.ui is %q, want %q", st.Links.UI, want)
	}
	code, _ = s.httpGet(t, st.Links.UI)
	if code != http.StatusOK {
		t.Fatalf("Web UI workflow page: HTTP %d", code)
	}
	code, b = s.httpGet(t, s.uiURL+"/api/v1/namespaces/default/workflows/"+approveID)
	if code != http.StatusOK {
		t.Fatalf("Web UI API describe: HTTP %d", code)
	}
	// No pendingActivities: a remediation waiting for a vote runs nothing.
	wantAll(t, string(b), `"workflowId": "`+approveID+`"`, "WORKFLOW_EXECUTION_STATUS_RUNNING", "RemediationPhase")
	wantNone(t, string(b), "pendingActivities")
	s.uiQueryStatus(t, approveID, "AwaitingApproval")
	code, b = s.httpGet(t, s.uiURL+"/api/v1/namespaces/default/workflows/"+approveID+"/history")
	if code != http.StatusOK {
		t.Fatalf("Web UI API history: HTTP %d", code)
	}
	wantAll(t, string(b), "WORKFLOW_EXECUTION_STARTED", "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", "GenerateFix", "CreateDecision")

	step(t, "remediator approve: the requester is refused, a second person approves")
	r = s.rem(t, "DEV", "approve", approveID, "--digest", digest)
	if r.code == 0 {
		t.Fatal("the requester (a developer) approved their own remediation")
	}
	wantAll(t, r.stderr, "403 forbidden")
	// An admin may approve, but not a remediation they requested themselves.
	rejectDigest := s.waitPhase(t, rejectID, "AwaitingApproval", time.Minute).Fix.Digest
	r = s.rem(t, "ADMIN", "approve", rejectID, "--digest", rejectDigest)
	if r.code == 0 {
		t.Fatal("the requester (an admin) approved their own remediation")
	}
	wantAll(t, r.stderr, "403 self_approval")
	r = must(t, s.rem(t, "ALICE", "approve", approveID, "--digest", digest, "--comment", "looks right"))
	wantRe(t, r.stdout, `^approved `+approveID+`: phase (OpeningPR|Completed)\n`)
	s.waitPhase(t, approveID, "Completed", 2*time.Minute)
	r = must(t, s.rem(t, "ALICE", "status", approveID))
	wantRe(t, r.stdout, `(?m)^phase:\s+Completed$`, `(?m)^votes:\s+1 of 1 required approvals$`,
		`(?m)^\s+alice approved via cli at \S+: looks right$`, `(?m)^pr:\s+file://\S+#autofix/`+approveID+` \(autofix/`+approveID+`\)$`)

	step(t, "remediator regenerate: ask for another fix")
	before := s.waitPhase(t, rejectID, "AwaitingApproval", time.Minute)
	r = must(t, s.rem(t, "DEV", "regenerate", rejectID, "--digest", rejectDigest, "--reason", "check the fix again"))
	wantAll(t, r.stdout, "regenerating "+rejectID+": phase GeneratingFix; pending votes are void")
	var after apiStatus
	for range 600 {
		after = s.waitPhase(t, rejectID, "AwaitingApproval", time.Minute)
		if after.DecisionID != before.DecisionID {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.DecisionID == before.DecisionID {
		t.Fatalf("the regenerated fix has no decision of its own: %+v", after)
	}
	rejectDigest = after.Fix.Digest

	step(t, "remediator reject")
	r = must(t, s.rem(t, "BOB", "reject", rejectID, "--digest", rejectDigest, "--reason", "the formatting change is not wanted now"))
	wantAll(t, r.stdout, "rejected "+rejectID+": phase Rejected")
	r = must(t, s.rem(t, "BOB", "status", rejectID))
	wantRe(t, r.stdout, `(?m)^phase:\s+Rejected$`, `(?m)^reason:\s+rejected by bob: the formatting change is not wanted now$`, `(?m)^\s+bob rejected via cli at \S+: the formatting change is not wanted now$`)
	r = must(t, s.rem(t, "ALICE", "list", "--phase", "AwaitingApproval"))
	wantAll(t, r.stdout, cancelID)
	wantNone(t, r.stdout, approveID, rejectID)

	step(t, "The audit: one remediation's events, and the chain")
	var trail struct {
		Events []struct {
			Kind  string `json:"kind"`
			Actor string `json:"actor"`
		} `json:"events"`
		Stored []struct {
			Hash string `json:"hash"`
		} `json:"stored"`
	}
	s.curlAPI(t, "ALICE", "/api/remediations/"+rejectID+"/audit", &trail)
	kinds := map[string]string{}
	for _, e := range trail.Events {
		kinds[e.Kind] = e.Actor
	}
	if kinds["regenerate_requested"] != "dev" || kinds["vote_rejected"] != "bob" || kinds["started"] != "admin" || len(trail.Stored) < len(trail.Events) {
		t.Fatalf("the audit of %s: %+v", rejectID, trail)
	}
	r = must(t, s.rem(t, "ALICE", "audit", "verify", "--file", filepath.Join(s.dataDir, "audit.jsonl")))
	wantRe(t, r.stdout, `^audit chain OK: \d+ records, head [0-9a-f]{64}\n`)

	step(t, "Temporal CLI: cancel one, then read its history")
	must(t, s.tctl(t, "workflow", "cancel", "--workflow-id", cancelID))
	cancelled := s.waitPhase(t, cancelID, "Cancelled", 2*time.Minute)
	r = must(t, s.rem(t, "ALICE", "status", cancelID))
	wantRe(t, r.stdout, `(?m)^phase:\s+Cancelled$`, `(?m)^reason:\s+cancelled$`)
	// The outcome still reaches the decision record.
	var dec struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	s.curlAPI(t, "ALICE", "/api/decisions/"+cancelled.DecisionID, &dec)
	if dec.ID != cancelled.DecisionID || dec.Status != "cancelled" {
		t.Fatalf("decision of the cancelled remediation: %+v", dec)
	}
	r = must(t, s.tctl(t, "workflow", "describe", "--workflow-id", cancelID))
	wantAll(t, r.stdout, cancelID, "CancelRequested    true")
	wantRe(t, r.stdout, `(?m)^\s+Status\s+CANCELED$`, searchAttr("RemediationPhase", "Cancelled"))
	r = must(t, s.tctl(t, "workflow", "show", "--workflow-id", cancelID))
	wantAll(t, r.stdout, "WorkflowExecutionStarted", "MarkerRecorded", "UpsertWorkflowSearchAttributes", "ActivityTaskScheduled",
		"ActivityTaskStarted", "ActivityTaskCompleted", "TimerStarted", "WorkflowExecutionCancelRequested", "TimerCanceled",
		"WorkflowExecutionCanceled")

	step(t, "A failed remediation: read the reason, fix the cause, reset")
	r = must(t, s.rem(t, "ALICE", "status", failedID))
	wantRe(t, r.stdout, `(?m)^phase:\s+Failed$`, `(?m)^reason:\s+generating the fix failed: NotFound: unknown ref or commit$`)
	r = must(t, s.tctl(t, "workflow", "describe", "--workflow-id", failedID))
	// The run itself completed: Failed is the remediation's outcome.
	wantRe(t, r.stdout, `(?m)^\s+Status\s+COMPLETED$`, `(?m)^\s+Result\s+\{.*"phase":"Failed"`, searchAttr("RemediationPhase", "Failed"))
	firstRun := runID(t, r.stdout)
	// The cause: the branch did not exist. The operator creates it.
	must(t, s.git(t, "branch", missingRef, "main"))
	r = must(t, s.tctl(t, "workflow", "reset", "--workflow-id", failedID, "--type", "FirstWorkflowTask",
		"--reason", "the branch exists now"))
	st = s.waitPhase(t, failedID, "AwaitingApproval", 3*time.Minute)
	s.waitListed(t, failedID, "AwaitingApproval")
	r = must(t, s.tctl(t, "workflow", "list", "--query", fmt.Sprintf("WorkflowId='%s'", failedID)))
	if n := strings.Count(r.stdout, failedID); n != 2 {
		t.Fatalf("want 2 runs of %s (the failed one and the reset), listed %d", failedID, n)
	}
	wantAll(t, r.stdout, "Completed", "Running")
	r = must(t, s.tctl(t, "workflow", "describe", "--workflow-id", failedID))
	wantAll(t, r.stdout, "LastResetTime")
	if second := runID(t, r.stdout); second == firstRun {
		t.Fatalf("after the reset, the current run is still %s", firstRun)
	}
	r = must(t, s.rem(t, "BOB", "approve", failedID, "--digest", st.Fix.Digest))
	wantRe(t, r.stdout, `^approved `+failedID+`: phase (OpeningPR|Completed)\n`)
	s.waitPhase(t, failedID, "Completed", 2*time.Minute)
	r = must(t, s.rem(t, "BOB", "status", failedID))
	wantRe(t, r.stdout, `(?m)^phase:\s+Completed$`, `(?m)^repo:\s+\S+ @ `+missingRef+` `, `(?m)^decision_id:\s+\S+`,
		`(?m)^pr:\s+file://\S+#autofix/`+failedID+` \(autofix/`+failedID+`\)$`)
}

// step marks a runbook task in the log.
func step(t *testing.T, name string) {
	t.Helper()
	t.Logf("==== %s ====", name)
}

func wantAll(t *testing.T, text string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(text, sub) {
			t.Fatalf("output lacks %q", sub)
		}
	}
}

func wantNone(t *testing.T, text string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(text, sub) {
			t.Fatalf("output contains %q", sub)
		}
	}
}

func wantRe(t *testing.T, text string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Fatalf("output does not match %s", re)
		}
	}
}

// searchAttr matches a Keyword search attribute in `temporal workflow
// describe` output.
func searchAttr(name, value string) string {
	return regexp.QuoteMeta(name+":") + `metadata:\{[^}]*\} metadata:\{[^}]*\} data:"\\"` + regexp.QuoteMeta(value) + `\\""`
}

// queryResult decodes the status from `temporal workflow query` output.
func queryResult(t *testing.T, out string) apiStatus {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*QueryResult\s+(\{.*\})\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no QueryResult in the query output")
	}
	var st apiStatus
	if err := json.Unmarshal([]byte(m[1]), &st); err != nil {
		t.Fatalf("the query result is not a status: %v", err)
	}
	return st
}

// runID reads the run id from `temporal workflow describe` output.
func runID(t *testing.T, describe string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*RunId\s+([0-9a-f-]{36})\s*$`).FindStringSubmatch(describe)
	if m == nil {
		t.Fatal("no RunId in the describe output")
	}
	return m[1]
}

// uiQueryStatus sends the status query the way the Web UI's Queries tab
// does: a POST to the UI server's API with its CSRF cookie and header.
func (s *stack) uiQueryStatus(t *testing.T, id, wantPhase string) {
	t.Helper()
	target := s.uiURL + "/api/v1/namespaces/default/workflows/" + id + "/query/status"
	body := fmt.Sprintf(`{"execution":{"workflowId":%q},"query":{"queryType":"status"}}`, id)
	token := "operatortest0123456789abcdef0123"
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", token)
	req.AddCookie(&http.Cookie{Name: "_csrf", Value: token})
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	defer resp.Body.Close()
	var out struct {
		QueryResult struct {
			Payloads []json.RawMessage `json:"payloads"`
		} `json:"queryResult"`
	}
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("POST %s: HTTP %d, not JSON: %v", target, resp.StatusCode, err)
	}
	s.commandsRun++
	if resp.StatusCode != http.StatusOK || len(out.QueryResult.Payloads) == 0 {
		t.Fatalf("POST %s: HTTP %d, %+v", target, resp.StatusCode, out)
	}
	t.Logf("$ curl -s -X POST %s (the Queries tab: status)\n  [HTTP %d, an encrypted payload]", target, resp.StatusCode)
	data := s.uiDecode(t, out.QueryResult.Payloads)[0]
	var st apiStatus
	if err := json.Unmarshal(data, &st); err != nil || st.Phase != wantPhase {
		t.Fatalf("the Web UI's status query answered %s (err %v), want phase %s", data, err, wantPhase)
	}
}

// uiDecode decodes payloads the way the Web UI does with its codec setting:
// a POST of {"payloads": […]} to the codec endpoint /api/v1/settings names,
// from the UI's origin, with the user's access token (here the admin's).
func (s *stack) uiDecode(t *testing.T, payloads []json.RawMessage) [][]byte {
	t.Helper()
	code, b := s.httpGet(t, s.uiURL+"/api/v1/settings")
	var settings struct {
		Codec struct {
			Endpoint        string
			PassAccessToken bool
		}
	}
	if code != http.StatusOK || json.Unmarshal(b, &settings) != nil || settings.Codec.Endpoint != s.apiURL+"/codec" || !settings.Codec.PassAccessToken {
		t.Fatalf("the Web UI's codec settings: HTTP %d %s", code, b)
	}
	body, _ := json.Marshal(map[string]any{"payloads": payloads})
	req, err := http.NewRequest(http.MethodPost, settings.Codec.Endpoint+"/decode", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", namespace)
	req.Header.Set("Origin", s.uiURL)
	req.Header.Set("Authorization", "Bearer "+s.tokens["ADMIN"])
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s/decode: %v", settings.Codec.Endpoint, err)
	}
	defer resp.Body.Close()
	var out struct {
		Payloads []struct {
			Data []byte `json:"data"`
		} `json:"payloads"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.Payloads) != len(payloads) ||
		resp.Header.Get("Access-Control-Allow-Origin") != s.uiURL {
		t.Fatalf("POST %s/decode: HTTP %d %v", settings.Codec.Endpoint, resp.StatusCode, err)
	}
	s.commandsRun++
	data := make([][]byte, len(out.Payloads))
	for i, p := range out.Payloads {
		data[i] = p.Data
	}
	t.Logf("$ curl -s -X POST %s/decode -H \"Authorization: Bearer $ADMIN_TOKEN\" (the Web UI's codec call)\n  [HTTP %d]\n%s",
		settings.Codec.Endpoint, resp.StatusCode, indent(string(data[0])))
	return data
}
