package activities

import (
	"context"
	"strings"

	"remediator/internal/incident"
)

// IncidentAPI keeps incidents in the incident API.
type IncidentAPI struct {
	Client *incident.Client
}

// CreateIncident implements IncidentClient.
func (a *IncidentAPI) CreateIncident(ctx context.Context, r IncidentRecord) (string, error) {
	return a.Client.Create(ctx, incident.Incident{
		Title:          truncate("CI/CD failure: "+oneLine(r.FailureSummary), 200),
		Summary:        truncate(oneLine(r.Repo+" failed: "+r.FailureSummary), 1000),
		Severity:       r.Severity,
		Metadata:       incidentMetadata(r),
		IdempotencyKey: r.RemediationID,
	})
}

// UpdateIncident implements IncidentClient.
func (a *IncidentAPI) UpdateIncident(ctx context.Context, id string, r IncidentRecord) error {
	return a.Client.Update(ctx, id, incident.Update{Status: incidentStatus(r.Phase), Metadata: incidentMetadata(r)})
}

// incidentStatus is the state an update sets: mitigated once the change is
// opened; otherwise none (the incident keeps whatever state people gave it).
func incidentStatus(phase string) string {
	if phase == "Completed" {
		return "mitigated"
	}
	return ""
}

func incidentMetadata(r IncidentRecord) map[string]any {
	m := map[string]any{
		"remediation_id": r.RemediationID, "repo": r.Repo, "ref": r.Ref, "commit_sha": r.SHA,
		"correlation_id": r.CorrelationID, "risk_level": r.RiskLevel, "phase": r.Phase,
	}
	put := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			m[k] = v
		}
	}
	put("decision_id", r.DecisionID)
	put("pr_url", r.PRURL)
	put("outcome", r.Reason)
	put("remediation_url", r.Links.API)
	put("review_url", r.Links.Review)
	put("workflow_url", r.Links.UI)
	return m
}
