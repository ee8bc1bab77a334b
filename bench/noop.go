//go:build !production

package main

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The benchmark-only fake: a workflow that waits for an approval (a signal
// or an Update) and then runs one no-op activity. It lives only in this
// program, on its own task queue, with a worker this program creates; the
// service never registers it.
const (
	noopTaskQueue    = "remediator-bench-raw"
	noopWorkflowName = "BenchNoopApproval"
	noopActivityName = "BenchNoopActivity"
	noopSignal       = "approve"
	noopUpdate       = "approve"
)

func noopApprovalWorkflow(ctx workflow.Context) error {
	approved := false
	if err := workflow.SetUpdateHandler(ctx, noopUpdate, func(workflow.Context) error {
		approved = true
		return nil
	}); err != nil {
		return err
	}
	sig := workflow.GetSignalChannel(ctx, noopSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		sig.Receive(ctx, nil)
		approved = true
	})
	if err := workflow.Await(ctx, func() bool { return approved }); err != nil {
		return err
	}
	// Like OpenPR: a scheduled activity with a retry policy (the server's
	// default), so its started event is written with its real start time.
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	return workflow.ExecuteActivity(actx, noopActivityName).Get(ctx, nil)
}

func noopActivity(context.Context) error { return nil }

func newNoopWorker(c client.Client) sdkworker.Worker {
	w := sdkworker.New(c, noopTaskQueue, sdkworker.Options{WorkerStopTimeout: 5 * time.Second})
	w.RegisterWorkflowWithOptions(noopApprovalWorkflow, workflow.RegisterOptions{Name: noopWorkflowName})
	w.RegisterActivityWithOptions(noopActivity, activity.RegisterOptions{Name: noopActivityName})
	return w
}
