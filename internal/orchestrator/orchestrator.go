// Package orchestrator is the only door from the HTTP edge to Temporal. It
// owns workflow IDs, ID reuse and conflict policies, Update IDs, and the
// mapping of Temporal errors to the sentinels the API turns into statuses.
package orchestrator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"remediator/activities"
	"remediator/internal/codec"
	"remediator/internal/errcode"
	"remediator/internal/vote"
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

// RejectedError explains a refusal. Code comes from the one catalogue
// (internal/errcode), which also fixes its HTTP status; Message is safe to
// show to clients.
type RejectedError struct {
	Code    errcode.Code
	Message string
}

func (e *RejectedError) Error() string { return e.Message }

// Unwrap lets errors.Is match the sentinel of the code's status, so callers
// that only ask "was it a conflict?" need not know the codes.
func (e *RejectedError) Unwrap() error {
	switch e.Code.Status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusConflict:
		return ErrConflict
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	}
	return nil
}

func rejected(code errcode.Code, msg string) error {
	return &RejectedError{Code: code, Message: msg}
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
	// Deadline is the absolute end of the approval window when the caller
	// named a time; zero means now + ApprovalTimeout, fixed at acceptance.
	Deadline time.Time
	// Fingerprint, when set, replaces the request hash: sources that report
	// one failure through several events (GitHub's workflow_run and
	// check_suite) match on what identifies the failure only.
	Fingerprint string
	// Generation, when set (> 0), lets the same failure be remediated again
	// once the earlier remediation ended: a CI re-run's attempt, an alert's
	// firing. While one runs, every report attaches to it; after it ended,
	// only a later generation starts a new run (a redelivery does not).
	Generation int64
	// CIRun names the failed CI run, whose logs the fixer fetches.
	CIRun *activities.CIRun
	// Line, for a CI failure, is where it happened: a newer failure on
	// the same line supersedes this remediation (Supersede).
	Line *Line
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
	// BaseSHA is the base commit the voter saw the diff against.
	BaseSHA string
	Comment string
	Reason  string
	// Channel is where the vote was cast ("api", "slack" or "dragon");
	// default "api".
	Channel string
}

// ListFilter narrows List; empty fields match everything.
type ListFilter struct {
	Phase     string
	Repo      string
	PageSize  int
	PageToken string
	// Scope is what the caller may see; it becomes part of the visibility
	// query, so pages and page tokens cover visible remediations only.
	Scope Scope
}

// Scope narrows a listing to repositories: every one (All), or those equal
// to one of Exact or starting with one of Prefixes. The zero Scope sees
// nothing.
type Scope struct {
	All      bool
	Exact    []string
	Prefixes []string
}

// empty reports whether the scope can match nothing.
func (s Scope) empty() bool { return !s.All && len(s.Exact) == 0 && len(s.Prefixes) == 0 }

// condition is the scope as a visibility query condition ("" for All).
func (s Scope) condition() string {
	if s.All {
		return ""
	}
	var ors []string
	for _, e := range s.Exact {
		ors = append(ors, fmt.Sprintf("%s = '%s'", workflows.SearchAttrRepo, quote(e)))
	}
	for _, p := range s.Prefixes {
		ors = append(ors, fmt.Sprintf("%s STARTS_WITH '%s'", workflows.SearchAttrRepo, quote(p)))
	}
	return "(" + strings.Join(ors, " OR ") + ")"
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
	signer                 *vote.Signer
	tokenKey               []byte
	// admission holds the per-repository caps (admission.go).
	admission admission
}

// New wraps c; namespace is used in links and visibility queries. signer
// signs every vote Decide delivers (nil: votes are refused); it also keys
// the MAC of list page tokens.
func New(c client.Client, namespace string, defaultApprovalTimeout time.Duration, signer *vote.Signer) *Orchestrator {
	o := &Orchestrator{c: c, namespace: namespace, defaultApprovalTimeout: defaultApprovalTimeout, queryTimeout: 15 * time.Second, signer: signer}
	if signer != nil {
		o.tokenKey = signer.DeriveKey("remediator list page tokens")
	} else {
		o.tokenKey = make([]byte, 32)
		_, _ = rand.Read(o.tokenKey)
	}
	return o
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
	p := o.prepareStart(req)
	if err := o.incidentFree(ctx, req.IncidentID, p.opts.ID); err != nil {
		return StartResult{}, err
	}
	// With per-repository caps, the coordinator admits it first (admission.go).
	if err := o.admit(ctx, req, p.opts.ID); err != nil {
		return StartResult{}, err
	}
	p.in.Admitted = !o.CapsFor(req.Repo).Off()
	if req.Generation > 0 {
		// The common case, a failure never seen before, costs one round
		// trip: start first (an open run is attached to, a closed one is
		// refused by the reuse policy), and only when an earlier run has
		// closed read its generation to decide on a new run.
		probe := &startProbe{}
		first := p.opts
		// An open run answers "not started" (conflict policy); a closed one
		// is refused by the reuse policy, and that refusal must reach us
		// instead of being turned into the old run by the SDK.
		first.WorkflowExecutionErrorWhenAlreadyStarted = true
		_, err := o.c.ExecuteWorkflow(withStartProbe(ctx, probe), first, workflows.WorkflowName, p.in)
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case err == nil && probe.seen && probe.started:
			return StartResult{ID: p.opts.ID, Phase: workflows.PhaseReceived}, nil
		case err == nil:
			return o.describeStart(ctx, p, req.IdempotencyKey != "")
		case !errors.As(err, &already):
			return StartResult{}, unavailable(err)
		}
		res, done, newRun, err := o.laterGeneration(ctx, p.opts.ID, req.Generation)
		if err != nil || done {
			return res, err
		}
		if newRun {
			p.opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
		}
	}
	probe := &startProbe{}
	_, err := o.c.ExecuteWorkflow(withStartProbe(ctx, probe), p.opts, workflows.WorkflowName, p.in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return StartResult{}, unavailable(err)
	}
	if err == nil && probe.seen && probe.started {
		// A new run: nothing to compare with, and its phase is the one it
		// was started with. One round trip.
		return StartResult{ID: p.opts.ID, Phase: workflows.PhaseReceived}, nil
	}
	return o.describeStart(ctx, p, req.IdempotencyKey != "")
}

// preparedStart is one start request in the SDK's terms.
type preparedStart struct {
	opts       client.StartWorkflowOptions
	in         workflows.RemediationInput
	hash       string
	startToken string
}

func (o *Orchestrator) prepareStart(req StartRequest) preparedStart {
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
		// The memo stays in clear under the payload codec: the workflow
		// and decode read it with the default converter (it holds no
		// secrets).
		Memo: codec.ClearMemo(map[string]any{
			workflows.MemoCorrelationID: req.CorrelationID,
			workflows.MemoRequestHash:   hash,
			workflows.MemoRequester:     req.Requester,
			memoStartToken:              startToken,
			memoGeneration:              req.Generation,
			memoStartSignature:          o.signStart(id, req.Repo, req.Requester),
		}),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.PhaseKey.ValueSet(string(workflows.PhaseReceived)),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRepo).ValueSet(req.Repo),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRequester).ValueSet(req.Requester),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrIncident).ValueSet(req.IncidentID),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrCorrelationID).ValueSet(req.CorrelationID),
		),
	}
	if req.Line != nil {
		opts.Memo[memoLine], opts.Memo[memoLineAt] = codec.Clear{V: req.Line.Key()}, codec.Clear{V: req.Line.At.UTC()}
	}
	deadline := req.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(timeout)
	}
	in := workflows.RemediationInput{
		ID: id, Repo: req.Repo, Ref: req.Ref, SHA: req.SHA, FailureSummary: req.FailureSummary,
		LogExcerpt: req.LogExcerpt, IncidentID: req.IncidentID, Requester: req.Requester,
		CorrelationID: req.CorrelationID, ApprovalTimeout: timeout, RequiredApprovals: 1,
		Deadline: deadline.UTC().Truncate(time.Second), CIRun: req.CIRun,
	}
	return preparedStart{opts: opts, in: in, hash: hash, startToken: startToken}
}

// describeStart tells whether the run under p's ID is this request's (or an
// earlier one's, Existing) and refuses a key reused for another request.
func (o *Orchestrator) describeStart(ctx context.Context, p preparedStart, keyed bool) (StartResult, error) {
	id := p.opts.ID
	desc, err := o.c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return StartResult{}, o.mapErr(err)
	}
	memo := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()
	var existingHash, existingToken string
	_ = decode(memo[workflows.MemoRequestHash], &existingHash)
	_ = decode(memo[memoStartToken], &existingToken)
	if keyed && existingHash != p.hash {
		return StartResult{}, rejected(errcode.IdempotencyKeyReused,
			"this Idempotency-Key was already used for a different request")
	}
	phase := workflows.PhaseReceived
	var ph string
	if decode(desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrPhase], &ph) == nil && ph != "" {
		phase = workflows.Phase(ph)
	}
	return StartResult{ID: id, Phase: phase, Existing: existingToken != p.startToken}, nil
}

// Generate starts a remediation together with the await_proposal Update
// (update-with-start, one round trip) and waits at most wait for the fix and
// its decision. ready is false when the wait ran out first; the remediation
// goes on either way. A request that names an existing remediation answers
// with it, like Start.
func (o *Orchestrator) Generate(ctx context.Context, req StartRequest, wait time.Duration) (res StartResult, st Status, ready bool, err error) {
	p := o.prepareStart(req)
	if err := o.incidentFree(ctx, req.IncidentID, p.opts.ID); err != nil {
		return StartResult{}, Status{}, false, err
	}
	if err := o.admit(ctx, req, p.opts.ID); err != nil {
		return StartResult{}, Status{}, false, err
	}
	p.in.Admitted = !o.CapsFor(req.Repo).Off()
	op := o.c.NewWithStartWorkflowOperation(p.opts, workflows.WorkflowName, p.in)
	uctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	handle, uerr := o.c.UpdateWithStartWorkflow(uctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID: "proposal-" + p.startToken, UpdateName: workflows.UpdateAwaitProposal,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if uerr == nil {
		ready = handle.Get(uctx, &st) == nil
	}
	// Whether this call started it or an earlier one did, the run is there
	// (unless the service is down): read what it is.
	res, err = o.describeStart(ctx, p, req.IdempotencyKey != "")
	if err != nil {
		return StartResult{}, Status{}, false, err
	}
	if !ready && (res.Existing || res.Phase.Terminal()) {
		// An existing run answers from its status when its proposal exists.
		if cur, gerr := o.Get(ctx, res.ID); gerr == nil && cur.Phase != workflows.PhaseReceived && cur.Phase != workflows.PhaseGeneratingFix {
			st, ready = cur, true
		}
	}
	if ready {
		res.Phase = st.Phase
	}
	return res, st, ready, nil
}

// FindByIncident returns the newest remediation of an incident within scope
// that awaits approval (or, if none does, the newest at all).
func (o *Orchestrator) FindByIncident(ctx context.Context, incidentID string, scope Scope) (string, error) {
	if scope.empty() || incidentID == "" {
		return "", ErrNotFound
	}
	q := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", workflows.WorkflowName, workflows.SearchAttrIncident, quote(incidentID))
	if cond := scope.condition(); cond != "" {
		q += " AND " + cond
	}
	resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: o.namespace, PageSize: 20, Query: q})
	if err != nil {
		return "", o.mapErr(err)
	}
	found := ""
	for _, e := range resp.GetExecutions() {
		id := e.GetExecution().GetWorkflowId()
		sa := e.GetSearchAttributes().GetIndexedFields()
		if _, ok := o.startedByUs(id, sa, e.GetMemo().GetFields()); !ok {
			continue
		}
		var ph string
		_ = decode(sa[workflows.SearchAttrPhase], &ph)
		if workflows.Phase(ph) == workflows.PhaseAwaitingApproval {
			return id, nil
		}
		if found == "" {
			found = id
		}
	}
	if found == "" {
		return "", ErrNotFound
	}
	return found, nil
}

const (
	memoStartToken     = "start_token"
	memoGeneration     = "generation"
	memoStartSignature = workflows.MemoStartSignature
)

// signStart signs the start (nil without a key: such starts are served by
// no API that verifies them).
func (o *Orchestrator) signStart(id, repo, requester string) *vote.Signature {
	if o.signer == nil {
		return nil
	}
	sig := o.signer.SignStart(id, repo, requester)
	return &sig
}

// startedByUs tells a remediation this API side started from one started
// straight on Temporal: only the former is served, listed or voted on.
func (o *Orchestrator) startedByUs(id string, sa, memo map[string]*commonpb.Payload) (repo string, ok bool) {
	var requester string
	var sig vote.Signature
	if o.signer == nil || decode(sa[workflows.SearchAttrRepo], &repo) != nil || repo == "" ||
		decode(memo[workflows.MemoRequester], &requester) != nil || decode(memo[memoStartSignature], &sig) != nil {
		return "", false
	}
	return repo, o.signer.VerifyStart(id, repo, requester, sig)
}

// laterGeneration answers a report of an ended remediation whose generation
// is not newer than the last run's: that is a redelivery, not a new failure.
// done is false when a run should be started (or attached to); newRun says
// a new run may start, which only a closed run with an older generation
// allows. A report while the run is still open (even one finishing its
// write-backs) attaches to it: were it to close meanwhile, the start is
// refused as a duplicate rather than starting a second run.
func (o *Orchestrator) laterGeneration(ctx context.Context, id string, gen int64) (res StartResult, done, newRun bool, err error) {
	desc, err := o.c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return StartResult{}, false, false, nil
	case err != nil:
		return StartResult{}, false, false, o.mapErr(err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return StartResult{}, false, false, nil
	}
	var last int64
	_ = decode(info.GetMemo().GetFields()[memoGeneration], &last)
	var p string
	_ = decode(info.GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrPhase], &p)
	// At most one change per failure, ever: once a run opened its change,
	// later generations (a re-run, the alert firing again) attach to it
	// instead of starting another that could open a second one.
	if gen > last && workflows.Phase(p) != workflows.PhaseCompleted {
		return StartResult{}, false, true, nil
	}
	return StartResult{ID: id, Phase: workflows.Phase(p), Existing: true}, true, false, nil
}

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
	// Approvers read the diff as text when it is text; patch always carries
	// the exact bytes that will be applied.
	if f := st.Fix; f != nil && f.Diff == "" && len(f.Patch) > 0 && utf8.Valid(f.Patch) {
		f.Diff = string(f.Patch)
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
	if v.Channel == workflows.ChannelSlack || v.Channel == workflows.ChannelDragon || v.Channel == workflows.ChannelCLI || v.Channel == workflows.ChannelWeb {
		channel = v.Channel
	}
	requestID := v.RequestID
	if requestID == "" {
		requestID = uuid.NewString()
	}
	// A vote waits for the workflow to process it; without a worker that
	// would be forever.
	ctx, cancel := context.WithTimeout(ctx, o.queryTimeout)
	defer cancel()
	if o.signer == nil {
		return Status{}, errors.New("no vote signing key is configured: votes cannot be delivered")
	}
	req := workflows.SignVote(o.signer, v.ID, v.Approve, workflows.ApprovalRequest{
		Actor: v.Actor, Roles: v.Roles, DecisionID: v.DecisionID, DiffDigest: v.DiffDigest, BaseSHA: v.BaseSHA,
		Comment: v.Comment, Reason: v.Reason, Channel: channel,
	}, time.Now())
	handle, err := o.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   v.ID,
		UpdateID:     updateID(v.Actor, requestID),
		UpdateName:   name,
		WaitForStage: client.WorkflowUpdateStageCompleted,
		Args:         []any{req},
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
	info := desc.GetWorkflowExecutionInfo()
	repo, ok := o.startedByUs(id, info.GetSearchAttributes().GetIndexedFields(), info.GetMemo().GetFields())
	if !ok {
		// Not started through the API (no signed start): it is nobody's to
		// see or act on through the product.
		return "", ErrNotFound
	}
	return repo, nil
}

// AlertResolved tells a running remediation that the alert it was started
// for resolved; the workflow records it. A closed or unknown one answers
// ErrNotFound.
func (o *Orchestrator) AlertResolved(ctx context.Context, id, fingerprint string, at time.Time) error {
	if !validID(id) {
		return ErrNotFound
	}
	err := o.c.SignalWorkflow(ctx, id, "", workflows.SignalAlertResolved, workflows.AlertResolution{Fingerprint: fingerprint, At: at.UTC()})
	if err != nil {
		return o.mapErr(err)
	}
	return nil
}

// Attach records on a running remediation that a later event with its
// fingerprint arrived (and started nothing).
func (o *Orchestrator) Attach(ctx context.Context, id, fingerprint string, at time.Time) error {
	if !validID(id) {
		return ErrNotFound
	}
	if err := o.c.SignalWorkflow(ctx, id, "", workflows.SignalEventAttached, workflows.AttachedEvent{Fingerprint: fingerprint, At: at.UTC()}); err != nil {
		return o.mapErr(err)
	}
	return nil
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
		return rejected(errcode.AlreadyEnded, "the remediation already ended")
	}
	if err := o.c.CancelWorkflow(ctx, id, ""); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) { // it ended between Describe and Cancel
			return rejected(errcode.AlreadyEnded, "the remediation already ended")
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
	if cond := f.Scope.condition(); cond != "" {
		q += " AND " + cond
	}
	size := f.PageSize
	if size <= 0 || size > 100 {
		size = 50
	}
	var token []byte
	if f.PageToken != "" {
		var ok bool
		if token, ok = o.openPageToken(f.PageToken, q, size); !ok {
			return ListResult{}, rejected(errcode.InvalidPageToken, "page_token is not valid for this listing")
		}
	}
	if f.Scope.empty() {
		return ListResult{Items: []Summary{}}, nil
	}
	resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: o.namespace, PageSize: int32(size), NextPageToken: token, Query: q,
	})
	if err != nil {
		return ListResult{}, o.mapErr(err)
	}
	out := ListResult{Items: []Summary{}, NextPageToken: o.sealPageToken(resp.GetNextPageToken(), q, size)}
	for _, e := range resp.GetExecutions() {
		sa := e.GetSearchAttributes().GetIndexedFields()
		memo := e.GetMemo().GetFields()
		if _, ok := o.startedByUs(e.GetExecution().GetWorkflowId(), sa, memo); !ok {
			continue
		}
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
			return rejected(errcode.Forbidden, appErr.Message())
		case workflows.ErrTypeSelfApproval:
			return rejected(errcode.SelfApproval, appErr.Message())
		case workflows.ErrTypeInvalidVote:
			return rejected(errcode.InvalidVote, appErr.Message())
		case workflows.ErrTypeStaleVote:
			return rejected(errcode.StaleVote, appErr.Message())
		case workflows.ErrTypeDuplicate:
			return rejected(errcode.DuplicateVote, appErr.Message())
		case workflows.ErrTypeGateClosed:
			return rejected(errcode.NotAwaitingApproval, appErr.Message())
		case workflows.ErrTypeUnsigned:
			// Our own signature refused: the workers do not know this API's
			// key (or the clocks are far apart). An operator must act.
			return fmt.Errorf("the workflow refused this API's vote signature (check REMEDIATOR_VOTE_PUBLIC_KEYS on the workers and the clocks): %s", appErr.Message())
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// The workflow may exist but be closed: that is a conflict, not a 404.
		if _, derr := o.c.DescribeWorkflowExecution(ctx, id, ""); derr == nil {
			return rejected(errcode.NotAwaitingApproval, "the remediation already ended")
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
		return rejected(errcode.InvalidArgument, "the workflow service refused the request as invalid")
	case errors.As(err, &nsnf):
		return unavailable(err)
	case errors.Is(err, context.Canceled):
		return err
	}
	return unavailable(err)
}

// Page tokens are Temporal's opaque tokens sealed with a MAC over the token,
// the query (filters and the caller's scope) and the page size: a malformed,
// forged or tampered token, or one taken from another listing or principal,
// is refused at once instead of reaching the server (which would retry it
// and fail slowly). "v1." + base64url(token) + "." + base64url(mac).
const pageTokenVersion = "v1"

func (o *Orchestrator) pageTokenMAC(token []byte, query string, size int) []byte {
	m := hmac.New(sha256.New, o.tokenKey)
	fmt.Fprintf(m, "%d\x00%s\x00%d\x00", len(query), query, size)
	m.Write(token)
	return m.Sum(nil)
}

func (o *Orchestrator) sealPageToken(token []byte, query string, size int) string {
	if len(token) == 0 {
		return ""
	}
	enc := base64.RawURLEncoding
	return pageTokenVersion + "." + enc.EncodeToString(token) + "." + enc.EncodeToString(o.pageTokenMAC(token, query, size))
}

func (o *Orchestrator) openPageToken(s, query string, size int) ([]byte, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != pageTokenVersion {
		return nil, false
	}
	enc := base64.RawURLEncoding.Strict() // one spelling per token
	token, err1 := enc.DecodeString(parts[1])
	mac, err2 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(token) == 0 || !hmac.Equal(mac, o.pageTokenMAC(token, query, size)) {
		return nil, false
	}
	return token, true
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

// decode reads a memo field or search attribute: neither goes through the
// payload codec (codec.ClearMemo), so the default converter reads them.
func decode(p *commonpb.Payload, v any) error {
	if p == nil {
		return errors.New("missing")
	}
	return converter.GetDefaultDataConverter().FromPayload(p, v)
}
