// Package worker is the single list of what a remediator worker runs. The
// production worker, the dev server, the e2e tests and the replayer all call
// Register, so none of them can drift from the others.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/workflows"
)

// Register adds the Remediation workflow and, when acts is not nil, every
// activity method of acts (their method names are the activity types).
func Register(r sdkworker.Registry, acts *activities.Activities) {
	RegisterWorkflows(r)
	if acts != nil {
		r.RegisterActivity(acts)
	}
}

// RegisterWorkflows adds the workflows only: what the replayer needs.
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.Remediation, workflow.RegisterOptions{Name: workflows.WorkflowName})
	r.RegisterWorkflowWithOptions(workflows.RepoCoordinator, workflow.RegisterOptions{Name: workflows.CoordinatorWorkflowName})
}

// New builds a worker on the remediation task queue with every type registered.
func New(c client.Client, acts *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	w := sdkworker.New(c, workflows.TaskQueue, opts)
	Register(w, acts)
	return w
}
