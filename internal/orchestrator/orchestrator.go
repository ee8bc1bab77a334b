// Package orchestrator is the only door from the HTTP edge to Temporal. It
// owns workflow IDs, ID reuse and conflict policies, Update IDs, and the
// mapping of Temporal errors to the sentinels the API turns into statuses.
package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"remediator/workflows"
)

// Sentinels the API maps to HTTP statuses.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrForbidden   = errors.New("forbidden")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("temporal unavailable")
)

// RejectedError explains a refusal; Code is stable for clients.
type RejectedError struct {
	Sentinel error
	Code     string
	Message  string
}

func (e *RejectedError) Error() string { return e.Message }

// Unwrap lets errors.Is match the sentinel.
func (e *RejectedError) Unwrap() error { return e.Sentinel }

func rejected(sentinel error, code, msg string) error {
	return &RejectedError{Sentinel: sentinel, Code: code, Message: msg}
}

// Status is the remediation state as the workflow reports it.
type Status = workflows.Status

// StartRequest is a validated request to start a remediation.
type StartRequest struct {
	IdempotencyKey  string
	Requester       string
	CorrelationID   string
	Repo            string
	Ref             string
	SHA             string
	FailureSummary  string
	LogExcerpt      string
	IncidentID      string
	ApprovalTimeout time.Duration
	// DeadlineSpec is the deadline as the caller wrote it; it, not the
	// remaining duration, identifies the request, so a retry matches.
	DeadlineSpec string
	// Fingerprint, when set, replaces the request hash: sources that report
	// one failure through several events (GitHub's workflow_run and
	// check_suite) match on what identifies the failure only.
	Fingerprint string
}

// StartResult names the remediation; Existing is true when the request was
// answered by an earlier run (idempotent replay).
type StartResult struct {
	ID       string
	Phase    workflows.Phase
	Existing bool
}

// Vote is an approve or reject by an authenticated principal.
type Vote struct {
	ID         string
	RequestID  string
	Approve    bool
	Actor      string
	Roles      []string
	DecisionID string
	DiffDigest string
	Comment    string
	Reason     string
	// Channel is where the vote was cast ("api" or "slack"); default "api".
	Channel string
}

// ListFilter narrows List; empty fields match everything.
type ListFilter struct {
	Phase     string
	Repo      string
	PageSize  int
	PageToken string
}

// Summary is one list entry, built from visibility without a query per item.
type Summary struct {
	ID            string     `json:"id"`
	Phase         string     `json:"phase"`
	Repo          string     `json:"repo"`
	Requester     string     `json:"requester"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	Status        string     `json:"execution_status"`
	StartedAt     time.Time  `json:"started_at"`
	ClosedAt      *time.Time `json:"closed_at,omitempty"`
}

// ListResult is one page.
type ListResult struct {
	Items         []Summary `json:"items"`
	NextPageToken string    `json:"next_page_token,omitempty"`
}

// Orchestrator wraps a Temporal client.
type Orchestrator struct {
	c                      client.Client
	namespace              string
	defaultApprovalTimeout time.Duration
	queryTimeout           time.Duration
}

// New wraps c; namespace is used in links and visibility queries.
func New(c client.Client, namespace string, defaultApprovalTimeout time.Duration) *Orchestrator {
	return &Orchestrator{c: c, namespace: namespace, defaultApprovalTimeout: defaultApprovalTimeout, queryTimeout: 15 * time.Second}
}

// Namespace is where remediations run.
func (o *Orchestrator) Namespace() string { return o.namespace }

// IDFor derives the workflow ID. An Idempotency-Key is scoped to the
// principal that sent it; without one the ID is derived from the source
// event itself, so the same failure reported twice is one remediation.
func IDFor(req StartRequest) string {
	var material string
	if req.IdempotencyKey != "" {
		material = "key\x00" + req.Requester + "\x00" + req.IdempotencyKey
	} else {
		material = "source\x00" + requestHash(req)
	}
	sum := sha256.Sum256([]byte(material))
	return workflows.IDPrefix + hex.EncodeToString(sum[:12])
}

// requestHash fingerprints what the request asks for (not who or when).
func requestHash(req StartRequest) string {
	if req.Fingerprint != "" {
		sum := sha256.Sum256([]byte("fingerprint\x00" + req.Fingerprint))
		return hex.EncodeToString(sum[:])
	}
	deadline := req.DeadlineSpec
	if deadline == "" && req.ApprovalTimeout != 0 {
		deadline = req.ApprovalTimeout.String()
	}
	b, _ := json.Marshal([]string{req.Repo, req.Ref, req.SHA, req.FailureSummary, req.LogExcerpt, req.IncidentID, deadline})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Start starts a remediation or returns the one the same request already
// started. Reuse policy RejectDuplicate + conflict policy UseExisting make a
// retry while running AND after completion land on the same run; a reused
// Idempotency-Key with a different request is a conflict.
func (o *Orchestrator) Start(ctx context.Context, req StartRequest) (StartResult, error) {
	id := IDFor(req)
	timeout := req.ApprovalTimeout
	if timeout == 0 {
		timeout = o.defaultApprovalTimeout
	}
	startToken := uuid.NewString()
	hash := requestHash(req)
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo: map[string]any{
			workflows.MemoCorrelationID: req.CorrelationID,
			workflows.MemoRequestHash:   hash,
			workflows.MemoRequester:     req.Requester,
			memoStartToken:              startToken,
		},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.PhaseKey.ValueSet(string(workflows.PhaseReceived)),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRepo).ValueSet(req.Repo),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRequester).ValueSet(req.Requester),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrIncident).ValueSet(req.IncidentID),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrCorrelationID).ValueSet(req.CorrelationID),
		),
	}
	in := workflows.RemediationInput{
		ID: id, Repo: req.Repo, Ref: req.Ref, SHA: req.SHA, FailureSummary: req.FailureSummary,
		LogExcerpt: req.LogExcerpt, IncidentID: req.IncidentID, Requester: req.Requester,
		CorrelationID: req.CorrelationID, ApprovalTimeout: timeout, RequiredApprovals: 1,
	}
	_, err := o.c.ExecuteWorkflow(ctx, opts, workflows.WorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return StartResult{}, unavailable(err)
	}
	desc, err := o.c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return StartResult{}, o.mapErr(err)
	}
	memo := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()
	var existingHash, existingToken string
	_ = decode(memo[workflows.MemoRequestHash], &existingHash)
	_ = decode(memo[memoStartToken], &existingToken)
	if req.IdempotencyKey != "" && existingHash != hash {
		return StartResult{}, rejected(ErrConflict, "idempotency_key_reused",
			"this Idempotency-Key was already used for a different request")
	}
	phase := workflows.PhaseReceived
	var p string
	if decode(desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrPhase], &p) == nil && p != "" {
		phase = workflows.Phase(p)
	}
	return StartResult{ID: id, Phase: phase, Existing: existingToken != startToken}, nil
}

const memoStartToken = "start_token"

// Get asks the workflow for its status (works on closed workflows too).
func (o *Orchestrator) Get(ctx context.Context, id string) (Status, error) {
	if !validID(id) {
		return Status{}, ErrNotFound
	}
	qctx, cancel := context.WithTimeout(ctx, o.queryTimeout)
	defer cancel()
	v, err := o.c.QueryWorkflow(qctx, id, "", workflows.QueryStatus)
	if err != nil {
		return Status{}, o.mapErr(err)
	}
	var st Status
	if err := v.Get(&st); err != nil {
		return Status{}, fmt.Errorf("decoding status: %w", err)
	}
	return st, nil
}

// Decide delivers a vote through the approve/reject Update. The Update ID is
// the request id, so a retried HTTP request cannot vote twice.
func (o *Orchestrator) Decide(ctx context.Context, v Vote) (Status, error) {
	if !validID(v.ID) {
		return Status{}, ErrNotFound
	}
	name := workflows.UpdateReject
	if v.Approve {
		name = workflows.UpdateApprove
	}
	channel := workflows.ChannelAPI
	if v.Channel == workflows.ChannelSlack {
		channel = workflows.ChannelSlack
	}
	requestID := v.RequestID
	if requestID == "" {
		requestID = uuid.NewString()
	}
	// A vote waits for the workflow to process it; without a worker that
	// would be forever.
	ctx, cancel := context.WithTimeout(ctx, o.queryTimeout)
	defer cancel()
	handle, err := o.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   v.ID,
		UpdateID:     updateID(v.Actor, requestID),
		UpdateName:   name,
		WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.ApprovalRequest{
			Actor: v.Actor, Roles: v.Roles, DecisionID: v.DecisionID, DiffDigest: v.DiffDigest,
			Comment: v.Comment, Reason: v.Reason, Channel: channel,
		}},
	})
	if err != nil {
		return Status{}, o.mapUpdateErr(ctx, v.ID, err)
	}
	var st Status
	if err := handle.Get(ctx, &st); err != nil {
		return Status{}, o.mapUpdateErr(ctx, v.ID, err)
	}
	return st, nil
}

// RepoOf reads a remediation's repository from visibility, so callers can
// check access before acting on it.
func (o *Orchestrator) RepoOf(ctx context.Context, id string) (string, error) {
	if !validID(id) {
		return "", ErrNotFound
	}
	desc, err := o.c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", o.mapErr(err)
	}
	var repo string
	if err := decode(desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrRepo], &repo); err != nil {
		return "", fmt.Errorf("remediation %s has no repository attribute: %w", id, err)
	}
	return repo, nil
}

// Cancel requests cancellation; the workflow records Cancelled itself.
func (o *Orchestrator) Cancel(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNotFound
	}
	desc, err := o.c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return o.mapErr(err)
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return rejected(ErrConflict, "already_ended", "the remediation already ended")
	}
	if err := o.c.CancelWorkflow(ctx, id, ""); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) { // it ended between Describe and Cancel
			return rejected(ErrConflict, "already_ended", "the remediation already ended")
		}
		return o.mapErr(err)
	}
	return nil
}

// List reads remediations from visibility.
func (o *Orchestrator) List(ctx context.Context, f ListFilter) (ListResult, error) {
	q := fmt.Sprintf("WorkflowType = '%s'", workflows.WorkflowName)
	if f.Phase != "" {
		q += fmt.Sprintf(" AND %s = '%s'", workflows.SearchAttrPhase, quote(f.Phase))
	}
	if f.Repo != "" {
		q += fmt.Sprintf(" AND %s = '%s'", workflows.SearchAttrRepo, quote(f.Repo))
	}
	size := f.PageSize
	if size <= 0 || size > 100 {
		size = 50
	}
	var token []byte
	if f.PageToken != "" {
		var err error
		if token, err = hex.DecodeString(f.PageToken); err != nil {
			return ListResult{}, rejected(ErrInvalid, "invalid_page_token", "page_token is not valid")
		}
	}
	resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: o.namespace, PageSize: int32(size), NextPageToken: token, Query: q,
	})
	if err != nil {
		return ListResult{}, o.mapErr(err)
	}
	out := ListResult{Items: []Summary{}, NextPageToken: hex.EncodeToString(resp.GetNextPageToken())}
	for _, e := range resp.GetExecutions() {
		sa := e.GetSearchAttributes().GetIndexedFields()
		memo := e.GetMemo().GetFields()
		s := Summary{
			ID:        e.GetExecution().GetWorkflowId(),
			Status:    strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_"),
			StartedAt: e.GetStartTime().AsTime(),
		}
		_ = decode(sa[workflows.SearchAttrPhase], &s.Phase)
		_ = decode(sa[workflows.SearchAttrRepo], &s.Repo)
		_ = decode(sa[workflows.SearchAttrRequester], &s.Requester)
		_ = decode(memo[workflows.MemoCorrelationID], &s.CorrelationID)
		if ct := e.GetCloseTime(); ct != nil && ct.IsValid() && !ct.AsTime().IsZero() {
			t := ct.AsTime()
			s.ClosedAt = &t
		}
		out.Items = append(out.Items, s)
	}
	return out, nil
}

// Ready reports whether the Temporal frontend answers.
func (o *Orchestrator) Ready(ctx context.Context) error {
	if _, err := o.c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return unavailable(err)
	}
	return nil
}

func (o *Orchestrator) mapUpdateErr(ctx context.Context, id string, err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case workflows.ErrTypeForbidden:
			return rejected(ErrForbidden, "forbidden", appErr.Message())
		case workflows.ErrTypeSelfApproval:
			return rejected(ErrForbidden, "self_approval", appErr.Message())
		case workflows.ErrTypeInvalidVote:
			return rejected(ErrInvalid, "invalid_vote", appErr.Message())
		case workflows.ErrTypeStaleVote:
			return rejected(ErrConflict, "stale_vote", appErr.Message())
		case workflows.ErrTypeDuplicate:
			return rejected(ErrConflict, "duplicate_vote", appErr.Message())
		case workflows.ErrTypeGateClosed:
			return rejected(ErrConflict, "not_awaiting_approval", appErr.Message())
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// The workflow may exist but be closed: that is a conflict, not a 404.
		if _, derr := o.c.DescribeWorkflowExecution(ctx, id, ""); derr == nil {
			return rejected(ErrConflict, "not_awaiting_approval", "the remediation already ended")
		}
		return ErrNotFound
	}
	return o.mapErr(err)
}

func (o *Orchestrator) mapErr(err error) error {
	var nf *serviceerror.NotFound
	var nsnf *serviceerror.NamespaceNotFound
	var invalid *serviceerror.InvalidArgument
	switch {
	case errors.As(err, &nf):
		return ErrNotFound
	case errors.As(err, &invalid):
		return rejected(ErrInvalid, "invalid_argument", "the workflow service refused the request as invalid")
	case errors.As(err, &nsnf):
		return unavailable(err)
	case errors.Is(err, context.Canceled):
		return err
	}
	return unavailable(err)
}

// updateID makes the Update ID from the actor and the request id without
// ambiguity (both may contain any character).
func updateID(actor, requestID string) string {
	sum := sha256.Sum256([]byte(actor + "\x00" + requestID))
	return "vote-" + hex.EncodeToString(sum[:16])
}

func unavailable(err error) error { return fmt.Errorf("%w: %v", ErrUnavailable, err) }

func validID(id string) bool {
	if !strings.HasPrefix(id, workflows.IDPrefix) || len(id) == len(workflows.IDPrefix) || len(id) > 64 {
		return false
	}
	for _, r := range id[len(workflows.IDPrefix):] {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// quote escapes a value for a visibility query string literal.
func quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

func decode(p *commonpb.Payload, v any) error {
	if p == nil {
		return errors.New("missing")
	}
	return converter.GetDefaultDataConverter().FromPayload(p, v)
}
