package orchestrator

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"remediator/internal/errcode"
	"remediator/workflows"
)

// fakeCoordClient answers the calls admission makes; every other call of
// client.Client panics (the embedded interface is nil), so a test also
// proves which calls are made.
type fakeCoordClient struct {
	client.Client
	mu sync.Mutex
	// answer is the coordinator's answer; errs fail the first calls.
	answer workflows.AdmitResult
	errs   []error
	starts []client.StartWorkflowOptions
	calls  []client.UpdateWithStartWorkflowOptions
	// runs are the remediations that exist: status and generation.
	runs      map[string]fakeRun
	describes int
}

type fakeRun struct {
	status     enumspb.WorkflowExecutionStatus
	generation int64
}

func (f *fakeCoordClient) NewWithStartWorkflowOperation(opts client.StartWorkflowOptions, _ any, _ ...any) client.WithStartWorkflowOperation {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, opts)
	return nil
}

func (f *fakeCoordClient) UpdateWithStartWorkflow(_ context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, o)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return fakeHandle{res: f.answer}, nil
}

func (f *fakeCoordClient) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	r, ok := f.runs[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	gen, _ := converter.GetDefaultDataConverter().ToPayload(r.generation)
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Status: r.status, Memo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{memoGeneration: gen}},
	}}, nil
}

type fakeHandle struct{ res workflows.AdmitResult }

func (fakeHandle) WorkflowID() string { return "" }
func (fakeHandle) RunID() string      { return "" }
func (fakeHandle) UpdateID() string   { return "" }
func (h fakeHandle) Get(_ context.Context, v any) error {
	*(v.(*workflows.AdmitResult)) = h.res
	return nil
}

var refusedActive = workflows.AdmitResult{Limit: workflows.CapMaxActive, Reason: "the repository has reached its cap of 5 active remediations; retry when one ends",
	Active: 5, StartedLastHour: 9, RetryAfter: time.Minute}

func capped(f *fakeCoordClient, caps Caps) *Orchestrator {
	o := New(f, "default", time.Hour, nil)
	o.SetCaps(caps, nil)
	return o
}

// TestAdmissionOffCostsNothing: with both caps 0 (or never set) a start
// asks no coordinator: it stays one round trip.
func TestAdmissionOffCostsNothing(t *testing.T) {
	f := &fakeCoordClient{}
	for _, o := range []*Orchestrator{New(f, "default", time.Hour, nil), capped(f, Caps{})} {
		if err := o.admit(context.Background(), StartRequest{Repo: "acme/api"}, "rem-1"); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.calls)+f.describes != 0 {
		t.Fatalf("caps off made %d updates and %d describes", len(f.calls), f.describes)
	}
}

// TestAdmissionAsksTheRepositoryCoordinator: one update-with-start on the
// repository's coordinator (started if missing, else used), the caps and
// the remediation id in the request, an Update ID stable for a retried call.
func TestAdmissionAsksTheRepositoryCoordinator(t *testing.T) {
	f := &fakeCoordClient{answer: workflows.AdmitResult{Admitted: true, Active: 1, StartedLastHour: 1}}
	o := capped(f, Caps{MaxActive: 5, MaxPerHour: 60})
	if err := o.admit(context.Background(), StartRequest{Repo: "acme/api"}, "rem-1"); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || f.describes != 0 {
		t.Fatalf("want one update and no describe, got %d and %d", len(f.calls), f.describes)
	}
	st := f.starts[0]
	if st.ID != workflows.CoordinatorID("acme/api") || st.TaskQueue != workflows.TaskQueue ||
		st.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		st.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
		t.Fatalf("coordinator start options: %+v", st)
	}
	u := f.calls[0].UpdateOptions
	req, _ := u.Args[0].(workflows.AdmitRequest)
	if u.UpdateName != workflows.UpdateAdmit || u.WaitForStage != client.WorkflowUpdateStageCompleted ||
		req != (workflows.AdmitRequest{RemediationID: "rem-1", Repo: "acme/api", MaxActive: 5, MaxPerHour: 60}) {
		t.Fatalf("update: %+v %+v", u, req)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if admitUpdateID("rem-1", now) != admitUpdateID("rem-1", now.Add(50*time.Second)) ||
		admitUpdateID("rem-1", now) == admitUpdateID("rem-2", now) || admitUpdateID("rem-1", now) == admitUpdateID("rem-1", now.Add(time.Minute)) {
		t.Fatal("the Update ID is the remediation id and the minute")
	}
	if !strings.HasPrefix(u.UpdateID, "admit-rem-1-") {
		t.Fatalf("update id %q", u.UpdateID)
	}
}

// TestAdmissionRefusal: a refused start that would create a run answers
// repo_cap_reached (429) with the cap, the counts and Retry-After; one that
// attaches to a running remediation, or answers with an ended one, goes on.
func TestAdmissionRefusal(t *testing.T) {
	f := &fakeCoordClient{answer: refusedActive, runs: map[string]fakeRun{
		"rem-running": {status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, generation: 3},
		"rem-ended":   {status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, generation: 3},
	}}
	o := capped(f, Caps{MaxActive: 5, MaxPerHour: 60})
	ctx := context.Background()

	_, err := o.Start(ctx, StartRequest{Repo: "acme/api", FailureSummary: "x", Fingerprint: "fp-new", Generation: 1})
	var refused *AdmissionRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("a new remediation over the cap: want the refusal, got %v", err)
	}
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Code != errcode.RepoCapReached || rej.Code.Status != http.StatusTooManyRequests || rej.Message != refusedActive.Reason {
		t.Fatalf("the refusal is a RejectedError with repo_cap_reached: %+v", rej)
	}
	if refused.Limit != workflows.CapMaxActive || refused.RetryAfter != time.Minute || refused.Active != 5 || refused.MaxActive != 5 ||
		refused.StartedLastHour != 9 || refused.MaxPerHour != 60 {
		t.Fatalf("refusal detail: %+v", refused)
	}
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		t.Fatal("a cap is no conflict and no invalid request")
	}

	for _, tc := range []struct {
		id   string
		gen  int64
		goOn bool
	}{
		{"rem-running", 4, true}, // attaches: the running one is the remediation
		{"rem-ended", 0, true},   // no generation: answered with the ended run
		{"rem-ended", 3, true},   // the same generation again: a redelivery
		{"rem-ended", 4, false},  // a later generation would start a run
		{"rem-missing", 0, false},
	} {
		err := o.admit(ctx, StartRequest{Repo: "acme/api", Generation: tc.gen}, tc.id)
		if (err == nil) != tc.goOn {
			t.Errorf("%s gen %d: go on %t, got %v", tc.id, tc.gen, tc.goOn, err)
		}
	}
}

// TestAdmissionRetriesAnEndedCoordinator: the coordinator ending (idle) or
// continuing as new under the Update is retried; a validator refusal is not.
func TestAdmissionRetriesAnEndedCoordinator(t *testing.T) {
	f := &fakeCoordClient{answer: workflows.AdmitResult{Admitted: true},
		errs: []error{serviceerror.NewNotFound("workflow execution already completed")}}
	o := capped(f, Caps{MaxActive: 1})
	if err := o.admit(context.Background(), StartRequest{Repo: "r"}, "rem-1"); err != nil || len(f.calls) != 2 {
		t.Fatalf("retried once: %v after %d calls", err, len(f.calls))
	}
	if f.calls[0].UpdateOptions.UpdateID != f.calls[1].UpdateOptions.UpdateID {
		t.Fatal("a retry keeps its Update ID")
	}
	bad := &fakeCoordClient{errs: []error{temporal.NewApplicationError("an admission names a remediation id", workflows.ErrTypeInvalidAdmission)}}
	if err := capped(bad, Caps{MaxActive: 1}).admit(context.Background(), StartRequest{Repo: "r"}, "rem-1"); err == nil || len(bad.calls) != 1 {
		t.Fatalf("a validator refusal is not retried: %v after %d calls", err, len(bad.calls))
	}
	down := &fakeCoordClient{errs: []error{serviceerror.NewUnavailable("x"), serviceerror.NewUnavailable("x"), serviceerror.NewUnavailable("x")}}
	if err := capped(down, Caps{MaxActive: 1}).admit(context.Background(), StartRequest{Repo: "r"}, "rem-1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Temporal down: want ErrUnavailable, got %v", err)
	}
}

// TestCapsFor: the policy's override wins for its repositories; the
// defaults apply to the rest.
func TestCapsFor(t *testing.T) {
	o := New(nil, "default", time.Hour, nil)
	o.SetCaps(Caps{MaxActive: 20, MaxPerHour: 60}, func(repo string) (Caps, bool) {
		return Caps{MaxActive: 2}, repo == "acme/payments"
	})
	if got := o.CapsFor("acme/payments"); got != (Caps{MaxActive: 2}) {
		t.Fatalf("override: %+v", got)
	}
	if got := o.CapsFor("acme/api"); got != (Caps{MaxActive: 20, MaxPerHour: 60}) {
		t.Fatalf("defaults: %+v", got)
	}
}
