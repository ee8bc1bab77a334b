package activities

import (
	"context"
	"errors"

	"remediator/internal/audit"
)

// AuditStore is the append-only audit store (PostgreSQL, or the JSON lines
// file in dev) the Audit field of Activities holds.
type AuditStore = audit.Store

// Error types of the audit activity's non-retryable failures.
const (
	// ErrTypeAuditConflict: an event id is stored with other content.
	ErrTypeAuditConflict = "AuditConflict"
	// ErrTypeAuditInvalid: an event failed validation (audit.Validate).
	ErrTypeAuditInvalid = "AuditInvalid"
)

// AppendAuditInput is a batch of audit events, in order.
type AppendAuditInput struct {
	Events []audit.Event
}

// AppendAudit appends events to the audit store. Retrying is harmless:
// events already stored with the same content are skipped. A batch larger
// than the store takes in one call (audit.MaxBatch) is appended in chunks,
// in order; each chunk is atomic, and a retry after a partial failure skips
// the chunks that were stored. An event stored with other content
// (AuditConflict), an invalid event (AuditInvalid) and a missing store
// (NotConfigured) fail non-retryably; anything else (the database is down,
// the file is damaged) is retried.
func (a *Activities) AppendAudit(ctx context.Context, in AppendAuditInput) error {
	if a.Audit == nil {
		return notConfigured("audit store")
	}
	for start := 0; start < len(in.Events); start += audit.MaxBatch {
		chunk := in.Events[start:min(start+audit.MaxBatch, len(in.Events))]
		if err := a.Audit.Append(ctx, chunk...); err != nil {
			return classifyAudit(ctx, err)
		}
	}
	return nil
}

func classifyAudit(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, audit.ErrConflict):
		logger(ctx).Error("audit event conflicts with the stored one", "error", err)
		return newNonRetryable(ErrTypeAuditConflict, err.Error(), err)
	case errors.Is(err, audit.ErrInvalid):
		logger(ctx).Error("invalid audit event", "error", err)
		return newNonRetryable(ErrTypeAuditInvalid, err.Error(), err)
	case errors.Is(err, audit.ErrDamaged):
		// An operator repairs the file (remediator audit verify says how);
		// the retries then go through.
		logger(ctx).Error("the audit file is damaged: appends wait for a repair", "error", err)
		return Classify(Transient("the audit file is damaged (run remediator audit verify)", err))
	}
	return classifyLogged(ctx, "appending to the audit log", Transient("the audit store is unavailable", err))
}
