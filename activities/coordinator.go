package activities

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
)

// WorkflowDescriber reads workflow executions: the worker's Temporal client.
// The repository coordinator's reconcile asks it which admitted
// remediations still run.
type WorkflowDescriber interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// ActiveRemediationsResult sorts the ids ActiveRemediations was given: Active
// still run (or could not be read: kept, to fail safe), Missing do not
// exist (yet: an admission precedes its start, so the coordinator keeps a
// fresh one); every other id has closed.
type ActiveRemediationsResult struct {
	Active  []string `json:"active,omitempty"`
	Missing []string `json:"missing,omitempty"`
}

// describeConcurrency bounds the describes of one reconcile.
const describeConcurrency = 8

// ActiveRemediations tells which of the remediations a repository's
// coordinator admitted are still running, so slots of remediations that
// ended without releasing theirs (terminated, or started by an older
// worker) are freed. Only remediation ids are looked at.
func (a *Activities) ActiveRemediations(ctx context.Context, ids []string) (ActiveRemediationsResult, error) {
	if a.Workflows == nil {
		return ActiveRemediationsResult{}, notConfigured("workflow client")
	}
	type answer struct{ active, missing bool }
	answers := make([]answer, len(ids))
	sem := make(chan struct{}, describeConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		if !strings.HasPrefix(id, "rem-") {
			continue // not a remediation: dropped
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			desc, err := a.Workflows.DescribeWorkflowExecution(dctx, id, "")
			var nf *serviceerror.NotFound
			switch {
			case errors.As(err, &nf):
				answers[i].missing = true
			case err != nil:
				// Unknown is not closed: the slot stays taken.
				answers[i].active = true
			default:
				answers[i].active = desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return ActiveRemediationsResult{}, err
	}
	var out ActiveRemediationsResult
	for i, id := range ids {
		switch {
		case answers[i].active:
			out.Active = append(out.Active, id)
		case answers[i].missing:
			out.Missing = append(out.Missing, id)
		}
	}
	return out, nil
}
