package gitlab

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGitLab speaks the subset of GitLab's REST v4 API the client uses, in
// GitLab's wire format: URL-encoded project and ref path segments,
// Private-Token authentication, offset pagination headers, JSON error
// bodies. State is kept so tests can crash and re-run against it.
type fakeGitLab struct {
	t     *testing.T
	mu    sync.Mutex
	srv   *httptest.Server
	token string

	project  fakeProject
	branches map[string]string // name → commit id
	tags     map[string]string
	commits  map[string]*fakeCommit
	mrs      []*fakeMR
	users    map[string]int64 // username → id
	members  map[int64]bool   // users that may be requested as reviewers
	jobs     map[int64][]fakeJob
	traces   map[int64]string
	archive  []byte
	chunked  bool // send the archive without Content-Length
	perPage  int  // server-side cap, to force pagination

	// Hooks run (once, under the lock) before a create, to play a
	// concurrent run of the same remediation winning the race.
	beforeCreateCommit func()
	beforeCreateMR     func()

	commitCreates, branchDeletes, mrCreates, mrUpdates int
	requests                                           []string
	seq                                                int
}

type fakeProject struct {
	ID            int64
	Path          string
	DefaultBranch string
}

type fakeFile struct {
	Content []byte
	Exec    bool
}

type fakeCommit struct {
	ID, Message, AuthorName, AuthorEmail string
	Parents                              []string
	Files                                map[string]fakeFile
	Changed                              []string
}

type fakeMR struct {
	IID                        int64
	SourceProjectID            int64
	SourceBranch, TargetBranch string
	Title, Description, State  string
	Labels                     []string
	Reviewers                  []int64
}

type fakeJob struct {
	ID                  int64
	Name, Stage, Status string
	AllowFailure        bool
}

const (
	testToken   = "glpat-S3CRET-t0ken-do-not-leak"
	testProject = "group/sub/project"
	projectID   = 42
)

func newFake(t *testing.T) *fakeGitLab {
	t.Helper()
	f := &fakeGitLab{
		t:        t,
		token:    testToken,
		project:  fakeProject{ID: projectID, Path: testProject, DefaultBranch: "main"},
		branches: map[string]string{},
		tags:     map[string]string{},
		commits:  map[string]*fakeCommit{},
		users:    map[string]int64{},
		members:  map[int64]bool{},
		jobs:     map[int64][]fakeJob{},
		traces:   map[int64]string{},
		perPage:  100,
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitLab) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Config{URL: f.srv.URL, Token: f.token, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seedCommit records a commit the way GitLab would have made it, for
// pre-seeding the state a crashed run (or someone else) left behind.
func (f *fakeGitLab) seedCommit(parent, message string, change map[string]*fakeFile) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commitLocked(parent, message, "", "", change)
}

// change maps path → new state; nil deletes.
func (f *fakeGitLab) commitLocked(parent, message, author, email string, change map[string]*fakeFile) string {
	files := map[string]fakeFile{}
	var parents []string
	if parent != "" {
		parents = []string{parent}
		for p, v := range f.commits[parent].Files {
			files[p] = v
		}
	}
	var changed []string
	for p, v := range change {
		changed = append(changed, p)
		if v == nil {
			delete(files, p)
		} else {
			files[p] = *v
		}
	}
	slices.Sort(changed)
	f.seq++
	sum := sha1.Sum([]byte(fmt.Sprintf("%d\x00%s\x00%s", f.seq, parent, message)))
	id := hex.EncodeToString(sum[:])
	f.commits[id] = &fakeCommit{ID: id, Message: message, AuthorName: author, AuthorEmail: email, Parents: parents, Files: files, Changed: changed}
	return id
}

func (f *fakeGitLab) seedMR(mr fakeMR) *fakeMR {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addMRLocked(mr)
}

func (f *fakeGitLab) addMRLocked(mr fakeMR) *fakeMR {
	mr.IID = int64(len(f.mrs) + 1)
	if mr.State == "" {
		mr.State = "opened"
	}
	if mr.SourceProjectID == 0 {
		mr.SourceProjectID = projectID
	}
	f.mrs = append(f.mrs, &mr)
	return &mr
}

func (f *fakeGitLab) openMRs() []*fakeMR {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeMR
	for _, mr := range f.mrs {
		if mr.State == "opened" && mr.SourceProjectID == projectID {
			out = append(out, mr)
		}
	}
	return out
}

func (f *fakeGitLab) head(branch string) *fakeCommit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commits[f.branches[branch]]
}

func (f *fakeGitLab) resetCounters() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commitCreates, f.branchDeletes, f.mrCreates, f.mrUpdates = 0, 0, 0, 0
	f.requests = nil
}

func (f *fakeGitLab) sawRequest(prefix string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, status int, msg any) {
	writeJSON(w, status, map[string]any{"message": msg})
}

func (f *fakeGitLab) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw := r.URL.EscapedPath()
	f.requests = append(f.requests, r.Method+" "+raw+"?"+r.URL.RawQuery)
	if r.Header.Get("Private-Token") != f.token {
		message(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	rest, ok := strings.CutPrefix(raw, "/api/v4/")
	if !ok {
		message(w, http.StatusNotFound, "404 Not Found")
		return
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		segs[i], _ = url.PathUnescape(s)
	}
	if segs[0] == "users" && len(segs) == 1 && r.Method == http.MethodGet {
		f.listUsers(w, r)
		return
	}
	if segs[0] != "projects" || len(segs) < 2 {
		message(w, http.StatusNotFound, "404 Not Found")
		return
	}
	// GitLab addresses a project by its URL-encoded full path: one segment.
	if segs[1] != f.project.Path && segs[1] != strconv.FormatInt(f.project.ID, 10) {
		message(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	route := strings.Join(segs[2:], "/")
	switch {
	case route == "" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{
			"id": f.project.ID, "path_with_namespace": f.project.Path, "default_branch": f.project.DefaultBranch,
			"web_url": f.srv.URL + "/" + f.project.Path, "visibility": "private",
		})
	case len(segs) == 5 && segs[2] == "repository" && segs[3] == "branches":
		f.branch(w, r, segs[4])
	case route == "repository/commits" && r.Method == http.MethodPost:
		f.createCommit(w, r)
	case len(segs) == 5 && segs[2] == "repository" && segs[3] == "commits" && r.Method == http.MethodGet:
		if c := f.resolve(segs[4]); c != nil {
			writeJSON(w, 200, f.commitJSON(c))
		} else {
			message(w, 404, "404 Commit Not Found")
		}
	case len(segs) == 6 && segs[2] == "repository" && segs[3] == "commits" && segs[5] == "diff":
		f.diff(w, r, segs[4])
	case len(segs) == 5 && segs[2] == "repository" && segs[3] == "files":
		f.fileMeta(w, r, segs[4])
	case route == "repository/archive.tar.gz" && r.Method == http.MethodGet:
		f.serveArchive(w, r)
	case len(segs) == 5 && segs[2] == "pipelines" && segs[4] == "jobs":
		f.listJobs(w, r, segs[3])
	case len(segs) == 5 && segs[2] == "jobs" && segs[4] == "trace":
		id, _ := strconv.ParseInt(segs[3], 10, 64)
		trace, ok := f.traces[id]
		if !ok {
			message(w, 404, "404 Not Found")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, trace)
	case route == "merge_requests" && r.Method == http.MethodGet:
		f.listMRs(w, r)
	case route == "merge_requests" && r.Method == http.MethodPost:
		f.createMR(w, r)
	case len(segs) == 4 && segs[2] == "merge_requests" && r.Method == http.MethodPut:
		f.updateMR(w, r, segs[3])
	default:
		message(w, 404, "404 Not Found")
	}
}

func (f *fakeGitLab) resolve(ref string) *fakeCommit {
	if c, ok := f.commits[ref]; ok {
		return c
	}
	if id, ok := f.branches[ref]; ok {
		return f.commits[id]
	}
	if id, ok := f.tags[ref]; ok {
		return f.commits[id]
	}
	return nil
}

func (f *fakeGitLab) commitJSON(c *fakeCommit) map[string]any {
	title, _, _ := strings.Cut(c.Message, "\n")
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339)
	parents := c.Parents
	if parents == nil {
		parents = []string{}
	}
	return map[string]any{
		"id": c.ID, "short_id": c.ID[:8], "title": title, "message": c.Message,
		"author_name": c.AuthorName, "author_email": c.AuthorEmail, "authored_date": now,
		"committer_name": "bot", "committer_email": "bot@example.com", "committed_date": now, "created_at": now,
		"parent_ids": parents, "web_url": f.srv.URL + "/" + f.project.Path + "/-/commit/" + c.ID,
	}
}

func (f *fakeGitLab) branch(w http.ResponseWriter, r *http.Request, name string) {
	id, ok := f.branches[name]
	if !ok {
		message(w, 404, "404 Branch Not Found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, 200, map[string]any{
			"name": name, "merged": false, "protected": false, "default": name == f.project.DefaultBranch,
			"developers_can_push": false, "developers_can_merge": false, "can_push": true,
			"web_url": f.srv.URL + "/" + f.project.Path + "/-/tree/" + name, "commit": f.commitJSON(f.commits[id]),
		})
	case http.MethodDelete:
		delete(f.branches, name)
		f.branchDeletes++
		w.WriteHeader(http.StatusNoContent)
	default:
		message(w, 405, "405 Method Not Allowed")
	}
}

type fakeCommitBody struct {
	Branch        string `json:"branch"`
	CommitMessage string `json:"commit_message"`
	StartSHA      string `json:"start_sha"`
	AuthorName    string `json:"author_name"`
	AuthorEmail   string `json:"author_email"`
	Actions       []struct {
		Action          string `json:"action"`
		FilePath        string `json:"file_path"`
		Content         string `json:"content"`
		Encoding        string `json:"encoding"`
		ExecuteFilemode *bool  `json:"execute_filemode"`
	} `json:"actions"`
}

// createCommit follows GitLab's rules: the branch must not exist when a
// start point is given, create needs an absent file, update/delete/chmod
// a present one, and execute_filemode counts only on create and chmod.
func (f *fakeGitLab) createCommit(w http.ResponseWriter, r *http.Request) {
	if hook := f.beforeCreateCommit; hook != nil {
		f.beforeCreateCommit = nil
		hook()
	}
	var body fakeCommitBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		message(w, 400, "400 Bad request - invalid JSON")
		return
	}
	if _, exists := f.branches[body.Branch]; exists {
		message(w, 400, fmt.Sprintf("A branch called '%s' already exists. Switch to that branch in order to make changes", body.Branch))
		return
	}
	start := f.commits[body.StartSHA]
	if start == nil {
		message(w, 400, "Invalid start SHA")
		return
	}
	files := map[string]fakeFile{}
	for p, v := range start.Files {
		files[p] = v
	}
	change := map[string]*fakeFile{}
	for _, a := range body.Actions {
		content := []byte(a.Content)
		if a.Encoding == "base64" {
			var err error
			if content, err = base64.StdEncoding.DecodeString(a.Content); err != nil {
				message(w, 400, "invalid base64")
				return
			}
		}
		cur, exists := files[a.FilePath]
		switch a.Action {
		case "create":
			if exists {
				message(w, 400, "A file with this name already exists")
				return
			}
			cur = fakeFile{Content: content, Exec: a.ExecuteFilemode != nil && *a.ExecuteFilemode}
		case "update":
			if !exists {
				message(w, 400, "A file with this name doesn't exist")
				return
			}
			cur.Content = content
		case "chmod":
			if !exists {
				message(w, 400, "A file with this name doesn't exist")
				return
			}
			cur.Exec = a.ExecuteFilemode != nil && *a.ExecuteFilemode
		case "delete":
			if !exists {
				message(w, 400, "A file with this name doesn't exist")
				return
			}
			delete(files, a.FilePath)
			change[a.FilePath] = nil
			continue
		default:
			message(w, 400, "actions[0][action] does not have a valid value")
			return
		}
		files[a.FilePath] = cur
		v := cur
		change[a.FilePath] = &v
	}
	id := f.commitLocked(body.StartSHA, body.CommitMessage, body.AuthorName, body.AuthorEmail, change)
	f.branches[body.Branch] = id
	f.commitCreates++
	writeJSON(w, 201, f.commitJSON(f.commits[id]))
}

func (f *fakeGitLab) diff(w http.ResponseWriter, r *http.Request, ref string) {
	c := f.resolve(ref)
	if c == nil {
		message(w, 404, "404 Commit Not Found")
		return
	}
	var parent map[string]fakeFile
	if len(c.Parents) > 0 {
		parent = f.commits[c.Parents[0]].Files
	}
	var out []map[string]any
	for _, p := range c.Changed {
		_, before := parent[p]
		_, after := c.Files[p]
		out = append(out, map[string]any{
			"old_path": p, "new_path": p, "a_mode": "100644", "b_mode": "100644",
			"new_file": !before, "deleted_file": !after, "renamed_file": false, "diff": "@@ -1 +1 @@\n",
		})
	}
	lo, hi := f.paginate(w, r, len(out))
	writeJSON(w, 200, nonNil(out[lo:hi]))
}

func nonNil(v []map[string]any) []map[string]any {
	if v == nil {
		return []map[string]any{}
	}
	return v
}

// fileMeta answers HEAD (and GET) on the files API with GitLab's
// X-Gitlab-* metadata headers.
func (f *fakeGitLab) fileMeta(w http.ResponseWriter, r *http.Request, path string) {
	c := f.resolve(r.URL.Query().Get("ref"))
	if c == nil {
		message(w, 404, "404 Commit Not Found")
		return
	}
	file, ok := c.Files[path]
	if !ok {
		message(w, 404, "404 File Not Found")
		return
	}
	blob := sha1.Sum(append([]byte(fmt.Sprintf("blob %d\x00", len(file.Content))), file.Content...))
	sum := sha256.Sum256(file.Content)
	h := w.Header()
	h.Set("X-Gitlab-Blob-Id", hex.EncodeToString(blob[:]))
	h.Set("X-Gitlab-Commit-Id", c.ID)
	h.Set("X-Gitlab-Content-Sha256", hex.EncodeToString(sum[:]))
	h.Set("X-Gitlab-Encoding", "base64")
	h.Set("X-Gitlab-Execute-Filemode", strconv.FormatBool(file.Exec))
	h.Set("X-Gitlab-File-Name", path[strings.LastIndex(path, "/")+1:])
	h.Set("X-Gitlab-File-Path", path)
	h.Set("X-Gitlab-Last-Commit-Id", c.ID)
	h.Set("X-Gitlab-Ref", r.URL.Query().Get("ref"))
	h.Set("X-Gitlab-Size", strconv.Itoa(len(file.Content)))
	if r.Method == http.MethodHead {
		w.WriteHeader(200)
		return
	}
	writeJSON(w, 200, map[string]any{
		"file_path": path, "content": base64.StdEncoding.EncodeToString(file.Content), "encoding": "base64",
		"execute_filemode": file.Exec, "content_sha256": hex.EncodeToString(sum[:]),
	})
}

func (f *fakeGitLab) serveArchive(w http.ResponseWriter, r *http.Request) {
	if f.resolve(r.URL.Query().Get("sha")) == nil {
		message(w, 404, "404 Commit Not Found")
		return
	}
	w.Header().Set("Content-Type", "application/x-gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="project.tar.gz"`)
	if !f.chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(f.archive)))
		_, _ = w.Write(f.archive)
		return
	}
	w.WriteHeader(200)
	for b := f.archive; len(b) > 0; {
		n := min(len(b), 1000)
		_, _ = w.Write(b[:n])
		w.(http.Flusher).Flush()
		b = b[n:]
	}
}

// paginate applies page/per_page like GitLab's offset pagination and sets
// its headers; it returns the slice bounds of the page.
func (f *fakeGitLab) paginate(w http.ResponseWriter, r *http.Request, total int) (int, int) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 20
	}
	per = min(per, f.perPage)
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	pages := max((total+per-1)/per, 1)
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	h.Set("X-Prev-Page", "")
	h.Set("X-Next-Page", "")
	link := func(p int, rel string) string {
		u := *r.URL
		u.Scheme, u.Host = "http", r.Host
		qq := u.Query()
		qq.Set("page", strconv.Itoa(p))
		qq.Set("per_page", strconv.Itoa(per))
		u.RawQuery = qq.Encode()
		return fmt.Sprintf(`<%s>; rel="%s"`, u.String(), rel)
	}
	links := []string{link(1, "first"), link(pages, "last")}
	if page > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(page-1))
		links = append(links, link(page-1, "prev"))
	}
	if page < pages {
		h.Set("X-Next-Page", strconv.Itoa(page+1))
		links = append(links, link(page+1, "next"))
	}
	h.Set("Link", strings.Join(links, ", "))
	lo := min((page-1)*per, total)
	return lo, min(lo+per, total)
}

func (f *fakeGitLab) listJobs(w http.ResponseWriter, r *http.Request, pipeline string) {
	id, _ := strconv.ParseInt(pipeline, 10, 64)
	jobs, ok := f.jobs[id]
	if !ok {
		message(w, 404, "404 Pipeline Not Found")
		return
	}
	scope := r.URL.Query()["scope[]"]
	var out []map[string]any
	// GitLab lists a pipeline's jobs newest first.
	for i := len(jobs) - 1; i >= 0; i-- {
		j := jobs[i]
		if len(scope) > 0 && !slices.Contains(scope, j.Status) {
			continue
		}
		out = append(out, map[string]any{
			"id": j.ID, "name": j.Name, "stage": j.Stage, "status": j.Status, "allow_failure": j.AllowFailure,
			"ref": "main", "tag": false, "created_at": "2025-01-02T03:04:05Z", "failure_reason": "script_failure",
			"pipeline": map[string]any{"id": id, "project_id": f.project.ID, "ref": "main", "sha": "abc", "status": "failed"},
			"web_url":  fmt.Sprintf("%s/%s/-/jobs/%d", f.srv.URL, f.project.Path, j.ID),
		})
	}
	lo, hi := f.paginate(w, r, len(out))
	writeJSON(w, 200, nonNil(out[lo:hi]))
}

func (f *fakeGitLab) userJSON(id int64) map[string]any {
	for name, uid := range f.users {
		if uid == id {
			return map[string]any{"id": id, "username": name, "name": strings.ToUpper(name[:1]) + name[1:], "state": "active",
				"avatar_url": "", "web_url": f.srv.URL + "/" + name}
		}
	}
	return nil
}

func (f *fakeGitLab) listUsers(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	if id, ok := f.users[r.URL.Query().Get("username")]; ok {
		out = append(out, f.userJSON(id))
	}
	writeJSON(w, 200, out)
}

func (f *fakeGitLab) mrJSON(mr *fakeMR) map[string]any {
	reviewers := []map[string]any{}
	for _, id := range mr.Reviewers {
		reviewers = append(reviewers, f.userJSON(id))
	}
	labels := mr.Labels
	if labels == nil {
		labels = []string{}
	}
	draft := isDraftTitle(mr.Title)
	sha := f.branches[mr.SourceBranch]
	return map[string]any{
		"id": 1000 + mr.IID, "iid": mr.IID, "project_id": f.project.ID, "title": mr.Title, "description": mr.Description,
		"state": mr.State, "target_branch": mr.TargetBranch, "source_branch": mr.SourceBranch,
		"source_project_id": mr.SourceProjectID, "target_project_id": f.project.ID, "labels": labels,
		"draft": draft, "work_in_progress": draft, "sha": sha, "reviewers": reviewers,
		"web_url":    fmt.Sprintf("%s/%s/-/merge_requests/%d", f.srv.URL, f.project.Path, mr.IID),
		"created_at": "2025-01-02T03:04:05Z",
	}
}

func isDraftTitle(t string) bool {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.HasPrefix(t, "draft:") || strings.HasPrefix(t, "[draft]") || strings.HasPrefix(t, "(draft)")
}

func (f *fakeGitLab) listMRs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var out []map[string]any
	for _, mr := range f.mrs {
		if s := q.Get("source_branch"); s != "" && mr.SourceBranch != s {
			continue
		}
		if s := q.Get("state"); s != "" && s != "all" && mr.State != s {
			continue
		}
		out = append(out, f.mrJSON(mr))
	}
	lo, hi := f.paginate(w, r, len(out))
	writeJSON(w, 200, nonNil(out[lo:hi]))
}

type fakeMRBody struct {
	Title        *string `json:"title"`
	Description  *string `json:"description"`
	SourceBranch string  `json:"source_branch"`
	TargetBranch string  `json:"target_branch"`
	Labels       string  `json:"labels"`
	ReviewerIDs  []int64 `json:"reviewer_ids"`
}

// createMR refuses a second open merge request for the same source and
// target, and silently drops reviewers who cannot review, as GitLab does.
func (f *fakeGitLab) createMR(w http.ResponseWriter, r *http.Request) {
	if hook := f.beforeCreateMR; hook != nil {
		f.beforeCreateMR = nil
		hook()
	}
	var body fakeMRBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Title == nil {
		message(w, 400, "title is missing")
		return
	}
	if _, ok := f.branches[body.SourceBranch]; !ok {
		message(w, 400, map[string]any{"source_branch": []string{"is invalid"}})
		return
	}
	for _, mr := range f.mrs {
		if mr.State == "opened" && mr.SourceProjectID == projectID && mr.SourceBranch == body.SourceBranch && mr.TargetBranch == body.TargetBranch {
			message(w, 409, []string{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", mr.IID)})
			return
		}
	}
	mr := fakeMR{SourceBranch: body.SourceBranch, TargetBranch: body.TargetBranch, Title: *body.Title}
	if body.Description != nil {
		mr.Description = *body.Description
	}
	if body.Labels != "" {
		mr.Labels = strings.Split(body.Labels, ",")
	}
	for _, id := range body.ReviewerIDs {
		if f.members[id] {
			mr.Reviewers = append(mr.Reviewers, id)
		}
	}
	created := f.addMRLocked(mr)
	f.mrCreates++
	writeJSON(w, 201, f.mrJSON(created))
}

func (f *fakeGitLab) updateMR(w http.ResponseWriter, r *http.Request, iid string) {
	n, _ := strconv.ParseInt(iid, 10, 64)
	if n < 1 || int(n) > len(f.mrs) {
		message(w, 404, "404 Not found")
		return
	}
	var body fakeMRBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		message(w, 400, "invalid JSON")
		return
	}
	mr := f.mrs[n-1]
	if body.Title != nil {
		mr.Title = *body.Title
	}
	if body.Description != nil {
		mr.Description = *body.Description
	}
	f.mrUpdates++
	writeJSON(w, 200, f.mrJSON(mr))
}
