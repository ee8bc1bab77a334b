// Package githubtest is a fake GitHub for tests: it speaks GitHub's REST wire
// format for the endpoints the service's client uses, over an in-memory git
// object store whose shas are content hashes (so a re-run that writes the
// same objects gets the same shas, as on GitHub). It keeps its state for
// inspection and can play a crash or a concurrent run at any step.
//
// The downloads GitHub redirects to (codeload archives, log blob storage)
// are served by the same server, on paths outside the API, so a client
// that trusts only the configured API host:port can follow them. They
// carry pre-signed query strings and expect no credentials.
//
// Only tests import this package.
package githubtest

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"remediator/internal/forge/forgetest"
)

// Paths of the download host (on the API's host:port) and the secrets the
// redirects carry.
const (
	codeloadPath = "/_download/codeload/"
	logsPath     = "/_download/logs/"
	codeloadSig  = "CODELOADSECRET"
	logSig       = "BLOBSECRET"
)

// Server is the fake. Its exported fields are its state: a test may read
// and set them directly while no request is in flight; while the service
// under test runs, use the methods, which take Mu.
type Server struct {
	T      testing.TB
	Prefix string // "" or "/api/v3" (Enterprise Server)

	srv *httptest.Server
	mux *http.ServeMux

	// Mu guards everything below; every handler holds it.
	Mu sync.Mutex

	// Token mode: the token every API request must carry.
	Token string
	// App mode: requests are signed by the App's key, installation tokens
	// are minted by access_tokens.
	AppID          int64
	AppKey         *rsa.PublicKey
	InstallationID int64
	InstToken      string
	TokenPOSTs     int
	InstallGETs    int
	TokenStatus    int // when set, access_tokens answers it

	repos map[string]*Repo
	// Calls lists the API requests as "METHOD pattern", in order.
	Calls []string

	// Crash: apply the next such request, then answer 500 (the process
	// "died" after the step took effect).
	Crash map[string]bool
	// Before: run once before the next such request (a concurrent run).
	Before map[string]func()

	DownloadAuth     []string // Authorization headers the download host saw
	DownloadRanges   []string // Range headers the download host saw
	DownloadPaths    []string // paths the download host served (or refused)
	Logs             map[int64]string
	Tarballs         map[string][]byte // sha → archive served instead of the commit's tree
	DownloadChunked  bool              // the download host hides Content-Length
	DownloadNoRanges bool              // the download host ignores Range
	MissingLog       map[int64]bool    // the log has expired from blob storage
	// TruncatedTrees: git/trees answers "truncated": true and leaves out
	// its last entry, as GitHub does for a tree too large to list.
	TruncatedTrees bool
}

// Repo is one repository's state.
type Repo struct {
	Owner, Name   string
	DefaultBranch string
	Refs          map[string]string // "refs/heads/x" → sha
	Commits       map[string]Commit
	Trees         map[string]map[string]Entry // flat: path → entry
	Blobs         map[string][]byte
	Pulls         []*Pull
	// Runs are the jobs of workflow runs by run id; Jobs answers for any
	// other run (nil: such a run does not exist).
	Runs          map[int64][]map[string]any
	Jobs          []map[string]any
	Collaborators map[string]bool

	// dirs are the subdirectories git/trees has listed: tree id → where.
	dirs map[string]dirRef
}

// Commit is a git commit of the fake.
type Commit struct {
	Tree      string
	Parents   []string
	Message   string
	Author    Sig
	Committer Sig
}

// Sig is a commit's author or committer.
type Sig struct{ Name, Email, Date string }

// Entry is one file of a tree: its mode ("100644", "100755", "120000" for
// a symbolic link) and blob; mode "160000" is a submodule, SHA its commit.
type Entry struct{ Mode, SHA string }

// Pull is a pull request.
type Pull struct {
	Number      int
	Title, Body string
	Head, Base  string
	State       string
	Draft       bool
	Labels      []string
	Reviewers   []string
}

// New starts an empty fake GitHub.com-style API on 127.0.0.1; it stops
// when the test ends.
func New(t testing.TB) *Server { return newServer(t, "") }

// NewEnterprise starts an empty fake GitHub Enterprise Server, whose API
// lives under /api/v3.
func NewEnterprise(t testing.TB) *Server { return newServer(t, "/api/v3") }

func newServer(t testing.TB, prefix string) *Server {
	t.Helper()
	f := &Server{
		T: t, Prefix: prefix, mux: http.NewServeMux(),
		repos: map[string]*Repo{}, Crash: map[string]bool{}, Before: map[string]func(){},
		Logs: map[int64]string{}, Tarballs: map[string][]byte{}, MissingLog: map[int64]bool{},
	}
	f.routes()
	f.mux.HandleFunc("GET "+codeloadPath, f.download)
	f.mux.HandleFunc("GET "+logsPath, f.download)
	f.srv = httptest.NewServer(f.mux)
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the server's root, e.g. "http://127.0.0.1:41234".
func (f *Server) URL() string { return f.srv.URL }

// APIURL is what a client is configured with (GITHUB_API_URL).
func (f *Server) APIURL() string { return f.srv.URL + f.Prefix + "/" }

// AddRepo creates an empty repository (or returns the existing one). The
// caller holds no lock: use it before the service runs, or SeedRepository.
func (f *Server) AddRepo(owner, name, defaultBranch string) *Repo {
	if r := f.repos[owner+"/"+name]; r != nil {
		return r
	}
	r := &Repo{
		Owner: owner, Name: name, DefaultBranch: defaultBranch,
		Refs: map[string]string{}, Commits: map[string]Commit{}, Trees: map[string]map[string]Entry{},
		Blobs: map[string][]byte{}, Runs: map[int64][]map[string]any{}, Collaborators: map[string]bool{},
		dirs: map[string]dirRef{},
	}
	f.repos[owner+"/"+name] = r
	return r
}

// Repo returns a repository, or nil.
func (f *Server) Repo(owner, name string) *Repo { return f.repos[owner+"/"+name] }

// SeedRepository creates owner/name with defaultBranch holding a commit of
// files (on top of the branch's head if the repository exists already) and
// returns the commit's 40-hex sha. The tarball endpoint serves those files.
func (f *Server) SeedRepository(owner, name, defaultBranch string, files map[string]string) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	r := f.AddRepo(owner, name, defaultBranch)
	var parents []string
	if head := r.Refs["refs/heads/"+defaultBranch]; head != "" {
		parents = []string{head}
	}
	sha := r.AddCommit(files, parents, "seed "+owner+"/"+name)
	r.Refs["refs/heads/"+defaultBranch] = sha
	return sha
}

// Step is a step of a CI job.
type Step struct{ Name, Conclusion string }

// Job is a CI job of a workflow run, and its log.
type Job struct {
	ID         int64
	Name       string
	Conclusion string // "failure", "success", "skipped", "cancelled"
	Steps      []Step
	Log        string
}

// SeedRun records the jobs of attempt of workflow run runID on headSHA,
// and their logs (served from the download host).
func (f *Server) SeedRun(owner, name string, runID, attempt int64, headSHA string, jobs ...Job) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	r := f.repos[owner+"/"+name]
	if r == nil {
		panic("githubtest: SeedRun on unknown repository " + owner + "/" + name)
	}
	list := make([]map[string]any, 0, len(jobs))
	for _, j := range jobs {
		list = append(list, JobJSON(owner, name, runID, attempt, headSHA, j))
		f.Logs[j.ID] = j.Log
	}
	r.Runs[runID] = list
}

// JobJSON is a job as the jobs API lists it.
func JobJSON(owner, name string, runID, attempt int64, headSHA string, j Job) map[string]any {
	steps := []map[string]any{}
	for i, s := range j.Steps {
		steps = append(steps, map[string]any{
			"name": s.Name, "status": "completed", "conclusion": s.Conclusion, "number": i + 1,
			"started_at": "2024-05-01T10:00:00Z", "completed_at": "2024-05-01T10:00:05Z",
		})
	}
	var conclusion any = j.Conclusion
	if j.Conclusion == "" {
		conclusion = nil
	}
	return map[string]any{
		"id": j.ID, "run_id": runID, "run_attempt": attempt, "node_id": "J_" + strconv.FormatInt(j.ID, 10), "name": j.Name,
		"head_sha": headSHA, "status": "completed", "conclusion": conclusion,
		"started_at": "2024-05-01T10:00:00Z", "completed_at": "2024-05-01T10:01:00Z", "steps": steps,
		"html_url": fmt.Sprintf("https://github.example/%s/%s/actions/runs/%d/job/%d", owner, name, runID, j.ID),
	}
}

// Count returns how many API requests matched "METHOD pattern", e.g.
// "GET /repos/{owner}/{repo}/actions/jobs/{job}/logs".
func (f *Server) Count(call string) int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	n := 0
	for _, c := range f.Calls {
		if c == call {
			n++
		}
	}
	return n
}

// Downloads returns the paths the download host was asked for.
func (f *Server) Downloads() []string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return append([]string(nil), f.DownloadPaths...)
}

// PullRequests returns copies of a repository's pull requests, in order.
func (f *Server) PullRequests(owner, name string) []Pull {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	r := f.repos[owner+"/"+name]
	if r == nil {
		return nil
	}
	out := make([]Pull, 0, len(r.Pulls))
	for _, p := range r.Pulls {
		c := *p
		c.Labels = append([]string(nil), p.Labels...)
		c.Reviewers = append([]string(nil), p.Reviewers...)
		out = append(out, c)
	}
	return out
}

// Head returns the sha a branch points at, or "".
func (f *Server) Head(owner, name, branch string) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if r := f.repos[owner+"/"+name]; r != nil {
		return r.Refs["refs/heads/"+branch]
	}
	return ""
}

// CommitOf returns a commit of a repository.
func (f *Server) CommitOf(owner, name, sha string) (Commit, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if r := f.repos[owner+"/"+name]; r != nil {
		c, ok := r.Commits[sha]
		return c, ok
	}
	return Commit{}, false
}

// FileAt reads path at ref: a branch, "refs/…", or a commit sha.
func (f *Server) FileAt(owner, name, ref, path string) (string, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	r := f.repos[owner+"/"+name]
	if r == nil {
		return "", false
	}
	sha := ref
	if s, ok := r.Refs[ref]; ok {
		sha = s
	} else if s, ok := r.Refs["refs/heads/"+ref]; ok {
		sha = s
	}
	content, _, ok := r.File(sha, path)
	return content, ok
}

// Files is the tree at ref (a branch, "refs/…" or a commit sha): path →
// content; nil when ref names nothing.
func (f *Server) Files(owner, name, ref string) map[string]string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	r := f.repos[owner+"/"+name]
	if r == nil {
		return nil
	}
	sha := ref
	if s, ok := r.Refs[ref]; ok {
		sha = s
	} else if s, ok := r.Refs["refs/heads/"+ref]; ok {
		sha = s
	}
	c, ok := r.Commits[sha]
	if !ok {
		return nil
	}
	out := map[string]string{}
	for p, e := range r.Trees[c.Tree] {
		out[p] = string(r.Blobs[e.SHA])
	}
	return out
}

// --- git objects ---

// GitHash is git's object id of an object of kind with body.
func GitHash(kind string, body []byte) string { return forgetest.GitHash(kind, body) }

// PutBlob stores a blob and returns its sha.
func (r *Repo) PutBlob(content []byte) string {
	sha := GitHash("blob", content)
	r.Blobs[sha] = append([]byte(nil), content...)
	return sha
}

// PutTree stores a flat tree and returns its sha.
func (r *Repo) PutTree(entries map[string]Entry) string {
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	for _, p := range paths {
		fmt.Fprintf(&b, "%s blob %s\t%s\n", entries[p].Mode, entries[p].SHA, p)
	}
	sha := GitHash("tree", b.Bytes())
	r.Trees[sha] = entries
	return sha
}

func gitDate(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%d +0000", t.Unix())
}

// PutCommit stores a commit and returns its sha.
func (r *Repo) PutCommit(c Commit) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "tree %s\n", c.Tree)
	for _, p := range c.Parents {
		fmt.Fprintf(&b, "parent %s\n", p)
	}
	fmt.Fprintf(&b, "author %s <%s> %s\n", c.Author.Name, c.Author.Email, gitDate(c.Author.Date))
	fmt.Fprintf(&b, "committer %s <%s> %s\n\n%s", c.Committer.Name, c.Committer.Email, gitDate(c.Committer.Date), c.Message)
	sha := GitHash("commit", b.Bytes())
	r.Commits[sha] = c
	return sha
}

// AddCommit stores a commit whose tree is the first parent's with files
// set (mode 100644) and returns its sha; no ref moves. It takes no lock.
func (r *Repo) AddCommit(files map[string]string, parents []string, message string) string {
	entries := map[string]Entry{}
	if len(parents) > 0 {
		for p, e := range r.Trees[r.Commits[parents[0]].Tree] {
			entries[p] = e
		}
	}
	for p, content := range files {
		entries[p] = Entry{Mode: "100644", SHA: r.PutBlob([]byte(content))}
	}
	sig := Sig{Name: "Dev", Email: "dev@example.com", Date: "2024-01-01T00:00:00Z"}
	return r.PutCommit(Commit{Tree: r.PutTree(entries), Parents: parents, Message: message, Author: sig, Committer: sig})
}

// File reads a path of a commit's tree: its content and mode.
func (r *Repo) File(commit, path string) (string, string, bool) {
	e, ok := r.Trees[r.Commits[commit].Tree][path]
	if !ok {
		return "", "", false
	}
	return string(r.Blobs[e.SHA]), e.Mode, true
}

// OpenPulls are the open pull requests from head.
func (r *Repo) OpenPulls(head string) []*Pull {
	var out []*Pull
	for _, p := range r.Pulls {
		if p.State == "open" && p.Head == head {
			out = append(out, p)
		}
	}
	return out
}

func (r *Repo) pull(number string) *Pull {
	n, _ := strconv.Atoi(number)
	if n < 1 || n > len(r.Pulls) {
		return nil
	}
	return r.Pulls[n-1]
}

// Descends reports whether sha has ancestor old (first parents).
func (r *Repo) Descends(sha, old string) bool {
	for seen := map[string]bool{}; sha != "" && !seen[sha]; {
		if sha == old {
			return true
		}
		seen[sha] = true
		parents := r.Commits[sha].Parents
		if len(parents) == 0 {
			return false
		}
		sha = parents[0]
	}
	return false
}

// tarball is the gzipped tar GitHub's codeload serves for a commit: a pax
// global header naming the commit, then everything under
// "<owner>-<repo>-<short sha>/".
func (r *Repo) tarball(sha string) ([]byte, error) {
	c, ok := r.Commits[sha]
	if !ok {
		return nil, fmt.Errorf("no commit %s", sha)
	}
	files := map[string]forgetest.Entry{}
	for p, e := range r.Trees[c.Tree] {
		files[p] = forgetest.Entry{Mode: e.Mode, Content: r.Blobs[e.SHA]}
	}
	return forgetest.TarGz(r.Owner+"-"+r.Name+"-"+sha[:7]+"/", sha, files)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// errorf reports a request GitHub would refuse as a test failure, when the
// test is still running.
func (f *Server) errorf(format string, args ...any) {
	if f.T != nil {
		f.T.Errorf(format, args...)
	}
}
