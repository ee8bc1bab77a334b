package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"remediator/activities"
	"remediator/internal/config"
	"remediator/internal/dragon"
	"remediator/internal/forge"
	"remediator/internal/incident"
	"remediator/internal/ledger"
	"remediator/internal/llm"
	"remediator/internal/outbound"
	"remediator/internal/slack"
)

// slackResponseHosts are where Slack's response_url points; only they are
// dialled for a click's answer (public addresses only).
var slackResponseHosts = []string{"hooks.slack.com"}

// integrations are the governance clients built from configuration; a nil
// field is an integration that is not configured.
type integrations struct {
	Dragon   *dragon.Client
	Incident *incident.Client
	Slack    *slack.Client
}

// integrationsClient is the guarded HTTP client of Dragon, the incident API
// and Slack: their configured bases are trusted (any address), Slack's
// response URLs allowed (public addresses only), nothing else is dialled.
func integrationsClient(cfg config.Config, timeout time.Duration, bases ...string) (*http.Client, error) {
	var trusted []string
	for _, b := range bases {
		if b == "" {
			continue
		}
		h, err := outbound.TrustedHost(b)
		if err != nil {
			// The URL itself stays out of the message: a webhook URL is a secret.
			return nil, errors.New("a configured integration URL has no usable http(s) host")
		}
		trusted = append(trusted, h)
	}
	trusted = append(trusted, cfg.OutboundTrustedHosts...)
	return outbound.NewClient(outbound.Options{
		Policy:  outbound.Policy{Trusted: trusted, Allowed: slackResponseHosts},
		Timeout: timeout, MaxRedirects: -1, UserAgent: "remediator",
	}), nil
}

// buildIntegrations makes the clients of the configured integrations.
func buildIntegrations(cfg config.Config) (integrations, error) {
	var out integrations
	var bases []string
	if cfg.Dragon != nil {
		bases = append(bases, cfg.Dragon.BaseURL)
	}
	if cfg.Incident != nil {
		bases = append(bases, cfg.Incident.BaseURL)
	}
	if cfg.Slack != nil {
		bases = append(bases, cfg.Slack.APIURL, cfg.Slack.WebhookURL)
	}
	if len(bases) == 0 {
		return out, nil
	}
	hc, err := integrationsClient(cfg, time.Minute, bases...)
	if err != nil {
		return out, err
	}
	if d := cfg.Dragon; d != nil {
		if out.Dragon, err = dragon.New(dragon.Config{BaseURL: d.BaseURL, Token: d.Token, Org: d.Org, Region: d.Region, HTTPClient: hc}); err != nil {
			return out, fmt.Errorf("KLYNX_DRAGON_*: %w", err)
		}
	}
	if i := cfg.Incident; i != nil {
		if out.Incident, err = incident.New(incident.Config{BaseURL: i.BaseURL, Token: i.Token, HTTPClient: hc}); err != nil {
			return out, fmt.Errorf("KLYNX_INCIDENT_API_*: %w", err)
		}
	}
	if s := cfg.Slack; s != nil {
		if out.Slack, err = slack.New(slack.Config{WebhookURL: s.WebhookURL, BotToken: s.BotToken, Channel: s.Channel, APIURL: s.APIURL, HTTPClient: hc}); err != nil {
			return out, fmt.Errorf("KLYNX_SLACK_WEBHOOK_URL / SLACK_BOT_TOKEN: %w", err)
		}
	}
	return out, nil
}

// wire puts the integrations into the activities: Dragon replaces the
// built-in ledger as the decision store.
func (in integrations) wire(acts *activities.Activities, cfg config.Config, repos *forge.Resolver) {
	if in.Dragon != nil {
		acts.Decisions = &activities.DragonDecisions{Client: in.Dragon,
			Users: activities.DragonUsers{Users: cfg.Dragon.Users, ScopeNames: repos.ScopeNames}}
		acts.WatchInterval = cfg.Dragon.PollInterval
	}
	if in.Incident != nil {
		acts.Incidents = &activities.IncidentAPI{Client: in.Incident}
	}
	if in.Slack != nil {
		acts.Notifier = &activities.SlackNotifier{Client: in.Slack}
	}
}

// dragonDecisions serves GET /api/decisions/{id} from Dragon, in the
// ledger's shape (the API checks scope on its repository).
type dragonDecisions struct{ c *dragon.Client }

func (d dragonDecisions) Get(ctx context.Context, id string) (ledger.Decision, error) {
	dec, err := d.c.Get(ctx, id)
	var apiErr *dragon.APIError
	if errors.Is(err, dragon.ErrInvalidID) || (errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound) {
		return ledger.Decision{}, ledger.ErrNotFound
	}
	if err != nil {
		return ledger.Decision{}, err
	}
	if dec.Repo == "" || dec.RemediationID == "" {
		// Not one of this service's decisions: nobody may read it here.
		return ledger.Decision{}, ledger.ErrNotFound
	}
	return ledger.Decision{
		ID: dec.ID, Status: strings.ToLower(dec.Status), ProposedAction: "apply_autofix", Proposer: "remediator",
		RemediationID: dec.RemediationID, Repo: dec.Repo, Requester: dec.Requester, DiffDigest: dec.DiffDigest,
		BaseSHA: dec.BaseSHA, Reason: dec.Reason, UpdatedAt: dec.UpdatedAt,
	}, nil
}

// buildModel makes the language-model client of the model fix path (nil
// without REMEDIATOR_LLM_BASE_URL). Its base is trusted like the other
// configured bases; its client's timeout is the model's.
func buildModel(cfg config.Config, reg prometheus.Registerer) (*llm.Client, error) {
	l := cfg.LLM
	if l == nil {
		return nil, nil
	}
	hc, err := integrationsClient(cfg, l.Timeout+10*time.Second, l.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("REMEDIATOR_LLM_BASE_URL: %w", err)
	}
	var metrics *llm.Metrics
	if reg != nil {
		metrics = llm.NewMetrics(reg)
	}
	c, err := llm.New(llm.Config{BaseURL: l.BaseURL, APIKey: l.APIKey, APIVersion: l.APIVersion, Model: l.Model,
		MaxTokens: l.MaxTokens, Timeout: l.Timeout, HTTPClient: hc, Metrics: metrics})
	if err != nil {
		return nil, fmt.Errorf("REMEDIATOR_LLM_*: %w", err)
	}
	return c, nil
}
