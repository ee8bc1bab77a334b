package gitlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"remediator/internal/forge/forgetest"
	"remediator/internal/gitlab/gitlabtest"
)

// httpError is activities.HTTPError, restated so this package's tests do
// not import the layer above it.
type httpError interface {
	error
	HTTPStatus() int
	RetryAfterDelay() time.Duration
}

var _ httpError = (*APIError)(nil)

func wantStatus(t *testing.T, err error, status int) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want *APIError %d, got %T %v", status, err, err)
	}
	if ae.Status != status {
		t.Fatalf("want status %d, got %d (%v)", status, ae.Status, err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Fatalf("token leaked into error: %v", err)
	}
	return ae
}

func ptrFile(content string, exec bool) *fakeFile {
	return &fakeFile{Content: []byte(content), Exec: exec}
}

// seedRepo gives the fake a default branch, a tag and a feature branch.
func seedRepo(f *gitlabtest.Server) (base string) {
	base = f.SeedCommit("", "initial", map[string]*fakeFile{
		"README.md":        ptrFile("hello\n", false),
		"app/config.yaml":  ptrFile("retries: 1\n", false),
		"scripts/build.sh": ptrFile("#!/bin/sh\nmake\n", true),
		"old.txt":          ptrFile("obsolete\n", false),
	})
	f.Branches["main"] = base
	f.Tags["v1.0"] = base
	feature := f.SeedCommit(base, "feature work", map[string]*fakeFile{"README.md": ptrFile("hello feature\n", false)})
	f.Branches["feature/x"] = feature
	return base
}

func TestNewValidates(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no token":    {URL: "https://gitlab.example.com", HTTPClient: http.DefaultClient},
		"no client":   {URL: "https://gitlab.example.com", Token: testToken},
		"credentials": {URL: "https://user:" + testToken + "@gitlab.example.com", Token: testToken, HTTPClient: http.DefaultClient},
		"scheme":      {URL: "ftp://gitlab.example.com", Token: testToken, HTTPClient: http.DefaultClient},
		"query":       {URL: "https://gitlab.example.com/?x=1", Token: testToken, HTTPClient: http.DefaultClient},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(cfg)
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("token leaked: %v", err)
			}
		})
	}
	if _, err := New(Config{Token: testToken, HTTPClient: http.DefaultClient}); err != nil {
		t.Fatalf("empty URL should default to gitlab.com: %v", err)
	}
}

func TestResolve(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	c := fakeClient(t, f)
	ctx := context.Background()

	tests := []struct {
		ref      string
		sha      string
		isBranch bool
	}{
		{"", base, true},
		{"main", base, true},
		{"feature/x", f.Branches["feature/x"], true},
		{"v1.0", base, false},
		{base, base, false},
	}
	for _, tt := range tests {
		t.Run("ref="+tt.ref, func(t *testing.T) {
			sha, def, isBranch, err := c.Resolve(ctx, testProject, tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if sha != tt.sha || def != "main" || isBranch != tt.isBranch {
				t.Fatalf("got (%s, %s, %v), want (%s, main, %v)", sha, def, isBranch, tt.sha, tt.isBranch)
			}
		})
	}
	if !f.SawRequest("GET /api/v4/projects/group%2Fsub%2Fproject/repository/branches/feature%2Fx") {
		t.Errorf("project and branch must travel URL-encoded as single segments; saw %v", f.Requests)
	}

	_, _, _, err := c.Resolve(ctx, testProject, "nope")
	wantStatus(t, err, http.StatusNotFound)
	_, _, _, err = c.Resolve(ctx, "group/missing", "")
	wantStatus(t, err, http.StatusNotFound)
}

func TestArchive(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	f.Archive = bytes.Repeat([]byte("0123456789"), 1000) // 10 000 bytes
	c := fakeClient(t, f)
	ctx := context.Background()

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			f.Chunked = chunked

			rc, err := c.Archive(ctx, testProject, base, int64(len(f.Archive)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			_ = rc.Close()
			if err != nil || !bytes.Equal(got, f.Archive) {
				t.Fatalf("exactly the limit must pass: %d bytes, %v", len(got), err)
			}

			rc, err = c.Archive(ctx, testProject, base, 4096)
			if chunked {
				// No Content-Length: the read that crosses the limit fails.
				if err != nil {
					t.Fatal(err)
				}
				got, err = io.ReadAll(rc)
				_ = rc.Close()
				if len(got) > 4096 {
					t.Fatalf("read %d bytes past a 4096 limit", len(got))
				}
			}
			wantStatus(t, err, http.StatusRequestEntityTooLarge)
		})
	}
	if !f.SawRequest("GET /api/v4/projects/group%2Fsub%2Fproject/repository/archive.tar.gz?sha=" + base) {
		t.Errorf("archive request: %v", f.Requests)
	}

	_, err := c.Archive(ctx, testProject, strings.Repeat("f", 40), 1<<20)
	wantStatus(t, err, http.StatusNotFound)
}

func TestFailedJobs(t *testing.T) {
	f := newFake(t)
	f.PerPage = 2 // force three pages
	var long strings.Builder
	for i := range 500 {
		fmt.Fprintf(&long, "line %03d: compiling\n", i)
	}
	long.WriteString("ERROR: tests failed\n")
	f.Jobs[7] = []fakeJob{
		{ID: 101, Name: "build", Stage: "build", Status: "success"},
		{ID: 102, Name: "lint", Stage: "test", Status: "failed"},
		{ID: 103, Name: "flaky", Stage: "test", Status: "failed", AllowFailure: true},
		{ID: 104, Name: "unit", Stage: "test", Status: "failed"},
		{ID: 105, Name: "deploy", Stage: "deploy", Status: "skipped"},
		{ID: 106, Name: "erased", Stage: "test", Status: "failed"},
		{ID: 107, Name: "e2e", Stage: "test", Status: "failed"},
	}
	f.Traces[102] = "short\nlog\n"
	f.Traces[103] = "allowed to fail\n"
	f.Traces[104] = long.String()
	f.Traces[107] = "boom\n"
	c := fakeClient(t, f)

	const maxLog = 200
	jobs, err := c.FailedJobs(context.Background(), testProject, 7, maxLog)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	if got := strings.Join(names, ","); got != "lint,unit,erased,e2e" {
		t.Fatalf("jobs = %s, want lint,unit,erased,e2e (failed, not allow_failure, oldest first)", got)
	}
	if jobs[0].Log != "short\nlog\n" || jobs[0].Stage != "test" || jobs[0].ID != 102 {
		t.Errorf("short trace must come whole: %+v", jobs[0])
	}
	tail := jobs[1].Log
	if len(tail) > maxLog || !strings.HasSuffix(tail, "ERROR: tests failed\n") || !strings.HasPrefix(tail, "line ") {
		t.Errorf("tail must be ≤ %d bytes, end with the error and start on a line: %q", maxLog, tail)
	}
	if jobs[2].Log != "" {
		t.Errorf("a missing trace is an empty log, got %q", jobs[2].Log)
	}
	for _, page := range []string{"page=2", "page=3"} {
		found := false
		for _, r := range f.Requests {
			if strings.Contains(r, "/pipelines/7/jobs?") && strings.Contains(r, page) && strings.Contains(r, "scope%5B%5D=failed") {
				found = true
			}
		}
		if !found {
			t.Errorf("no request for %s with scope[]=failed: %v", page, f.Requests)
		}
	}

	_, err = c.FailedJobs(context.Background(), testProject, 8, maxLog)
	wantStatus(t, err, http.StatusNotFound)
}

func TestTailCutsOnLineBoundary(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"abc\ndef\n", 100, "abc\ndef\n"},
		{"abc\ndef\n", 8, "abc\ndef\n"},
		{"abc\ndef\n", 4, "def\n"}, // window starts exactly on a line
		{"abc\ndef\n", 5, "def\n"}, // partial first line dropped
		{"abcdefgh", 3, "fgh"},     // one long line: keep its end
		{"aé\nxé", 3, "xé"},        // multi-byte runes survive
		{"xxxxxé", 1, ""},          // never half a rune
		{strings.Repeat("a\n", 10000), 5, "a\na\n"},
	}
	for _, tt := range tests {
		tl := &tail{keep: tt.max + 1}
		for _, b := range []byte(tt.in) { // byte-at-a-time exercises the buffer trimming
			_, _ = tl.Write([]byte{b})
		}
		if got := tl.lines(tt.max); got != tt.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

const marker = "Remediation-Id: rem-1"

func changeRequest(base string) ChangeRequest {
	return ChangeRequest{
		Project: testProject,
		Branch:  "autofix/rem-1",
		BaseSHA: base,
		Files: []FileChange{
			{Path: "app/config.yaml", Content: []byte("retries: 3\n"), Mode: "100644"},
			{Path: "scripts/fix.sh", Content: []byte("#!/bin/sh\nexit 0\n"), Mode: "100755"},
			{Path: "scripts/build.sh", Content: []byte("#!/bin/sh\nmake\n"), Mode: "100644"}, // drop +x
			{Path: "old.txt", Delete: true},
		},
		Message:   "fix: raise retries\n\nBecause the job timed out.\n\n" + marker + "\n",
		Marker:    marker,
		Author:    Signature{Name: "Remediator", Email: "remediator@example.com"},
		Title:     "Raise retries",
		Body:      "Automated fix for pipeline 7.",
		Labels:    []string{"autofix", "bot"},
		Reviewers: []string{"alice", "@bob", "ghost"},
	}
}

// seedUsers: alice can review, bob exists but cannot, ghost does not exist.
func seedUsers(f *gitlabtest.Server) {
	f.Users["alice"] = 11
	f.Users["bob"] = 12
	f.Members[11] = true
}

// ourChange is the file state changeRequest produces, for seeding a commit
// as a crashed earlier run would have left it.
func ourChange() map[string]*fakeFile {
	return map[string]*fakeFile{
		"app/config.yaml":  ptrFile("retries: 3\n", false),
		"scripts/fix.sh":   ptrFile("#!/bin/sh\nexit 0\n", true),
		"scripts/build.sh": ptrFile("#!/bin/sh\nmake\n", false),
		"old.txt":          nil,
	}
}

// assertOneOfEach is the idempotence contract: one branch with one commit of
// ours on the base, holding the requested files, and one open MR.
func assertOneOfEach(t *testing.T, f *gitlabtest.Server, base string, mr MergeRequest) {
	t.Helper()
	head := f.Head("autofix/rem-1")
	if head == nil {
		t.Fatal("branch missing")
	}
	if len(head.Parents) != 1 || head.Parents[0] != base {
		t.Fatalf("head %s must sit directly on base %s, parents %v", head.ID, base, head.Parents)
	}
	if !strings.Contains(head.Message, marker) {
		t.Fatalf("head is not ours: %q", head.Message)
	}
	want := map[string]fakeFile{
		"README.md":        {Content: []byte("hello\n")},
		"app/config.yaml":  {Content: []byte("retries: 3\n")},
		"scripts/fix.sh":   {Content: []byte("#!/bin/sh\nexit 0\n"), Exec: true},
		"scripts/build.sh": {Content: []byte("#!/bin/sh\nmake\n")},
	}
	if len(head.Files) != len(want) {
		t.Fatalf("tree = %v", head.Files)
	}
	for p, w := range want {
		if g := head.Files[p]; !bytes.Equal(g.Content, w.Content) || g.Exec != w.Exec {
			t.Errorf("%s = %q exec=%v, want %q exec=%v", p, g.Content, g.Exec, w.Content, w.Exec)
		}
	}
	if mr.HeadSHA != head.ID || mr.Branch != "autofix/rem-1" || mr.BaseBranch != "main" {
		t.Errorf("result %+v, head %s", mr, head.ID)
	}
	open := f.OpenMRs()
	if len(open) != 1 || int(open[0].IID) != mr.IID {
		t.Fatalf("want exactly one open MR (IID %d), got %d", mr.IID, len(open))
	}
	if want := fmt.Sprintf("%s/%s/-/merge_requests/%d", f.URL(), testProject, mr.IID); mr.URL != want {
		t.Errorf("URL = %s, want %s", mr.URL, want)
	}
}

func TestOpenChangeFresh(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	seedUsers(f)
	// A fork's MR from a branch with the same name is not ours.
	f.SeedMR(fakeMR{SourceProjectID: 999, SourceBranch: "autofix/rem-1", TargetBranch: "main", Title: "fork"})
	c := fakeClient(t, f)

	mr, err := c.OpenChange(context.Background(), changeRequest(base))
	if err != nil {
		t.Fatal(err)
	}
	assertOneOfEach(t, f, base, mr)
	if !mr.Created {
		t.Error("Created = false on a fresh run")
	}
	if got := strings.Join(mr.UnrequestedReviewers, ","); got != "bob,ghost" {
		t.Errorf("UnrequestedReviewers = %q, want bob,ghost", got)
	}
	open := f.OpenMRs()[0]
	if open.Title != "Draft: Raise retries" || open.Description != "Automated fix for pipeline 7." {
		t.Errorf("MR text = %q / %q", open.Title, open.Description)
	}
	if strings.Join(open.Labels, ",") != "autofix,bot" || len(open.Reviewers) != 1 || open.Reviewers[0] != 11 {
		t.Errorf("labels %v reviewers %v", open.Labels, open.Reviewers)
	}
	if open.TargetBranch != "main" {
		t.Errorf("target = %s, want the project's default branch", open.TargetBranch)
	}
	head := f.Head("autofix/rem-1")
	if head.AuthorName != "Remediator" || head.AuthorEmail != "remediator@example.com" {
		t.Errorf("author = %s <%s>", head.AuthorName, head.AuthorEmail)
	}
	if f.CommitCreates != 1 || f.MRCreates != 1 || f.BranchDeletes != 0 {
		t.Errorf("creates: commits %d MRs %d deletes %d", f.CommitCreates, f.MRCreates, f.BranchDeletes)
	}
}

func TestOpenChangeExplicitBaseBranch(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	f.Branches["release"] = base
	c := fakeClient(t, f)
	req := changeRequest(base)
	req.BaseBranch = "release"
	mr, err := c.OpenChange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if mr.BaseBranch != "release" || f.OpenMRs()[0].TargetBranch != "release" {
		t.Errorf("base = %s", mr.BaseBranch)
	}
}

// TestOpenChangeRerunAfterCrash pre-seeds the fake with what a run killed at
// each step leaves behind and re-runs: the result is one branch, one commit
// and one merge request, with nothing recreated.
func TestOpenChangeRerunAfterCrash(t *testing.T) {
	type seeded struct{ commit, mr bool }
	for name, s := range map[string]seeded{
		"nothing yet":             {},
		"after commit, before MR": {commit: true},
		"after MR":                {commit: true, mr: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			base := seedRepo(f)
			seedUsers(f)
			req := changeRequest(base)
			var seededHead string
			if s.commit {
				seededHead = f.SeedCommit(base, req.Message, ourChange())
				f.Branches[req.Branch] = seededHead
			}
			if s.mr {
				f.SeedMR(fakeMR{SourceBranch: req.Branch, TargetBranch: "main", Title: "Draft: " + req.Title,
					Description: req.Body, Labels: req.Labels, Reviewers: []int64{11}})
			}
			c := fakeClient(t, f)

			for run := range 3 {
				mr, err := c.OpenChange(context.Background(), req)
				if err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
				assertOneOfEach(t, f, base, mr)
				if s.commit && mr.HeadSHA != seededHead {
					t.Fatalf("run %d: existing commit %s not reused, got %s", run, seededHead, mr.HeadSHA)
				}
				wantCreated := run == 0 && !s.mr
				if mr.Created != wantCreated {
					t.Errorf("run %d: Created = %v, want %v", run, mr.Created, wantCreated)
				}
				if got := strings.Join(mr.UnrequestedReviewers, ","); got != "bob,ghost" {
					t.Errorf("run %d: UnrequestedReviewers = %q", run, got)
				}
			}
			wantCommits := 1
			if s.commit {
				wantCommits = 0
			}
			if f.CommitCreates != wantCommits || f.BranchDeletes != 0 || f.MRUpdates != 0 {
				t.Errorf("commit creates %d (want %d), deletes %d, MR updates %d",
					f.CommitCreates, wantCommits, f.BranchDeletes, f.MRUpdates)
			}
		})
	}
}

func TestOpenChangeRefreshesExistingMR(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	req := changeRequest(base)
	head := f.SeedCommit(base, req.Message, ourChange())
	f.Branches[req.Branch] = head
	// A human marked it ready: it must stay ready.
	f.SeedMR(fakeMR{SourceBranch: req.Branch, TargetBranch: "main", Title: "old title", Description: "old"})
	c := fakeClient(t, f)

	mr, err := c.OpenChange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	open := f.OpenMRs()
	if mr.Created || len(open) != 1 || f.MRCreates != 0 || f.MRUpdates != 1 {
		t.Fatalf("created %v, open %d, creates %d, updates %d", mr.Created, len(open), f.MRCreates, f.MRUpdates)
	}
	if open[0].Title != "Raise retries" || open[0].Description != req.Body {
		t.Errorf("MR = %q / %q", open[0].Title, open[0].Description)
	}
}

func TestOpenChangeForeignBranchIsConflict(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	req := changeRequest(base)
	// Same files, same parent, but no marker: someone else's work.
	theirs := f.SeedCommit(base, "wip: my own attempt\n", ourChange())
	f.Branches[req.Branch] = theirs
	c := fakeClient(t, f)
	f.ResetCounters()

	_, err := c.OpenChange(context.Background(), req)
	wantStatus(t, err, http.StatusConflict)
	if f.Branches[req.Branch] != theirs || f.CommitCreates != 0 || f.BranchDeletes != 0 || f.MRCreates != 0 || f.MRUpdates != 0 {
		t.Fatalf("foreign branch touched: head %s, creates %d, deletes %d, MRs %d/%d",
			f.Branches[req.Branch], f.CommitCreates, f.BranchDeletes, f.MRCreates, f.MRUpdates)
	}
	for _, r := range f.Requests {
		if !strings.HasPrefix(r, "GET ") {
			t.Errorf("only reads allowed on a foreign branch, saw %s", r)
		}
	}
}

func TestOpenChangeRecreatesOurStaleCommit(t *testing.T) {
	stale := map[string]func(f *gitlabtest.Server, base string, req ChangeRequest) string{
		"different content": func(f *gitlabtest.Server, base string, req ChangeRequest) string {
			ch := ourChange()
			ch["app/config.yaml"] = ptrFile("retries: 2\n", false)
			return f.SeedCommit(base, req.Message, ch)
		},
		"different mode": func(f *gitlabtest.Server, base string, req ChangeRequest) string {
			ch := ourChange()
			ch["scripts/fix.sh"] = ptrFile("#!/bin/sh\nexit 0\n", false)
			return f.SeedCommit(base, req.Message, ch)
		},
		"extra file": func(f *gitlabtest.Server, base string, req ChangeRequest) string {
			ch := ourChange()
			ch["README.md"] = ptrFile("touched\n", false)
			return f.SeedCommit(base, req.Message, ch)
		},
		"file not deleted": func(f *gitlabtest.Server, base string, req ChangeRequest) string {
			ch := ourChange()
			delete(ch, "old.txt")
			return f.SeedCommit(base, req.Message, ch)
		},
		"older base": func(f *gitlabtest.Server, base string, req ChangeRequest) string {
			parent := f.SeedCommit("", "older root", map[string]*fakeFile{
				"app/config.yaml": ptrFile("retries: 1\n", false), "old.txt": ptrFile("x\n", false),
				"scripts/build.sh": ptrFile("#!/bin/sh\nmake\n", true),
			})
			return f.SeedCommit(parent, req.Message, ourChange())
		},
	}
	for name, seed := range stale {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			base := seedRepo(f)
			seedUsers(f)
			req := changeRequest(base)
			old := seed(f, base, req)
			f.Branches[req.Branch] = old
			existing := f.SeedMR(fakeMR{SourceBranch: req.Branch, TargetBranch: "main", Title: "Draft: " + req.Title, Description: req.Body})
			c := fakeClient(t, f)

			mr, err := c.OpenChange(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			assertOneOfEach(t, f, base, mr)
			if mr.HeadSHA == old || f.BranchDeletes != 1 || f.CommitCreates != 1 {
				t.Errorf("stale commit not recreated: head %s (old %s), deletes %d, creates %d",
					mr.HeadSHA, old, f.BranchDeletes, f.CommitCreates)
			}
			if mr.Created || int64(mr.IID) != existing.IID || f.MRCreates != 0 {
				t.Errorf("existing MR must be kept: %+v", mr)
			}
		})
	}
}

func TestOpenChangeBranchRace(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	req := changeRequest(base)
	var winner string
	// A concurrent run creates the same commit between our read and write.
	f.BeforeCreateCommit = func() {
		winner = f.AddCommit(base, req.Message, "", "", ourChange())
		f.Branches[req.Branch] = winner
	}
	c := fakeClient(t, f)

	mr, err := c.OpenChange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertOneOfEach(t, f, base, mr)
	if mr.HeadSHA != winner || f.CommitCreates != 0 || f.BranchDeletes != 0 {
		t.Errorf("winner's commit %s must be reused: got %s, creates %d, deletes %d", winner, mr.HeadSHA, f.CommitCreates, f.BranchDeletes)
	}
}

func TestOpenChangeMergeRequestRace(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	seedUsers(f)
	req := changeRequest(base)
	var winner *fakeMR
	f.BeforeCreateMR = func() {
		winner = f.AddMR(fakeMR{SourceBranch: req.Branch, TargetBranch: "main", Title: "Draft: " + req.Title,
			Description: req.Body, Reviewers: []int64{11}})
	}
	c := fakeClient(t, f)

	mr, err := c.OpenChange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertOneOfEach(t, f, base, mr)
	if mr.Created || int64(mr.IID) != winner.IID || f.MRCreates != 0 {
		t.Errorf("want the winner's MR !%d with Created=false, got %+v (creates %d)", winner.IID, mr, f.MRCreates)
	}
	if got := strings.Join(mr.UnrequestedReviewers, ","); got != "bob,ghost" {
		t.Errorf("UnrequestedReviewers = %q", got)
	}
}

func TestOpenChangeRejectsBadRequests(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	c := fakeClient(t, f)
	for name, mutate := range map[string]func(*ChangeRequest){
		"no marker in message": func(r *ChangeRequest) { r.Message = "fix\n" },
		"marker inside a line": func(r *ChangeRequest) { r.Message = "see " + marker + " elsewhere\n" },
		"no files":             func(r *ChangeRequest) { r.Files = nil },
		"bad mode":             func(r *ChangeRequest) { r.Files[0].Mode = "120000" },
		"duplicate path":       func(r *ChangeRequest) { r.Files[1].Path = r.Files[0].Path },
		"branch is base":       func(r *ChangeRequest) { r.Branch = "main" },
		"no base sha":          func(r *ChangeRequest) { r.BaseSHA = "" },
	} {
		t.Run(name, func(t *testing.T) {
			req := changeRequest(base)
			mutate(&req)
			f.ResetCounters()
			_, err := c.OpenChange(context.Background(), req)
			wantStatus(t, err, http.StatusBadRequest)
			if f.CommitCreates != 0 || f.MRCreates != 0 {
				t.Error("nothing may be written for a bad request")
			}
		})
	}
}

// TestErrorMapping drives every failure class through the real client
// stack. The server echoes the token back to prove it is redacted.
func TestErrorMapping(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		retry  time.Duration
	}{
		{"401", 401, nil, `{"message":"401 Unauthorized"}`, 0},
		{"403", 403, nil, `{"message":"403 Forbidden - token ` + testToken + ` lacks api scope"}`, 0},
		{"404", 404, nil, `{"message":"404 Project Not Found"}`, 0},
		{"429 Retry-After", 429, map[string]string{"Retry-After": "17"}, `{"message":"Retry later"}`, 17 * time.Second},
		{"429 RateLimit-Reset", 429, map[string]string{"RateLimit-Reset": strconv.FormatInt(now.Unix()+42, 10)}, "Retry later\n", 42 * time.Second},
		{"429 both prefers Retry-After", 429, map[string]string{"Retry-After": "5", "RateLimit-Reset": strconv.FormatInt(now.Unix()+42, 10)}, "", 5 * time.Second},
		{"500", 500, nil, `{"message":"500 Internal Server Error"}`, 0},
		{"502 html", 502, nil, "<html><body>" + strings.Repeat("Bad Gateway ", 200) + testToken + "</body></html>", 0},
		{"503 Retry-After", 503, map[string]string{"Retry-After": "3"}, "", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, err := New(Config{URL: srv.URL, Token: testToken, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			c.now = func() time.Time { return now }

			calls := map[string]func() error{
				"resolve": func() error { _, _, _, err := c.Resolve(context.Background(), testProject, ""); return err },
				"archive": func() error { _, err := c.Archive(context.Background(), testProject, "abc", 10); return err },
				"jobs":    func() error { _, err := c.FailedJobs(context.Background(), testProject, 1, 100); return err },
				"blob ids": func() error {
					_, err := c.BlobIDs(context.Background(), testProject, strings.Repeat("a", 40), []string{"README.md"})
					return err
				},
				"change": func() error {
					_, err := c.OpenChange(context.Background(), changeRequest(strings.Repeat("a", 40)))
					return err
				},
			}
			for name, call := range calls {
				hits.Store(0)
				err := call()
				ae := wantStatus(t, err, tt.status)
				if ae.RetryAfter != tt.retry {
					t.Errorf("%s: RetryAfter = %v, want %v", name, ae.RetryAfter, tt.retry)
				}
				if len(ae.Message) > maxMessage+100 {
					t.Errorf("%s: message not bounded: %d bytes", name, len(ae.Message))
				}
				if n := hits.Load(); n != 1 {
					t.Errorf("%s: %d requests: the client must not retry on its own", name, n)
				}
			}
		})
	}
}

func TestNetworkErrorIsRetryableAndClean(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Config{URL: url, Token: testToken, HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = c.Resolve(context.Background(), testProject, "")
	var he httpError
	if err == nil || errors.As(err, &he) {
		t.Fatalf("a transport failure must be a plain (retryable) error, got %T %v", err, err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Fatalf("token leaked: %v", err)
	}
	_, err = c.Archive(context.Background(), testProject, "abc", 10)
	if err == nil || errors.As(err, &he) || strings.Contains(err.Error(), testToken) {
		t.Fatalf("archive transport failure: %T %v", err, err)
	}
}

func TestContextCancellation(t *testing.T) {
	f := newFake(t)
	seedRepo(f)
	c := fakeClient(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, _, err := c.Resolve(ctx, testProject, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	_, err = c.Archive(ctx, testProject, strings.Repeat("a", 40), 10)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("archive: want context.Canceled, got %v", err)
	}
}

func TestContains(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	feature := f.Branches["feature/x"]
	next := f.SeedCommit(base, "next on main", map[string]*fakeFile{"README.md": ptrFile("hello again\n", false)})
	f.Branches["main"] = next
	// A merge request's head from a fork: reachable from its MR ref only.
	forked := f.SeedCommit(base, "from a fork", map[string]*fakeFile{"README.md": ptrFile("forked\n", false)})
	f.Refs["refs/merge-requests/7/head"] = forked
	orphan := f.SeedCommit("", "an orphan root", map[string]*fakeFile{"x": ptrFile("x\n", false)})
	f.Branches["orphan"] = orphan
	c := fakeClient(t, f)
	ctx := context.Background()

	for _, tc := range []struct {
		name, branch, sha string
		want              bool
	}{
		{"head", "main", next, true},
		{"ancestor", "main", base, true},
		{"upper-case sha", "main", strings.ToUpper(base), true},
		{"branch with a slash", "feature/x", base, true},
		{"descendant", "feature/x", next, false},
		{"diverged", "main", feature, false},
		{"merge request head only", "main", forked, false},
		{"no common ancestor", "main", orphan, false},
		{"unknown branch", "nope", base, false},
		{"unknown sha", "main", strings.Repeat("f", 40), false},
	} {
		got, err := c.Contains(ctx, testProject, tc.branch, tc.sha)
		if err != nil || got != tc.want {
			t.Errorf("%s: Contains(%q, %s) = %v, %v; want %v", tc.name, tc.branch, tc.sha, got, err, tc.want)
		}
	}
	if !f.SawRequest("GET /api/v4/projects/group%2Fsub%2Fproject/repository/merge_base?refs%5B%5D=main&refs%5B%5D=" + next) {
		t.Errorf("merge_base request: %v", f.Requests)
	}
	if got, err := c.Contains(ctx, "group/missing", "main", base); err != nil || got {
		t.Errorf("missing project: %v, %v", got, err)
	}

	f.ResetCounters()
	for _, tc := range [][2]string{{"a,b", base}, {"", base}, {"main", "main"}, {"main", base[:8]}, {"-x", base}} {
		_, err := c.Contains(ctx, testProject, tc[0], tc[1])
		wantStatus(t, err, http.StatusBadRequest)
	}
	if _, err := c.Contains(ctx, "", "main", base); err == nil {
		t.Error("no project")
	}
	if len(f.Requests) != 0 {
		t.Errorf("refused calls reached GitLab: %v", f.Requests)
	}
}

// 400 (unknown ref) and 404 (no merge base) are answers; anything else is
// an error.
func TestContainsErrors(t *testing.T) {
	for _, tc := range []struct {
		status  int
		body    string
		wantErr bool
	}{
		{400, `{"message":"Could not find ref: main"}`, false},
		{404, `{"message":"404 Merge Base Not Found"}`, false},
		{401, `{"message":"401 Unauthorized"}`, true},
		{429, `{"message":"Retry later"}`, true},
		{500, `{"message":"500 Internal Server Error"}`, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		c, err := New(Config{URL: srv.URL, Token: testToken, HTTPClient: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Contains(context.Background(), testProject, "main", strings.Repeat("a", 40))
		srv.Close()
		if got {
			t.Errorf("%d: contained", tc.status)
		}
		if tc.wantErr {
			wantStatus(t, err, tc.status)
		} else if err != nil {
			t.Errorf("%d: %v", tc.status, err)
		}
	}
}

func TestBlobIDs(t *testing.T) {
	f := newFake(t)
	base := seedRepo(f)
	sha := f.SeedCommit(base, "nested", map[string]*fakeFile{
		"app/nested/deep.txt": ptrFile("deep\n", false),
		"empty":               ptrFile("", false),
	})
	c := fakeClient(t, f)
	ctx := context.Background()

	f.ResetCounters()
	ids, err := c.BlobIDs(ctx, testProject, strings.ToUpper(sha), []string{"README.md", "app/config.yaml", "scripts/build.sh",
		"app/nested/deep.txt", "empty", "missing.txt", "app/missing.yaml", "README.md/x", "README.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"README.md":           forgetest.BlobID("hello\n"),
		"app/config.yaml":     forgetest.BlobID("retries: 1\n"),
		"scripts/build.sh":    forgetest.BlobID("#!/bin/sh\nmake\n"),
		"app/nested/deep.txt": forgetest.BlobID("deep\n"),
		"empty":               forgetest.BlobID(""),
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("BlobIDs = %v, want %v", ids, want)
	}
	if !f.SawRequest("HEAD /api/v4/projects/group%2Fsub%2Fproject/repository/files/app%2Fconfig%2Eyaml?ref=" + sha) {
		t.Errorf("no metadata HEAD for app/config.yaml: %v", f.Requests)
	}
	var heads, trees, gets int
	for _, r := range f.Requests {
		switch {
		case strings.HasPrefix(r, "HEAD "):
			heads++
		case strings.Contains(r, "/repository/tree?"):
			trees++
		case strings.HasPrefix(r, "GET "):
			gets++
		}
	}
	// The commit once; one HEAD per distinct path; a tree probe per absent one.
	if gets != 1 || heads != 8 || trees != 3 {
		t.Errorf("%d GETs, %d HEADs, %d tree probes; want 1, 8, 3: %v", gets, heads, trees, f.Requests)
	}
	// At an older commit a path may hold other content, or nothing.
	ids, err = c.BlobIDs(ctx, testProject, f.Branches["feature/x"], []string{"README.md", "app/nested/deep.txt"})
	if err != nil || len(ids) != 1 || ids["README.md"] != forgetest.BlobID("hello feature\n") {
		t.Errorf("at feature/x: %v, %v", ids, err)
	}

	for _, p := range []string{"app", "app/nested", "scripts"} {
		_, err := c.BlobIDs(ctx, testProject, sha, []string{"README.md", p})
		wantStatus(t, err, http.StatusConflict)
		if !strings.Contains(err.Error(), "directory") {
			t.Errorf("%s: %v", p, err)
		}
	}

	f.ResetCounters()
	_, err = c.BlobIDs(ctx, testProject, strings.Repeat("1", 40), []string{"README.md"})
	wantStatus(t, err, http.StatusNotFound)
	if len(f.Requests) != 1 {
		t.Errorf("an unknown commit must stop before the files: %v", f.Requests)
	}

	f.ResetCounters()
	if ids, err := c.BlobIDs(ctx, testProject, sha, nil); err != nil || ids == nil || len(ids) != 0 {
		t.Errorf("no paths: %v, %v", ids, err)
	}
	many := make([]string, maxBlobPaths+1)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i)
	}
	for name, ps := range map[string][]string{
		"too many": many, "empty": {""}, "absolute": {"/etc/passwd"}, "dot-dot": {"../x"}, "inner dot-dot": {"a/../b"},
		"dot": {"."}, "double slash": {"a//b"}, "trailing slash": {"app/"}, "NUL": {"a\x00b"},
	} {
		var ae *APIError
		if _, err := c.BlobIDs(ctx, testProject, sha, ps); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want a 400", name, err)
		}
	}
	for _, bad := range []string{"main", sha[:8]} {
		_, err := c.BlobIDs(ctx, testProject, bad, []string{"README.md"})
		wantStatus(t, err, http.StatusBadRequest)
	}
	if len(f.Requests) != 0 {
		t.Errorf("refused calls reached GitLab: %v", f.Requests)
	}

	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.BlobIDs(ctxDone, testProject, sha, []string{"README.md"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := c.Contains(ctxDone, testProject, "main", sha); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Contains: %v", err)
	}
}

// A submodule answers the files API as an empty file whose id is its
// commit's: not a blob. A truly empty file has git's empty blob id.
func TestBlobIDsSubmodule(t *testing.T) {
	const submodule = "0123456789abcdef0123456789abcdef01234567"
	commit := strings.Repeat("c", 40)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"`+commit+`","parent_ids":[]}`)
			return
		}
		id := submodule
		if strings.Contains(r.URL.EscapedPath(), "empty") {
			id = forgetest.BlobID("")
		}
		w.Header().Set("X-Gitlab-Blob-Id", id)
		w.Header().Set("X-Gitlab-Size", "0")
		w.Header().Set("X-Gitlab-Commit-Id", commit)
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Token: testToken, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.BlobIDs(context.Background(), testProject, commit, []string{"empty"})
	if err != nil || ids["empty"] != forgetest.BlobID("") {
		t.Errorf("empty file: %v, %v", ids, err)
	}
	_, err = c.BlobIDs(context.Background(), testProject, commit, []string{"vendor/lib"})
	wantStatus(t, err, http.StatusConflict)
}
