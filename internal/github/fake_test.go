package github

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeGitHub speaks GitHub's REST wire format for the endpoints the client
// uses, over an in-memory git object store whose shas are content hashes
// (so a re-run that writes the same objects gets the same shas, as on
// GitHub). A second server plays codeload and the log blob storage that
// GitHub redirects to.
type fakeGitHub struct {
	t      *testing.T
	prefix string // "" or "/api/v3" (Enterprise Server)
	api    *httptest.Server
	dl     *httptest.Server
	mux    *http.ServeMux

	mu sync.Mutex

	// token mode
	token string
	// App mode
	appID          int64
	appKey         *rsa.PublicKey
	installationID int64
	instToken      string
	tokenPOSTs     int
	installGETs    int
	tokenStatus    int // when set, access_tokens answers it

	repos map[string]*fakeRepo
	calls []string // "METHOD pattern", in order

	crash  map[string]bool   // apply the next such request, then answer 500 (the process "died")
	before map[string]func() // run once before the next such request (a concurrent run)

	dlAuth     []string // Authorization headers the download host saw
	dlRanges   []string // Range headers the download host saw
	logs       map[int64]string
	tarballs   map[string][]byte
	dlChunked  bool // the download host hides Content-Length
	dlNoRanges bool // the download host ignores Range
	missingLog map[int64]bool
}

type fakeRepo struct {
	owner, name   string
	defaultBranch string
	refs          map[string]string // "refs/heads/x" → sha
	commits       map[string]fakeCommit
	trees         map[string]map[string]fakeEntry // flat: path → entry
	blobs         map[string][]byte
	pulls         []*fakePull
	jobs          []map[string]any
	collaborators map[string]bool
}

type fakeCommit struct {
	Tree      string
	Parents   []string
	Message   string
	Author    fakeSig
	Committer fakeSig
}

type fakeSig struct{ Name, Email, Date string }

type fakeEntry struct{ Mode, SHA string }

type fakePull struct {
	Number      int
	Title, Body string
	Head, Base  string
	State       string
	Draft       bool
	Labels      []string
	Reviewers   []string
}

const (
	testOwner = "octo"
	testRepo  = "widgets"
)

// newFake starts the fake with one repository whose default branch is
// "trunk" (never assume "main"), a branch "feature" and a tag "v1.0".
func newFake(t *testing.T, prefix string) *fakeGitHub {
	t.Helper()
	f := &fakeGitHub{
		t: t, prefix: prefix, mux: http.NewServeMux(),
		repos: map[string]*fakeRepo{}, crash: map[string]bool{}, before: map[string]func(){},
		logs: map[int64]string{}, tarballs: map[string][]byte{}, missingLog: map[int64]bool{},
	}
	f.routes()
	f.api = httptest.NewServer(f.mux)
	t.Cleanup(f.api.Close)
	f.dl = httptest.NewServer(http.HandlerFunc(f.download))
	t.Cleanup(f.dl.Close)

	r := &fakeRepo{
		owner: testOwner, name: testRepo, defaultBranch: "trunk",
		refs: map[string]string{}, commits: map[string]fakeCommit{}, trees: map[string]map[string]fakeEntry{},
		blobs: map[string][]byte{}, collaborators: map[string]bool{"alice": true, "bob": true},
	}
	f.repos[testOwner+"/"+testRepo] = r
	base := r.commit(map[string]string{"README.md": "# widgets\n", "main.go": "package main\n", "old.txt": "obsolete\n"}, nil, "initial commit")
	feature := r.commit(map[string]string{"README.md": "# widgets, featured\n"}, []string{base}, "add feature")
	r.refs["refs/heads/trunk"] = base
	r.refs["refs/heads/feature"] = feature
	r.refs["refs/tags/v1.0"] = base
	return f
}

// apiURL is what the client is configured with.
func (f *fakeGitHub) apiURL() string { return f.api.URL + f.prefix + "/" }

func (f *fakeGitHub) repo() *fakeRepo { return f.repos[testOwner+"/"+testRepo] }

func (f *fakeGitHub) baseSHA() string { return f.repo().refs["refs/heads/trunk"] }

// count returns how many requests matched "METHOD pattern".
func (f *fakeGitHub) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

// --- git objects ---

func gitHash(kind string, body []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", kind, len(body))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func (r *fakeRepo) putBlob(content []byte) string {
	sha := gitHash("blob", content)
	r.blobs[sha] = append([]byte(nil), content...)
	return sha
}

func (r *fakeRepo) putTree(entries map[string]fakeEntry) string {
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	for _, p := range paths {
		fmt.Fprintf(&b, "%s blob %s\t%s\n", entries[p].Mode, entries[p].SHA, p)
	}
	sha := gitHash("tree", b.Bytes())
	r.trees[sha] = entries
	return sha
}

func gitDate(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%d +0000", t.Unix())
}

func (r *fakeRepo) putCommit(c fakeCommit) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "tree %s\n", c.Tree)
	for _, p := range c.Parents {
		fmt.Fprintf(&b, "parent %s\n", p)
	}
	fmt.Fprintf(&b, "author %s <%s> %s\n", c.Author.Name, c.Author.Email, gitDate(c.Author.Date))
	fmt.Fprintf(&b, "committer %s <%s> %s\n\n%s", c.Committer.Name, c.Committer.Email, gitDate(c.Committer.Date), c.Message)
	sha := gitHash("commit", b.Bytes())
	r.commits[sha] = c
	return sha
}

// commit seeds a commit whose tree is the first parent's with files set.
func (r *fakeRepo) commit(files map[string]string, parents []string, message string) string {
	entries := map[string]fakeEntry{}
	if len(parents) > 0 {
		for p, e := range r.trees[r.commits[parents[0]].Tree] {
			entries[p] = e
		}
	}
	for p, content := range files {
		entries[p] = fakeEntry{Mode: "100644", SHA: r.putBlob([]byte(content))}
	}
	sig := fakeSig{Name: "Dev", Email: "dev@example.com", Date: "2024-01-01T00:00:00Z"}
	return r.putCommit(fakeCommit{Tree: r.putTree(entries), Parents: parents, Message: message, Author: sig, Committer: sig})
}

// file reads a path of a commit's tree.
func (r *fakeRepo) file(commit, path string) (string, string, bool) {
	e, ok := r.trees[r.commits[commit].Tree][path]
	if !ok {
		return "", "", false
	}
	return string(r.blobs[e.SHA]), e.Mode, true
}

func (r *fakeRepo) openPulls(head string) []*fakePull {
	var out []*fakePull
	for _, p := range r.pulls {
		if p.State == "open" && p.Head == head {
			out = append(out, p)
		}
	}
	return out
}

// --- HTTP plumbing ---

type authKind int

const (
	authRepo authKind = iota // a token or an installation token
	authApp                  // a JWT signed by the App's key
)

type fakeHandler func(w http.ResponseWriter, r *http.Request, repo *fakeRepo)

// route registers a handler under the API prefix. Every request must carry
// the User-Agent and API version headers and the right credentials; hooks
// simulate a concurrent run (before) and a crash after the step (crash).
func (f *fakeGitHub) route(method, pattern string, auth authKind, h fakeHandler) {
	key := method + " " + pattern
	f.mux.HandleFunc(method+" "+f.prefix+pattern, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, key)
		if r.Header.Get("User-Agent") != "remediator" || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
			writeJSON(w, http.StatusBadRequest, ghError("missing User-Agent or X-GitHub-Api-Version"))
			return
		}
		if !f.authorized(r, auth) {
			writeJSON(w, http.StatusUnauthorized, ghError("Bad credentials"))
			return
		}
		var repo *fakeRepo
		if owner := r.PathValue("owner"); owner != "" {
			if repo = f.repos[owner+"/"+r.PathValue("repo")]; repo == nil {
				writeJSON(w, http.StatusNotFound, ghError("Not Found"))
				return
			}
		}
		if hook := f.before[key]; hook != nil {
			delete(f.before, key)
			hook()
		}
		if f.crash[key] {
			delete(f.crash, key)
			h(httptest.NewRecorder(), r, repo)
			writeJSON(w, http.StatusInternalServerError, ghError("Server Error"))
			return
		}
		h(w, r, repo)
	})
}

func (f *fakeGitHub) authorized(r *http.Request, kind authKind) bool {
	got := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(got, " ")
	if kind == authApp {
		if scheme != "Bearer" || f.appKey == nil {
			return false
		}
		tok, err := jwt.Parse(cred, func(*jwt.Token) (any, error) { return f.appKey, nil }, jwt.WithValidMethods([]string{"RS256"}))
		if err != nil || !tok.Valid {
			return false
		}
		iss, err := tok.Claims.GetIssuer()
		return err == nil && iss == strconv.FormatInt(f.appID, 10)
	}
	if scheme != "Bearer" && scheme != "token" {
		return false
	}
	if f.token != "" {
		return cred == f.token
	}
	return f.instToken != "" && cred == f.instToken
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
func decode(t *testing.T, w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Errorf("fake: %s %s: bad body: %v", r.Method, r.URL.Path, err)
		writeJSON(w, http.StatusBadRequest, ghError("Problems parsing JSON"))
		return false
	}
	return true
}

// --- JSON shapes ---

func (f *fakeGitHub) repoURL(r *fakeRepo) string {
	return f.api.URL + f.prefix + "/repos/" + r.owner + "/" + r.name
}

func (f *fakeGitHub) refJSON(r *fakeRepo, ref string) map[string]any {
	return map[string]any{
		"ref": ref, "node_id": "REF_" + ref, "url": f.repoURL(r) + "/git/" + ref,
		"object": map[string]any{"sha": r.refs[ref], "type": "commit", "url": f.repoURL(r) + "/git/commits/" + r.refs[ref]},
	}
}

func (f *fakeGitHub) commitJSON(r *fakeRepo, sha string) map[string]any {
	c := r.commits[sha]
	parents := []map[string]any{}
	for _, p := range c.Parents {
		parents = append(parents, map[string]any{"sha": p, "url": f.repoURL(r) + "/git/commits/" + p, "html_url": "https://github.example/commit/" + p})
	}
	sig := func(s fakeSig) map[string]any {
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

func (f *fakeGitHub) pullJSON(r *fakeRepo, p *fakePull) map[string]any {
	labels := []map[string]any{}
	for i, l := range p.Labels {
		labels = append(labels, map[string]any{"id": i + 1, "name": l, "color": "ededed"})
	}
	reviewers := []map[string]any{}
	for i, u := range p.Reviewers {
		reviewers = append(reviewers, map[string]any{"login": u, "id": 100 + i, "type": "User"})
	}
	repo := map[string]any{"name": r.name, "full_name": r.owner + "/" + r.name, "owner": map[string]any{"login": r.owner}}
	return map[string]any{
		"url": f.repoURL(r) + "/pulls/" + strconv.Itoa(p.Number), "id": 5000 + p.Number, "node_id": "PR_" + strconv.Itoa(p.Number),
		"html_url": "https://github.example/" + r.owner + "/" + r.name + "/pull/" + strconv.Itoa(p.Number),
		"number":   p.Number, "state": p.State, "title": p.Title, "body": p.Body, "draft": p.Draft,
		"labels": labels, "requested_reviewers": reviewers, "user": map[string]any{"login": "remediator[bot]"},
		"head": map[string]any{"label": r.owner + ":" + p.Head, "ref": p.Head, "sha": r.refs["refs/heads/"+p.Head], "repo": repo},
		"base": map[string]any{"label": r.owner + ":" + p.Base, "ref": p.Base, "sha": r.refs["refs/heads/"+p.Base], "repo": repo},
	}
}

// --- endpoints ---

func (f *fakeGitHub) routes() {
	f.route("GET", "/repos/{owner}/{repo}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": 1, "node_id": "R_1", "name": r.name, "full_name": r.owner + "/" + r.name, "private": true,
			"owner": map[string]any{"login": r.owner, "type": "Organization"}, "default_branch": r.defaultBranch,
		})
	})
	f.route("GET", "/repos/{owner}/{repo}/git/ref/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		ref := "refs/" + req.PathValue("ref")
		if _, ok := r.refs[ref]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		writeJSON(w, http.StatusOK, f.refJSON(r, ref))
	})
	f.route("POST", "/repos/{owner}/{repo}/git/refs", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		var body struct{ Ref, SHA string }
		if !decode(f.t, w, req, &body) {
			return
		}
		switch _, exists := r.refs[body.Ref]; {
		case !strings.HasPrefix(body.Ref, "refs/") || strings.Count(body.Ref, "/") < 2:
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Reference name is invalid"))
		case r.commits[body.SHA].Tree == "":
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Object does not exist"))
		case exists:
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Reference already exists"))
		default:
			r.refs[body.Ref] = body.SHA
			writeJSON(w, http.StatusCreated, f.refJSON(r, body.Ref))
		}
	})
	f.route("PATCH", "/repos/{owner}/{repo}/git/refs/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		ref := "refs/" + req.PathValue("ref")
		var body struct {
			SHA   string
			Force bool
		}
		if !decode(f.t, w, req, &body) {
			return
		}
		old, exists := r.refs[ref]
		switch {
		case !exists:
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Reference does not exist"))
		case r.commits[body.SHA].Tree == "":
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Object does not exist"))
		case !body.Force && !r.descends(body.SHA, old):
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Update is not a fast forward"))
		default:
			r.refs[ref] = body.SHA
			writeJSON(w, http.StatusOK, f.refJSON(r, ref))
		}
	})
	f.route("GET", "/repos/{owner}/{repo}/git/commits/{sha}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		sha := strings.ToLower(req.PathValue("sha"))
		if _, ok := r.commits[sha]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		writeJSON(w, http.StatusOK, f.commitJSON(r, sha))
	})
	f.route("POST", "/repos/{owner}/{repo}/git/blobs", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		var body struct{ Content, Encoding string }
		if !decode(f.t, w, req, &body) {
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
		sha := r.putBlob(content)
		writeJSON(w, http.StatusCreated, map[string]any{"url": f.repoURL(r) + "/git/blobs/" + sha, "sha": sha})
	})
	f.route("POST", "/repos/{owner}/{repo}/git/trees", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
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
		if !decode(f.t, w, req, &body) {
			return
		}
		entries := map[string]fakeEntry{}
		if body.BaseTree != "" {
			base, ok := r.trees[body.BaseTree]
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
				if _, ok := r.blobs[sha]; !ok || e.Type != "blob" || (e.Mode != "100644" && e.Mode != "100755") {
					writeJSON(w, http.StatusUnprocessableEntity, ghError("GitRPC::BadObjectState"))
					return
				}
				entries[e.Path] = fakeEntry{Mode: e.Mode, SHA: sha}
			case e.Content != nil:
				entries[e.Path] = fakeEntry{Mode: e.Mode, SHA: r.putBlob([]byte(*e.Content))}
			default:
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Must supply either tree.sha or tree.content"))
				return
			}
		}
		sha := r.putTree(entries)
		list := []map[string]any{}
		for p, e := range entries {
			list = append(list, map[string]any{"path": p, "mode": e.Mode, "type": "blob", "sha": e.SHA, "size": len(r.blobs[e.SHA])})
		}
		writeJSON(w, http.StatusCreated, map[string]any{"sha": sha, "url": f.repoURL(r) + "/git/trees/" + sha, "tree": list, "truncated": false})
	})
	f.route("POST", "/repos/{owner}/{repo}/git/commits", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		var body struct {
			Message   string   `json:"message"`
			Tree      string   `json:"tree"`
			Parents   []string `json:"parents"`
			Author    *fakeSig `json:"author"`
			Committer *fakeSig `json:"committer"`
		}
		if !decode(f.t, w, req, &body) {
			return
		}
		if _, ok := r.trees[body.Tree]; !ok {
			writeJSON(w, http.StatusUnprocessableEntity, ghError("Tree SHA does not exist"))
			return
		}
		for _, p := range body.Parents {
			if _, ok := r.commits[p]; !ok {
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Parent SHA does not exist or is not a commit object"))
				return
			}
		}
		// Without an author GitHub uses the caller and the current time.
		now := fakeSig{Name: "remediator[bot]", Email: "bot@example.com", Date: time.Now().UTC().Format(time.RFC3339Nano)}
		author, committer := now, now
		if body.Author != nil {
			author = *body.Author
		}
		if body.Committer != nil {
			committer = *body.Committer
		}
		sha := r.putCommit(fakeCommit{Tree: body.Tree, Parents: body.Parents, Message: body.Message, Author: author, Committer: committer})
		writeJSON(w, http.StatusCreated, f.commitJSON(r, sha))
	})
	f.route("GET", "/repos/{owner}/{repo}/commits/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		ref := req.PathValue("ref")
		sha := r.refs["refs/heads/"+ref]
		if sha == "" {
			sha = r.refs["refs/tags/"+ref]
		}
		if sha == "" && len(ref) >= 7 {
			for c := range r.commits {
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
			f.t.Errorf("fake: commits/{ref} without the sha media type")
		}
		w.Header().Set("Content-Type", "application/vnd.github.sha; charset=utf-8")
		_, _ = io.WriteString(w, sha)
	})
	f.route("GET", "/repos/{owner}/{repo}/tarball/{ref...}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		sha := req.PathValue("ref")
		if _, ok := r.commits[sha]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		w.Header().Set("Location", f.dl.URL+"/codeload/"+r.owner+"/"+r.name+"/legacy.tar.gz/"+sha+"?token=CODELOADSECRET")
		w.WriteHeader(http.StatusFound)
	})
	f.route("GET", "/repos/{owner}/{repo}/actions/runs/{run}/attempts/{attempt}/jobs", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		f.jobsPage(w, req, r)
	})
	f.route("GET", "/repos/{owner}/{repo}/actions/runs/{run}/jobs", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		f.jobsPage(w, req, r)
	})
	f.route("GET", "/repos/{owner}/{repo}/actions/jobs/{job}/logs", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		id, _ := strconv.ParseInt(req.PathValue("job"), 10, 64)
		if _, ok := f.logs[id]; !ok {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		w.Header().Set("Location", f.dl.URL+"/logs/"+strconv.FormatInt(id, 10)+"?sig=BLOBSECRET&se=2099-01-01")
		w.WriteHeader(http.StatusFound)
	})
	f.route("GET", "/repos/{owner}/{repo}/pulls", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		q := req.URL.Query()
		owner, branch, _ := strings.Cut(q.Get("head"), ":")
		state := q.Get("state")
		out := []map[string]any{}
		for _, p := range r.pulls {
			if (state == "" || state == "open") && p.State != "open" {
				continue
			}
			if q.Get("head") != "" && (owner != r.owner || p.Head != branch) {
				continue
			}
			out = append(out, f.pullJSON(r, p))
		}
		writeJSON(w, http.StatusOK, out)
	})
	f.route("POST", "/repos/{owner}/{repo}/pulls", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		var body struct {
			Title, Head, Base, Body string
			Draft                   bool
		}
		if !decode(f.t, w, req, &body) {
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
		case r.refs["refs/heads/"+body.Head] == "":
			invalid("head", "invalid", "")
		case r.refs["refs/heads/"+body.Base] == "":
			invalid("base", "invalid", "")
		default:
			for _, p := range r.openPulls(body.Head) {
				if p.Base == body.Base {
					invalid("", "custom", "A pull request already exists for "+r.owner+":"+body.Head+".")
					return
				}
			}
			p := &fakePull{Number: len(r.pulls) + 1, Title: body.Title, Body: body.Body, Head: body.Head, Base: body.Base, State: "open", Draft: body.Draft}
			r.pulls = append(r.pulls, p)
			writeJSON(w, http.StatusCreated, f.pullJSON(r, p))
		}
	})
	f.route("PATCH", "/repos/{owner}/{repo}/pulls/{number}", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		p := r.pull(req.PathValue("number"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		var body struct{ Title, Body *string }
		if !decode(f.t, w, req, &body) {
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
	f.route("POST", "/repos/{owner}/{repo}/issues/{number}/labels", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		p := r.pull(req.PathValue("number"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		// GitHub takes {"labels": [...]} or the bare array (what go-github sends).
		var raw json.RawMessage
		if !decode(f.t, w, req, &raw) {
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
	f.route("POST", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers", authRepo, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		p := r.pull(req.PathValue("number"))
		if p == nil {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		var body struct{ Reviewers []string }
		if !decode(f.t, w, req, &body) {
			return
		}
		for _, u := range body.Reviewers {
			if !r.collaborators[u] {
				writeJSON(w, http.StatusUnprocessableEntity, ghError("Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the "+r.owner+"/"+r.name+" repository."))
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
	f.route("GET", "/repos/{owner}/{repo}/installation", authApp, func(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
		f.installGETs++
		writeJSON(w, http.StatusOK, map[string]any{
			"id": f.installationID, "app_id": f.appID, "app_slug": "remediator", "target_type": "Organization",
			"account":              map[string]any{"login": r.owner, "type": "Organization"},
			"access_tokens_url":    f.api.URL + f.prefix + "/app/installations/" + strconv.FormatInt(f.installationID, 10) + "/access_tokens",
			"repository_selection": "selected", "permissions": map[string]any{"contents": "write", "pull_requests": "write"},
		})
	})
	f.route("POST", "/app/installations/{id}/access_tokens", authApp, func(w http.ResponseWriter, req *http.Request, _ *fakeRepo) {
		f.tokenPOSTs++
		if req.PathValue("id") != strconv.FormatInt(f.installationID, 10) {
			writeJSON(w, http.StatusNotFound, ghError("Not Found"))
			return
		}
		if f.tokenStatus != 0 {
			writeJSON(w, f.tokenStatus, ghError("Bad credentials"))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{
			"token": f.instToken, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"permissions": map[string]any{"contents": "write"}, "repository_selection": "selected",
		})
	})
}

func (r *fakeRepo) pull(number string) *fakePull {
	n, _ := strconv.Atoi(number)
	if n < 1 || n > len(r.pulls) {
		return nil
	}
	return r.pulls[n-1]
}

// descends reports whether sha has ancestor old.
func (r *fakeRepo) descends(sha, old string) bool {
	for seen := map[string]bool{}; sha != "" && !seen[sha]; {
		if sha == old {
			return true
		}
		seen[sha] = true
		parents := r.commits[sha].Parents
		if len(parents) == 0 {
			return false
		}
		sha = parents[0]
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jobsPage pages r.jobs two at a time (GitHub pages by up to 100) with the
// Link header GitHub sends.
func (f *fakeGitHub) jobsPage(w http.ResponseWriter, req *http.Request, r *fakeRepo) {
	const perPage = 2
	page, _ := strconv.Atoi(req.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	last := (len(r.jobs) + perPage - 1) / perPage
	lo, hi := min((page-1)*perPage, len(r.jobs)), min(page*perPage, len(r.jobs))
	link := func(p int, rel string) string {
		u := *req.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s%s>; rel=%q", f.api.URL, u.String(), rel)
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
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(r.jobs), "jobs": r.jobs[lo:hi]})
}

func fakeJob(id int64, name, conclusion string, steps ...[2]string) map[string]any {
	list := []map[string]any{}
	for i, s := range steps {
		list = append(list, map[string]any{
			"name": s[0], "status": "completed", "conclusion": s[1], "number": i + 1,
			"started_at": "2024-05-01T10:00:00Z", "completed_at": "2024-05-01T10:00:05Z",
		})
	}
	return map[string]any{
		"id": id, "run_id": 7, "run_attempt": 2, "node_id": "J_" + strconv.FormatInt(id, 10), "name": name,
		"head_sha": strings.Repeat("a", 40), "status": "completed", "conclusion": conclusion,
		"started_at": "2024-05-01T10:00:00Z", "completed_at": "2024-05-01T10:01:00Z", "steps": list,
		"html_url": "https://github.example/octo/widgets/actions/runs/7/job/" + strconv.FormatInt(id, 10),
	}
}

// download plays codeload and the log blob storage: no credentials are
// expected, pre-signed query strings are.
func (f *fakeGitHub) download(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	f.dlAuth = append(f.dlAuth, req.Header.Get("Authorization"))
	f.dlRanges = append(f.dlRanges, req.Header.Get("Range"))
	chunked, noRanges := f.dlChunked, f.dlNoRanges
	var body []byte
	var ok bool
	switch {
	case strings.HasPrefix(req.URL.Path, "/codeload/") && req.URL.Query().Get("token") == "CODELOADSECRET":
		sha := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
		body, ok = f.tarballs[sha]
	case strings.HasPrefix(req.URL.Path, "/logs/") && req.URL.Query().Get("sig") == "BLOBSECRET":
		id, _ := strconv.ParseInt(strings.TrimPrefix(req.URL.Path, "/logs/"), 10, 64)
		var s string
		s, ok = f.logs[id]
		ok = ok && !f.missingLog[id]
		body = []byte(s)
	}
	f.mu.Unlock()
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
