// Package gitlabtest is a fake GitLab for tests: it speaks the subset of
// GitLab's REST v4 API the service's client uses, in GitLab's wire format
// (URL-encoded project and ref path segments, Private-Token authentication,
// offset pagination headers, JSON error bodies), for one project. Its state
// is kept for inspection, so tests can crash and re-run against it.
//
// Everything, archives and job traces included, is served by the API's
// host:port, as GitLab does.
//
// Only tests import this package.
package gitlabtest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"remediator/internal/forge/forgetest"
)

// DefaultToken is the token a new fake expects in Private-Token.
const DefaultToken = "glpat-gitlabtest-token"

// Server is the fake. Its exported fields are its state: a test may read
// and set them directly while no request is in flight; while the service
// under test runs, use the methods, which take Mu.
type Server struct {
	T   testing.TB
	srv *httptest.Server

	// Mu guards everything below; every handler holds it.
	Mu    sync.Mutex
	Token string

	Project  Project
	Branches map[string]string // name → commit id
	Tags     map[string]string
	Refs     map[string]string // other refs by full name ("refs/merge-requests/7/head") → commit id
	Commits  map[string]*Commit
	MRs      []*MR
	Users    map[string]int64 // username → id
	Members  map[int64]bool   // users that may be requested as reviewers
	Jobs     map[int64][]Job  // pipeline id → its jobs, oldest first
	Traces   map[int64]string // job id → trace
	// Archive, when set, is served for every commit instead of a tar.gz of
	// the commit's files.
	Archive []byte
	Chunked bool // send the archive without Content-Length
	PerPage int  // server-side cap, to force pagination

	// Hooks run (once, under the lock) before a create, to play a
	// concurrent run of the same remediation winning the race.
	BeforeCreateCommit func()
	BeforeCreateMR     func()

	CommitCreates, BranchDeletes, MRCreates, MRUpdates int
	// Requests lists every request as "METHOD escaped-path?query".
	Requests []string
	seq      int
}

// Project is the one project the fake serves.
type Project struct {
	ID            int64
	Path          string
	DefaultBranch string
}

// File is a file's content and executable bit.
type File struct {
	Content []byte
	Exec    bool
}

// Commit is a commit with its whole tree.
type Commit struct {
	ID, Message, AuthorName, AuthorEmail string
	Parents                              []string
	Files                                map[string]File
	Changed                              []string
}

// MR is a merge request.
type MR struct {
	IID                        int64
	SourceProjectID            int64
	SourceBranch, TargetBranch string
	Title, Description, State  string
	Labels                     []string
	Reviewers                  []int64
}

// Job is a pipeline job.
type Job struct {
	ID                  int64
	Name, Stage, Status string
	AllowFailure        bool
}

// New starts a fake on 127.0.0.1 serving project "group/sub/project" (id
// 42, default branch "main") with no commits yet, expecting DefaultToken;
// it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	f := &Server{
		T:        t,
		Token:    DefaultToken,
		Project:  Project{ID: 42, Path: "group/sub/project", DefaultBranch: "main"},
		Branches: map[string]string{},
		Tags:     map[string]string{},
		Refs:     map[string]string{},
		Commits:  map[string]*Commit{},
		Users:    map[string]int64{},
		Members:  map[int64]bool{},
		Jobs:     map[int64][]Job{},
		Traces:   map[int64]string{},
		PerPage:  100,
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the instance's base URL (GITLAB_URL); the API is under /api/v4.
func (f *Server) URL() string { return f.srv.URL }

// Client is an HTTP client for the fake.
func (f *Server) Client() *http.Client { return f.srv.Client() }

// SeedRepository names the project path (e.g. "group/project") and its
// default branch, and commits files on that branch (on top of its head if
// it exists); it returns the 40-hex commit id. The archive endpoint serves
// those files.
func (f *Server) SeedRepository(path, defaultBranch string, files map[string]string) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Project.Path, f.Project.DefaultBranch = path, defaultBranch
	change := map[string]*File{}
	for p, c := range files {
		change[p] = &File{Content: []byte(c)}
	}
	id := f.AddCommit(f.Branches[defaultBranch], "seed "+path, "Dev", "dev@example.com", change)
	f.Branches[defaultBranch] = id
	return id
}

// SeedPipeline records a pipeline's jobs (oldest first) and the traces of
// those named in traces.
func (f *Server) SeedPipeline(pipelineID int64, jobs []Job, traces map[int64]string) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Jobs[pipelineID] = append([]Job(nil), jobs...)
	for id, tr := range traces {
		f.Traces[id] = tr
	}
}

// SeedCommit records a commit the way GitLab would have made it, for
// pre-seeding the state a crashed run (or someone else) left behind; no
// branch moves.
func (f *Server) SeedCommit(parent, message string, change map[string]*File) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.AddCommit(parent, message, "", "", change)
}

// AddCommit records a commit on parent; change maps path → new state, nil
// deletes. It takes no lock (hooks run under it).
func (f *Server) AddCommit(parent, message, author, email string, change map[string]*File) string {
	files := map[string]File{}
	var parents []string
	if parent != "" {
		parents = []string{parent}
		for p, v := range f.Commits[parent].Files {
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
	f.Commits[id] = &Commit{ID: id, Message: message, AuthorName: author, AuthorEmail: email, Parents: parents, Files: files, Changed: changed}
	return id
}

// SeedMR records a merge request (opened, from the project unless said).
func (f *Server) SeedMR(mr MR) *MR {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.AddMR(mr)
}

// AddMR is SeedMR without the lock.
func (f *Server) AddMR(mr MR) *MR {
	mr.IID = int64(len(f.MRs) + 1)
	if mr.State == "" {
		mr.State = "opened"
	}
	if mr.SourceProjectID == 0 {
		mr.SourceProjectID = f.Project.ID
	}
	f.MRs = append(f.MRs, &mr)
	return &mr
}

// OpenMRs are the open merge requests from the project itself.
func (f *Server) OpenMRs() []*MR {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var out []*MR
	for _, mr := range f.MRs {
		if mr.State == "opened" && mr.SourceProjectID == f.Project.ID {
			out = append(out, mr)
		}
	}
	return out
}

// MergeRequests returns copies of every merge request, in order.
func (f *Server) MergeRequests() []MR {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	out := make([]MR, 0, len(f.MRs))
	for _, mr := range f.MRs {
		c := *mr
		c.Labels = append([]string(nil), mr.Labels...)
		c.Reviewers = append([]int64(nil), mr.Reviewers...)
		out = append(out, c)
	}
	return out
}

// Head is the commit a branch points at, or nil.
func (f *Server) Head(branch string) *Commit {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.Commits[f.Branches[branch]]
}

// FileAt reads path at ref (a branch, a tag or a commit id).
func (f *Server) FileAt(ref, path string) (string, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	c := f.resolve(ref)
	if c == nil {
		return "", false
	}
	file, ok := c.Files[path]
	return string(file.Content), ok
}

// Files is the tree at ref: path → content; nil when ref names nothing.
func (f *Server) Files(ref string) map[string]string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	c := f.resolve(ref)
	if c == nil {
		return nil
	}
	out := map[string]string{}
	for p, file := range c.Files {
		out[p] = string(file.Content)
	}
	return out
}

// ResetCounters zeroes the create/update counters and the request log.
func (f *Server) ResetCounters() {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.CommitCreates, f.BranchDeletes, f.MRCreates, f.MRUpdates = 0, 0, 0, 0
	f.Requests = nil
}

// SawRequest reports whether a request started with prefix ("GET
// /api/v4/projects/…").
func (f *Server) SawRequest(prefix string) bool {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	for _, r := range f.Requests {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// tarball is the archive GitLab serves for a commit: a pax global header
// naming the commit, then everything under "<project>-<sha>-<sha>/".
func (f *Server) tarball(c *Commit) ([]byte, error) {
	name := f.Project.Path[strings.LastIndex(f.Project.Path, "/")+1:]
	files := map[string]forgetest.Entry{}
	for p, file := range c.Files {
		mode := "100644"
		if file.Exec {
			mode = "100755"
		}
		files[p] = forgetest.Entry{Mode: mode, Content: file.Content}
	}
	return forgetest.TarGz(name+"-"+c.ID+"-"+c.ID+"/", c.ID, files)
}
