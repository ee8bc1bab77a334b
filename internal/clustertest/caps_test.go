//go:build cluster

package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// scenarioRepoCaps: 500 Alertmanager alerts for one repository, 20
// fingerprints × 25, shuffled into 10 deliveries of 50 sent at the same
// instant, 5 to each API replica. The repository's cap (5 running, from the
// policy file both APIs read) holds across the replicas because the count
// lives in the repository's coordinator workflow: exactly 5 fingerprints
// get a remediation, one each (its repeats answered duplicate and counted
// on it); every alert of the other 15 is refused with code
// repo_cap_reached, counted by the APIs and recorded by the coordinator.
func (c *Cluster) scenarioRepoCaps(t *testing.T) {
	const fingerprints, perFingerprint, deliveries = 20, 25, 10
	repo := c.cappedRepoPath()
	startsAt := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	fps := make([]string, fingerprints)
	for i := range fps {
		fps[i] = fmt.Sprintf("ca%014x", i)
	}
	var alerts []map[string]any
	for range perFingerprint {
		for i, fp := range fps {
			alerts = append(alerts, map[string]any{
				"status": "firing", "fingerprint": fp, "startsAt": startsAt,
				"labels":      map[string]string{"alertname": "CapStorm", "repository": repo, "shard": strconv.Itoa(i)},
				"annotations": map[string]string{"summary": "gofmt check failed"},
			})
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(alerts), func(i, j int) { alerts[i], alerts[j] = alerts[j], alerts[i] })
	per := len(alerts) / deliveries

	res := make([]apiResp, deliveries)
	barrier := make(chan struct{})
	var wg sync.WaitGroup
	for d := range deliveries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-barrier
			res[d] = c.call(d%2, "POST", "/api/observability/alert", "dev", map[string]any{
				"version": "4", "status": "firing", "receiver": "remediator", "alerts": alerts[d*per : (d+1)*per],
			})
		}()
	}
	began := time.Now()
	close(barrier)
	wg.Wait()
	elapsed := time.Since(began)

	type tally struct {
		accepted, duplicate, capped int
		ids                         map[string]bool
	}
	byFP := map[string]*tally{}
	var other []string
	for d, r := range res {
		if r.err != nil || r.code != http.StatusAccepted {
			t.Fatalf("delivery %d on api-%d: %s", d, d%2, r)
		}
		items, _ := r.body["results"].([]any)
		if len(items) != per {
			t.Fatalf("delivery %d: %d results for %d alerts", d, len(items), per)
		}
		for _, it := range items {
			m, _ := it.(map[string]any)
			fp := fmt.Sprint(m["fingerprint"])
			tl := byFP[fp]
			if tl == nil {
				tl = &tally{ids: map[string]bool{}}
				byFP[fp] = tl
			}
			switch {
			case m["status"] == "accepted":
				tl.accepted++
				tl.ids[fmt.Sprint(m["workflow_id"])] = true
			case m["status"] == "duplicate":
				tl.duplicate++
				tl.ids[fmt.Sprint(m["workflow_id"])] = true
			case m["status"] == "refused" && m["code"] == "repo_cap_reached":
				tl.capped++
			default:
				other = append(other, fmt.Sprintf("%s: %v", fp, m))
			}
		}
	}
	idOf := func(fp string) string {
		return orchestrator.IDFor(orchestrator.StartRequest{IdempotencyKey: "intake:alert:" + fp, Requester: "dev"})
	}
	var admitted, refusedFPs []string
	refusedResults := 0
	for _, fp := range fps {
		tl := byFP[fp]
		if tl == nil {
			t.Errorf("%s: no result", fp)
			continue
		}
		refusedResults += tl.capped
		switch {
		case tl.accepted+tl.duplicate > 0:
			admitted = append(admitted, fp)
			if tl.accepted != 1 || tl.duplicate != perFingerprint-1 || tl.capped != 0 || len(tl.ids) != 1 || !tl.ids[idOf(fp)] {
				t.Errorf("%s (admitted): accepted=%d duplicate=%d refused=%d ids=%v; want 1, %d, 0 and only %s",
					fp, tl.accepted, tl.duplicate, tl.capped, tl.ids, perFingerprint-1, idOf(fp))
			}
		default:
			refusedFPs = append(refusedFPs, fp)
			if tl.capped != perFingerprint {
				t.Errorf("%s (refused): %d of %d alerts refused with repo_cap_reached", fp, tl.capped, perFingerprint)
			}
		}
	}
	if len(other) > 0 {
		t.Errorf("alerts answered neither accepted, duplicate nor refused with repo_cap_reached: %v", other)
	}
	if len(admitted) != capActive {
		t.Errorf("%d fingerprints got a remediation (%v), want exactly the cap, %d", len(admitted), admitted, capActive)
	}

	// Temporal agrees: the admitted fingerprints' remediations run, the
	// others' do not exist.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	running := 0
	for _, fp := range fps {
		desc, err := c.tc.DescribeWorkflowExecution(ctx, idOf(fp), "")
		var nf *serviceerror.NotFound
		switch {
		case slices.Contains(admitted, fp) && err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			running++
		case !slices.Contains(admitted, fp) && errors.As(err, &nf):
		default:
			t.Errorf("%s (%s, admitted %t): %v %v", fp, idOf(fp), slices.Contains(admitted, fp), desc.GetWorkflowExecutionInfo().GetStatus(), err)
		}
	}
	listed := -1
	query := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s' AND ExecutionStatus = 'Running'", workflows.WorkflowName, workflows.SearchAttrRepo, repo)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		r, err := c.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		if err == nil {
			if listed = len(r.GetExecutions()); listed == capActive {
				break
			}
		}
	}
	if running != capActive || listed != capActive {
		t.Errorf("running remediations of the repository: %d described, %d listed; want %d", running, listed, capActive)
	}

	// The coordinator holds the admitted five and recorded the refusals.
	v, err := c.tc.QueryWorkflow(ctx, workflows.CoordinatorID(repo), "", workflows.QueryCoordinatorState)
	if err != nil {
		t.Fatalf("query the coordinator: %v", err)
	}
	var st workflows.CoordinatorState
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, a := range st.Active {
		active = append(active, a.RemediationID)
	}
	want := make([]string, 0, len(admitted))
	for _, fp := range admitted {
		want = append(want, idOf(fp))
	}
	sort.Strings(active)
	sort.Strings(want)
	if !slices.Equal(active, want) || st.MaxActive != capActive || st.Repo != repo {
		t.Errorf("coordinator: active %v (want %v), max_active %d, repo %q", active, want, st.MaxActive, st.Repo)
	}
	if st.Refused < len(refusedFPs) {
		t.Errorf("coordinator recorded %d refusals, want at least one per refused fingerprint (%d)", st.Refused, len(refusedFPs))
	}
	if st.Refused <= 50 {
		recorded := map[string]bool{}
		for _, r := range st.Refusals {
			if r.Limit == workflows.CapMaxActive {
				recorded[r.RemediationID] = true
			}
		}
		for _, fp := range refusedFPs {
			if !recorded[idOf(fp)] {
				t.Errorf("the refusal of %s (%s) is not in the coordinator's refusals", fp, idOf(fp))
			}
		}
	}

	// Every refused alert is counted once, on the replica that refused it.
	counted := 0.0
	for i := range c.apis {
		counted += metricSum(t, c.apiURLs[i]+"/metrics", "remediator_admission_refused_total", `reason="max_active"`)
	}
	if int(counted) != refusedResults {
		t.Errorf("remediator_admission_refused_total{reason=max_active} over both APIs = %.0f, want %d (the refused alerts)", counted, refusedResults)
	}

	// The repeats attached to their remediation and are counted there.
	for _, fp := range admitted {
		var attached any
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if s := c.status(0, idOf(fp)); s.err == nil && s.code == 200 {
				if attached = s.body["attached"]; fmt.Sprint(attached) == strconv.Itoa(perFingerprint-1) {
					break
				}
			}
		}
		if fmt.Sprint(attached) != strconv.Itoa(perFingerprint-1) {
			t.Errorf("%s: attached = %v, want %d", idOf(fp), attached, perFingerprint-1)
		}
	}
	t.Logf("cluster: g-repo-caps: alerts=%d fingerprints=%d deliveries=%d (both replicas, at once) in %s: remediations=%d (cap %d; running %d, listed %d) refused_alerts=%d refused_fingerprints=%d coordinator: active=%d admitted=%d refused=%d last_reconcile=%s metric=%.0f",
		len(alerts), fingerprints, deliveries, elapsed.Round(time.Millisecond), len(admitted), capActive, running, listed, refusedResults, len(refusedFPs),
		len(st.Active), st.Admitted, st.Refused, st.LastReconcile.Format(time.RFC3339), counted)
}

// metricSum adds the samples of name whose labels contain every one of
// labels, from a /metrics page.
func metricSum(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	total := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(rest, l)
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); match && err == nil {
			total += v
		}
	}
	return total
}
