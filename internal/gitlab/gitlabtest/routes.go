package gitlabtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, status int, msg any) {
	writeJSON(w, status, map[string]any{"message": msg})
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	raw := r.URL.EscapedPath()
	f.Requests = append(f.Requests, r.Method+" "+raw+"?"+r.URL.RawQuery)
	if r.Header.Get("Private-Token") != f.Token {
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
	if segs[1] != f.Project.Path && segs[1] != strconv.FormatInt(f.Project.ID, 10) {
		message(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	route := strings.Join(segs[2:], "/")
	switch {
	case route == "" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{
			"id": f.Project.ID, "path_with_namespace": f.Project.Path, "default_branch": f.Project.DefaultBranch,
			"web_url": f.srv.URL + "/" + f.Project.Path, "visibility": "private",
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
	case route == "repository/merge_base" && r.Method == http.MethodGet:
		f.mergeBase(w, r)
	case route == "repository/tree" && r.Method == http.MethodGet:
		f.listTree(w, r)
	case route == "repository/archive.tar.gz" && r.Method == http.MethodGet:
		f.serveArchive(w, r)
	case len(segs) == 5 && segs[2] == "pipelines" && segs[4] == "jobs":
		f.listJobs(w, r, segs[3])
	case len(segs) == 5 && segs[2] == "jobs" && segs[4] == "trace":
		id, _ := strconv.ParseInt(segs[3], 10, 64)
		trace, ok := f.Traces[id]
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

// resolve finds the commit a ref names: a commit id, a branch, a tag, or
// a full ref name ("refs/heads/main", "refs/merge-requests/7/head").
func (f *Server) resolve(ref string) *Commit {
	if c, ok := f.Commits[ref]; ok {
		return c
	}
	if id, ok := f.Branches[ref]; ok {
		return f.Commits[id]
	}
	if id, ok := f.Tags[ref]; ok {
		return f.Commits[id]
	}
	if name, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return f.Commits[f.Branches[name]]
	}
	if name, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return f.Commits[f.Tags[name]]
	}
	if id, ok := f.Refs[ref]; ok {
		return f.Commits[id]
	}
	return nil
}

func (f *Server) commitJSON(c *Commit) map[string]any {
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
		"parent_ids": parents, "web_url": f.srv.URL + "/" + f.Project.Path + "/-/commit/" + c.ID,
	}
}

func (f *Server) branch(w http.ResponseWriter, r *http.Request, name string) {
	id, ok := f.Branches[name]
	if !ok {
		message(w, 404, "404 Branch Not Found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, 200, map[string]any{
			"name": name, "merged": false, "protected": false, "default": name == f.Project.DefaultBranch,
			"developers_can_push": false, "developers_can_merge": false, "can_push": true,
			"web_url": f.srv.URL + "/" + f.Project.Path + "/-/tree/" + name, "commit": f.commitJSON(f.Commits[id]),
		})
	case http.MethodDelete:
		delete(f.Branches, name)
		f.BranchDeletes++
		w.WriteHeader(http.StatusNoContent)
	default:
		message(w, 405, "405 Method Not Allowed")
	}
}

type commitBody struct {
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
func (f *Server) createCommit(w http.ResponseWriter, r *http.Request) {
	if hook := f.BeforeCreateCommit; hook != nil {
		f.BeforeCreateCommit = nil
		hook()
	}
	var body commitBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		message(w, 400, "400 Bad request - invalid JSON")
		return
	}
	if _, exists := f.Branches[body.Branch]; exists {
		message(w, 400, fmt.Sprintf("A branch called '%s' already exists. Switch to that branch in order to make changes", body.Branch))
		return
	}
	start := f.Commits[body.StartSHA]
	if start == nil {
		message(w, 400, "Invalid start SHA")
		return
	}
	files := map[string]File{}
	for p, v := range start.Files {
		files[p] = v
	}
	change := map[string]*File{}
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
			cur = File{Content: content, Exec: a.ExecuteFilemode != nil && *a.ExecuteFilemode}
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
	id := f.AddCommit(body.StartSHA, body.CommitMessage, body.AuthorName, body.AuthorEmail, change)
	f.Branches[body.Branch] = id
	f.CommitCreates++
	writeJSON(w, 201, f.commitJSON(f.Commits[id]))
}

func (f *Server) diff(w http.ResponseWriter, r *http.Request, ref string) {
	c := f.resolve(ref)
	if c == nil {
		message(w, 404, "404 Commit Not Found")
		return
	}
	var parent map[string]File
	if len(c.Parents) > 0 {
		parent = f.Commits[c.Parents[0]].Files
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
func (f *Server) fileMeta(w http.ResponseWriter, r *http.Request, path string) {
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
	blob := blobID(file.Content)
	sum := sha256.Sum256(file.Content)
	h := w.Header()
	h.Set("X-Gitlab-Blob-Id", blob)
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
		"file_name": path[strings.LastIndex(path, "/")+1:], "file_path": path, "size": len(file.Content),
		"encoding": "base64", "content_sha256": hex.EncodeToString(sum[:]), "ref": r.URL.Query().Get("ref"),
		"blob_id": blob, "commit_id": c.ID, "last_commit_id": c.ID, "execute_filemode": file.Exec,
		"content": base64.StdEncoding.EncodeToString(file.Content),
	})
}

func (f *Server) serveArchive(w http.ResponseWriter, r *http.Request) {
	c := f.resolve(r.URL.Query().Get("sha"))
	if c == nil {
		message(w, 404, "404 Commit Not Found")
		return
	}
	archive := f.Archive
	if archive == nil {
		var err error
		if archive, err = f.tarball(c); err != nil {
			message(w, 500, "500 Internal Server Error")
			return
		}
	}
	name := f.Project.Path[strings.LastIndex(f.Project.Path, "/")+1:]
	w.Header().Set("Content-Type", "application/x-gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`-`+c.ID+`.tar.gz"`)
	if !f.Chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(archive)))
		_, _ = w.Write(archive)
		return
	}
	w.WriteHeader(200)
	for b := archive; len(b) > 0; {
		n := min(len(b), 1000)
		_, _ = w.Write(b[:n])
		w.(http.Flusher).Flush()
		b = b[n:]
	}
}

// paginate applies page/per_page like GitLab's offset pagination and sets
// its headers; it returns the slice bounds of the page.
func (f *Server) paginate(w http.ResponseWriter, r *http.Request, total int) (int, int) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 20
	}
	per = min(per, f.PerPage)
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

func (f *Server) listJobs(w http.ResponseWriter, r *http.Request, pipeline string) {
	id, _ := strconv.ParseInt(pipeline, 10, 64)
	jobs, ok := f.Jobs[id]
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
			"pipeline": map[string]any{"id": id, "project_id": f.Project.ID, "ref": "main", "sha": "abc", "status": "failed"},
			"web_url":  fmt.Sprintf("%s/%s/-/jobs/%d", f.srv.URL, f.Project.Path, j.ID),
		})
	}
	lo, hi := f.paginate(w, r, len(out))
	writeJSON(w, 200, nonNil(out[lo:hi]))
}

func (f *Server) userJSON(id int64) map[string]any {
	for name, uid := range f.Users {
		if uid == id {
			return map[string]any{"id": id, "username": name, "name": strings.ToUpper(name[:1]) + name[1:], "state": "active",
				"avatar_url": "", "web_url": f.srv.URL + "/" + name}
		}
	}
	return nil
}

func (f *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	if id, ok := f.Users[r.URL.Query().Get("username")]; ok {
		out = append(out, f.userJSON(id))
	}
	writeJSON(w, 200, out)
}

func (f *Server) mrJSON(mr *MR) map[string]any {
	reviewers := []map[string]any{}
	for _, id := range mr.Reviewers {
		reviewers = append(reviewers, f.userJSON(id))
	}
	labels := mr.Labels
	if labels == nil {
		labels = []string{}
	}
	draft := isDraftTitle(mr.Title)
	sha := f.Branches[mr.SourceBranch]
	return map[string]any{
		"id": 1000 + mr.IID, "iid": mr.IID, "project_id": f.Project.ID, "title": mr.Title, "description": mr.Description,
		"state": mr.State, "target_branch": mr.TargetBranch, "source_branch": mr.SourceBranch,
		"source_project_id": mr.SourceProjectID, "target_project_id": f.Project.ID, "labels": labels,
		"draft": draft, "work_in_progress": draft, "sha": sha, "reviewers": reviewers,
		"web_url":    fmt.Sprintf("%s/%s/-/merge_requests/%d", f.srv.URL, f.Project.Path, mr.IID),
		"created_at": "2025-01-02T03:04:05Z",
	}
}

func isDraftTitle(t string) bool {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.HasPrefix(t, "draft:") || strings.HasPrefix(t, "[draft]") || strings.HasPrefix(t, "(draft)")
}

func (f *Server) listMRs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var out []map[string]any
	for _, mr := range f.MRs {
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

type mrBody struct {
	Title        *string `json:"title"`
	Description  *string `json:"description"`
	SourceBranch string  `json:"source_branch"`
	TargetBranch string  `json:"target_branch"`
	Labels       string  `json:"labels"`
	ReviewerIDs  []int64 `json:"reviewer_ids"`
}

// createMR refuses a second open merge request for the same source and
// target, and silently drops reviewers who cannot review, as GitLab does.
func (f *Server) createMR(w http.ResponseWriter, r *http.Request) {
	if hook := f.BeforeCreateMR; hook != nil {
		f.BeforeCreateMR = nil
		hook()
	}
	var body mrBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Title == nil {
		message(w, 400, "title is missing")
		return
	}
	if _, ok := f.Branches[body.SourceBranch]; !ok {
		message(w, 400, map[string]any{"source_branch": []string{"is invalid"}})
		return
	}
	for _, mr := range f.MRs {
		if mr.State == "opened" && mr.SourceProjectID == f.Project.ID && mr.SourceBranch == body.SourceBranch && mr.TargetBranch == body.TargetBranch {
			message(w, 409, []string{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", mr.IID)})
			return
		}
	}
	mr := MR{SourceBranch: body.SourceBranch, TargetBranch: body.TargetBranch, Title: *body.Title}
	if body.Description != nil {
		mr.Description = *body.Description
	}
	if body.Labels != "" {
		mr.Labels = strings.Split(body.Labels, ",")
	}
	for _, id := range body.ReviewerIDs {
		if f.Members[id] {
			mr.Reviewers = append(mr.Reviewers, id)
		}
	}
	created := f.AddMR(mr)
	f.MRCreates++
	writeJSON(w, 201, f.mrJSON(created))
}

func (f *Server) updateMR(w http.ResponseWriter, r *http.Request, iid string) {
	n, _ := strconv.ParseInt(iid, 10, 64)
	if n < 1 || int(n) > len(f.MRs) {
		message(w, 404, "404 Not found")
		return
	}
	var body mrBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		message(w, 400, "invalid JSON")
		return
	}
	mr := f.MRs[n-1]
	if body.Title != nil {
		mr.Title = *body.Title
	}
	if body.Description != nil {
		mr.Description = *body.Description
	}
	f.MRUpdates++
	writeJSON(w, 200, f.mrJSON(mr))
}
