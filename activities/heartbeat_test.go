package activities_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
)

// slowFixer takes a while, as a recipe or a model does.
type slowFixer struct{ d time.Duration }

func (f slowFixer) Generate(ctx context.Context, _ activities.GenerateFixInput) (activities.Fix, error) {
	select {
	case <-time.After(f.d):
		return activities.Fix{Recipe: "slow", Patch: []byte("diff --git a/x b/x\n"), Files: []string{"x"}}, nil
	case <-ctx.Done():
		return activities.Fix{}, ctx.Err()
	}
}

// fixWithHeartbeatTimeout runs GenerateFix once under a heartbeat timeout
// much shorter than the fix takes.
func fixWithHeartbeatTimeout(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, HeartbeatTimeout: 300 * time.Millisecond,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var fix activities.Fix
	return workflow.ExecuteActivity(ctx, "GenerateFix", activities.GenerateFixInput{Repo: "/r", FailureSummary: "x"}).Get(ctx, &fix)
}

// TestGenerateFixHeartbeats: a fix that takes longer than the heartbeat
// timeout still completes, because the activity keeps telling Temporal it
// is alive; a dead worker's activity is retried after that timeout instead.
func TestGenerateFixHeartbeats(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		ok       bool
	}{{50 * time.Millisecond, true}, {time.Hour, false}} {
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestWorkflowEnvironment()
		env.RegisterActivity(&activities.Activities{Fixer: slowFixer{d: 1500 * time.Millisecond}, HeartbeatInterval: tc.interval})
		env.RegisterWorkflow(fixWithHeartbeatTimeout)
		env.ExecuteWorkflow(fixWithHeartbeatTimeout)
		err := env.GetWorkflowError()
		if (err == nil) != tc.ok {
			t.Errorf("heartbeat every %s: err %v, want ok=%v", tc.interval, err, tc.ok)
		}
	}
}
