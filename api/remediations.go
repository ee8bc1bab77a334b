package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

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
	shaPattern       = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	safeIDPattern    = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)
	idemKeyPattern   = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
	refBadSeq        = regexp.MustCompile(`\.\.|@\{|//|/\.|\.lock(/|$)|[\x00-\x20\x7f~^:?*\[\\]`)
	digestPattern    = regexp.MustCompile(`^[0-9a-f]{64}$`)
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
	p, _ := principalOf(c)
	if !p.CanAccessRepo(b.Repo) {
		writeError(c, h.logger, newError(http.StatusForbidden, "repo_forbidden", "you may not start remediations for this repository"))
		return
	}
	res, err := h.orch.Start(c.Request.Context(), orchestrator.StartRequest{
		IdempotencyKey: key, Requester: p.Subject, CorrelationID: correlationID(c),
		Repo: b.Repo, Ref: b.Ref, SHA: b.SHA, FailureSummary: b.FailureSummary, LogExcerpt: b.LogExcerpt,
		IncidentID: b.IncidentID, ApprovalTimeout: timeout, DeadlineSpec: b.Deadline,
	})
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

func (h *handler) links(id string) links {
	l := links{Self: h.opts.PublicURL + "/api/remediations/" + id}
	if h.opts.UIURL != "" {
		l.UI = h.opts.UIURL + "/namespaces/" + url.PathEscape(h.orch.Namespace()) + "/workflows/" + id
	}
	return l
}

// validateStart checks every field and returns the approval timeout.
func validateStart(b *startBody, key string, now time.Time) (time.Duration, map[string]string) {
	problems := map[string]string{}
	b.Repo = strings.TrimSpace(b.Repo)
	switch {
	case b.Repo == "":
		problems["repo"] = "required"
	case len(b.Repo) > maxRepoLen || !utf8.ValidString(b.Repo) || strings.ContainsAny(b.Repo, "\x00\r\n"):
		problems["repo"] = "must be a repository path or URL of at most 512 bytes"
	case strings.Contains("/"+b.Repo+"/", "/../"):
		problems["repo"] = "must not contain .. segments"
	}
	if b.Ref != "" && (len(b.Ref) > 255 || strings.HasPrefix(b.Ref, "-") || strings.HasPrefix(b.Ref, "/") ||
		strings.HasSuffix(b.Ref, "/") || strings.HasSuffix(b.Ref, ".") || refBadSeq.MatchString(b.Ref)) {
		problems["ref"] = "is not a valid git ref name"
	}
	if b.SHA != "" && !shaPattern.MatchString(b.SHA) {
		problems["sha"] = "must be 7 to 40 lowercase hex characters"
	}
	switch s := strings.TrimSpace(b.FailureSummary); {
	case s == "":
		problems["failure_summary"] = "required"
	case len(b.FailureSummary) > maxSummaryLen || !utf8.ValidString(b.FailureSummary):
		problems["failure_summary"] = "at most 1000 bytes of UTF-8"
	}
	if len(b.LogExcerpt) > maxLogExcerptLen || !utf8.ValidString(b.LogExcerpt) || strings.ContainsRune(b.LogExcerpt, 0) {
		problems["log_excerpt"] = "at most 64 KiB of UTF-8 text"
	}
	if b.IncidentID != "" && !safeIDPattern.MatchString(b.IncidentID) {
		problems["incident_id"] = "letters, digits and ._:/- only, at most 128"
	}
	if key != "" && !idemKeyPattern.MatchString(key) {
		problems["Idempotency-Key"] = "printable ASCII without spaces, at most 128"
	}
	var timeout time.Duration
	if b.Deadline != "" {
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
	return ok && p.CanAccessRepo(repo)
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
	if f.Phase != "" && !slices.Contains(workflows.Phases, workflows.Phase(f.Phase)) {
		problems["phase"] = "unknown phase"
	}
	if f.Repo != "" && !repoFilterPatern.MatchString(f.Repo) {
		problems["repo"] = "invalid repository filter"
	}
	if ps := c.Query("page_size"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 100 {
			problems["page_size"] = "between 1 and 100"
		}
		f.PageSize = n
	}
	if len(f.PageToken) > 4096 {
		problems["page_token"] = "too long"
	}
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	if f.Repo != "" && !h.mayAccess(c, f.Repo) {
		// Nothing there is visible to this principal: not even whether it exists.
		c.JSON(http.StatusOK, orchestrator.ListResult{Items: []orchestrator.Summary{}})
		return
	}
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
		if !decisionPattern.MatchString(b.DecisionID) {
			problems["decision_id"] = "required: the decision id shown by GET /api/remediations/{id}"
		}
		if !digestPattern.MatchString(b.DiffDigest) {
			problems["diff_digest"] = "required: the 64-hex digest of the diff you reviewed"
		}
		if len(b.Comment) > maxTextLen || len(b.Reason) > maxTextLen {
			problems["comment"] = "comment and reason are limited to 2000 bytes"
		}
		if !approve && strings.TrimSpace(b.Reason) == "" {
			problems["reason"] = "a rejection needs a reason"
		}
		key := c.GetHeader("Idempotency-Key")
		if key != "" && !idemKeyPattern.MatchString(key) {
			problems["Idempotency-Key"] = "printable ASCII without spaces, at most 128"
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
			DecisionID: b.DecisionID, DiffDigest: b.DiffDigest, Comment: b.Comment, Reason: b.Reason,
		})
		if err != nil {
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
		writeError(c, h.logger, newError(http.StatusNotFound, "not_found", "no decision ledger on this instance"))
		return
	}
	d, err := h.opts.Decisions.Get(c.Request.Context(), c.Param("id"))
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && !h.mayAccess(c, d.Repo)) {
		writeError(c, h.logger, newError(http.StatusNotFound, "not_found", "no such decision"))
		return
	}
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

func (h *handler) livez(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz fails when Temporal or the shared rate-limit store is unreachable;
// webhook secrets that are missing are reported (their deliveries are
// rejected) without making the instance unready.
func (h *handler) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{"temporal": "ok", "rate_limit_store": "ok",
		"github_webhook": secretState(h.opts.GitHubSecret), "slack_webhook": secretState(h.opts.SlackSecret)}
	ready := true
	if err := h.orch.Ready(ctx); err != nil {
		h.logger.Warn("not ready: temporal", "error", err)
		checks["temporal"], ready = "unreachable", false
	}
	if h.opts.LimitStore != nil {
		if err := h.opts.LimitStore.Ping(ctx); err != nil {
			h.logger.Warn("not ready: rate limit store", "error", err)
			checks["rate_limit_store"], ready = "unreachable", false
		}
	}
	if !ready {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

func secretState(secret []byte) string {
	if len(secret) == 0 {
		return "disabled: no secret configured, every delivery is rejected"
	}
	return "ok"
}

type healthResponse struct {
	Status       string            `json:"status"`
	Service      string            `json:"service"`
	Version      string            `json:"version"`
	Dependencies map[string]string `json:"dependencies"`
}

func (h *handler) health(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	res := healthResponse{Status: "healthy", Service: "remediator", Version: h.opts.Version, Dependencies: map[string]string{}}
	if err := h.orch.Ready(ctx); err != nil {
		res.Status = "degraded"
		res.Dependencies["temporal"] = "unhealthy"
	} else {
		res.Dependencies["temporal"] = "healthy"
	}
	if h.opts.Decisions != nil {
		res.Dependencies["decision_ledger"] = "built-in"
	}
	if h.opts.LimitStore != nil {
		res.Dependencies["rate_limit_store"] = "healthy"
		if err := h.opts.LimitStore.Ping(ctx); err != nil {
			res.Status = "degraded"
			res.Dependencies["rate_limit_store"] = "unhealthy"
		}
	}
	// Always 200: this is a summary for people and dashboards; /readyz is the probe.
	c.JSON(http.StatusOK, res)
}
