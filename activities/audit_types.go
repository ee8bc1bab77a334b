package activities

import "remediator/internal/audit"

// AuditEvent is one audit record as the workflow emits it and the audit
// store keeps it.
type AuditEvent = audit.Event
