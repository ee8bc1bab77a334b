package github

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v88/github"
)

// FailedJob is the evidence a fixer gets from one failed CI job.
type FailedJob struct {
	ID         int64
	Name       string
	Step       string // the first failed step, "" when GitHub names none
	Conclusion string
	// Log is at most maxLog bytes of the job's log, cut on a line boundary:
	// what leads up to (and just follows) the first "##[error]" line, or
	// the log's tail when there is none.
	Log string
}

const (
	// errorMarker starts the lines GitHub Actions prints for a failure.
	errorMarker = "##[error]"
	// linesAfterError keep the context GitHub prints right after the first
	// error (the exit code, the next errors) in the excerpt.
	linesAfterError = 3
	// logScanLimit is how much of a log is read looking for the first
	// error before asking the storage host for just the tail.
	logScanLimit = 32 << 20
	// maxJobPages stops a pagination loop that never ends (100 jobs a page).
	maxJobPages = 50
)

// FailedJobs lists the jobs of one attempt of a workflow run that failed
// (attempt 0: the latest attempt), with excerpts of their logs when maxLog
// is positive. A log that has expired or was deleted leaves Log empty
// rather than losing the other jobs' evidence.
func (c *Client) FailedJobs(ctx context.Context, owner, repo string, runID, attempt int64, maxLog int) (jobs []FailedJob, err error) {
	const op = "failed jobs"
	if err := checkRepo(op, owner, repo); err != nil {
		return nil, err
	}
	if runID <= 0 || attempt < 0 {
		return nil, invalid(op, "run %d attempt %d does not name a workflow run", runID, attempt)
	}
	defer func() { c.forget(owner, repo, err) }()
	g, err := c.forRepo(ctx, owner, repo)
	if err != nil {
		return nil, err
	}
	page := gh.ListOptions{PerPage: 100}
	for n := 0; ; n++ {
		if n == maxJobPages {
			return nil, wrap("list jobs", errors.New("too many pages of jobs"))
		}
		var (
			list *gh.Jobs
			resp *gh.Response
		)
		if attempt > 0 {
			list, resp, err = g.Actions.ListWorkflowJobsAttempt(ctx, owner, repo, runID, attempt, &page)
		} else {
			list, resp, err = g.Actions.ListWorkflowJobs(ctx, owner, repo, runID, &gh.ListWorkflowJobsOptions{Filter: "latest", ListOptions: page})
		}
		if err != nil {
			return nil, wrap("list jobs", err)
		}
		if list == nil {
			break
		}
		for _, j := range list.Jobs {
			if j.GetConclusion() != "failure" {
				continue
			}
			jobs = append(jobs, FailedJob{ID: j.GetID(), Name: j.GetName(), Step: failedStep(j), Conclusion: j.GetConclusion()})
		}
		if resp.NextPage == 0 {
			break
		}
		page.Page = resp.NextPage
	}
	if maxLog <= 0 {
		return jobs, nil
	}
	for i := range jobs {
		if jobs[i].Log, err = c.jobLog(ctx, g, owner, repo, jobs[i].ID, maxLog, logScanLimit); err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

func failedStep(j *gh.WorkflowJob) string {
	for _, s := range j.Steps {
		if s.GetConclusion() == "failure" {
			return s.GetName()
		}
	}
	return ""
}

// jobLog fetches a job's log excerpt. GitHub redirects to blob storage; the
// log is streamed looking for the first error line while keeping a bounded
// tail. If scanLimit bytes pass without one, the tail is asked for with a
// Range request (when the length is known and the host honours ranges),
// otherwise the stream is read to its end.
func (c *Client) jobLog(ctx context.Context, g *gh.Client, owner, repo string, jobID int64, maxLog int, scanLimit int64) (string, error) {
	u, _, err := g.Actions.GetWorkflowJobLogs(ctx, owner, repo, jobID, 1)
	if err != nil {
		if err = wrap("locate job log", err); statusIs(err, http.StatusNotFound, http.StatusGone) {
			return "", nil
		}
		return "", err
	}
	resp, err := c.get(ctx, "download job log", u.String(), nil)
	if err != nil {
		if statusIs(err, http.StatusNotFound, http.StatusGone) {
			return "", nil
		}
		return "", err
	}
	defer resp.Body.Close()
	t := &logTail{max: maxLog}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	done, err := t.feed(br, max(scanLimit, 2*int64(maxLog)))
	if err != nil {
		return "", wrap("download job log", err)
	}
	if done {
		return t.String(), nil
	}
	if resp.ContentLength > 0 {
		if tail, ok, err := c.logRange(ctx, u.String(), maxLog); err != nil {
			return "", err
		} else if ok {
			return tail, nil
		}
	}
	if _, err := t.feed(br, -1); err != nil {
		return "", wrap("download job log", err)
	}
	return t.String(), nil
}

// logRange asks for the last maxLog bytes; ok is false when the host
// ignores ranges.
func (c *Client) logRange(ctx context.Context, u string, maxLog int) (string, bool, error) {
	resp, err := c.get(ctx, "download job log tail", u, http.Header{"Range": {"bytes=-" + strconv.Itoa(maxLog)}})
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return "", false, nil
	}
	t := &logTail{max: maxLog, cut: true}
	if _, err := t.feed(bufio.NewReader(io.LimitReader(resp.Body, int64(maxLog))), -1); err != nil {
		return "", false, wrap("download job log tail", err)
	}
	return t.String(), true, nil
}

// logTail keeps the excerpt of a log while it streams by, in bounded
// memory: a window of at most 2*max bytes of the most recent lines, frozen
// a few lines after the first error line.
type logTail struct {
	max   int
	buf   []byte
	cut   bool  // bytes before buf were dropped mid-line: its first line is partial
	read  int64 // bytes fed so far
	state int   // scanning → inError (the error line continues) → afterError
	after int   // lines (or their bytes) read after the error line
	bytes int
}

const (
	scanning = iota
	inError
	afterError
)

// feed reads until the excerpt is complete or the log ends (done), or until
// limit bytes have been read in all (limit < 0: no limit).
func (t *logTail) feed(br *bufio.Reader, limit int64) (done bool, err error) {
	for limit < 0 || t.read < limit {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 && t.add(chunk) {
			return true, nil
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return true, nil
		case err != nil:
			return false, err
		}
	}
	return false, nil
}

// add takes one chunk (a whole line, or part of a long one) and reports
// whether the excerpt is complete.
func (t *logTail) add(chunk []byte) bool {
	eol := chunk[len(chunk)-1] == '\n'
	from := max(0, len(t.buf)-len(errorMarker)+1) // the marker may straddle chunks
	t.buf = append(t.buf, chunk...)
	t.read += int64(len(chunk))
	switch t.state {
	case scanning:
		if bytes.Contains(t.buf[from:], []byte(errorMarker)) {
			t.state = inError
			if eol {
				t.state = afterError
			}
		}
	case inError:
		if eol {
			t.state = afterError
		}
	case afterError:
		t.bytes += len(chunk)
		if eol {
			t.after++
		}
		if t.after >= linesAfterError || t.bytes >= t.max/4 {
			if i := bytes.LastIndexByte(t.buf, '\n'); i >= 0 {
				t.buf = t.buf[:i+1] // end on a whole line
			}
			return true
		}
	}
	if t.state != afterError && len(t.buf) > 2*t.max {
		start := len(t.buf) - t.max
		t.cut = t.buf[start-1] != '\n'
		n := copy(t.buf, t.buf[start:])
		t.buf = t.buf[:n]
	}
	return false
}

// String is the excerpt: the last max bytes, starting on a line boundary
// when anything before was dropped (unless one line is all there is).
func (t *logTail) String() string {
	b, cut := t.buf, t.cut
	if len(b) > t.max {
		start := len(b) - t.max
		b, cut = b[start:], b[start-1] != '\n'
	}
	if cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i+1 < len(b) {
			b = b[i+1:]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
