package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/policy"
)

// The repository coordinator: one workflow per repository that admits
// remediations against the repository's caps (at most MaxActive running,
// at most MaxPerHour started in any hour). Every API replica asks it through
// the admit Update before a start that may create a run, so the caps hold
// across processes: the count lives in Temporal, not in any process.
const (
	CoordinatorWorkflowName = "RepoCoordinator"
	// CoordinatorIDPrefix + the first 24 hex digits of the SHA-256 of the
	// repository (its canonical name) is the coordinator's workflow ID.
	CoordinatorIDPrefix = "repo-coordinator-"
	// UpdateAdmit takes an AdmitRequest and answers an AdmitResult. A
	// refusal is a completed Update (recorded in history and in the state),
	// not a rejection.
	UpdateAdmit = "admit"
	// SignalRelease (ReleaseRequest) frees a remediation's slot.
	SignalRelease = "release"
	// QueryCoordinatorState answers the CoordinatorState.
	QueryCoordinatorState = "state"
)

// Which cap refused an admission (AdmitResult.Limit, Refusal.Limit).
const (
	CapMaxActive  = "max_active"
	CapMaxPerHour = "max_per_hour"
)

// ErrTypeInvalidAdmission rejects (in the validator, before history) an
// admit request that names no remediation, another repository or a
// negative cap.
const ErrTypeInvalidAdmission = "InvalidAdmission"

const (
	// capWindow is the sliding window of MaxPerHour.
	capWindow = time.Hour
	// reconcileThrottle: at the active cap, the coordinator asks which
	// admitted remediations still run at most this often; in between it
	// refuses at once.
	reconcileThrottle = 10 * time.Second
	// reconcileEvery: while remediations are admitted, the coordinator
	// also drops closed ones this often, so it can end when idle.
	reconcileEvery = 15 * time.Minute
	// missingGrace: an admitted remediation that does not exist (yet) keeps
	// its slot this long (its start follows the admission within the same
	// API request); after that it is dropped (the start never happened).
	missingGrace = 2 * time.Minute
	// idleGrace: a coordinator with nothing admitted and no start in the
	// last hour ends after this long without a request; the next admission
	// starts it again (update-with-start).
	idleGrace = time.Minute
	// activeRetryAfter is the hint given with an active-cap refusal.
	activeRetryAfter = time.Minute
	// coordinatorUpdatesPerRun: the coordinator continues as new after
	// this many admit Updates (or when the server suggests it).
	coordinatorUpdatesPerRun = 500
	// maxRefusalsKept: the state keeps the last refusals; Refused counts all.
	maxRefusalsKept = 50
	// MaxCap bounds MaxActive and MaxPerHour (the state keeps one time per
	// start in the window).
	MaxCap = policy.MaxCap
)

// CoordinatorID is the workflow ID of repo's coordinator.
func CoordinatorID(repo string) string {
	sum := sha256.Sum256([]byte(repo))
	return CoordinatorIDPrefix + hex.EncodeToString(sum[:])[:24]
}

// AdmitRequest asks for a slot for one remediation. The caps come with the
// request (configuration and the risk policy of the API that asks; 0: no
// cap).
type AdmitRequest struct {
	RemediationID string `json:"remediation_id"`
	Repo          string `json:"repo"`
	MaxActive     int    `json:"max_active"`
	MaxPerHour    int    `json:"max_per_hour"`
}

// AdmitResult answers an AdmitRequest. Existing: the remediation already
// held a slot (admitted again, not counted again). A refusal names the cap
// (Limit), says why (Reason) and when a retry may pass (RetryAfter).
type AdmitResult struct {
	Admitted        bool          `json:"admitted"`
	Existing        bool          `json:"existing,omitempty"`
	Limit           string        `json:"limit,omitempty"`
	Reason          string        `json:"reason,omitempty"`
	Active          int           `json:"active"`
	StartedLastHour int           `json:"started_last_hour"`
	RetryAfter      time.Duration `json:"retry_after,omitempty"`
}

// ReleaseRequest is the payload of SignalRelease.
type ReleaseRequest struct {
	RemediationID string `json:"remediation_id"`
}

// Admission is one remediation holding a slot.
type Admission struct {
	RemediationID string    `json:"remediation_id"`
	At            time.Time `json:"at"`
}

// Refusal is one refused admission.
type Refusal struct {
	RemediationID string    `json:"remediation_id"`
	Limit         string    `json:"limit"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at"`
}

// CoordinatorState is the coordinator's whole state: its input, the answer
// of its state query, and what it carries when it continues as new.
type CoordinatorState struct {
	Repo string `json:"repo"`
	// Active are the admitted remediations not yet released or seen closed.
	Active []Admission `json:"active"`
	// Window holds the admission times of the last hour, oldest first.
	Window []time.Time `json:"window"`
	// Admitted and Refused count every admission and refusal since the
	// coordinator first started; Refusals are the last 50 refusals.
	Admitted int       `json:"admitted"`
	Refused  int       `json:"refused"`
	Refusals []Refusal `json:"refusals"`
	// LastReconcile is when the coordinator last asked which admitted
	// remediations still run.
	LastReconcile time.Time `json:"last_reconcile,omitzero"`
	// MaxActive and MaxPerHour are the caps of the last request.
	MaxActive  int `json:"max_active"`
	MaxPerHour int `json:"max_per_hour"`
}

// reconcileOptions: a few quick describes; an admission waits for it, so it
// is bounded well inside the API's wait.
var reconcileOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    10 * time.Second,
	ScheduleToCloseTimeout: 15 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        5 * time.Second,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// coordinator is the per-run state; handlers and the main loop share it
// (workflow coroutines never run concurrently).
type coordinator struct {
	st CoordinatorState
	// updates counts the admit Updates of this run.
	updates int
	// touched is when the last request (admit or release) arrived.
	touched time.Time
	// nextPeriodic is when the background reconcile runs next.
	nextPeriodic time.Time
	// reconciling is the reconcile in flight (nil: none); admissions that
	// need one wait for it instead of starting another.
	reconciling workflow.Future
}

// RepoCoordinator admits the remediations of one repository against its
// caps. It ends when idle (nothing admitted, no start within the hour) and
// continues as new after coordinatorUpdatesPerRun Updates, carrying st.
func RepoCoordinator(ctx workflow.Context, st CoordinatorState) error {
	now := workflow.Now(ctx)
	c := &coordinator{st: st, touched: now, nextPeriodic: now.Add(reconcileEvery)}
	if err := workflow.SetQueryHandler(ctx, QueryCoordinatorState, func() (CoordinatorState, error) {
		return c.view(workflow.Now(ctx)), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAdmit, c.admit, workflow.UpdateHandlerOptions{Validator: c.validate}); err != nil {
		return err
	}
	releases := workflow.GetSignalChannel(ctx, SignalRelease)
	continueAsNew := func() bool {
		return c.updates >= coordinatorUpdatesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	}
	for {
		wait := c.nextWake(workflow.Now(ctx))
		if _, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return releases.Len() > 0 || continueAsNew() }); err != nil {
			return err // cancelled
		}
		c.drain(ctx, releases)
		now := workflow.Now(ctx)
		c.prune(now)
		if len(c.st.Active) > 0 && !now.Before(c.nextPeriodic) {
			c.reconcile(ctx)
			c.nextPeriodic = workflow.Now(ctx).Add(reconcileEvery)
		}
		if continueAsNew() {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			c.drain(ctx, releases)
			return workflow.NewContinueAsNewError(ctx, CoordinatorWorkflowName, c.st)
		}
		if c.idle(workflow.Now(ctx)) {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			c.drain(ctx, releases)
			if c.idle(workflow.Now(ctx)) {
				return nil
			}
		}
	}
}

// validate refuses malformed requests before they reach history.
func (c *coordinator) validate(req AdmitRequest) error {
	switch {
	case !strings.HasPrefix(req.RemediationID, IDPrefix) || len(req.RemediationID) > 64:
		return temporal.NewApplicationError("an admission names a remediation id", ErrTypeInvalidAdmission)
	case req.MaxActive < 0 || req.MaxPerHour < 0 || req.MaxActive > MaxCap || req.MaxPerHour > MaxCap:
		return temporal.NewApplicationError(fmt.Sprintf("caps are between 0 and %d", MaxCap), ErrTypeInvalidAdmission)
	case c.st.Repo != "" && req.Repo != c.st.Repo:
		return temporal.NewApplicationError("this coordinator admits another repository's remediations", ErrTypeInvalidAdmission)
	}
	return nil
}

// admit answers one admission: again for a remediation that holds a slot,
// refused over a cap (and recorded), else admitted and counted.
func (c *coordinator) admit(ctx workflow.Context, req AdmitRequest) (AdmitResult, error) {
	c.updates++
	now := workflow.Now(ctx)
	c.touched = now
	if c.st.Repo == "" {
		c.st.Repo = req.Repo
	}
	c.st.MaxActive, c.st.MaxPerHour = req.MaxActive, req.MaxPerHour
	c.prune(now)
	if c.holds(req.RemediationID) {
		return c.result(true, true), nil
	}
	if req.MaxActive > 0 && len(c.st.Active) >= req.MaxActive && c.mayReconcile(now) {
		c.reconcile(ctx)
		now = workflow.Now(ctx)
		c.prune(now)
		if c.holds(req.RemediationID) { // admitted meanwhile by the same request, retried
			return c.result(true, true), nil
		}
	}
	if req.MaxActive > 0 && len(c.st.Active) >= req.MaxActive {
		return c.refuse(now, req, CapMaxActive, fmt.Sprintf(
			"the repository has reached its cap of %d active remediations; retry when one ends", req.MaxActive), activeRetryAfter), nil
	}
	if req.MaxPerHour > 0 && len(c.st.Window) >= req.MaxPerHour {
		// One more start fits once the entry at len-MaxPerHour left the window.
		frees := c.st.Window[len(c.st.Window)-req.MaxPerHour].Add(capWindow)
		return c.refuse(now, req, CapMaxPerHour, fmt.Sprintf(
			"the repository has reached its cap of %d remediations started per hour", req.MaxPerHour), frees.Sub(now)), nil
	}
	if len(c.st.Active) == 0 {
		c.nextPeriodic = now.Add(reconcileEvery)
	}
	c.st.Active = append(c.st.Active, Admission{RemediationID: req.RemediationID, At: now})
	c.st.Window = append(c.st.Window, now)
	if len(c.st.Window) > MaxCap {
		c.st.Window = slices.Delete(c.st.Window, 0, len(c.st.Window)-MaxCap)
	}
	c.st.Admitted++
	return c.result(true, false), nil
}

func (c *coordinator) result(admitted, existing bool) AdmitResult {
	return AdmitResult{Admitted: admitted, Existing: existing, Active: len(c.st.Active), StartedLastHour: len(c.st.Window)}
}

// refuse records a refusal in the state (and, as the Update's result, in
// history) and answers it.
func (c *coordinator) refuse(now time.Time, req AdmitRequest, limit, reason string, retry time.Duration) AdmitResult {
	c.st.Refused++
	c.st.Refusals = append(c.st.Refusals, Refusal{RemediationID: req.RemediationID, Limit: limit, Reason: reason, At: now})
	if n := len(c.st.Refusals); n > maxRefusalsKept {
		c.st.Refusals = slices.Delete(c.st.Refusals, 0, n-maxRefusalsKept)
	}
	res := c.result(false, false)
	res.Limit, res.Reason, res.RetryAfter = limit, reason, max(retry, time.Second).Round(time.Second)
	return res
}

// holds reports whether id holds a slot.
func (c *coordinator) holds(id string) bool {
	return slices.ContainsFunc(c.st.Active, func(a Admission) bool { return a.RemediationID == id })
}

// release frees id's slot (an unknown id changes nothing).
func (c *coordinator) release(id string) {
	c.st.Active = slices.DeleteFunc(c.st.Active, func(a Admission) bool { return a.RemediationID == id })
}

// drain takes every pending release signal.
func (c *coordinator) drain(ctx workflow.Context, releases workflow.ReceiveChannel) {
	for {
		var r ReleaseRequest
		if !releases.ReceiveAsync(&r) {
			return
		}
		c.touched = workflow.Now(ctx)
		c.release(r.RemediationID)
	}
}

// prune drops the admissions older than the window.
func (c *coordinator) prune(now time.Time) {
	cut := now.Add(-capWindow)
	i := 0
	for i < len(c.st.Window) && !c.st.Window[i].After(cut) {
		i++
	}
	if i > 0 {
		c.st.Window = slices.Delete(c.st.Window, 0, i)
	}
}

// mayReconcile: one is in flight (join it), or the last is old enough.
func (c *coordinator) mayReconcile(now time.Time) bool {
	return c.reconciling != nil || c.st.LastReconcile.IsZero() || !now.Before(c.st.LastReconcile.Add(reconcileThrottle))
}

// reconcile asks which admitted remediations still run and drops the
// others (a missing one only after missingGrace). A reconcile in flight is
// joined. If the activity fails, nothing changes.
func (c *coordinator) reconcile(ctx workflow.Context) {
	if c.reconciling != nil {
		_ = c.reconciling.Get(ctx, nil)
		return
	}
	f, settle := workflow.NewFuture(ctx)
	c.reconciling = f
	defer func() {
		c.reconciling = nil
		settle.Set(nil, nil)
	}()
	c.st.LastReconcile = workflow.Now(ctx)
	asked := make([]Admission, len(c.st.Active))
	copy(asked, c.st.Active)
	ids := make([]string, len(asked))
	for i, a := range asked {
		ids[i] = a.RemediationID
	}
	var res activities.ActiveRemediationsResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, reconcileOptions), acts.ActiveRemediations, ids).Get(ctx, &res)
	if err != nil {
		var canceled *temporal.CanceledError
		if !errors.As(err, &canceled) {
			workflow.GetLogger(ctx).Warn("reconciling the admitted remediations failed; keeping them", "error", err)
		}
		return
	}
	now := workflow.Now(ctx)
	for _, a := range asked {
		keep := slices.Contains(res.Active, a.RemediationID) ||
			(slices.Contains(res.Missing, a.RemediationID) && now.Sub(a.At) < missingGrace)
		if !keep {
			c.release(a.RemediationID)
		}
	}
}

// idle: nothing admitted, no start within the window, no request for a while.
func (c *coordinator) idle(now time.Time) bool {
	return len(c.st.Active) == 0 && len(c.st.Window) == 0 && now.Sub(c.touched) >= idleGrace
}

// nextWake is when the main loop has something to do: the background
// reconcile, the oldest start leaving the window, the end of an idle spell.
func (c *coordinator) nextWake(now time.Time) time.Duration {
	next := c.touched.Add(idleGrace)
	if len(c.st.Active) > 0 {
		next = c.nextPeriodic
	}
	if len(c.st.Window) > 0 {
		if w := c.st.Window[0].Add(capWindow); len(c.st.Active) == 0 || w.Before(next) {
			next = w
		}
	}
	return max(next.Sub(now), time.Second)
}

// view is the state as the query shows it, the window as of now.
func (c *coordinator) view(now time.Time) CoordinatorState {
	v := c.st
	v.Active = slices.Clone(c.st.Active)
	v.Refusals = slices.Clone(c.st.Refusals)
	cut := now.Add(-capWindow)
	v.Window = slices.DeleteFunc(slices.Clone(c.st.Window), func(t time.Time) bool { return !t.After(cut) })
	return v
}

// ReleaseAdmission frees remediationID's slot in repo's coordinator: the
// Remediation workflow calls it when its run ends. It never fails the
// caller: a coordinator that does not run (caps off, or ended idle) has
// nothing to free, and a lost release is made good by the coordinator's
// reconcile. It runs on a disconnected context, so a cancelled run releases
// too.
func ReleaseAdmission(ctx workflow.Context, repo, remediationID string) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	awaitRelease(ctx, dctx, sendRelease(dctx, repo, remediationID))
}

// sendRelease sends the release signal without waiting for it, so the
// Remediation workflow sends it in the same task as its outcome.
func sendRelease(ctx workflow.Context, repo, remediationID string) workflow.Future {
	return workflow.SignalExternalWorkflow(ctx, CoordinatorID(repo), "", SignalRelease, ReleaseRequest{RemediationID: remediationID})
}

// awaitRelease waits for a sendRelease; a coordinator that does not run is
// not a failure.
func awaitRelease(ctx, dctx workflow.Context, f workflow.Future) {
	err := f.Get(dctx, nil)
	var unknown *temporal.UnknownExternalWorkflowExecutionError
	if err != nil && !errors.As(err, &unknown) {
		workflow.GetLogger(ctx).Warn("releasing the repository admission failed; the coordinator's reconcile frees it", "error", err)
	}
}
