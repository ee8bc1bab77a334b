package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"remediator/internal/errcode"
	"remediator/workflows"
)

// RegenerateRequest asks for a new fix of a remediation awaiting approval,
// naming the fix the caller saw (decision, digest, base).
type RegenerateRequest struct {
	ID, RequestID            string
	Actor                    string
	Roles                    []string
	DecisionID, DiffDigest   string
	BaseSHA, Reason, Channel string
}

// Regenerate delivers the regenerate Update, signed like a vote; the
// answer is the status with the phase the remediation moves to.
func (o *Orchestrator) Regenerate(ctx context.Context, r RegenerateRequest) (Status, error) {
	if !validID(r.ID) {
		return Status{}, ErrNotFound
	}
	if o.signer == nil {
		return Status{}, errors.New("no vote signing key is configured: requests cannot be delivered")
	}
	requestID := r.RequestID
	if requestID == "" {
		requestID = uuid.NewString()
	}
	channel := workflows.ChannelAPI
	if r.Channel == workflows.ChannelSlack || r.Channel == workflows.ChannelCLI {
		channel = r.Channel
	}
	ctx, cancel := context.WithTimeout(ctx, o.queryTimeout)
	defer cancel()
	req := workflows.SignRegenerate(o.signer, r.ID, workflows.ApprovalRequest{
		Actor: r.Actor, Roles: r.Roles, DecisionID: r.DecisionID, DiffDigest: r.DiffDigest, BaseSHA: r.BaseSHA,
		Reason: r.Reason, Channel: channel,
	}, time.Now())
	handle, err := o.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: r.ID, UpdateID: "regenerate-" + updateID(r.Actor, requestID), UpdateName: workflows.UpdateRegenerate,
		WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{req},
	})
	if err != nil {
		return Status{}, o.mapUpdateErr(ctx, r.ID, err)
	}
	var st Status
	if err := handle.Get(ctx, &st); err != nil {
		return Status{}, o.mapUpdateErr(ctx, r.ID, err)
	}
	return st, nil
}

// Audit asks the workflow for its audit events (works on closed workflows
// too). Remediations started before the audit existed answer none.
func (o *Orchestrator) Audit(ctx context.Context, id string) ([]workflows.AuditEvent, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	qctx, cancel := context.WithTimeout(ctx, o.queryTimeout)
	defer cancel()
	v, err := o.c.QueryWorkflow(qctx, id, "", workflows.QueryAudit)
	if err != nil {
		if strings.Contains(err.Error(), "unknown queryType") || strings.Contains(err.Error(), "unknown query type") {
			return []workflows.AuditEvent{}, nil
		}
		return nil, o.mapErr(err)
	}
	events := []workflows.AuditEvent{}
	if err := v.Get(&events); err != nil {
		return nil, fmt.Errorf("decoding the audit: %w", err)
	}
	return events, nil
}

// Line identifies where a CI failure happened: the repository, the CI
// workflow and the branch. A newer failure on the same line supersedes the
// remediations of older ones.
type Line struct {
	Repo, Workflow, Branch string
	// At orders failures on the line (the CI run's creation time).
	At time.Time
}

// Key is the line's memo value.
func (l Line) Key() string { return l.Repo + "\x00" + l.Workflow + "\x00" + l.Branch }

// Memo keys of a remediation started for a CI failure on a line.
const (
	memoLine   = "ci_line"
	memoLineAt = "ci_line_at"
)

// Supersede tells the running remediations of older failures on the
// remediation newID's line that newID replaces them; it returns the ids it
// told. Each ends Superseded unless its change is already being opened.
func (o *Orchestrator) Supersede(ctx context.Context, newID, sha string, line Line) ([]string, error) {
	if o.signer == nil {
		return nil, errors.New("no vote signing key is configured: supersessions cannot be signed")
	}
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'",
		workflows.WorkflowName, workflows.SearchAttrRepo, quote(line.Repo))
	resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: o.namespace, PageSize: 100, Query: q})
	if err != nil {
		return nil, o.mapErr(err)
	}
	var told []string
	for _, e := range resp.GetExecutions() {
		id := e.GetExecution().GetWorkflowId()
		memo := e.GetMemo().GetFields()
		if id == newID {
			continue
		}
		if _, ok := o.startedByUs(id, e.GetSearchAttributes().GetIndexedFields(), memo); !ok {
			continue
		}
		var key string
		var at time.Time
		if decode(memo[memoLine], &key) != nil || key != line.Key() || decode(memo[memoLineAt], &at) != nil || !at.Before(line.At) {
			continue
		}
		s := workflows.SignSupersession(o.signer, id, workflows.Supersession{
			By: newID, SHA: sha, At: time.Now().UTC(),
			Reason: "a newer failure of " + line.Workflow + " on " + line.Branch,
		}, time.Now())
		if err := o.c.SignalWorkflow(ctx, id, "", workflows.SignalSuperseded, s); err != nil {
			continue // it ended meanwhile
		}
		told = append(told, id)
	}
	return told, nil
}

// incidentFree refuses a start naming an incident that another remediation
// already opened (or is opening) a change for: at most one change per
// incident. Only starts that name an incident pay this visibility read.
func (o *Orchestrator) incidentFree(ctx context.Context, incidentID, id string) error {
	if incidentID == "" {
		return nil
	}
	q := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s' AND (%s = '%s' OR %s = '%s')",
		workflows.WorkflowName, workflows.SearchAttrIncident, quote(incidentID),
		workflows.SearchAttrPhase, workflows.PhaseOpeningPR, workflows.SearchAttrPhase, workflows.PhaseCompleted)
	resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: o.namespace, PageSize: 10, Query: q})
	if err != nil {
		return o.mapErr(err)
	}
	for _, e := range resp.GetExecutions() {
		other := e.GetExecution().GetWorkflowId()
		if other == id {
			continue // this remediation itself: its own rules answer (one change per failure)
		}
		if _, ok := o.startedByUs(other, e.GetSearchAttributes().GetIndexedFields(), e.GetMemo().GetFields()); !ok {
			continue
		}
		return rejected(errcode.IncidentHasChange, "incident "+incidentID+" already has a change from remediation "+other+": at most one change per incident")
	}
	return nil
}
