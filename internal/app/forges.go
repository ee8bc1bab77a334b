package app

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"remediator/activities"
	"remediator/internal/config"
	"remediator/internal/forge"
	"remediator/internal/github"
	"remediator/internal/gitlab"
	"remediator/internal/outbound"
)

// githubDownloadHosts are where github.com redirects archive and log
// downloads; they are allowed (public addresses only) when GitHub is the
// public github.com. A GitHub Enterprise serves them from its own host.
var githubDownloadHosts = []string{"codeload.github.com", ".actions.githubusercontent.com", ".blob.core.windows.net"}

// forgeTimeout bounds one forge request, archive downloads included.
const forgeTimeout = 5 * time.Minute

// buildForges makes the clients of the configured forges (none offline),
// all on one SSRF-guarded HTTP client: only the configured bases (any
// address) and the allow-listed hosts (public addresses) are dialled.
func buildForges(cfg config.Config) (map[forge.Kind]activities.Forge, forge.Hosts, error) {
	forges := map[forge.Kind]activities.Forge{}
	var hosts forge.Hosts
	if cfg.GitHub == nil && cfg.GitLab == nil {
		return forges, hosts, nil
	}
	// Unset is an empty list, not one empty entry (which the parser refuses).
	var allowed []string
	if len(cfg.OutboundAllowHosts) > 0 {
		var err error
		if allowed, err = outbound.ParseAllowHosts(strings.Join(cfg.OutboundAllowHosts, ",")); err != nil {
			return nil, hosts, fmt.Errorf("REMEDIATOR_OUTBOUND_ALLOW_HOSTS: %w", err)
		}
	}
	var trusted []string
	if cfg.GitHub != nil {
		h, err := outbound.TrustedHost(cfg.GitHub.APIURL)
		if err != nil {
			return nil, hosts, fmt.Errorf("GITHUB_API_URL: %w", err)
		}
		trusted = append(trusted, h)
		hosts.GitHub = githubWebHost(cfg.GitHub.APIURL)
		if hosts.GitHub == "github.com" {
			allowed = append(allowed, githubDownloadHosts...)
		} else {
			// GitHub Enterprise with subdomain isolation serves archives
			// from codeload.<host>, as trusted as the API host.
			trusted = append(trusted, "codeload."+strings.Split(hosts.GitHub, ":")[0])
		}
	}
	if cfg.GitLab != nil {
		h, err := outbound.TrustedHost(cfg.GitLab.URL)
		if err != nil {
			return nil, hosts, fmt.Errorf("GITLAB_URL: %w", err)
		}
		trusted = append(trusted, h)
		u, _ := url.Parse(cfg.GitLab.URL)
		hosts.GitLab = strings.ToLower(u.Host)
	}
	trusted = append(trusted, cfg.OutboundTrustedHosts...)
	hc := outbound.NewClient(outbound.Options{
		Policy: outbound.Policy{Trusted: trusted, Allowed: allowed}, Timeout: forgeTimeout, UserAgent: "remediator",
	})
	if cfg.GitHub != nil {
		c, err := github.New(github.Config{APIURL: cfg.GitHub.APIURL, Token: cfg.GitHub.Token, AppID: cfg.GitHub.AppID,
			PrivateKeyPEM: cfg.GitHub.PrivateKeyPEM, HTTPClient: hc})
		if err != nil {
			return nil, hosts, fmt.Errorf("GitHub: %w", err)
		}
		forges[forge.GitHub] = &activities.GitHubForge{Client: c}
	}
	if cfg.GitLab != nil {
		c, err := gitlab.New(gitlab.Config{URL: cfg.GitLab.URL, Token: cfg.GitLab.Token, HTTPClient: hc})
		if err != nil {
			return nil, hosts, fmt.Errorf("GitLab: %w", err)
		}
		forges[forge.GitLab] = &activities.GitLabForge{Client: c}
	}
	return forges, hosts, nil
}

// githubWebHost is where people see the repositories of an API base:
// api.github.com → github.com; a GitHub Enterprise base → its host.
func githubWebHost(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil {
		return ""
	}
	host := strings.ToLower(u.Host)
	if host == "api.github.com" {
		return "github.com"
	}
	return host
}
