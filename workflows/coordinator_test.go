package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
)

const coordRepo = "acme/api"

// coordTest drives one RepoCoordinator in the test environment: requests
// are sent at workflow times, their answers kept by name.
type coordTest struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu      sync.Mutex
	results map[string]*admitOutcome
	// running answers the reconcile: which ids run, which do not exist.
	running, missing []string
	reconciles       int
}

type admitOutcome struct {
	res      AdmitResult
	err      error
	rejected error
	done     bool
}

func newCoordTest(t *testing.T) *coordTest {
	var s testsuite.WorkflowTestSuite
	ct := &coordTest{t: t, env: s.NewTestWorkflowEnvironment(), results: map[string]*admitOutcome{}}
	ct.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: CoordinatorID(coordRepo)})
	ct.env.RegisterWorkflowWithOptions(RepoCoordinator, workflow.RegisterOptions{Name: CoordinatorWorkflowName})
	ct.env.RegisterActivity(&activities.Activities{})
	ct.env.OnActivity(acts.ActiveRemediations, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ids []string) (activities.ActiveRemediationsResult, error) {
			ct.mu.Lock()
			defer ct.mu.Unlock()
			ct.reconciles++
			var out activities.ActiveRemediationsResult
			for _, id := range ids {
				switch {
				case slices.Contains(ct.running, id):
					out.Active = append(out.Active, id)
				case slices.Contains(ct.missing, id):
					out.Missing = append(out.Missing, id)
				}
			}
			return out, nil
		}).Maybe()
	return ct
}

// at runs f at workflow time d after the start.
func (ct *coordTest) at(d time.Duration, f func()) { ct.env.RegisterDelayedCallback(f, d) }

// admit sends the admit Update for id (named key in the results).
func (ct *coordTest) admit(key, id string, maxActive, maxPerHour int) {
	out := &admitOutcome{}
	ct.results[key] = out
	ct.env.UpdateWorkflow(UpdateAdmit, key, &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { out.rejected, out.done = err, true },
		OnComplete: func(v any, err error) {
			out.err, out.done = err, true
			if r, ok := v.(AdmitResult); ok {
				out.res = r
			}
		},
	}, AdmitRequest{RemediationID: id, Repo: coordRepo, MaxActive: maxActive, MaxPerHour: maxPerHour})
}

func (ct *coordTest) release(id string) {
	ct.env.SignalWorkflow(SignalRelease, ReleaseRequest{RemediationID: id})
}

func (ct *coordTest) state() CoordinatorState {
	v, err := ct.env.QueryWorkflow(QueryCoordinatorState)
	require.NoError(ct.t, err)
	var st CoordinatorState
	require.NoError(ct.t, v.Get(&st))
	return st
}

func (ct *coordTest) setRunning(ids ...string) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.running = ids
}

// result is the answer to the request named key; it must have completed.
func (ct *coordTest) result(key string) AdmitResult {
	ct.t.Helper()
	out := ct.results[key]
	require.NotNil(ct.t, out, key)
	require.True(ct.t, out.done, "%s did not complete", key)
	require.NoError(ct.t, out.rejected, key)
	require.NoError(ct.t, out.err, key)
	return out.res
}

// run starts the coordinator (empty state) and waits for its end: every
// test releases what it admitted, so the coordinator ends idle.
func (ct *coordTest) run(in CoordinatorState) error {
	ct.env.ExecuteWorkflow(RepoCoordinator, in)
	require.True(ct.t, ct.env.IsWorkflowCompleted())
	return ct.env.GetWorkflowError()
}

// TestCoordinatorAdmitsUpToTheCap: admissions up to MaxActive pass; the next
// is refused with the cap in its reason and recorded; an admitted id asking
// again is admitted without being counted; at the cap the coordinator
// reconciles at most once per 10 s.
func TestCoordinatorAdmitsUpToTheCap(t *testing.T) {
	ct := newCoordTest(t)
	ct.setRunning("rem-a", "rem-b")
	ct.at(time.Second, func() {
		ct.admit("a", "rem-a", 2, 0)
		ct.admit("b", "rem-b", 2, 0)
	})
	ct.at(2*time.Second, func() { ct.admit("c", "rem-c", 2, 0) })
	ct.at(3*time.Second, func() {
		ct.admit("c-again", "rem-c", 2, 0) // within 10 s: refused without another reconcile
		ct.admit("a-again", "rem-a", 2, 0)
	})
	var mid CoordinatorState
	reconcilesAt3s := 0
	ct.at(4*time.Second, func() {
		mid = ct.state()
		reconcilesAt3s = ct.reconciles
		ct.release("rem-a")
		ct.release("rem-b")
	})
	require.NoError(t, ct.run(CoordinatorState{Repo: coordRepo}))

	for _, k := range []string{"a", "b"} {
		r := ct.result(k)
		require.True(t, r.Admitted, k)
		require.False(t, r.Existing, k)
	}
	c := ct.result("c")
	require.False(t, c.Admitted)
	require.Equal(t, CapMaxActive, c.Limit)
	require.Contains(t, c.Reason, "cap of 2 active remediations")
	require.Equal(t, 2, c.Active)
	require.Equal(t, time.Minute, c.RetryAfter)
	require.False(t, ct.result("c-again").Admitted)
	again := ct.result("a-again")
	require.True(t, again.Admitted)
	require.True(t, again.Existing)
	require.Equal(t, 2, again.StartedLastHour, "an admitted id asking again is not counted again")

	require.Equal(t, 1, reconcilesAt3s, "one reconcile at the cap, none for the refusal 1 s later")
	require.Equal(t, 2, mid.Admitted)
	require.Equal(t, 2, mid.Refused)
	require.Len(t, mid.Refusals, 2)
	require.Equal(t, "rem-c", mid.Refusals[0].RemediationID)
	require.Equal(t, CapMaxActive, mid.Refusals[0].Limit)
	require.Equal(t, []string{"rem-a", "rem-b"}, ids(mid.Active))
}

// TestCoordinatorHourlyWindowSlides: MaxPerHour counts starts in the last
// hour, whether or not they still run; the window slides.
func TestCoordinatorHourlyWindowSlides(t *testing.T) {
	ct := newCoordTest(t)
	ct.at(time.Second, func() { ct.admit("a", "rem-a", 0, 2) })
	ct.at(10*time.Minute, func() {
		ct.admit("b", "rem-b", 0, 2)
		ct.release("rem-a")
		ct.release("rem-b")
	})
	ct.at(20*time.Minute, func() { ct.admit("c", "rem-c", 0, 2) })
	ct.at(61*time.Minute, func() { ct.admit("c-later", "rem-c", 0, 2) })
	var later CoordinatorState
	ct.at(62*time.Minute, func() {
		later = ct.state()
		ct.release("rem-c")
	})
	require.NoError(t, ct.run(CoordinatorState{}))

	require.True(t, ct.result("a").Admitted)
	require.True(t, ct.result("b").Admitted)
	c := ct.result("c")
	require.False(t, c.Admitted)
	require.Equal(t, CapMaxPerHour, c.Limit)
	require.Equal(t, 0, c.Active, "released remediations still count in the hour")
	require.Equal(t, 2, c.StartedLastHour)
	require.Equal(t, 40*time.Minute+time.Second, c.RetryAfter, "the first start (at 1s) leaves the window an hour after it")
	require.Contains(t, c.Reason, "cap of 2 remediations started per hour")
	cl := ct.result("c-later")
	require.True(t, cl.Admitted, "an hour after the first start one more fits")
	require.Equal(t, 2, cl.StartedLastHour)
	require.Len(t, later.Window, 2)
	require.Equal(t, coordRepo, later.Repo, "the first request names the repository")
}

// TestCoordinatorReleaseFreesASlot: a release signal frees the slot at once,
// without a reconcile.
func TestCoordinatorReleaseFreesASlot(t *testing.T) {
	ct := newCoordTest(t)
	ct.at(time.Second, func() { ct.admit("a", "rem-a", 1, 0) })
	ct.at(2*time.Second, func() { ct.release("rem-a") })
	ct.at(3*time.Second, func() { ct.admit("b", "rem-b", 1, 0) })
	ct.at(4*time.Second, func() { ct.release("rem-b") })
	require.NoError(t, ct.run(CoordinatorState{}))
	require.True(t, ct.result("a").Admitted)
	b := ct.result("b")
	require.True(t, b.Admitted)
	require.Equal(t, 1, b.Active)
	require.Equal(t, 0, ct.reconciles)
}

// TestCoordinatorReconcileDropsClosed: at the cap, remediations that ended
// without releasing (terminated) are dropped; one that does not exist yet
// keeps its slot for the grace (its start follows the admission), then not.
func TestCoordinatorReconcileDropsClosed(t *testing.T) {
	ct := newCoordTest(t)
	ct.mu.Lock()
	ct.running, ct.missing = []string{"rem-b"}, []string{"rem-c"}
	ct.mu.Unlock()
	ct.at(time.Second, func() {
		ct.admit("a", "rem-a", 2, 0)
		ct.admit("b", "rem-b", 2, 0)
	})
	// rem-a closed: dropped, rem-c admitted (and not started yet).
	ct.at(30*time.Second, func() { ct.admit("c", "rem-c", 2, 0) })
	// rem-c is missing but fresh: kept, so rem-d is refused.
	ct.at(time.Minute, func() { ct.admit("d", "rem-d", 2, 0) })
	// Three minutes on, rem-c still does not exist: its start never
	// happened, the slot is free again.
	ct.at(4*time.Minute, func() { ct.admit("e", "rem-e", 2, 0) })
	var after CoordinatorState
	ct.at(5*time.Minute, func() {
		after = ct.state()
		ct.release("rem-b")
		ct.release("rem-e")
	})
	require.NoError(t, ct.run(CoordinatorState{}))
	require.True(t, ct.result("c").Admitted)
	d := ct.result("d")
	require.False(t, d.Admitted)
	require.Equal(t, CapMaxActive, d.Limit)
	require.True(t, ct.result("e").Admitted)
	require.Equal(t, []string{"rem-b", "rem-e"}, ids(after.Active))
	require.Equal(t, 3, ct.reconciles)
}

// TestCoordinatorContinuesAsNewWithItsState: asked to continue as new, the
// coordinator waits for its handlers and carries active slots, the window
// and the refusals; a new run started with that state honours it.
func TestCoordinatorContinuesAsNewWithItsState(t *testing.T) {
	ct := newCoordTest(t)
	ct.setRunning("rem-a")
	ct.at(time.Second, func() { ct.admit("a", "rem-a", 1, 0) })
	ct.at(20*time.Second, func() { ct.admit("b", "rem-b", 1, 0) })
	ct.at(30*time.Second, func() {
		ct.env.SetContinueAsNewSuggested(true)
		ct.admit("a-again", "rem-a", 1, 0)
	})
	err := ct.run(CoordinatorState{Repo: coordRepo})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "want continue-as-new, got %v", err)
	require.Equal(t, CoordinatorWorkflowName, can.WorkflowType.Name)
	var carried CoordinatorState
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &carried))
	require.Equal(t, coordRepo, carried.Repo)
	require.Equal(t, []string{"rem-a"}, ids(carried.Active))
	require.Len(t, carried.Window, 1)
	require.Equal(t, 1, carried.Admitted)
	require.Equal(t, 1, carried.Refused)
	require.Len(t, carried.Refusals, 1)
	require.False(t, ct.result("b").Admitted)

	// The next run: rem-a holds its slot, rem-b is still refused.
	next := newCoordTest(t)
	next.setRunning("rem-a")
	next.at(time.Second, func() {
		next.admit("a", "rem-a", 1, 0)
		next.admit("b", "rem-b", 1, 0)
	})
	next.at(2*time.Second, func() { next.release("rem-a") })
	require.NoError(t, next.run(carried))
	require.True(t, next.result("a").Existing)
	require.False(t, next.result("b").Admitted)
}

// TestCoordinatorRefusesMalformedRequests: the validator refuses requests
// that name no remediation or negative caps, before history.
func TestCoordinatorRefusesMalformedRequests(t *testing.T) {
	ct := newCoordTest(t)
	ct.at(time.Second, func() {
		ct.admit("bad-id", "wf-1", 1, 1)
		out := &admitOutcome{}
		ct.results["other-repo"] = out
		ct.env.UpdateWorkflow(UpdateAdmit, "other-repo", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { out.rejected, out.done = err, true },
			OnComplete: func(any, error) { out.done = true },
		}, AdmitRequest{RemediationID: "rem-x", Repo: "acme/other", MaxActive: 1})
	})
	require.NoError(t, ct.run(CoordinatorState{Repo: coordRepo}))
	for _, k := range []string{"bad-id", "other-repo"} {
		require.Error(t, ct.results[k].rejected, k)
		require.True(t, strings.Contains(ct.results[k].rejected.Error(), "admit") || strings.Contains(ct.results[k].rejected.Error(), "remediation"), k)
	}
}

// TestCoordinatorID: stable, prefixed, 24 hex digits, one per repository.
func TestCoordinatorID(t *testing.T) {
	id := CoordinatorID("acme/api")
	require.Equal(t, id, CoordinatorID("acme/api"))
	require.NotEqual(t, id, CoordinatorID("acme/web"))
	require.True(t, strings.HasPrefix(id, CoordinatorIDPrefix))
	require.Len(t, id, len(CoordinatorIDPrefix)+24)
}

// TestCoordinatorReleaseAdmission: the helper signals the coordinator and
// ignores a coordinator that does not run.
func TestCoordinatorReleaseAdmission(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var signalled []string
	env.OnSignalExternalWorkflow(mock.Anything, CoordinatorID(coordRepo), "", SignalRelease, mock.Anything).Return(
		func(_, workflowID, _, _ string, arg any) error {
			signalled = append(signalled, workflowID)
			return errors.New("unknown external workflow execution")
		}).Once()
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		ReleaseAdmission(ctx, coordRepo, "rem-a")
		return nil
	})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{CoordinatorID(coordRepo)}, signalled)
}

func ids(as []Admission) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.RemediationID
	}
	return out
}
