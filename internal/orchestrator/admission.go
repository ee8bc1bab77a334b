package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"remediator/internal/errcode"
	"remediator/workflows"
)

// Caps are one repository's admission caps: at most MaxActive remediations
// running and MaxPerHour started in any hour (0: no cap).
type Caps struct {
	MaxActive  int
	MaxPerHour int
}

// Off reports whether neither cap applies: then nothing is asked.
func (c Caps) Off() bool { return c.MaxActive <= 0 && c.MaxPerHour <= 0 }

// CapsFunc overrides the default caps for a repository (ok false: the
// defaults apply); the risk policy's caps: list.
type CapsFunc func(repo string) (caps Caps, ok bool)

// admission is the orchestrator's cap configuration.
type admission struct {
	defaults Caps
	override CapsFunc
}

// SetCaps sets the per-repository admission caps (REMEDIATOR_REPO_MAX_*),
// and an override per repository (nil: none). Until it is called, and with
// both caps 0, starts are not admitted at all: no extra round trip.
func (o *Orchestrator) SetCaps(defaults Caps, override CapsFunc) {
	o.admission = admission{defaults: defaults, override: override}
}

// CapsFor returns the caps of a repository.
func (o *Orchestrator) CapsFor(repo string) Caps {
	if o.admission.override != nil {
		if c, ok := o.admission.override(repo); ok {
			return c
		}
	}
	return o.admission.defaults
}

// AdmissionRefusedError is a start refused by its repository's cap
// (errcode.RepoCapReached, 429). It unwraps to its RejectedError, so the
// API answers it like every refusal, and says which cap, the counts and
// when a retry may pass.
type AdmissionRefusedError struct {
	RejectedError
	// Repo and RemediationID name what was refused.
	Repo, RemediationID string
	// Limit is workflows.CapMaxActive or workflows.CapMaxPerHour.
	Limit                       string
	RetryAfter                  time.Duration
	Active, MaxActive           int
	StartedLastHour, MaxPerHour int
}

// Unwrap returns the refusal the API maps to its code and status.
func (e *AdmissionRefusedError) Unwrap() error { return &e.RejectedError }

// admitTimeout bounds one admission: the coordinator answers at once, or
// after one reconcile (at most 15 s) at the active cap.
const admitTimeout = 20 * time.Second

// admit is the hook of Start and Generate: with caps on, the remediation
// under id must be admitted by its repository's coordinator before a start
// that may create a run. A refused request still goes on when it cannot
// create one: the remediation runs (a repeat attaches to it, even when it
// started before the coordinator knew it) or it ended and the request
// answers with it. Otherwise the refusal is returned.
func (o *Orchestrator) admit(ctx context.Context, req StartRequest, id string) error {
	caps := o.CapsFor(req.Repo)
	if caps.Off() {
		return nil
	}
	res, err := o.Admit(ctx, req.Repo, id, caps)
	if err != nil {
		return err
	}
	if res.Admitted {
		return nil
	}
	newRun, err := o.wouldStartRun(ctx, id, req.Generation)
	if err != nil || !newRun {
		return err
	}
	return &AdmissionRefusedError{
		RejectedError: RejectedError{Code: errcode.RepoCapReached, Message: res.Reason},
		Repo:          req.Repo, RemediationID: id,
		Limit: res.Limit, RetryAfter: res.RetryAfter,
		Active: res.Active, MaxActive: caps.MaxActive, StartedLastHour: res.StartedLastHour, MaxPerHour: caps.MaxPerHour,
	}
}

// Admit asks repo's coordinator for a slot for remediation id with caps,
// starting the coordinator if it does not run (update-with-start). The
// Update ID is the remediation id and the minute: a retried call within the
// minute is the same Update (answered once), a later one is decided anew
// (the coordinator admits an admitted id again without counting it).
func (o *Orchestrator) Admit(ctx context.Context, repo, id string, caps Caps) (workflows.AdmitResult, error) {
	ctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	updateID := admitUpdateID(id, time.Now())
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			// The coordinator ended (idle) or continued as new between the
			// start and the Update: the next call reaches the new run.
			select {
			case <-ctx.Done():
				return workflows.AdmitResult{}, unavailable(err)
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		var res workflows.AdmitResult
		if res, err = o.admitOnce(ctx, repo, id, caps, updateID); err == nil {
			return res, nil
		}
		var appErr *temporal.ApplicationError
		var invalid *serviceerror.InvalidArgument
		switch {
		case errors.As(err, &appErr):
			// The validator refused the request: a bug, not an outage.
			return workflows.AdmitResult{}, fmt.Errorf("the repository coordinator refused the admission: %w", err)
		case errors.As(err, &invalid):
			return workflows.AdmitResult{}, o.mapErr(err)
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			return workflows.AdmitResult{}, err
		case ctx.Err() != nil:
			return workflows.AdmitResult{}, unavailable(err)
		}
	}
	return workflows.AdmitResult{}, unavailable(err)
}

func (o *Orchestrator) admitOnce(ctx context.Context, repo, id string, caps Caps, updateID string) (workflows.AdmitResult, error) {
	op := o.c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:        workflows.CoordinatorID(repo),
		TaskQueue: workflows.TaskQueue,
		// One coordinator per repository: a running one is used; an ended
		// (idle) one is started again.
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.CoordinatorWorkflowName, workflows.CoordinatorState{Repo: repo})
	handle, err := o.c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID: updateID, UpdateName: workflows.UpdateAdmit, WaitForStage: client.WorkflowUpdateStageCompleted,
			Args: []any{workflows.AdmitRequest{RemediationID: id, Repo: repo, MaxActive: caps.MaxActive, MaxPerHour: caps.MaxPerHour}},
		},
	})
	if err != nil {
		return workflows.AdmitResult{}, err
	}
	var res workflows.AdmitResult
	if err := handle.Get(ctx, &res); err != nil {
		return workflows.AdmitResult{}, err
	}
	return res, nil
}

// admitUpdateID is the admit Update's ID: the remediation id and the minute.
func admitUpdateID(id string, now time.Time) string {
	return "admit-" + id + "-" + now.UTC().Format("200601021504")
}

// wouldStartRun tells whether a start of id (of generation gen) would
// create a run: none exists, or the last one closed and gen is newer than
// its generation. A running one is attached to; a closed one answers a
// request without a newer generation.
func (o *Orchestrator) wouldStartRun(ctx context.Context, id string, gen int64) (bool, error) {
	desc, err := o.c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return true, nil
	case err != nil:
		return false, o.mapErr(err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || gen <= 0 {
		return false, nil
	}
	var last int64
	_ = decode(info.GetMemo().GetFields()[memoGeneration], &last)
	return gen > last, nil
}
