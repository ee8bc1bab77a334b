//go:build !production

package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"remediator/internal/demo"
	"remediator/internal/devserver"
	"remediator/internal/github/githubtest"
	"remediator/internal/gitlab/gitlabtest"
	"remediator/workflows"
)

// These tests run the real stack against the fake forges of
// internal/github/githubtest and internal/gitlab/gitlabtest, configured
// the way an operator would (GITHUB_API_URL, GITLAB_URL, …): deliveries and
// hooks come in over HTTP, the worker fetches archives and CI logs from the
// fake through the SSRF-guarded client, and the change is opened there.

const (
	ghSecret       = "e2e-github-webhook-secret"
	ghToken        = "ghp_e2eFAKEtoken0123456789"
	ghOwner        = "octo"
	ghRepo         = "widgets"
	ghBranch       = "trunk" // the default branch is not "main"
	ghRunID        = 4242
	ghWorkflowID   = 17
	ghLintJob      = 901
	glToken        = "glpat-e2e-FAKE-token"
	glHookToken    = "e2e-gitlab-hook-token"
	glProject      = "team/widgets"
	glPipelineID   = 555
	glLintJob      = 7001
	ciEventPath    = "/api/ci/event"
	gofmtJobLogFmt = `2024-05-01T10:00:00.0000000Z ##[group]Run test -z "$(gofmt -l .)" || { gofmt -l .; exit 1; }
2024-05-01T10:00:01.0000000Z main.go
2024-05-01T10:00:01.1000000Z util.go
2024-05-01T10:00:01.2000000Z Error: the files above are not gofmt-formatted
2024-05-01T10:00:01.3000000Z ##[error]Process completed with exit code 1.
%s`
)

// demoFiles is the content of the demo repository (internal/demo): Go
// files that fail gofmt, and the rest.
func demoFiles(t *testing.T) map[string]string {
	t.Helper()
	d, err := demo.Ensure(context.Background(), filepath.Join(t.TempDir(), "demo"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, p := range strings.Split(strings.TrimRight(git(t, d.Path, "ls-files", "-z"), "\x00"), "\x00") {
		files[p] = git(t, d.Path, "show", d.SHA+":"+p)
	}
	if _, ok := files["main.go"]; !ok {
		t.Fatalf("the demo repository has no main.go: %v", files)
	}
	return files
}

// gofmted is what gofmt makes of src.
func gofmted(t *testing.T, src string) string {
	t.Helper()
	out, err := format.Source([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) == src {
		t.Fatal("the seeded file is gofmt-clean already: the test would prove nothing")
	}
	return string(out)
}

// assertFixedTree checks that tree is the seeded files with main.go and
// util.go as gofmt writes them, and nothing else changed.
func assertFixedTree(t *testing.T, tree, seeded map[string]string) {
	t.Helper()
	want := map[string]string{}
	for p, c := range seeded {
		want[p] = c
	}
	want["main.go"], want["util.go"] = gofmted(t, seeded["main.go"]), gofmted(t, seeded["util.go"])
	for p, c := range want {
		if got, ok := tree[p]; !ok || got != c {
			t.Errorf("%s on the change's head:\n%s\nwant:\n%s", p, got, c)
		}
	}
	for p := range tree {
		if _, ok := want[p]; !ok {
			t.Errorf("the change added %s", p)
		}
	}
}

// postRaw posts body as it is, with only the given headers.
func (s *stack) postRaw(path string, body []byte, hdr ...string) response {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.http.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return s.send(req, hdr...)
}

// deliver posts a GitHub delivery signed with ghSecret.
func (s *stack) deliver(event, delivery string, body []byte) response {
	s.t.Helper()
	mac := hmac.New(sha256.New, []byte(ghSecret))
	mac.Write(body)
	return s.postRaw("/webhooks/github", body, "X-GitHub-Event", event, "X-GitHub-Delivery", delivery,
		"X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
}

// workflowRun is a workflow_run delivery of a failed run. Nothing in its
// name or URL says gofmt: only the job log does.
func workflowRun(repo, branch, sha string, runID, attempt int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"action":     "completed",
		"repository": map[string]any{"full_name": repo, "default_branch": ghBranch},
		"workflow_run": map[string]any{
			"id": runID, "workflow_id": ghWorkflowID, "run_attempt": attempt, "name": "CI", "status": "completed",
			"conclusion": "failure", "head_branch": branch, "head_sha": sha,
			"html_url": fmt.Sprintf("https://github.example/%s/actions/runs/%d", repo, runID),
		},
	})
	return b
}

// githubFixture is a fake GitHub holding octo/widgets (demo content, default
// branch trunk) with a failed run whose lint job's log says gofmt failed.
type githubFixture struct {
	gh    *githubtest.Server
	sha   string
	files map[string]string
	env   []string
}

func newGitHubFixture(t *testing.T) githubFixture {
	t.Helper()
	gh := githubtest.New(t)
	gh.Token = ghToken
	files := demoFiles(t)
	sha := gh.SeedRepository(ghOwner, ghRepo, ghBranch, files)
	gh.SeedRun(ghOwner, ghRepo, ghRunID, 1, sha,
		githubtest.Job{ID: ghLintJob, Name: "lint", Conclusion: "failure",
			Steps: []githubtest.Step{{Name: "Set up job", Conclusion: "success"}, {Name: "Lint", Conclusion: "failure"}},
			Log:   fmt.Sprintf(gofmtJobLogFmt, "2024-05-01T10:00:02.0000000Z Cleaning up orphan processes\n")},
		githubtest.Job{ID: ghLintJob + 1, Name: "test", Conclusion: "success", Log: "ok\n"})
	return githubFixture{gh: gh, sha: sha, files: files, env: []string{
		"GITHUB_API_URL", gh.APIURL(), "GITHUB_TOKEN", ghToken, "GITHUB_WEBHOOK_SECRET", ghSecret,
	}}
}

// assertOnePR checks the fake holds exactly one pull request, the draft of
// remediation id: from autofix/<id> into the default branch, labelled
// autofix, whose head commit sits on the failing commit and holds the
// gofmt-fixed files.
func (g githubFixture) assertOnePR(t *testing.T, id string, st map[string]any) {
	t.Helper()
	pulls := g.gh.PullRequests(ghOwner, ghRepo)
	if len(pulls) != 1 {
		t.Fatalf("want exactly one pull request, got %d: %+v", len(pulls), pulls)
	}
	p := pulls[0]
	branch := "autofix/" + id
	if p.Head != branch || p.Base != ghBranch || !p.Draft || p.State != "open" || !slices.Equal(p.Labels, []string{"autofix"}) {
		t.Fatalf("pull request: %+v; want a draft from %s into %s labelled autofix", p, branch, ghBranch)
	}
	head := g.gh.Head(ghOwner, ghRepo, branch)
	c, ok := g.gh.CommitOf(ghOwner, ghRepo, head)
	if !ok || len(c.Parents) != 1 || c.Parents[0] != g.sha {
		t.Fatalf("head %s of %s: %+v; want one commit on the failing commit %s", head, branch, c, g.sha)
	}
	if !strings.Contains(c.Message, "Remediation-Id: "+id) {
		t.Errorf("the commit message lacks the remediation trailer:\n%s", c.Message)
	}
	assertFixedTree(t, g.gh.Files(ghOwner, ghRepo, head), g.files)
	pr, _ := st["pr"].(map[string]any)
	if pr == nil || pr["branch"] != branch || pr["head_sha"] != head || pr["base_branch"] != ghBranch ||
		!strings.HasSuffix(fmt.Sprint(pr["url"]), fmt.Sprintf("/%s/%s/pull/%d", ghOwner, ghRepo, p.Number)) {
		t.Errorf("the status's pr %v does not name the pull request %+v (head %s)", pr, p, head)
	}
}

// TestGitHubWorkflowRunToPullRequest: a signed workflow_run delivery of a
// failed run starts a remediation whose fix comes from the failed job's
// log (fetched from GitHub), is approved through the API and ends with
// exactly one draft pull request on GitHub. Redeliveries are duplicates, and
// so is a re-run attempt after the change was opened.
func TestGitHubWorkflowRunToPullRequest(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGitHubFixture(t)
	s := startStack(t, t.TempDir(), ports, g.env...)
	full := ghOwner + "/" + ghRepo

	const delivery = "a1b2c3d4-0000-1111-2222-333344445555"
	first := s.deliver("workflow_run", delivery, workflowRun(full, ghBranch, g.sha, ghRunID, 1))
	if first.code != http.StatusAccepted || first.body["status"] != "accepted" {
		t.Fatalf("delivery: %d %v", first.code, first.body)
	}
	id := first.body["workflow_id"].(string)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	fix := st["fix"].(map[string]any)
	if fix["recipe"] != "gofmt" || fix["validated"] != true || st["repo"] != full || st["requester"] != "webhook:github" {
		t.Fatalf("unexpected remediation: %v", st)
	}
	if files := fmt.Sprint(fix["files"]); !strings.Contains(files, "main.go") || !strings.Contains(files, "util.go") {
		t.Fatalf("fix files %s; want main.go and util.go", files)
	}
	// The summary and URL of the delivery say nothing of gofmt: the recipe
	// matched the job log, which the worker fetched from GitHub.
	if n := g.gh.Count("GET /repos/{owner}/{repo}/actions/jobs/{job}/logs"); n < 1 {
		t.Fatal("the worker never asked GitHub for the failed job's log")
	}
	if n := g.gh.Count("GET /repos/{owner}/{repo}/actions/runs/{run}/attempts/{attempt}/jobs"); n < 1 {
		t.Fatal("the worker never listed the jobs of the run's attempt")
	}
	if dl := strings.Join(g.gh.Downloads(), " "); !strings.Contains(dl, fmt.Sprintf("/logs/%d", ghLintJob)) || !strings.Contains(dl, "/codeload/") {
		t.Fatalf("downloads %q; want the lint job's log and the tarball", dl)
	}
	if n := g.gh.Count("GET /repos/{owner}/{repo}/actions/jobs/{job}/logs"); n != 1 {
		t.Errorf("%d log requests; only the failed job's log is fetched", n)
	}

	// A redelivery while it waits is the same remediation.
	again := s.deliver("workflow_run", delivery, workflowRun(full, ghBranch, g.sha, ghRunID, 1))
	if again.code != http.StatusAccepted || again.body["status"] != "duplicate" || again.body["workflow_id"] != id {
		t.Fatalf("redelivery while waiting: %d %v", again.code, again.body)
	}

	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st)); r.code != http.StatusOK {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)
	g.assertOnePR(t, id, done)

	// Redelivered after the end: still the same remediation, nothing new.
	after := s.deliver("workflow_run", delivery, workflowRun(full, ghBranch, g.sha, ghRunID, 1))
	if after.code != http.StatusAccepted || after.body["status"] != "duplicate" || after.body["workflow_id"] != id {
		t.Fatalf("redelivery after completion: %d %v", after.code, after.body)
	}
	if n := len(g.gh.PullRequests(ghOwner, ghRepo)); n != 1 {
		t.Fatalf("%d pull requests after a redelivery, want 1", n)
	}

	// A re-run of the workflow (attempt 2) failing again after the change
	// was opened attaches to the remediation: at most one change per
	// failure, ever, so no second run (and no second change) is started.
	s.waitClosed(id)
	rerun := s.deliver("workflow_run", "a1b2c3d4-0000-1111-2222-666677778888", workflowRun(full, ghBranch, g.sha, ghRunID, 2))
	if rerun.code != http.StatusAccepted || rerun.body["status"] != "duplicate" || rerun.body["workflow_id"] != id {
		t.Fatalf("attempt 2 after the change was opened: %d %v", rerun.code, rerun.body)
	}
	if n := s.countRunsAtLeast(id, 1); n != 1 {
		t.Errorf("want one run of %s, got %d", id, n)
	}
	if n := len(g.gh.PullRequests(ghOwner, ghRepo)); n != 1 {
		t.Errorf("%d pull requests after the re-run, want 1", n)
	}
}

// waitClosed waits until the current run of id has closed.
func (s *stack) waitClosed(id string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.dev.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		var canceled *temporal.CanceledError
		if !errors.As(err, &canceled) {
			s.t.Fatalf("waiting for %s to close: %v", id, err)
		}
	}
}

// countRunsAtLeast waits until visibility lists want runs of id (or 15 s
// pass) and returns how many it lists.
func (s *stack) countRunsAtLeast(id string, want int) int {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		runs, err := s.dev.Client.ListWorkflow(context.Background(), listReq(s, "WorkflowId = '"+id+"'"))
		if err != nil {
			s.t.Fatal(err)
		}
		if n := len(runs.GetExecutions()); n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGitHubRestartWhileAwaitingApproval: the stack stops while a
// remediation from a delivery waits for approval; a new stack on the same
// data dir and ports takes the vote and opens exactly one pull request.
func TestGitHubRestartWhileAwaitingApproval(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGitHubFixture(t)
	dir := t.TempDir()
	s := startStack(t, dir, ports, g.env...)
	full := ghOwner + "/" + ghRepo
	const delivery = "b1b2c3d4-0000-1111-2222-333344445555"
	res := s.deliver("workflow_run", delivery, workflowRun(full, ghBranch, g.sha, ghRunID, 1))
	if res.code != http.StatusAccepted || res.body["status"] != "accepted" {
		t.Fatalf("delivery: %d %v", res.code, res.body)
	}
	id := res.body["workflow_id"].(string)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.stop()
	if n := len(g.gh.PullRequests(ghOwner, ghRepo)); n != 0 {
		t.Fatalf("%d pull requests before the approval", n)
	}

	s2 := startStack(t, dir, ports, g.env...)
	if r := s2.deliver("workflow_run", delivery, workflowRun(full, ghBranch, g.sha, ghRunID, 1)); r.body["status"] != "duplicate" || r.body["workflow_id"] != id {
		t.Fatalf("redelivery after the restart: %d %v", r.code, r.body)
	}
	if r := s2.call("POST", "/api/remediations/"+id+"/approve", "bob", vote(st)); r.code != http.StatusOK {
		t.Fatalf("approve after the restart: %d %v", r.code, r.body)
	}
	done := s2.waitPhase(id, workflows.PhaseCompleted)
	g.assertOnePR(t, id, done)
}

// gitlabFixture is a fake GitLab whose project team/widgets (demo content,
// default branch main) had pipeline 555 fail in its lint job.
type gitlabFixture struct {
	gl    *gitlabtest.Server
	sha   string
	files map[string]string
	env   []string
}

func newGitLabFixture(t *testing.T) gitlabFixture {
	t.Helper()
	gl := gitlabtest.New(t)
	gl.Token = glToken
	files := demoFiles(t)
	sha := gl.SeedRepository(glProject, "main", files)
	gl.SeedPipeline(glPipelineID, []gitlabtest.Job{
		{ID: glLintJob - 1, Name: "build", Stage: "build", Status: "success"},
		{ID: glLintJob, Name: "lint", Stage: "test", Status: "failed"},
	}, map[int64]string{glLintJob: "$ gofmt -l .\nmain.go\nutil.go\nERROR: Job failed: exit code 1\n"})
	return gitlabFixture{gl: gl, sha: sha, files: files, env: []string{
		"GITLAB_URL", gl.URL(), "GITLAB_TOKEN", glToken, "GITLAB_WEBHOOK_TOKEN", glHookToken,
	}}
}

func pipelineHook(project, ref, sha, status string, id int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"object_kind": "pipeline",
		"object_attributes": map[string]any{
			"id": id, "iid": 12, "ref": ref, "tag": false, "sha": sha, "status": status,
			"detailed_status": status, "source": "push", "stages": []string{"build", "test"},
		},
		"project": map[string]any{"id": 42, "name": "widgets", "path_with_namespace": project, "default_branch": "main"},
		"builds":  []map[string]any{{"id": glLintJob, "stage": "test", "name": "lint", "status": status}},
	})
	return b
}

// TestGitLabPipelineHookToMergeRequest: a pipeline hook authenticated by
// its X-Gitlab-Token (no bearer) starts a remediation whose fix comes from
// the failed job's trace; once approved, exactly one draft merge request
// holds the fixed files. A wrong token is 401, and the GitLab token
// authenticates GitLab hooks only.
func TestGitLabPipelineHookToMergeRequest(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGitLabFixture(t)
	s := startStack(t, t.TempDir(), ports, g.env...)
	hook := pipelineHook(glProject, "main", g.sha, "failed", glPipelineID)

	if r := s.postRaw(ciEventPath, hook, "X-Gitlab-Event", "Pipeline Hook", "X-Gitlab-Token", "not-the-token"); r.code != http.StatusUnauthorized {
		t.Fatalf("a hook with a wrong token: want 401, got %d %v", r.code, r.body)
	}
	generic, _ := json.Marshal(map[string]string{"provider": "jenkins", "status": "failed", "project": "gitlab:" + glProject})
	if r := s.postRaw(ciEventPath, generic, "X-Gitlab-Token", glHookToken); r.code != http.StatusForbidden {
		t.Fatalf("the GitLab token on a non-GitLab body: want 403, got %d %v", r.code, r.body)
	}
	if r := s.postRaw(ciEventPath, pipelineHook(glProject, "main", g.sha, "success", glPipelineID+1), "X-Gitlab-Token", glHookToken); r.code != http.StatusAccepted || r.body["status"] != "ignored" {
		t.Fatalf("a successful pipeline: %d %v", r.code, r.body)
	}

	first := s.postRaw(ciEventPath, hook, "X-Gitlab-Event", "Pipeline Hook", "X-Gitlab-Token", glHookToken)
	if first.code != http.StatusAccepted || first.body["status"] != "accepted" {
		t.Fatalf("pipeline hook: %d %v", first.code, first.body)
	}
	id := first.body["workflow_id"].(string)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	fix := st["fix"].(map[string]any)
	if fix["recipe"] != "gofmt" || st["repo"] != "gitlab:"+glProject || st["requester"] != "webhook:gitlab" {
		t.Fatalf("unexpected remediation: %v", st)
	}
	trace := fmt.Sprintf("GET /api/v4/projects/%s/jobs/%d/trace", strings.ReplaceAll(glProject, "/", "%2F"), glLintJob)
	if !g.gl.SawRequest(trace) {
		t.Fatalf("the worker never fetched the failed job's trace (%s)", trace)
	}
	if !g.gl.SawRequest("GET /api/v4/projects/" + strings.ReplaceAll(glProject, "/", "%2F") + "/repository/archive.tar.gz?sha=" + g.sha) {
		t.Fatal("the worker never fetched the archive of the failing commit")
	}
	if again := s.postRaw(ciEventPath, hook, "X-Gitlab-Token", glHookToken); again.body["status"] != "duplicate" || again.body["workflow_id"] != id {
		t.Fatalf("the same hook again: %d %v", again.code, again.body)
	}

	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st)); r.code != http.StatusOK {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)
	mrs := g.gl.MergeRequests()
	if len(mrs) != 1 {
		t.Fatalf("want exactly one merge request, got %d: %+v", len(mrs), mrs)
	}
	mr := mrs[0]
	branch := "autofix/" + id
	if mr.SourceBranch != branch || mr.TargetBranch != "main" || mr.State != "opened" || !strings.HasPrefix(mr.Title, "Draft: ") ||
		!slices.Equal(mr.Labels, []string{"autofix"}) {
		t.Fatalf("merge request %+v; want a draft from %s into main labelled autofix", mr, branch)
	}
	head := g.gl.Head(branch)
	if head == nil || len(head.Parents) != 1 || head.Parents[0] != g.sha || !strings.Contains(head.Message, "Remediation-Id: "+id) {
		t.Fatalf("head of %s: %+v; want one commit of the remediation on %s", branch, head, g.sha)
	}
	assertFixedTree(t, g.gl.Files(head.ID), g.files)
	pr, _ := done["pr"].(map[string]any)
	if pr == nil || pr["branch"] != branch || !strings.HasSuffix(fmt.Sprint(pr["url"]), fmt.Sprintf("/%s/-/merge_requests/%d", glProject, mr.IID)) {
		t.Errorf("the status's pr %v does not name the merge request %+v", pr, mr)
	}
	if again := s.postRaw(ciEventPath, hook, "X-Gitlab-Token", glHookToken); again.body["status"] != "duplicate" || again.body["workflow_id"] != id {
		t.Fatalf("the same hook after completion: %d %v", again.code, again.body)
	}
	if n := len(g.gl.MergeRequests()); n != 1 {
		t.Fatalf("%d merge requests after a repeated hook, want 1", n)
	}
}

// alertmanager is an Alertmanager (version 4) webhook of one alert.
func alertmanager(status string, labels, annotations map[string]string, fingerprint string, startsAt, endsAt time.Time) map[string]any {
	a := map[string]any{
		"status": status, "labels": labels, "annotations": annotations, "fingerprint": fingerprint,
		"startsAt": startsAt.Format(time.RFC3339Nano), "endsAt": endsAt.Format(time.RFC3339Nano),
		"generatorURL": "http://prometheus.example/graph?g0.expr=gofmt_drift",
	}
	return map[string]any{
		"version": "4", "groupKey": "{}:{alertname=\"GofmtDrift\"}", "status": status, "receiver": "remediator",
		"groupLabels": map[string]string{"alertname": labels["alertname"]}, "commonLabels": labels,
		"commonAnnotations": annotations, "externalURL": "http://alertmanager.example", "alerts": []any{a},
	}
}

// TestAlertmanagerAlertStartsOneRemediation: a firing alert labelled with a
// forge repository starts a remediation (its summary matches the gofmt
// recipe); the alert firing again is the same remediation; its resolution
// is recorded on it; an alert naming no repository is refused.
func TestAlertmanagerAlertStartsOneRemediation(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGitLabFixture(t)
	s := startStack(t, t.TempDir(), ports, g.env...)
	const path = "/api/observability/alert"
	labels := map[string]string{"alertname": "GofmtDrift", "severity": "warning", "repository": "gitlab:" + glProject}
	annotations := map[string]string{"summary": "gofmt check failed", "description": "main.go and util.go are not gofmt-formatted"}
	startsAt := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	const fp = "0a1b2c3d4e5f6789"

	first := s.call("POST", path, "dev", alertmanager("firing", labels, annotations, fp, startsAt, time.Time{}))
	r0 := alertResult(t, first)
	if first.code != http.StatusAccepted || r0["status"] != "accepted" || r0["fingerprint"] != fp {
		t.Fatalf("firing alert: %d %v", first.code, first.body)
	}
	id := r0["workflow_id"].(string)
	again := s.call("POST", path, "dev", alertmanager("firing", labels, annotations, fp, startsAt, time.Time{}))
	if r := alertResult(t, again); again.code != http.StatusAccepted || r["status"] != "duplicate" || r["workflow_id"] != id {
		t.Fatalf("the same alert re-fired: %d %v", again.code, again.body)
	}
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if fix := st["fix"].(map[string]any); fix["recipe"] != "gofmt" || st["repo"] != "gitlab:"+glProject || st["requester"] != "dev" {
		t.Fatalf("unexpected remediation: %v", st)
	}

	endsAt := time.Now().UTC().Truncate(time.Second)
	resolved := s.call("POST", path, "dev", alertmanager("resolved", labels, annotations, fp, startsAt, endsAt))
	if r := alertResult(t, resolved); resolved.code != http.StatusAccepted || r["status"] != "recorded" || r["workflow_id"] != id {
		t.Fatalf("resolved alert: %d %v", resolved.code, resolved.body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = s.call("GET", "/api/remediations/"+id, "dev", nil).body
		if at, _ := st["alert_resolved_at"].(string); at != "" {
			if got, err := time.Parse(time.RFC3339Nano, at); err != nil || !got.Equal(endsAt) {
				t.Fatalf("alert_resolved_at %q, want %s", at, endsAt.Format(time.RFC3339))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resolution was never recorded: %v", st)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if st["phase"] != string(workflows.PhaseAwaitingApproval) {
		t.Fatalf("a resolved alert must not end the remediation: %v", st["phase"])
	}

	unlabelled := map[string]string{"alertname": "SomethingElse", "severity": "critical"}
	if r := s.call("POST", path, "dev", alertmanager("firing", unlabelled, annotations, "ffffeeeeddddcccc", startsAt, time.Time{})); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("an alert naming no repository: want 422, got %d %v", r.code, r.body)
	}
	if r := s.call("POST", "/api/remediations/"+id+"/cancel", "admin", nil); r.code != http.StatusAccepted {
		t.Fatalf("cancel: %d %v", r.code, r.body)
	}
	s.waitPhase(id, workflows.PhaseCancelled)
	if n := len(g.gl.MergeRequests()); n != 0 {
		t.Fatalf("%d merge requests from a cancelled remediation", n)
	}
}

// alertResult is the only result of an Alertmanager delivery of one alert.
func alertResult(t *testing.T, r response) map[string]any {
	t.Helper()
	results, _ := r.body["results"].([]any)
	if len(results) != 1 {
		t.Fatalf("want one result, got %d %v", r.code, r.body)
	}
	return results[0].(map[string]any)
}
