package api

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
	"remediator/internal/ledger"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// Bounds of the start request.
const (
	maxRepoLen       = 512
	maxSummaryLen    = 1000
	maxLogExcerptLen = 64 << 10
	maxTextLen       = 2000
	minDeadline      = time.Minute
	maxDeadline      = 30 * 24 * time.Hour
)

var (
	shaPattern     = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	safeIDPattern  = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)
	idemKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
	refBadSeq      = regexp.MustCompile(`\.\.|@\{|//|/\.|\.lock(/|$)|[\x00-\x20\x7f~^:?*\[\\]`)
	digestPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// baseSHAPattern is a full commit id (SHA-1 or SHA-256 repositories).
	baseSHAPattern   = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	decisionPattern  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	repoFilterPatern = regexp.MustCompile(`^[^\x00-\x1f']{1,512}$`)
)

type startBody struct {
	Repo           string `json:"repo"`
	Ref            string `json:"ref"`
	SHA            string `json:"sha"`
	FailureSummary string `json:"failure_summary"`
	LogExcerpt     string `json:"log_excerpt"`
	IncidentID     string `json:"incident_id"`
	// Deadline is a duration ("24h") or an RFC 3339 time.
	Deadline string `json:"deadline"`
}

type links struct {
	Self string `json:"self"`
	UI   string `json:"ui,omitempty"`
}

type startResponse struct {
	ID            string          `json:"id"`
	Phase         workflows.Phase `json:"phase"`
	Existing      bool            `json:"existing"`
	CorrelationID string          `json:"correlation_id"`
	Links         links           `json:"links"`
}

func (h *handler) startRemediation(c *gin.Context) {
	var b startBody
	if err := h.readJSON(c, &b); err != nil {
		writeError(c, h.logger, err)
		return
	}
	key := c.GetHeader("Idempotency-Key")
	timeout, problems := validateStart(&b, key, time.Now())
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	req, err := h.startRequest(c, b, key, timeout)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	res, err := h.orch.Start(c.Request.Context(), req)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	if res.Existing {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/api/remediations/"+res.ID)
	c.JSON(http.StatusAccepted, startResponse{
		ID: res.ID, Phase: res.Phase, Existing: res.Existing, CorrelationID: correlationID(c), Links: h.links(res.ID),
	})
}

// startRequest turns a validated start body into the orchestrator's
// request, as the caller: scope is checked on what will be acted on, the
// canonical repository, which is also all the workflow ever sees.
func (h *handler) startRequest(c *gin.Context, b startBody, key string, timeout time.Duration) (orchestrator.StartRequest, error) {
	p, _ := principalOf(c)
	repo, err := h.repoFor(c, p, b.Repo)
	if err != nil {
		return orchestrator.StartRequest{}, err
	}
	var deadline time.Time
	if t, err := time.Parse(time.RFC3339, b.Deadline); err == nil {
		deadline = t
	}
	return orchestrator.StartRequest{
		IdempotencyKey: key, Requester: p.Subject, CorrelationID: correlationID(c),
		Repo: repo, Ref: b.Ref, SHA: b.SHA, FailureSummary: b.FailureSummary, LogExcerpt: b.LogExcerpt,
		IncidentID: b.IncidentID, ApprovalTimeout: timeout, DeadlineSpec: b.Deadline, Deadline: deadline,
	}, nil
}

func (h *handler) links(id string) links {
	l := links{Self: h.opts.PublicURL + "/api/remediations/" + id}
	if h.opts.UIURL != "" {
		l.UI = h.opts.UIURL + "/namespaces/" + url.PathEscape(h.orch.Namespace()) + "/workflows/" + id
	}
	return l
}

// checkIdempotencyKey records what is wrong with an Idempotency-Key header
// (control characters first, then its form); an absent one is fine.
func checkIdempotencyKey(problems map[string]string, key string) {
	if checkText(problems, "Idempotency-Key", key, singleLine) && key != "" && !idemKeyPattern.MatchString(key) {
		problems["Idempotency-Key"] = "printable ASCII without spaces, at most 128"
	}
}

// validateStart checks every field and returns the approval timeout.
// Control characters are checked first, in every field, on the values as
// sent: a field carrying one is answered with that, whatever else is wrong.
func validateStart(b *startBody, key string, now time.Time) (time.Duration, map[string]string) {
	problems := map[string]string{}
	clean := func(field, value string, multiline bool) bool { return checkText(problems, field, value, multiline) }
	repoOK, refOK, shaOK := clean("repo", b.Repo, singleLine), clean("ref", b.Ref, singleLine), clean("sha", b.SHA, singleLine)
	summaryOK, excerptOK := clean("failure_summary", b.FailureSummary, singleLine), clean("log_excerpt", b.LogExcerpt, multiLine)
	incidentOK, deadlineOK := clean("incident_id", b.IncidentID, singleLine), clean("deadline", b.Deadline, singleLine)
	checkIdempotencyKey(problems, key)
	b.Repo = strings.TrimSpace(b.Repo)
	switch {
	case !repoOK:
	case b.Repo == "":
		problems["repo"] = "required"
	case len(b.Repo) > maxRepoLen:
		problems["repo"] = "must be a repository path or URL of at most 512 bytes"
	case strings.Contains("/"+b.Repo+"/", "/../"):
		problems["repo"] = "must not contain .. segments"
	}
	if refOK && b.Ref != "" && (len(b.Ref) > 255 || strings.HasPrefix(b.Ref, "-") || strings.HasPrefix(b.Ref, "/") ||
		strings.HasSuffix(b.Ref, "/") || strings.HasSuffix(b.Ref, ".") || refBadSeq.MatchString(b.Ref)) {
		problems["ref"] = "is not a valid git ref name"
	}
	if shaOK && b.SHA != "" && !shaPattern.MatchString(b.SHA) {
		problems["sha"] = "must be 7 to 40 lowercase hex characters"
	}
	switch s := strings.TrimSpace(b.FailureSummary); {
	case !summaryOK:
	case s == "":
		problems["failure_summary"] = "required"
	case len(b.FailureSummary) > maxSummaryLen:
		problems["failure_summary"] = "at most 1000 bytes of UTF-8"
	}
	if excerptOK && len(b.LogExcerpt) > maxLogExcerptLen {
		problems["log_excerpt"] = "at most 64 KiB of UTF-8 text"
	}
	if incidentOK && b.IncidentID != "" && !safeIDPattern.MatchString(b.IncidentID) {
		problems["incident_id"] = "letters, digits and ._:/- only, at most 128"
	}
	var timeout time.Duration
	if deadlineOK && b.Deadline != "" {
		if d, err := time.ParseDuration(b.Deadline); err == nil {
			timeout = d
		} else if t, err := time.Parse(time.RFC3339, b.Deadline); err == nil {
			timeout = t.Sub(now).Round(time.Second)
		} else {
			problems["deadline"] = "a duration like 24h or an RFC 3339 time"
		}
		if _, bad := problems["deadline"]; !bad && (timeout < minDeadline || timeout > maxDeadline) {
			problems["deadline"] = "must be between 1 minute and 30 days from now"
		}
	}
	return timeout, problems
}

func (h *handler) getRemediation(c *gin.Context) {
	// Scope first: an out-of-scope remediation must answer exactly like a
	// missing one, whatever state the worker is in.
	if err := h.checkAccess(c, c.Param("id")); err != nil {
		writeError(c, h.logger, err)
		return
	}
	st, err := h.orch.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusOK, statusResponse{Status: st, Links: h.links(st.ID)})
}

// mayAccess hides other teams' remediations: a repository outside the
// principal's globs answers exactly like one that does not exist.
func (h *handler) mayAccess(c *gin.Context, repo string) bool {
	p, ok := principalOf(c)
	return ok && h.principalMayAccess(p, repo)
}

// checkAccess looks up the repository of id before anything acts on it.
func (h *handler) checkAccess(c *gin.Context, id string) error {
	repo, err := h.orch.RepoOf(c.Request.Context(), id)
	if err != nil {
		return err
	}
	if !h.mayAccess(c, repo) {
		return orchestrator.ErrNotFound
	}
	return nil
}

type statusResponse struct {
	orchestrator.Status
	Links links `json:"links"`
}

func (h *handler) listRemediations(c *gin.Context) {
	f := orchestrator.ListFilter{Phase: c.Query("phase"), Repo: c.Query("repo"), PageToken: c.Query("page_token")}
	problems := map[string]string{}
	for _, name := range []string{"phase", "repo", "page_size", "page_token"} {
		checkText(problems, name, c.Query(name), singleLine)
	}
	bad := func(field string) bool { _, ok := problems[field]; return ok }
	if !bad("phase") && f.Phase != "" && !slices.Contains(workflows.Phases, workflows.Phase(f.Phase)) {
		problems["phase"] = "unknown phase"
	}
	if !bad("repo") && f.Repo != "" && !repoFilterPatern.MatchString(f.Repo) {
		problems["repo"] = "invalid repository filter"
	}
	if ps := c.Query("page_size"); ps != "" && !bad("page_size") {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 100 {
			problems["page_size"] = "between 1 and 100"
		}
		f.PageSize = n
	}
	if !bad("page_token") && len(f.PageToken) > 4096 {
		problems["page_token"] = "too long"
	}
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	if f.Repo != "" && h.opts.Repos != nil {
		if canonical, err := h.opts.Repos.Canonical(c.Request.Context(), f.Repo); err == nil {
			f.Repo = canonical
		}
	}
	if f.Repo != "" && !h.mayAccess(c, f.Repo) {
		// Nothing there is visible to this principal: not even whether it
		// exists. Such a listing has one empty page, so no token is valid.
		if f.PageToken != "" {
			writeError(c, h.logger, newError(errcode.InvalidPageToken, "page_token is not valid for this listing"))
			return
		}
		c.JSON(http.StatusOK, orchestrator.ListResult{Items: []orchestrator.Summary{}})
		return
	}
	p, _ := principalOf(c)
	f.Scope = h.listScope(p)
	res, err := h.orch.List(c.Request.Context(), f)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	visible := make([]orchestrator.Summary, 0, len(res.Items))
	for _, it := range res.Items {
		if h.mayAccess(c, it.Repo) {
			visible = append(visible, it)
		}
	}
	res.Items = visible
	c.JSON(http.StatusOK, res)
}

type voteBody struct {
	DecisionID string `json:"decision_id"`
	DiffDigest string `json:"diff_digest"`
	BaseSHA    string `json:"base_sha"`
	Comment    string `json:"comment"`
	Reason     string `json:"reason"`
}

// vote delivers approve or reject through the Update. The identity is the
// authenticated principal; the body can never set it.
func (h *handler) vote(approve bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		var b voteBody
		if err := h.readJSON(c, &b); err != nil {
			writeError(c, h.logger, err)
			return
		}
		problems := map[string]string{}
		key := c.GetHeader("Idempotency-Key")
		decisionOK, digestOK := checkText(problems, "decision_id", b.DecisionID, singleLine), checkText(problems, "diff_digest", b.DiffDigest, singleLine)
		commentOK, reasonOK := checkText(problems, "comment", b.Comment, multiLine), checkText(problems, "reason", b.Reason, multiLine)
		checkIdempotencyKey(problems, key)
		if decisionOK && !decisionPattern.MatchString(b.DecisionID) {
			problems["decision_id"] = "required: the decision id shown by GET /api/remediations/{id}"
		}
		if digestOK && !digestPattern.MatchString(b.DiffDigest) {
			problems["diff_digest"] = "required: the 64-hex digest of the diff you reviewed"
		}
		if checkText(problems, "base_sha", b.BaseSHA, singleLine) && !baseSHAPattern.MatchString(b.BaseSHA) {
			problems["base_sha"] = "required: the base commit (fix.base_sha) you reviewed the diff against"
		}
		if commentOK && len(b.Comment) > maxTextLen {
			problems["comment"] = "limited to 2000 bytes"
		}
		if reasonOK && len(b.Reason) > maxTextLen {
			problems["reason"] = "limited to 2000 bytes"
		}
		if reasonOK && !approve && strings.TrimSpace(b.Reason) == "" {
			problems["reason"] = "a rejection needs a reason"
		}
		if len(problems) > 0 {
			writeError(c, h.logger, validationError(problems))
			return
		}
		if err := h.checkAccess(c, c.Param("id")); err != nil {
			writeError(c, h.logger, err)
			return
		}
		p, _ := principalOf(c)
		st, err := h.orch.Decide(c.Request.Context(), orchestrator.Vote{
			ID: c.Param("id"), RequestID: key, Approve: approve, Actor: p.Subject, Roles: p.Roles,
			DecisionID: b.DecisionID, DiffDigest: b.DiffDigest, BaseSHA: b.BaseSHA, Comment: b.Comment, Reason: b.Reason,
			Channel: clientChannel(c),
		})
		if err != nil {
			h.auditRefusal(c, c.Param("id"), voteWhat(approve), clientChannel(c), err)
			writeError(c, h.logger, err)
			return
		}
		c.JSON(http.StatusOK, statusResponse{Status: st, Links: h.links(st.ID)})
	}
}

type cancelResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (h *handler) cancelRemediation(c *gin.Context) {
	if err := h.checkAccess(c, c.Param("id")); err != nil {
		writeError(c, h.logger, err)
		return
	}
	if err := h.orch.Cancel(c.Request.Context(), c.Param("id")); err != nil {
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusAccepted, cancelResponse{ID: c.Param("id"), Status: "cancel_requested"})
}

func (h *handler) getDecision(c *gin.Context) {
	if h.opts.Decisions == nil {
		writeError(c, h.logger, newError(errcode.NotFound, "no decision ledger on this instance"))
		return
	}
	d, err := h.opts.Decisions.Get(c.Request.Context(), c.Param("id"))
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && !h.mayAccess(c, d.Repo)) {
		writeError(c, h.logger, newError(errcode.NotFound, "no such decision"))
		return
	}
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusOK, d)
}
