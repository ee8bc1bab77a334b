package githubtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// --- HTTP plumbing ---

type authKind int

const (
	authRepo authKind = iota // a token or an installation token
	authApp                  // a JWT signed by the App's key
)

type handler func(w http.ResponseWriter, r *http.Request, repo *Repo)

// route registers a handler under the API prefix. Every request must carry
// the User-Agent and API version headers and the right credentials; hooks
// simulate a concurrent run (before) and a crash after the step (crash).
func (f *Server) route(method, pattern string, auth authKind, h handler) {
	key := method + " " + pattern
	f.mux.HandleFunc(method+" "+f.Prefix+pattern, func(w http.ResponseWriter, r *http.Request) {
		f.Mu.Lock()
		defer f.Mu.Unlock()
		f.Calls = append(f.Calls, key)
		if r.Header.Get("User-Agent") != "remediator" || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
			writeJSON(w, http.StatusBadRequest, ghError("missing User-Agent or X-GitHub-Api-Version"))
			return
		}
		if !f.authorized(r, auth) {
			writeJSON(w, http.StatusUnauthorized, ghError("Bad credentials"))
			return
		}
		var repo *Repo
		if owner := r.PathValue("owner"); owner != "" {
			if repo = f.repos[owner+"/"+r.PathValue("repo")]; repo == nil {
				writeJSON(w, http.StatusNotFound, ghError("Not Found"))
				return
			}
		}
		if hook := f.Before[key]; hook != nil {
			delete(f.Before, key)
			hook()
		}
		if f.Crash[key] {
			delete(f.Crash, key)
			h(httptest.NewRecorder(), r, repo)
			writeJSON(w, http.StatusInternalServerError, ghError("Server Error"))
			return
		}
		h(w, r, repo)
	})
}

func (f *Server) authorized(r *http.Request, kind authKind) bool {
	got := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(got, " ")
	if kind == authApp {
		if scheme != "Bearer" || f.AppKey == nil {
			return false
		}
		tok, err := jwt.Parse(cred, func(*jwt.Token) (any, error) { return f.AppKey, nil }, jwt.WithValidMethods([]string{"RS256"}))
		if err != nil || !tok.Valid {
			return false
		}
		iss, err := tok.Claims.GetIssuer()
		return err == nil && iss == strconv.FormatInt(f.AppID, 10)
	}
	if scheme != "Bearer" && scheme != "token" {
		return false
	}
	if f.Token != "" {
		return cred == f.Token
	}
	return f.InstToken != "" && cred == f.InstToken
}

func ghError(msg string) map[string]any {
	return map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a request body; a body GitHub would not parse fails the
// test and is answered 400, as GitHub does.
func (f *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		f.errorf("fake: %s %s: bad body: %v", r.Method, r.URL.Path, err)
		writeJSON(w, http.StatusBadRequest, ghError("Problems parsing JSON"))
		return false
	}
	return true
}

// --- JSON shapes ---

func (f *Server) repoURL(r *Repo) string {
	return f.srv.URL + f.Prefix + "/repos/" + r.Owner + "/" + r.Name
}

func (f *Server) refJSON(r *Repo, ref string) map[string]any {
	return map[string]any{
		"ref": ref, "node_id": "REF_" + ref, "url": f.repoURL(r) + "/git/" + ref,
		"object": map[string]any{"sha": r.Refs[ref], "type": "commit", "url": f.repoURL(r) + "/git/commits/" + r.Refs[ref]},
	}
}

func (f *Server) commitJSON(r *Repo, sha string) map[string]any {
	c := r.Commits[sha]
	parents := []map[string]any{}
	for _, p := range c.Parents {
		parents = append(parents, map[string]any{"sha": p, "url": f.repoURL(r) + "/git/commits/" + p, "html_url": "https://github.example/commit/" + p})
	}
	sig := func(s Sig) map[string]any {
		return map[string]any{"name": s.Name, "email": s.Email, "date": s.Date}
	}
	return map[string]any{
		"sha": sha, "node_id": "C_" + sha, "url": f.repoURL(r) + "/git/commits/" + sha,
		"author": sig(c.Author), "committer": sig(c.Committer), "message": c.Message,
		"tree":         map[string]any{"sha": c.Tree, "url": f.repoURL(r) + "/git/trees/" + c.Tree},
		"parents":      parents,
		"verification": map[string]any{"verified": false, "reason": "unsigned", "signature": nil, "payload": nil},
	}
}

func (f *Server) pullJSON(r *Repo, p *Pull) map[string]any {
	labels := []map[string]any{}
	for i, l := range p.Labels {
		labels = append(labels, map[string]any{"id": i + 1, "name": l, "color": "ededed"})
	}
	reviewers := []map[string]any{}
	for i, u := range p.Reviewers {
		reviewers = append(reviewers, map[string]any{"login": u, "id": 100 + i, "type": "User"})
	}
	repo := map[string]any{"name": r.Name, "full_name": r.Owner + "/" + r.Name, "owner": map[string]any{"login": r.Owner}}
	return map[string]any{
		"url": f.repoURL(r) + "/pulls/" + strconv.Itoa(p.Number), "id": 5000 + p.Number, "node_id": "PR_" + strconv.Itoa(p.Number),
		"html_url": "https://github.example/" + r.Owner + "/" + r.Name + "/pull/" + strconv.Itoa(p.Number),
		"number":   p.Number, "state": p.State, "title": p.Title, "body": p.Body, "draft": p.Draft,
		"labels": labels, "requested_reviewers": reviewers, "user": map[string]any{"login": "remediator[bot]"},
		"head": map[string]any{"label": r.Owner + ":" + p.Head, "ref": p.Head, "sha": r.Refs["refs/heads/"+p.Head], "repo": repo},
		"base": map[string]any{"label": r.Owner + ":" + p.Base, "ref": p.Base, "sha": r.Refs["refs/heads/"+p.Base], "repo": repo},
	}
}

// --- endpoints ---

func (f *Server) routes() {
	f.route("GET", "/repos/{owner}/{repo}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": 1, "node_id": "R_1", "name": r.Name, "full_name": r.Owner + "/" + r.Name, "private": true,
			"owner": map[string]any{"login": r.Owner, "type": "Organization"}, "default_branch": r.DefaultBranch,
		})
	})
	f.route("GET", "/repos/{owner}/{repo}/git/ref/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		ref := "refs/" + req.PathValue("ref")
		if _, ok := r.Refs[ref]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		writeJSON(w, http.StatusOK, f.refJSON(r, ref))
	})
	f.route("POST", "/repos/{owner}/{repo}/git/refs", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		var body struct{ Ref, SHA string }
		if !f.decode(w, req, &body) {
			return
		}
		switch _, exists := r.Refs[body.Ref]; {
		case !strings.HasPrefix(body.Ref, "refs/") || strings.Count(body.Ref, "/") < 2:
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Reference name is invalid"))
		case r.Commits[body.SHA].Tree == "":
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Object does not exist"))
		case exists:
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Reference already exists"))
		default:
			r.Refs[body.Ref] = body.SHA
			writeJSON(w, http.StatusCreated, f.refJSON(r, body.Ref))
		}
	})
	f.route("PATCH", "/repos/{owner}/{repo}/git/refs/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		ref := "refs/" + req.PathValue("ref")
		var body struct {
			SHA   string
			Force bool
		}
		if !f.decode(w, req, &body) {
			return
		}
		old, exists := r.Refs[ref]
		switch {
		case !exists:
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Reference does not exist"))
		case r.Commits[body.SHA].Tree == "":
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Object does not exist"))
		case !body.Force && !r.Descends(body.SHA, old):
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Update is not a fast forward"))
		default:
			r.Refs[ref] = body.SHA
			writeJSON(w, http.StatusOK, f.refJSON(r, ref))
		}
	})
	f.route("GET", "/repos/{owner}/{repo}/git/commits/{sha}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		sha := strings.ToLower(req.PathValue("sha"))
		if _, ok := r.Commits[sha]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		writeJSON(w, http.StatusOK, f.commitJSON(r, sha))
	})
	f.route("POST", "/repos/{owner}/{repo}/git/blobs", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		var body struct{ Content, Encoding string }
		if !f.decode(w, req, &body) {
			return
		}
		content := []byte(body.Content)
		if body.Encoding == "base64" {
			var err error
			if content, err = base64.StdEncoding.DecodeString(body.Content); err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, ghError("content is not valid Base64"))
				return
			}
		}
		sha := r.PutBlob(content)
		writeJSON(w, http.StatusCreated, map[string]any{"url": f.repoURL(r) + "/git/blobs/" + sha, "sha": sha})
	})
	f.route("POST", "/repos/{owner}/{repo}/git/trees", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		var body struct {
			BaseTree string `json:"base_tree"`
			Tree     []struct {
				Path    string          `json:"path"`
				Mode    string          `json:"mode"`
				Type    string          `json:"type"`
				SHA     json.RawMessage `json:"sha"`
				Content *string         `json:"content"`
			} `json:"tree"`
		}
		if !f.decode(w, req, &body) {
			return
		}
		entries := map[string]Entry{}
		if body.BaseTree != "" {
			base, ok := r.Trees[body.BaseTree]
			if !ok {
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Invalid tree info"))
				return
			}
			for p, e := range base {
				entries[p] = e
			}
		}
		for _, e := range body.Tree {
			switch {
			case string(e.SHA) == "null":
				delete(entries, e.Path)
			case len(e.SHA) > 0:
				var sha string
				_ = json.Unmarshal(e.SHA, &sha)
				if _, ok := r.Blobs[sha]; !ok || e.Type != "blob" || (e.Mode != "100644" && e.Mode != "100755") {
					writeJSON(w, http.StatusUnprocessableEntity, ghError("GitRPC::BadObjectState"))
					return
				}
				entries[e.Path] = Entry{Mode: e.Mode, SHA: sha}
			case e.Content != nil:
				entries[e.Path] = Entry{Mode: e.Mode, SHA: r.PutBlob([]byte(*e.Content))}
			default:
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Must supply either tree.sha or tree.content"))
				return
			}
		}
		sha := r.PutTree(entries)
		list := []map[string]any{}
		for p, e := range entries {
			list = append(list, map[string]any{"path": p, "mode": e.Mode, "type": "blob", "sha": e.SHA, "size": len(r.Blobs[e.SHA])})
		}
		writeJSON(w, http.StatusCreated, map[string]any{"sha": sha, "url": f.repoURL(r) + "/git/trees/" + sha, "tree": list, "truncated": false})
	})
	f.route("POST", "/repos/{owner}/{repo}/git/commits", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		var body struct {
			Message   string   `json:"message"`
			Tree      string   `json:"tree"`
			Parents   []string `json:"parents"`
			Author    *Sig     `json:"author"`
			Committer *Sig     `json:"committer"`
		}
		if !f.decode(w, req, &body) {
			return
		}
		if _, ok := r.Trees[body.Tree]; !ok {
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Tree SHA does not exist"))
			return
		}
		for _, p := range body.Parents {
			if _, ok := r.Commits[p]; !ok {
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Parent SHA does not exist or is not a commit object"))
				return
			}
		}
		// Without an author GitHub uses the caller and the current time.
		now := Sig{Name: "remediator[bot]", Email: "bot@example.com", Date: time.Now().UTC().Format(time.RFC3339Nano)}
		author, committer := now, now
		if body.Author != nil {
			author = *body.Author
		}
		if body.Committer != nil {
			committer = *body.Committer
		}
		sha := r.PutCommit(Commit{Tree: body.Tree, Parents: body.Parents, Message: body.Message, Author: author, Committer: committer})
		writeJSON(w, http.StatusCreated, f.commitJSON(r, sha))
	})
	f.route("GET", "/repos/{owner}/{repo}/git/trees/{sha}", authRepo, f.tree)
	f.route("GET", "/repos/{owner}/{repo}/compare/{basehead...}", authRepo, f.compare)
	f.route("GET", "/repos/{owner}/{repo}/commits/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		ref := req.PathValue("ref")
		sha := r.Refs["refs/heads/"+ref]
		if sha == "" {
			sha = r.Refs["refs/tags/"+ref]
		}
		if sha == "" && len(ref) >= 7 {
			for c := range r.Commits {
				if strings.HasPrefix(c, strings.ToLower(ref)) {
					sha = c
				}
			}
		}
		if sha == "" {
			writeJSON(w, http.StatusUnprocessableEntity, ghError("No commit found for SHA: "+ref))
			return
		}
		if !strings.Contains(req.Header.Get("Accept"), "sha") {
			f.errorf("fake: commits/{ref} without the sha media type")
		}
		w.Header().Set("Content-Type", "application/vnd.github.sha; charset=utf-8")
		_, _ = io.WriteString(w, sha)
	})
	f.route("GET", "/repos/{owner}/{repo}/tarball/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		sha := req.PathValue("ref")
		if _, ok := r.Commits[sha]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		w.Header().Set("Location", f.srv.URL+codeloadPath+r.Owner+"/"+r.Name+"/legacy.tar.gz/"+sha+"?token="+codeloadSig)
		w.WriteHeader(http.StatusFound)
	})
	f.route("GET", "/repos/{owner}/{repo}/actions/runs/{run}/attempts/{attempt}/jobs", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		f.jobsPage(w, req, r)
	})
	f.route("GET", "/repos/{owner}/{repo}/actions/runs/{run}/jobs", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		f.jobsPage(w, req, r)
	})
	f.route("GET", "/repos/{owner}/{repo}/actions/jobs/{job}/logs", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		id, _ := strconv.ParseInt(req.PathValue("job"), 10, 64)
		if _, ok := f.Logs[id]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		w.Header().Set("Location", f.srv.URL+logsPath+strconv.FormatInt(id, 10)+"?sig="+logSig+"&se=2099-01-01")
		w.WriteHeader(http.StatusFound)
	})
	f.route("GET", "/repos/{owner}/{repo}/pulls", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		q := req.URL.Query()
		owner, branch, _ := strings.Cut(q.Get("head"), ":")
		state := q.Get("state")
		out := []map[string]any{}
		for _, p := range r.Pulls {
			if (state == "" || state == "open") && p.State != "open" {
				continue
			}
			if q.Get("head") != "" && (owner != r.Owner || p.Head != branch) {
				continue
			}
			out = append(out, f.pullJSON(r, p))
		}
		writeJSON(w, http.StatusOK, out)
	})
	f.route("POST", "/repos/{owner}/{repo}/pulls", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		var body struct {
			Title, Head, Base, Body string
			Draft                   bool
		}
		if !f.decode(w, req, &body) {
			return
		}
		invalid := func(field, code, msg string) {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
				"message": "Validation Failed", "status": "422",
				"errors":            []map[string]any{{"resource": "PullRequest", "field": field, "code": code, "message": msg}},
				"documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
			})
		}
		switch {
		case r.Refs["refs/heads/"+body.Head] == "":
			invalid("head", "invalid", "")
		case r.Refs["refs/heads/"+body.Base] == "":
			invalid("base", "invalid", "")
		default:
			for _, p := range r.OpenPulls(body.Head) {
				if p.Base == body.Base {
					invalid("", "custom", "A pull request already exists for "+r.Owner+":"+body.Head+".")
					return
				}
			}
			p := &Pull{Number: len(r.Pulls) + 1, Title: body.Title, Body: body.Body, Head: body.Head, Base: body.Base, State: "open", Draft: body.Draft}
			r.Pulls = append(r.Pulls, p)
			writeJSON(w, http.StatusCreated, f.pullJSON(r, p))
		}
	})
	f.route("PATCH", "/repos/{owner}/{repo}/pulls/{number}", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		p := r.pull(req.PathValue("number"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		var body struct{ Title, Body *string }
		if !f.decode(w, req, &body) {
			return
		}
		if body.Title != nil {
			p.Title = *body.Title
		}
		if body.Body != nil {
			p.Body = *body.Body
		}
		writeJSON(w, http.StatusOK, f.pullJSON(r, p))
	})
	f.route("POST", "/repos/{owner}/{repo}/issues/{number}/labels", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		p := r.pull(req.PathValue("number"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		// GitHub takes {"labels": [...]} or the bare array (what go-github sends).
		var raw json.RawMessage
		if !f.decode(w, req, &raw) {
			return
		}
		var body struct{ Labels []string }
		if err := json.Unmarshal(raw, &body.Labels); err != nil {
			if err := json.Unmarshal(raw, &body); err != nil {
				writeJSON(w, http.StatusBadRequest, ghError("Problems parsing JSON"))
				return
			}
		}
		for _, l := range body.Labels {
			if !contains(p.Labels, l) {
				p.Labels = append(p.Labels, l)
			}
		}
		writeJSON(w, http.StatusOK, f.pullJSON(r, p)["labels"])
	})
	f.route("POST", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers", authRepo, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		p := r.pull(req.PathValue("number"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		var body struct{ Reviewers []string }
		if !f.decode(w, req, &body) {
			return
		}
		for _, u := range body.Reviewers {
			if !r.Collaborators[u] {
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the "+r.Owner+"/"+r.Name+" repository."))
				return
			}
		}
		for _, u := range body.Reviewers {
			if !contains(p.Reviewers, u) {
				p.Reviewers = append(p.Reviewers, u)
			}
		}
		writeJSON(w, http.StatusCreated, f.pullJSON(r, p))
	})
	f.route("GET", "/repos/{owner}/{repo}/installation", authApp, func(w http.ResponseWriter, req *http.Request, r *Repo) {
		f.InstallGETs++
		writeJSON(w, http.StatusOK, map[string]any{
			"id": f.InstallationID, "app_id": f.AppID, "app_slug": "remediator", "target_type": "Organization",
			"account":              map[string]any{"login": r.Owner, "type": "Organization"},
			"access_tokens_url":    f.srv.URL + f.Prefix + "/app/installations/" + strconv.FormatInt(f.InstallationID, 10) + "/access_tokens",
			"repository_selection": "selected", "permissions": map[string]any{"contents": "write", "pull_requests": "write"},
		})
	})
	f.route("POST", "/app/installations/{id}/access_tokens", authApp, func(w http.ResponseWriter, req *http.Request, _ *Repo) {
		f.TokenPOSTs++
		if req.PathValue("id") != strconv.FormatInt(f.InstallationID, 10) {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		if f.TokenStatus != 0 {
			writeJSON(w, f.TokenStatus, ghError("Bad credentials"))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{
			"token": f.InstToken, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"permissions": map[string]any{"contents": "write"}, "repository_selection": "selected",
		})
	})
}

// jobsPage pages the run's jobs (r.Runs, else r.Jobs) two at a time
// (GitHub pages by up to 100) with the Link header GitHub sends.
func (f *Server) jobsPage(w http.ResponseWriter, req *http.Request, r *Repo) {
	const perPage = 2
	run, _ := strconv.ParseInt(req.PathValue("run"), 10, 64)
	jobs, ok := r.Runs[run]
	if !ok {
		if jobs = r.Jobs; jobs == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
	}
	page, _ := strconv.Atoi(req.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	last := (len(jobs) + perPage - 1) / perPage
	lo, hi := min((page-1)*perPage, len(jobs)), min(page*perPage, len(jobs))
	link := func(p int, rel string) string {
		u := *req.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s%s>; rel=%q", f.srv.URL, u.String(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(page-1, "prev"), link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(jobs), "jobs": jobs[lo:hi]})
}

// download plays codeload and the log blob storage: no credentials are
// expected, pre-signed query strings are.
func (f *Server) download(w http.ResponseWriter, req *http.Request) {
	f.Mu.Lock()
	f.DownloadAuth = append(f.DownloadAuth, req.Header.Get("Authorization"))
	f.DownloadRanges = append(f.DownloadRanges, req.Header.Get("Range"))
	f.DownloadPaths = append(f.DownloadPaths, req.URL.Path)
	chunked, noRanges := f.DownloadChunked, f.DownloadNoRanges
	var body []byte
	var ok bool
	switch {
	case strings.HasPrefix(req.URL.Path, codeloadPath) && req.URL.Query().Get("token") == codeloadSig:
		// codeload/<owner>/<repo>/legacy.tar.gz/<sha>
		parts := strings.Split(strings.TrimPrefix(req.URL.Path, codeloadPath), "/")
		if len(parts) != 4 {
			break
		}
		sha := parts[3]
		if body, ok = f.Tarballs[sha]; ok {
			break
		}
		if r := f.repos[parts[0]+"/"+parts[1]]; r != nil {
			var err error
			body, err = r.tarball(sha)
			ok = err == nil
		}
	case strings.HasPrefix(req.URL.Path, logsPath) && req.URL.Query().Get("sig") == logSig:
		id, _ := strconv.ParseInt(strings.TrimPrefix(req.URL.Path, logsPath), 10, 64)
		var s string
		s, ok = f.Logs[id]
		ok = ok && !f.MissingLog[id]
		body = []byte(s)
	}
	f.Mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<Error><Code>BlobNotFound</Code></Error>")
		return
	}
	if chunked || noRanges {
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusOK)
		for len(body) > 0 {
			n := min(len(body), 4096)
			_, _ = w.Write(body[:n])
			body = body[n:]
			if fl, ok := w.(http.Flusher); ok && chunked {
				fl.Flush()
			}
		}
		return
	}
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
}
