package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/internal/policy"
	"remediator/workflows"
)

// The vote form's fields are checked as the REST API checks its body.
var (
	decisionPattern  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	digestPattern    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	baseSHAPattern   = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	repoFilter       = regexp.MustCompile(`^[^\x00-\x1f\x7f']{1,512}$`)
	riskFilter       = regexp.MustCompile(`^[A-Za-z]{1,32}$`)
)

const (
	maxTextLen = 2000
	// maxPending bounds the pending list (each row reads the status).
	maxPending = 50
)

var anyRole = []string{auth.RoleDeveloper, auth.RoleApprover, auth.RoleAdmin}
var voters = []string{auth.RoleApprover, auth.RoleAdmin}

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":  strings.Join,
	"lower": strings.ToLower,
	// weblink: only http(s) URLs become links (a local change's file://
	// URL is shown as text).
	"weblink": func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
	},
}

// human is a duration for people: "3h 5m", "2d 4h", "45s".
func human(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
	if neg {
		return s + " ago"
	}
	return s
}

type pendingRow struct {
	ID, Repo, Phase, Requester string
	Risk                       string
	Age                        string
	Deadline                   time.Time
	DeadlineIn                 string
	Votes, Required            int
	Voted, Author              bool
}

type pendingPage struct {
	base
	Rows               []pendingRow
	Repo, Risk, Phase  string
	Phases             []workflows.Phase
	Risks              []string
	Error              string
	Truncated, Unknown bool
}

// pending lists the remediations in the person's scope (awaiting approval
// unless the phase filter says otherwise), with the same scope as
// GET /api/remediations.
func (c *Console) pending(w http.ResponseWriter, r *http.Request) {
	p := sessionOf(r).Principal
	if !p.HasRole(anyRole...) {
		c.renderError(w, r, http.StatusForbidden, "No role", "Your account has none of the roles developer, approver or admin.")
		return
	}
	q := r.URL.Query()
	page := pendingPage{base: c.baseFor(r, "Pending approvals"), Repo: strings.TrimSpace(q.Get("repo")), Risk: q.Get("risk"), Phase: q.Get("phase"),
		Phases: workflows.Phases, Risks: []string{policy.LevelLow, policy.LevelMedium, policy.LevelHigh}}
	if page.Phase == "" {
		page.Phase = string(workflows.PhaseAwaitingApproval)
	}
	var problems []string
	if page.Phase != "any" && !slices.Contains(workflows.Phases, workflows.Phase(page.Phase)) {
		problems = append(problems, "unknown phase")
	}
	if page.Repo != "" && !repoFilter.MatchString(page.Repo) {
		problems = append(problems, "invalid repository filter")
	}
	if page.Risk != "" && !riskFilter.MatchString(page.Risk) {
		problems = append(problems, "invalid risk filter")
	}
	if len(problems) > 0 {
		page.Error = "Filter not applied: " + strings.Join(problems, ", ") + "."
		c.render(w, http.StatusBadRequest, "pending", page)
		return
	}
	f := orchestrator.ListFilter{Repo: page.Repo, PageSize: maxPending, Scope: c.opts.Scope(p)}
	if page.Phase != "any" {
		f.Phase = page.Phase
	}
	if f.Repo != "" && c.opts.Canonical != nil {
		f.Repo = c.opts.Canonical(r.Context(), f.Repo)
	}
	if f.Repo != "" && !c.opts.MayAccess(p, f.Repo) {
		c.render(w, http.StatusOK, "pending", page) // nothing there is visible
		return
	}
	res, err := c.opts.Orch.List(r.Context(), f)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	var items []orchestrator.Summary
	for _, it := range res.Items {
		if c.opts.MayAccess(p, it.Repo) {
			items = append(items, it)
		}
	}
	page.Truncated = res.NextPageToken != ""
	statuses := c.statuses(r.Context(), items)
	now := c.opts.Now()
	for i, it := range items {
		row := pendingRow{ID: it.ID, Repo: it.Repo, Phase: it.Phase, Requester: it.Requester, Age: human(now.Sub(it.StartedAt))}
		st, ok := statuses[i]
		if !ok {
			page.Unknown = true
		} else {
			row.Phase = string(st.Phase)
			if st.Risk != nil {
				row.Risk = st.Risk.Level
			}
			row.Deadline = st.Deadline
			if !st.Deadline.IsZero() {
				row.DeadlineIn = human(st.Deadline.Sub(now))
			}
			row.Votes, row.Required = approvals(st.Votes), st.RequiredApprovals
			row.Voted = slices.ContainsFunc(st.Votes, func(v activities.Vote) bool { return v.Actor == p.Subject })
			row.Author = isAuthor(st, p.Subject)
		}
		if page.Risk != "" && !strings.EqualFold(row.Risk, page.Risk) {
			continue
		}
		page.Rows = append(page.Rows, row)
	}
	c.render(w, http.StatusOK, "pending", page)
}

// statuses reads the status of each item, a few at a time; a failed read
// leaves its row with the listing's data only.
func (c *Console) statuses(ctx context.Context, items []orchestrator.Summary) map[int]orchestrator.Status {
	out := map[int]orchestrator.Status{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := c.opts.Orch.Get(ctx, it.ID)
			if err != nil {
				return
			}
			mu.Lock()
			out[i] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func approvals(votes []activities.Vote) int {
	n := 0
	for _, v := range votes {
		if v.Approved {
			n++
		}
	}
	return n
}

// isAuthor: the requester and whoever asked for a regeneration may not
// approve (the workflow enforces it; the page says so up front).
func isAuthor(st orchestrator.Status, subject string) bool {
	return st.Requester == subject || slices.Contains(st.Authors, subject)
}

type remediationPage struct {
	base
	St         orchestrator.Status
	LogExcerpt string
	Files      []diffFile
	Split      bool
	Audit      []workflows.AuditEvent
	AuditError bool
	WebUI      string
	Approvals  int
	Awaiting   bool
	MayVote    bool
	Author     bool
	Voted      bool
	RequestID  string
	// Message is the outcome of a vote just sent (Error: it was refused).
	Message string
	Error   bool
	Comment string
	Reason  string
}

func (c *Console) remediation(w http.ResponseWriter, r *http.Request) {
	page, ok := c.loadRemediation(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	switch r.URL.Query().Get("voted") {
	case "approve":
		page.Message = "Your approval was recorded."
	case "reject":
		page.Message = "Your rejection was recorded."
	}
	c.render(w, http.StatusOK, "remediation", page)
}

// loadRemediation reads what the remediation page shows, after the scope
// check; it answers the request itself when it returns false.
func (c *Console) loadRemediation(w http.ResponseWriter, r *http.Request, id string) (remediationPage, bool) {
	p := sessionOf(r).Principal
	if !p.HasRole(anyRole...) {
		c.renderError(w, r, http.StatusForbidden, "No role", "Your account has none of the roles developer, approver or admin.")
		return remediationPage{}, false
	}
	ctx := r.Context()
	if err := c.mayAccessID(ctx, p, id); err != nil {
		c.failed(w, r, err)
		return remediationPage{}, false
	}
	st, err := c.opts.Orch.Get(ctx, id)
	if err != nil {
		c.failed(w, r, err)
		return remediationPage{}, false
	}
	page := remediationPage{base: c.baseFor(r, "Remediation "+st.ID), St: st, Split: r.URL.Query().Get("view") == "split",
		Approvals: approvals(st.Votes), Awaiting: st.Phase == workflows.PhaseAwaitingApproval,
		MayVote: p.HasRole(voters...), Author: isAuthor(st, p.Subject), RequestID: uuid.NewString()}
	page.Voted = slices.ContainsFunc(st.Votes, func(v activities.Vote) bool { return v.Actor == p.Subject })
	if st.Fix != nil {
		page.Files = parseDiff(st.Fix.Diff)
	}
	page.LogExcerpt = st.LogExcerpt
	if le, ok := c.opts.Orch.(LogExcerpter); ok && page.LogExcerpt == "" {
		if page.LogExcerpt, err = le.LogExcerpt(ctx, id); err != nil {
			c.opts.Logger.WarnContext(ctx, "console: reading the log excerpt failed", "error", err)
		}
	}
	if page.Audit, err = c.opts.Orch.Audit(ctx, id); err != nil {
		page.AuditError = true
		c.opts.Logger.WarnContext(ctx, "console: reading the audit events failed", "error", err)
	}
	if c.opts.WebUIURL != nil {
		page.WebUI = c.opts.WebUIURL(id)
	}
	return page, true
}

// vote delivers an approve or reject exactly as the REST API does: the
// principal is the actor, the form names the decision, digest and base it
// was shown, and the orchestrator signs and sends the vote Update.
func (c *Console) vote(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := sessionOf(r).Principal
		id := r.PathValue("id")
		f := r.PostForm
		v := orchestrator.Vote{
			ID: id, RequestID: f.Get("request_id"), Approve: approve, Actor: p.Subject, Roles: p.Roles,
			DecisionID: f.Get("decision_id"), DiffDigest: f.Get("diff_digest"), BaseSHA: f.Get("base_sha"),
			Comment: formText(f.Get("comment")), Reason: formText(f.Get("reason")), Channel: workflows.ChannelWeb,
		}
		refuse := func(status int, msg string) {
			page, ok := c.loadRemediation(w, r, id)
			if !ok {
				return
			}
			page.Message, page.Error, page.Comment, page.Reason = msg, true, v.Comment, v.Reason
			c.render(w, status, "remediation", page)
		}
		if !p.HasRole(voters...) {
			refuse(http.StatusForbidden, "Voting needs the approver or admin role.")
			return
		}
		if msg := checkVote(v, approve); msg != "" {
			refuse(http.StatusUnprocessableEntity, msg)
			return
		}
		if err := c.mayAccessID(r.Context(), p, id); err != nil {
			c.failed(w, r, err)
			return
		}
		if c.opts.TakeVote != nil {
			limited, err := c.opts.TakeVote(r.Context(), p)
			switch {
			case err != nil:
				c.opts.Logger.WarnContext(r.Context(), "console: the rate limit store is unavailable; vote refused", "error", err)
				refuse(http.StatusServiceUnavailable, "Votes cannot be counted right now; nothing was recorded. Try again in a moment.")
				return
			case limited:
				refuse(http.StatusTooManyRequests, "You sent too many votes in a short time; nothing was recorded. Try again later.")
				return
			}
		}
		_, err := c.opts.Orch.Decide(r.Context(), v)
		if err != nil {
			if c.opts.Refused != nil {
				c.opts.Refused(r.Context(), p, id, voteWhat(approve), v.Channel, err)
			}
			var re *orchestrator.RejectedError
			switch {
			case errors.As(err, &re):
				refuse(re.Code.Status, refusalMessage(re))
			case errors.Is(err, orchestrator.ErrNotFound):
				c.failed(w, r, err)
			default:
				c.opts.Logger.WarnContext(r.Context(), "console: delivering a vote failed", "error", err)
				refuse(http.StatusServiceUnavailable, "The vote could not be delivered; nothing was recorded. Try again in a moment.")
			}
			return
		}
		http.Redirect(w, r, "/ui/remediations/"+id+"?voted="+voteWhat(approve), http.StatusSeeOther)
	}
}

func voteWhat(approve bool) string {
	if approve {
		return "approve"
	}
	return "reject"
}

// formText normalises a textarea's line ends.
func formText(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// checkVote checks the form as the REST API checks a vote body.
func checkVote(v orchestrator.Vote, approve bool) string {
	switch {
	case !decisionPattern.MatchString(v.DecisionID):
		return "The form does not name a decision: reload the page."
	case !digestPattern.MatchString(v.DiffDigest):
		return "The form does not name the digest of the fix: reload the page."
	case !baseSHAPattern.MatchString(v.BaseSHA):
		return "The form does not name the base commit of the fix: reload the page."
	case !requestIDPattern.MatchString(v.RequestID):
		return "The form is incomplete: reload the page."
	case !cleanText(v.Comment) || !cleanText(v.Reason):
		return "The comment or reason contains control characters."
	case len(v.Comment) > maxTextLen || len(v.Reason) > maxTextLen:
		return "The comment or reason is longer than 2000 bytes."
	case !approve && strings.TrimSpace(v.Reason) == "":
		return "A rejection needs a reason."
	}
	return ""
}

func cleanText(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || r == '\uFFFD'
	})
}

// refusalMessage says in plain words why the workflow refused a vote.
func refusalMessage(re *orchestrator.RejectedError) string {
	switch re.Code.Name {
	case errcode.StaleVote.Name:
		return "The fix changed since you opened this page: your vote was not recorded. Review the fix shown now and vote again."
	case errcode.SelfApproval.Name:
		return "You may not approve this remediation: you requested it or asked for its fix (four-eyes rule). Another approver must review it."
	case errcode.DuplicateVote.Name:
		return "You already voted on this fix."
	case errcode.NotAwaitingApproval.Name, errcode.AlreadyEnded.Name:
		return "This remediation is no longer awaiting approval: your vote was not recorded."
	}
	return "Your vote was refused: " + re.Message
}
