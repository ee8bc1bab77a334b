package app

import (
	"remediator/internal/orchestrator"
	"remediator/internal/policy"
)

// policyCaps is the risk policy's per-repository caps as the orchestrator
// takes them (nil without a policy file: the built-in policy has none).
func policyCaps(p *policy.Policy) orchestrator.CapsFunc {
	if p == nil || len(p.Caps) == 0 {
		return nil
	}
	return func(repo string) (orchestrator.Caps, bool) {
		active, hourly, ok := p.CapsFor(repo)
		return orchestrator.Caps{MaxActive: active, MaxPerHour: hourly}, ok
	}
}
