package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/activities"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
)

// The seed's intake routes, kept and fixed: CI systems and alerting report
// failures here, and each report starts (or attaches to) the remediation
// keyed on what identifies the failure.
const (
	ciEventPath       = "/api/ci/event"
	gitlabTokenHeader = "X-Gitlab-Token"
	// gitlabRequester is the principal of GitLab's hooks: the ':' keeps it
	// apart from every configured subject.
	gitlabRequester = "webhook:gitlab"
)

// gitlabPrincipal authenticates a GitLab hook by its secret token, compared
// in constant time; without a configured token every hook is refused. The
// principal may start remediations of GitLab repositories only.
func (h *handler) gitlabPrincipal(token string) (Principal, errcode.Code, error) {
	want := h.opts.GitLabWebhookToken
	if len(want) == 0 || subtle.ConstantTimeCompare([]byte(token), want) != 1 {
		reason := "invalid"
		if len(want) == 0 {
			reason = "not_configured"
		}
		h.webhookRejected.WithLabelValues("gitlab", reason).Inc()
		return Principal{}, errcode.InvalidToken, fmt.Errorf("%s does not match GITLAB_WEBHOOK_TOKEN", gitlabTokenHeader)
	}
	return Principal{Subject: gitlabRequester, Roles: []string{roleDeveloper}, Repos: []string{"gitlab:*/**"}, Method: "gitlab_token"}, errcode.Code{}, nil
}

// intakeResponse answers every report.
type intakeResponse struct {
	Status     string `json:"status"` // accepted, duplicate, ignored
	WorkflowID string `json:"workflow_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Code is the error code of a refusal (repo_cap_reached: the
	// repository's cap; see internal/errcode), when it has one.
	Code string `json:"code,omitempty"`
}

// failureReport is a failure some source reported, in the terms of a start.
type failureReport struct {
	body        startBody
	fingerprint string
	generation  int64
	run         *activities.CIRun
	line        *orchestrator.Line
}

// gitlabPipeline is GitLab's pipeline hook.
type gitlabPipeline struct {
	ObjectKind       string `json:"object_kind"`
	ObjectAttributes struct {
		ID     int64  `json:"id"`
		Ref    string `json:"ref"`
		SHA    string `json:"sha"`
		Status string `json:"status"`
	} `json:"object_attributes"`
	Project struct {
		PathWithNamespace string `json:"path_with_namespace"`
	} `json:"project"`
}

// jenkinsNotification is the Jenkins Notification plugin's JSON.
type jenkinsNotification struct {
	Name  string `json:"name"`
	Build *struct {
		Number  int64  `json:"number"`
		Phase   string `json:"phase"`
		Status  string `json:"status"`
		FullURL string `json:"full_url"`
		SCM     struct {
			URL    string `json:"url"`
			Branch string `json:"branch"`
			Commit string `json:"commit"`
		} `json:"scm"`
		Log string `json:"log"`
	} `json:"build"`
}

// genericPipeline is the seed's own shape.
type genericPipeline struct {
	Provider   string `json:"provider"`
	Status     string `json:"status"`
	Project    string `json:"project"`
	PipelineID string `json:"pipeline_id"`
	URL        string `json:"url"`
	Logs       string `json:"logs"`
	Ref        string `json:"ref"`
	SHA        string `json:"sha"`
}

// failed says whether a CI status is a failure: GitLab's "failed",
// Jenkins' "FAILURE" (which the seed ignored), "failure".
func failed(status string) bool {
	switch strings.ToLower(strings.TrimSpace(status)) {
	case "failed", "failure":
		return true
	}
	return false
}

// ciEvent takes GitLab pipeline hooks (X-Gitlab-Token), Jenkins
// notifications and the seed's generic shape.
func (h *handler) ciEvent(c *gin.Context) {
	body, err := h.readObject(c)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(body, &probe)
	p, _ := principalOf(c)
	var rep *failureReport
	var reason string
	switch {
	case probe["object_kind"] != nil:
		var g gitlabPipeline
		if err := json.Unmarshal(body, &g); err != nil || g.ObjectKind != "pipeline" {
			reason = "only pipeline hooks are remediated"
			break
		}
		if !failed(g.ObjectAttributes.Status) {
			reason = "the pipeline did not fail"
			break
		}
		a := g.ObjectAttributes
		repo := "gitlab:" + g.Project.PathWithNamespace
		rep = &failureReport{
			body: startBody{Repo: repo, Ref: a.Ref, SHA: a.SHA,
				FailureSummary: oneLine(fmt.Sprintf("GitLab pipeline %d failed on %s", a.ID, a.Ref), maxSummaryLen)},
			fingerprint: fmt.Sprintf("%s@%s/pipeline:%d", repo, a.SHA, a.ID), generation: 1,
			run:  &activities.CIRun{RunID: a.ID},
			line: ciLine(repo, "pipeline", a.Ref, pipelineTime(a.ID)),
		}
	case p.Subject == gitlabRequester:
		writeError(c, h.logger, newError(errcode.Forbidden, "the GitLab token only authenticates GitLab hooks"))
		return
	case probe["build"] != nil:
		var j jenkinsNotification
		if err := json.Unmarshal(body, &j); err != nil || j.Build == nil {
			writeError(c, h.logger, validationError(map[string]string{"build": "not a Jenkins notification"}))
			return
		}
		if !failed(j.Build.Status) {
			reason = "the build did not fail"
			break
		}
		b := j.Build
		rep = &failureReport{
			body: startBody{Repo: b.SCM.URL, Ref: b.SCM.Branch, SHA: b.SCM.Commit,
				FailureSummary: oneLine(fmt.Sprintf("Jenkins job %s #%d failed", j.Name, b.Number), maxSummaryLen),
				LogExcerpt:     tail(b.Log, maxLogExcerptLen)},
			fingerprint: fmt.Sprintf("jenkins:%s@%s/%s#%d", b.SCM.URL, b.SCM.Commit, j.Name, b.Number), generation: 1,
			line: ciLine(b.SCM.URL, "jenkins:"+j.Name, b.SCM.Branch, pipelineTime(b.Number)),
		}
	default:
		var g genericPipeline
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil {
			writeError(c, h.logger, newError(errcode.UnknownField, "not a GitLab hook, a Jenkins notification or {provider, status, project, …}: "+err.Error()))
			return
		}
		if !failed(g.Status) {
			reason = "the pipeline did not fail"
			break
		}
		rep = &failureReport{
			body: startBody{Repo: g.Project, Ref: g.Ref, SHA: g.SHA,
				FailureSummary: oneLine(g.Provider+" pipeline failure", maxSummaryLen), LogExcerpt: tail(g.Logs, maxLogExcerptLen)},
			fingerprint: fmt.Sprintf("%s:%s@%s#%s", g.Provider, g.Project, g.SHA, g.PipelineID), generation: 1,
		}
	}
	if rep == nil {
		c.JSON(http.StatusAccepted, intakeResponse{Status: "ignored", Reason: reason})
		return
	}
	res, err := h.startReport(c, p, *rep)
	var ae *apiError
	if err != nil && p.Subject == gitlabRequester && errors.As(err, &ae) && ae.code.Status < 500 && ae.code.Status != http.StatusTooManyRequests {
		// GitLab disables a hook after a few failed deliveries; a report it
		// cannot fix is answered, not failed.
		c.JSON(http.StatusAccepted, intakeResponse{Status: "refused", Reason: ae.message})
		return
	}
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusAccepted, res)
}

// startReport validates a report like an API start and starts (or attaches
// to) its remediation.
func (h *handler) startReport(c *gin.Context, p Principal, rep failureReport) (intakeResponse, error) {
	sb := rep.body
	if _, problems := validateStart(&sb, "", time.Now()); len(problems) > 0 {
		return intakeResponse{}, validationError(problems)
	}
	// Each remediation a report asks for costs what an API start costs:
	// one delivery must not fill the workers or the forge budgets.
	if h.opts.Limiter != nil {
		res, err := h.opts.Limiter.Take(c.Request.Context(), ruleGenerate, principalKey(p))
		switch {
		case err != nil:
			return intakeResponse{}, newError(errcode.RateLimitUnavailable, "rate limiting is unavailable, so reports are refused; retry later")
		case res.Limited:
			return intakeResponse{}, newError(errcode.RateLimited, "rate limit "+ruleGenerate+" exceeded")
		}
	}
	repo, err := h.repoFor(c, p, sb.Repo)
	if err != nil {
		return intakeResponse{}, err
	}
	res, err := h.orch.Start(c.Request.Context(), orchestrator.StartRequest{
		IdempotencyKey: "intake:" + rep.fingerprint, Fingerprint: rep.fingerprint, Generation: rep.generation, CIRun: rep.run,
		Requester: p.Subject, CorrelationID: correlationID(c), Line: rep.line,
		Repo: repo, Ref: sb.Ref, SHA: sb.SHA, FailureSummary: sb.FailureSummary, LogExcerpt: sb.LogExcerpt,
	})
	if err != nil {
		return intakeResponse{}, err
	}
	status := "accepted"
	if res.Existing {
		status = "duplicate"
	} else if rep.line != nil {
		h.supersede(c, res.ID, sb.SHA, *rep.line)
	}
	return intakeResponse{Status: status, WorkflowID: res.ID}, nil
}

// readObject reads a JSON object body (unknown fields are allowed: these are
// other systems' payloads) under the cap.
func (h *handler) readObject(c *gin.Context) ([]byte, error) {
	var raw json.RawMessage
	if err := h.readJSONLoose(c, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// tail keeps the end of a log, where failures are reported, on a valid
// UTF-8 boundary, without control characters other than line breaks.
func tail(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > max {
		s = s[len(s)-max:]
		for len(s) > 0 && !isRuneStart(s[0]) {
			s = s[1:]
		}
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) && r != '\n' && r != '\t' {
			return ' '
		}
		return r
	}, s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// alertmanagerWebhook is Alertmanager's webhook payload, version 4.
type alertmanagerWebhook struct {
	Version     string            `json:"version"`
	Status      string            `json:"status"`
	CommonLabel map[string]string `json:"commonLabels"`
	Alerts      []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

// genericAlert is the seed's own shape, plus the repository it concerns.
type genericAlert struct {
	Source      string `json:"source"`
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Logs        string `json:"logs"`
	Repository  string `json:"repository"`
}

// alertResult is the outcome for one alert of a delivery.
type alertResult struct {
	Fingerprint string `json:"fingerprint,omitempty"`
	intakeResponse
}

type alertResponse struct {
	Results []alertResult `json:"results"`
}

// observabilityAlert takes Alertmanager webhooks (every firing alert starts
// or attaches to the remediation its fingerprint keys; a resolved alert is
// recorded on a running one) and the seed's generic shape. An alert naming
// no repository (label, or a route by alert name) is answered 422 and
// counted, never silently dropped.
func (h *handler) observabilityAlert(c *gin.Context) {
	body, err := h.readObject(c)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	p, _ := principalOf(c)
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(body, &probe)
	if probe["alerts"] == nil {
		var g genericAlert
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil {
			writeError(c, h.logger, newError(errcode.UnknownField, "not an Alertmanager webhook or {source, severity, title, …, repository}: "+err.Error()))
			return
		}
		repo := g.Repository
		if repo == "" {
			repo = h.opts.AlertRoutes[g.Title]
		}
		if repo == "" {
			h.unroutedAlerts.Inc()
			writeError(c, h.logger, validationError(map[string]string{"repository": "the alert names no repository (field repository, or REMEDIATOR_ALERT_ROUTES)"}))
			return
		}
		res, err := h.startReport(c, p, failureReport{
			body: startBody{Repo: repo, FailureSummary: oneLine(g.Source+" alert: "+g.Title, maxSummaryLen),
				LogExcerpt: tail(g.Description+"\n"+g.Logs, maxLogExcerptLen)},
			fingerprint: "alert:" + g.Source + ":" + g.Title, generation: 1,
		})
		if err != nil {
			writeError(c, h.logger, err)
			return
		}
		c.JSON(http.StatusAccepted, alertResponse{Results: []alertResult{{intakeResponse: res}}})
		return
	}
	var am alertmanagerWebhook
	if err := json.Unmarshal(body, &am); err != nil {
		writeError(c, h.logger, validationError(map[string]string{"alerts": "not an Alertmanager webhook: " + err.Error()}))
		return
	}
	if len(am.Alerts) > maxAlertsPerDelivery {
		writeError(c, h.logger, validationError(map[string]string{"alerts": fmt.Sprintf("at most %d alerts per delivery", maxAlertsPerDelivery)}))
		return
	}
	label := h.opts.AlertRepoLabel
	if label == "" {
		label = "repository"
	}
	out := alertResponse{Results: []alertResult{}}
	unrouted := 0
	for _, a := range am.Alerts {
		r := alertResult{Fingerprint: a.Fingerprint}
		repo := a.Labels[label]
		if repo == "" {
			repo = h.opts.AlertRoutes[a.Labels["alertname"]]
		}
		switch {
		case !alertFingerprint.MatchString(a.Fingerprint):
			r.Status, r.Reason = "refused", "no valid fingerprint"
		case repo == "":
			unrouted++
			h.unroutedAlerts.Inc()
			r.Status, r.Reason = "refused", "the alert names no repository (label "+label+", or REMEDIATOR_ALERT_ROUTES)"
		case a.Status == "resolved":
			r.intakeResponse = h.alertResolved(c, a.Fingerprint, a.EndsAt)
		default:
			res, err := h.startReport(c, p, failureReport{
				body: startBody{Repo: repo, FailureSummary: oneLine(alertSummary(a.Labels, a.Annotations), maxSummaryLen),
					LogExcerpt: tail(alertExcerpt(a.Labels, a.Annotations, a.GeneratorURL), maxLogExcerptLen)},
				fingerprint: "alert:" + a.Fingerprint, generation: max(a.StartsAt.Unix(), 1),
			})
			if err != nil {
				var ae *apiError
				var capped *orchestrator.AdmissionRefusedError
				switch {
				case errors.As(err, &capped): // the repository's cap: this alert, not the delivery
					r.Status, r.Reason, r.Code = "refused", capped.Message, capped.Code.Name
				case !asAPIError(err, &ae) || ae.code.Status >= 500:
					writeError(c, h.logger, err)
					return
				default:
					r.Status, r.Reason, r.Code = "refused", ae.message, ae.code.Name
				}
				break
			}
			r.intakeResponse = res
			if res.Status == "duplicate" {
				// The alert fired again: it attaches to its remediation and
				// is counted there (storm control), starting nothing.
				if err := h.orch.Attach(c.Request.Context(), res.WorkflowID, a.Fingerprint, time.Now()); err != nil {
					h.logger.WarnContext(c.Request.Context(), "counting an attached alert failed", "workflow_id", res.WorkflowID, "error", err)
				}
			}
		}
		out.Results = append(out.Results, r)
	}
	if unrouted > 0 && unrouted == len(am.Alerts) {
		writeError(c, h.logger, validationError(map[string]string{"alerts": "no alert names a repository (label " + label + ", or REMEDIATOR_ALERT_ROUTES)"}))
		return
	}
	c.JSON(http.StatusAccepted, out)
}

// alertSummary is the alert's summary annotation, else its name.
func alertSummary(labels, annotations map[string]string) string {
	if s := annotations["summary"]; s != "" {
		return "alert " + labels["alertname"] + ": " + s
	}
	return "alert " + labels["alertname"] + " firing"
}

// alertExcerpt lists the alert's annotations and labels in a stable order.
func alertExcerpt(labels, annotations map[string]string, generator string) string {
	var b strings.Builder
	for _, m := range []map[string]string{annotations, labels} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString(k + ": " + m[k] + "\n")
		}
	}
	if generator != "" {
		b.WriteString("source: " + generator + "\n")
	}
	return b.String()
}

// alertResolved records a resolution on the remediation the alert keyed,
// if one is running.
func (h *handler) alertResolved(c *gin.Context, fingerprint string, at time.Time) intakeResponse {
	id := orchestrator.IDFor(orchestrator.StartRequest{IdempotencyKey: "intake:alert:" + fingerprint, Requester: principalSubject(c)})
	if err := h.orch.AlertResolved(c.Request.Context(), id, fingerprint, at); err != nil {
		return intakeResponse{Status: "ignored", Reason: "no running remediation for this alert"}
	}
	return intakeResponse{Status: "recorded", WorkflowID: id}
}

func principalSubject(c *gin.Context) string {
	p, _ := principalOf(c)
	return p.Subject
}

// maxAlertsPerDelivery bounds the remediations one delivery can ask for
// (Alertmanager groups alerts; a storm is one delivery).
const maxAlertsPerDelivery = 100

// alertFingerprint is Alertmanager's fingerprint (16 hex digits), bounded
// generously for other senders.
var alertFingerprint = regexp.MustCompile(`^[0-9a-zA-Z]{8,64}$`)

func asAPIError(err error, target **apiError) bool { return errors.As(err, target) }

// ciLine is where a CI failure happened, or nil when the branch or the
// order of failures is unknown (nothing is superseded then).
func ciLine(repo, workflow, branch string, at time.Time) *orchestrator.Line {
	if repo == "" || branch == "" || at.IsZero() {
		return nil
	}
	return &orchestrator.Line{Repo: repo, Workflow: workflow, Branch: branch, At: at.UTC()}
}

// pipelineTime orders failures by a number that grows with every run
// (GitLab's pipeline id, Jenkins' build number) when the source sends no
// time: the number as seconds since the epoch.
func pipelineTime(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// supersede tells the running remediations of older failures on line that
// id replaces them. A failure here is logged, never fails the delivery: the
// new remediation runs either way, and the older ones still need a person.
func (h *handler) supersede(c *gin.Context, id, sha string, line orchestrator.Line) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	// The line's repository is what the remediations were started with.
	told, err := h.orch.Supersede(ctx, id, sha, line)
	if err != nil {
		h.logger.WarnContext(ctx, "superseding older remediations failed", "workflow_id", id, "error", err, "correlation_id", correlationID(c))
		return
	}
	for _, old := range told {
		h.logger.InfoContext(ctx, "remediation superseded", "superseded", old, "by", id, "correlation_id", correlationID(c))
	}
}
