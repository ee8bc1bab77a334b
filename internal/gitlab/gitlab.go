// Package gitlab is the service's door to GitLab: it reads code and job
// traces and opens draft merge requests, every call context-aware and
// idempotent, with failures mapped once to *APIError so that Temporal's
// retry policy (not this package, not the client library) decides what to
// retry.
package gitlab

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// Config names the GitLab instance and how to reach it. HTTPClient is
// required rather than defaulted because the caller owns egress policy (the
// SSRF guard, timeouts, proxies); this package never builds its own.
type Config struct {
	URL        string       // e.g. "https://gitlab.com" or "https://gitlab.example.com"; the API lives under /api/v4
	Token      string       // a personal, project or group access token
	HTTPClient *http.Client // the guarded client to send every request through
}

// Client wraps the official client with the policies the service relies
// on: no hidden retries, bounded reads, and one error type.
type Client struct {
	gl    *gl.Client
	http  *http.Client
	token string
	now   func() time.Time
}

// New refuses a half-configured client up front so a bad setting fails at
// start-up, not on the first remediation.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("gitlab: token is required")
	}
	if cfg.HTTPClient == nil {
		return nil, errors.New("gitlab: HTTP client is required")
	}
	base := cfg.URL
	if base == "" {
		base = "https://gitlab.com"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// The URL is deliberately not echoed: a pasted URL may carry credentials.
		return nil, errors.New("gitlab: URL must be an http(s) base URL without credentials, query or fragment")
	}
	c := &Client{http: cfg.HTTPClient, token: cfg.Token, now: time.Now}
	c.gl, err = gl.NewClient(cfg.Token,
		gl.WithBaseURL(base),
		gl.WithHTTPClient(cfg.HTTPClient),
		// Retries belong to the activity's retry policy: one place decides,
		// and a retry inside an activity attempt hides throttling from it.
		gl.WithoutRetries(),
		gl.WithCustomRetryMax(0),
	)
	if err != nil {
		return nil, c.redactErr(fmt.Errorf("gitlab: %w", err))
	}
	return c, nil
}

var commitIDPattern = regexp.MustCompile(`^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`)

// Resolve pins a ref to a commit so that everything after it (archive, fix,
// commit) works on one immutable snapshot. isBranch tells the caller whether
// the ref can receive a merge request; tags and raw SHAs cannot.
func (c *Client) Resolve(ctx context.Context, project, ref string) (sha, defaultBranch string, isBranch bool, err error) {
	p, resp, err := c.gl.Projects.GetProject(project, nil, gl.WithContext(ctx))
	if err != nil {
		return "", "", false, c.apiErr("get project", resp, err)
	}
	defaultBranch = p.DefaultBranch
	if ref == "" {
		if defaultBranch == "" {
			return "", "", false, &APIError{Status: http.StatusNotFound, Message: "resolve: project has no default branch (empty repository)"}
		}
		ref = defaultBranch
	}
	if !commitIDPattern.MatchString(ref) {
		b, resp, err := c.gl.Branches.GetBranch(project, ref, gl.WithContext(ctx))
		if err == nil && b.Commit != nil && b.Commit.ID != "" {
			return b.Commit.ID, defaultBranch, true, nil
		}
		if err = c.apiErr("get branch", resp, err); err != nil && !isNotFound(err) {
			return "", "", false, err
		}
	}
	cm, resp, err := c.gl.Commits.GetCommit(project, ref, nil, gl.WithContext(ctx))
	if err != nil {
		return "", "", false, c.apiErr("get commit", resp, err)
	}
	return cm.ID, defaultBranch, false, nil
}

// Archive streams the repository at sha as tar.gz. The library's Archive
// buffers the whole body in memory, so the request is built by the library
// (URL, encoding) but sent here, and the body is cut off after max bytes:
// a repository larger than the caller budgeted for is refused, not
// truncated.
func (c *Client) Archive(ctx context.Context, project, sha string, max int64) (io.ReadCloser, error) {
	if sha == "" || max <= 0 {
		return nil, &APIError{Status: http.StatusBadRequest, Message: "archive: sha and a positive size limit are required"}
	}
	path := "projects/" + gl.PathEscape(project) + "/repository/archive.tar.gz"
	resp, err := c.stream(ctx, "get archive", path, &gl.ArchiveOptions{SHA: gl.Ptr(sha)})
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > max {
		_ = resp.Body.Close()
		return nil, tooLarge(max)
	}
	return &cappedBody{rc: resp.Body, left: max, max: max}, nil
}

// tooLarge is a permanent failure: the same archive will be as large on
// every retry.
func tooLarge(max int64) error {
	return &APIError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("archive: larger than the %d-byte limit", max)}
}

// cappedBody fails the read that crosses the limit instead of silently
// ending the stream, so a truncated tarball is never mistaken for a whole one.
type cappedBody struct {
	rc        io.ReadCloser
	left, max int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, tooLarge(b.max)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), -1
		return n, tooLarge(b.max)
	}
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// maxErrorBody bounds how much of an error response is read: the library
// reads error bodies whole, and a hostile or broken server can send
// gigabytes.
const maxErrorBody = 64 << 10

// stream sends a GET whose body the caller consumes incrementally. Only
// endpoints returning unbounded bodies (archives, traces) go this way.
func (c *Client) stream(ctx context.Context, op, path string, opt any) (*http.Response, error) {
	req, err := c.gl.NewRequest(http.MethodGet, path, opt, []gl.RequestOptionFunc{gl.WithContext(ctx)})
	if err != nil {
		return nil, c.redactErr(fmt.Errorf("gitlab: %s: %w", op, err))
	}
	req.Header.Set(gl.AccessTokenHeaderName, c.token)
	resp, err := c.http.Do(req.Request)
	if err != nil {
		return nil, c.apiErr(op, nil, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	body := resp.Body
	defer body.Close()
	resp.Body = io.NopCloser(io.LimitReader(body, maxErrorBody))
	err = gl.CheckResponse(resp)
	if err == nil { // a 304 or similar: not a body we can use
		err = &gl.ErrorResponse{Response: resp, Message: resp.Status}
	}
	return nil, c.apiErr(op, &gl.Response{Response: resp}, err)
}

// FailedJob is one job that made the pipeline fail, with the end of its log:
// the error is almost always in the last lines, and the whole trace can be
// hundreds of megabytes.
type FailedJob struct {
	ID    int64
	Name  string
	Stage string
	Log   string // the trace's last ≤ maxLog bytes, starting on a line boundary
}

// FailedJobs lists the jobs that failed a pipeline with a bounded tail of
// each trace. Retried attempts (GitLab hides them by default) and
// allow_failure jobs are left out because they did not fail the pipeline.
// Jobs come back in the order they were created.
func (c *Client) FailedJobs(ctx context.Context, project string, pipelineID int64, maxLog int) ([]FailedJob, error) {
	opt := &gl.ListJobsOptions{
		ListOptions: gl.ListOptions{PerPage: 100, Page: 1},
		Scope:       &[]gl.BuildStateValue{gl.Failed},
	}
	var out []FailedJob
	for {
		jobs, resp, err := c.gl.Jobs.ListPipelineJobs(project, pipelineID, opt, gl.WithContext(ctx))
		if err != nil {
			return nil, c.apiErr("list pipeline jobs", resp, err)
		}
		for _, j := range jobs {
			if j == nil || j.Status != string(gl.Failed) || j.AllowFailure {
				continue
			}
			out = append(out, FailedJob{ID: j.ID, Name: j.Name, Stage: j.Stage})
		}
		if resp.NextPage <= opt.Page {
			break
		}
		opt.Page = resp.NextPage
	}
	slices.SortFunc(out, func(a, b FailedJob) int { return cmp.Compare(a.ID, b.ID) })
	if maxLog <= 0 {
		return out, nil
	}
	for i := range out {
		log, err := c.traceTail(ctx, project, out[i].ID, maxLog)
		if err != nil {
			return nil, err
		}
		out[i].Log = log
	}
	return out, nil
}

// traceTail streams a job trace keeping only its end, so memory stays
// bounded however long the job logged. An erased or missing trace is an
// empty log, not a failure of the whole listing.
func (c *Client) traceTail(ctx context.Context, project string, jobID int64, maxLog int) (string, error) {
	path := fmt.Sprintf("projects/%s/jobs/%d/trace", gl.PathEscape(project), jobID)
	resp, err := c.stream(ctx, "get job trace", path, nil)
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	t := &tail{keep: maxLog + 1}
	if _, err := io.Copy(t, resp.Body); err != nil {
		return "", c.apiErr("read job trace", nil, err)
	}
	return t.lines(maxLog), nil
}

// tail keeps the last keep bytes written to it.
type tail struct {
	buf   []byte
	keep  int
	total int64
}

func (t *tail) Write(p []byte) (int, error) {
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.keep {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.keep:]...)
	}
	return len(p), nil
}

// lines returns at most max bytes ending the stream, starting at a line
// start so that the reader never sees half a line. One byte more than max is
// kept so that a window beginning exactly at a line start is recognised. A
// single line longer than max is cut at a character boundary rather than
// dropped: half an error message beats none.
func (t *tail) lines(max int) string {
	b := t.buf
	if len(b) > t.keep {
		b = b[len(b)-t.keep:]
	}
	if len(b) <= max {
		return string(b)
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return string(b[i+1:])
	}
	b = b[1:]
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return string(b)
}
