package activities_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"remediator/activities"
	"remediator/internal/audit"
)

func auditEnv(t *testing.T, store activities.AuditStore) *testsuite.TestActivityEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(&activities.Activities{Audit: store})
	return env
}

func auditEvents(rem string, from, to int) []audit.Event {
	var out []audit.Event
	for i := from; i <= to; i++ {
		out = append(out, audit.Event{ID: fmt.Sprintf("%s/%d", rem, i), RemediationID: rem, Seq: i, Kind: "phase",
			Phase: "AwaitingApproval", Channel: "workflow", At: time.Date(2030, 1, 2, 3, 4, i%60, 0, time.UTC)})
	}
	return out
}

func appErrType(t *testing.T, err error) (string, bool) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("want an application error, got %T %v", err, err)
	}
	return appErr.Type(), appErr.NonRetryable()
}

func TestAppendAuditStoresAndRetriesHarmlessly(t *testing.T) {
	store, err := audit.OpenFile(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	env := auditEnv(t, store)
	in := activities.AppendAuditInput{Events: auditEvents("rem-1", 1, 3)}
	for range 2 { // the second run is a retry
		if _, err := env.ExecuteActivity("AppendAudit", in); err != nil {
			t.Fatal(err)
		}
	}
	// A batch larger than one append takes: chunks, in order, the
	// already-stored prefix skipped.
	big := activities.AppendAuditInput{Events: auditEvents("rem-1", 1, audit.MaxBatch+40)}
	if _, err := env.ExecuteActivity("AppendAudit", big); err != nil {
		t.Fatal(err)
	}
	rs, err := store.List(context.Background(), "rem-1")
	if err != nil || len(rs) != audit.MaxBatch+40 {
		t.Fatalf("records: %d %v", len(rs), err)
	}
	for i, r := range rs {
		if r.Seq != i+1 || r.Index != int64(i+1) {
			t.Fatalf("record %d: seq %d index %d", i, r.Seq, r.Index)
		}
	}
	if rep, err := store.Verify(context.Background()); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	if _, err := env.ExecuteActivity("AppendAudit", activities.AppendAuditInput{}); err != nil {
		t.Fatalf("nothing to append: %v", err)
	}
}

func TestAppendAuditFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	store, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	env := auditEnv(t, store)
	if _, err := env.ExecuteActivity("AppendAudit", activities.AppendAuditInput{Events: auditEvents("rem-1", 1, 2)}); err != nil {
		t.Fatal(err)
	}

	changed := auditEvents("rem-1", 2, 2)
	changed[0].Detail = "rewritten history"
	_, err = env.ExecuteActivity("AppendAudit", activities.AppendAuditInput{Events: changed})
	if typ, nonRetryable := appErrType(t, err); typ != activities.ErrTypeAuditConflict || !nonRetryable {
		t.Fatalf("conflict: %s non-retryable=%v (%v)", typ, nonRetryable, err)
	}

	invalid := auditEvents("rem-1", 3, 3)
	invalid[0].Actor = "mallory\x1b[2J"
	_, err = env.ExecuteActivity("AppendAudit", activities.AppendAuditInput{Events: invalid})
	if typ, nonRetryable := appErrType(t, err); typ != activities.ErrTypeAuditInvalid || !nonRetryable {
		t.Fatalf("invalid: %s non-retryable=%v (%v)", typ, nonRetryable, err)
	}

	// A damaged file (a crash mid-write) is retried until it is repaired.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":`)
	f.Close()
	_, err = env.ExecuteActivity("AppendAudit", activities.AppendAuditInput{Events: auditEvents("rem-1", 3, 3)})
	if typ, nonRetryable := appErrType(t, err); typ != activities.ErrTypeTransient || nonRetryable {
		t.Fatalf("damaged file: %s non-retryable=%v (%v)", typ, nonRetryable, err)
	}

	// A closed store (as a lost database connection) is retried too.
	store.Close()
	_, err = env.ExecuteActivity("AppendAudit", activities.AppendAuditInput{Events: auditEvents("rem-1", 3, 3)})
	if typ, nonRetryable := appErrType(t, err); typ != activities.ErrTypeTransient || nonRetryable {
		t.Fatalf("unavailable store: %s non-retryable=%v (%v)", typ, nonRetryable, err)
	}

	// No store: a configuration error.
	_, err = auditEnv(t, nil).ExecuteActivity("AppendAudit", activities.AppendAuditInput{Events: auditEvents("rem-1", 3, 3)})
	if typ, nonRetryable := appErrType(t, err); typ != activities.ErrTypeNotConfigured || !nonRetryable {
		t.Fatalf("no store: %s non-retryable=%v (%v)", typ, nonRetryable, err)
	}
}
