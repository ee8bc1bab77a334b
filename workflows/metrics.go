package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// Business metrics, emitted through the SDK's metrics handler: it skips
// replay, so a worker restart or a cache eviction never counts twice. They
// reach the worker's /metrics beside the SDK's own (remediator_ prefix).
const (
	metricStarted           = "remediator_remediations_started"
	metricEnded             = "remediator_remediations_ended"
	metricChangeFailures    = "remediator_change_failures"
	metricTimeFirstApproval = "remediator_time_to_first_approval"
	metricTimeToChange      = "remediator_time_to_change"
)

func (r *remediation) countStarted(ctx workflow.Context) {
	workflow.GetMetricsHandler(ctx).Counter(metricStarted).Inc(1)
}

func (r *remediation) countEnded(ctx workflow.Context, phase Phase) {
	m := workflow.GetMetricsHandler(ctx)
	m.WithTags(map[string]string{"outcome": string(phase)}).Counter(metricEnded).Inc(1)
	if phase == PhaseCompleted && r.st.PR != nil {
		m.Timer(metricTimeToChange).Record(workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime))
	}
}

func (r *remediation) countChangeFailure(ctx workflow.Context) {
	workflow.GetMetricsHandler(ctx).Counter(metricChangeFailures).Inc(1)
}

// recordFirstApproval measures the wait from the start to the first
// approving vote.
func (r *remediation) recordFirstApproval(ctx workflow.Context) {
	workflow.GetMetricsHandler(ctx).Timer(metricTimeFirstApproval).Record(workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime))
}
