package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
)

// Named activity options, one per call class. Every class retries transient
// errors with backoff and stops at once on the classified permanent types.

// generateFixOptions: recipes run commands with their own timeouts (minutes).
var generateFixOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    15 * time.Minute,
	ScheduleToCloseTimeout: time.Hour,
	// GenerateFix heartbeats every 5s: a dead worker's fix is retried
	// elsewhere within 20s, not after 15 minutes, and a cancel stops the
	// recipe at the next heartbeat.
	HeartbeatTimeout: 20 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        2 * time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		MaximumAttempts:        5,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// ledgerOptions: small, idempotent calls to the decision service, retried for
// up to a day so an outage of the ledger delays rather than loses the record.
var ledgerOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    30 * time.Second,
	ScheduleToCloseTimeout: 24 * time.Hour,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Minute,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// openPROptions: find-then-create against the git provider; safe to retry.
var openPROptions = workflow.ActivityOptions{
	StartToCloseTimeout:    5 * time.Minute,
	ScheduleToCloseTimeout: 24 * time.Hour,
	// OpenPR heartbeats every 5s while it talks to the forge: a killed
	// worker's change is retried elsewhere within 20s.
	HeartbeatTimeout: 20 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Minute,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// voteKeysOptions: reading the worker's configured keys is local and quick;
// a worker without keys is misconfigured, which retrying cannot fix.
var voteKeysOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout:    5 * time.Second,
	ScheduleToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Second,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// incidentCreateOptions: creating the incident precedes the fix, so an
// incident API that is down may delay it by two minutes at most.
var incidentCreateOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    30 * time.Second,
	ScheduleToCloseTimeout: 2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// writebackOptions: the incident and the Slack message, retried for an hour;
// they never hold the remediation's outcome back.
var writebackOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    30 * time.Second,
	ScheduleToCloseTimeout: time.Hour,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Minute,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}
