// Package forge names repositories across the places they live: GitHub,
// GitLab, or a local path (dev). A reference is parsed once at the edge into
// a Ref, whose canonical string is what workflows, search attributes and
// repository scopes see.
package forge

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Kind is where a repository lives.
type Kind string

// Kinds.
const (
	GitHub Kind = "github"
	GitLab Kind = "gitlab"
	Local  Kind = "local"
)

// gitlabPrefix marks GitLab references in their canonical form.
const gitlabPrefix = "gitlab:"

// Ref is a parsed repository reference. Path is "owner/name" (GitHub),
// "group/subgroup/project" (GitLab) or an absolute path (local, not yet
// resolved: the local provider canonicalises it).
type Ref struct {
	Kind Kind
	Path string
}

// String is the canonical form: "owner/name", "gitlab:group/project" or the
// local path.
func (r Ref) String() string {
	if r.Kind == GitLab {
		return gitlabPrefix + r.Path
	}
	return r.Path
}

// Owner and Name split a GitHub path.
func (r Ref) Owner() string { o, _, _ := strings.Cut(r.Path, "/"); return o }

// Name is the repository name of a GitHub path.
func (r Ref) Name() string { _, n, _ := strings.Cut(r.Path, "/"); return n }

// ScopeNames are the names a forge repository answers to in repository
// globs: its canonical form ("acme/api", "gitlab:group/project") and the
// host path ("github.com/acme/api", "gitlab.com/group/project").
func (r Ref) ScopeNames(hosts Hosts) []string {
	names := []string{r.String()}
	switch r.Kind {
	case GitHub:
		if hosts.GitHub != "" {
			names = append(names, hosts.GitHub+"/"+r.Path)
		}
	case GitLab:
		// No bare "group/project": that is a GitHub name, and a glob
		// written for a GitHub organisation must not reach a GitLab
		// namespace of the same name.
		if hosts.GitLab != "" {
			names = append(names, hosts.GitLab+"/"+r.Path)
		}
	}
	return names
}

// Hosts are the web hosts of the configured forges, so "github.com/o/r" and
// "https://gitlab.example.com/g/p" are recognised; empty: that forge is off.
type Hosts struct {
	GitHub string // e.g. "github.com" or "ghe.example.com"
	GitLab string // e.g. "gitlab.com"
}

// ErrUnknown means the reference names no forge this service knows.
var ErrUnknown = errors.New("not a repository reference of a known forge")

var (
	segment   = `[A-Za-z0-9_.-]{1,100}`
	ghPath    = regexp.MustCompile(`^` + segment + `/` + segment + `$`)
	glPath    = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$`)
	hostShape = regexp.MustCompile(`^[a-z0-9.-]{1,253}(:[0-9]{1,5})?$`)
)

// Parse reads a repository reference: an absolute path or file:// URL
// (local), "owner/name", "<github host>/owner/name", its https URL or
// "git@<host>:owner/name" (GitHub), "gitlab:group/project", "<gitlab
// host>/group/project", its https URL or SSH remote (GitLab). A trailing ".git" is dropped. It does not check that
// the repository exists, nor that the forge is enabled.
func Parse(s string, hosts Hosts) (Ref, error) {
	if s == "" || strings.ContainsAny(s, "\x00\r\n\t ") {
		return Ref{}, ErrUnknown
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(strings.ToLower(s), "file:") {
		return Ref{Kind: Local, Path: s}, nil
	}
	if p, ok := strings.CutPrefix(s, gitlabPrefix); ok {
		return gitlabRef(p)
	}
	if user, rest, ok := strings.Cut(s, "@"); ok && user == "git" && strings.Contains(rest, ":") && !strings.Contains(rest, "://") {
		// scp-like SSH remote, as Jenkins reports it: git@host:owner/name.git
		host, p, _ := strings.Cut(rest, ":")
		s = strings.ToLower(host) + "/" + p
	} else if strings.HasPrefix(strings.ToLower(s), "https://") || strings.HasPrefix(strings.ToLower(s), "ssh://") {
		u, err := url.Parse(s)
		if err != nil || (u.User != nil && (u.Scheme != "ssh" || u.User.String() != "git")) || u.RawQuery != "" || u.Fragment != "" || u.Host == "" {
			return Ref{}, ErrUnknown
		}
		s = strings.ToLower(u.Hostname()) + u.Path
	}
	host, rest, ok := strings.Cut(s, "/")
	if ok && strings.Contains(host, ".") && hostShape.MatchString(strings.ToLower(host)) {
		switch strings.ToLower(host) {
		case strings.ToLower(hosts.GitHub):
			return githubRef(rest)
		case strings.ToLower(hosts.GitLab):
			return gitlabRef(rest)
		}
		return Ref{}, fmt.Errorf("%w: host %s is not a configured forge", ErrUnknown, host)
	}
	return githubRef(s)
}

func githubRef(p string) (Ref, error) {
	// GitHub (and GitLab) names are case-insensitive: one spelling, so one
	// remediation, mirror and scope match per repository.
	p = strings.ToLower(strings.TrimSuffix(strings.Trim(p, "/"), ".git"))
	if !ghPath.MatchString(p) || badSegments(p) {
		return Ref{}, ErrUnknown
	}
	return Ref{Kind: GitHub, Path: p}, nil
}

func gitlabRef(p string) (Ref, error) {
	p = strings.ToLower(strings.TrimSuffix(strings.Trim(p, "/"), ".git"))
	if len(p) > 512 || strings.Count(p, "/") > 19 || !glPath.MatchString(p) || badSegments(p) {
		return Ref{}, ErrUnknown
	}
	return Ref{Kind: GitLab, Path: p}, nil
}

// badSegments refuses "." and ".." and names that path cleaning would change.
func badSegments(p string) bool {
	if path.Clean(p) != p {
		return true
	}
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." || strings.HasPrefix(s, ".") && strings.Trim(s, ".") == "" {
			return true
		}
	}
	return false
}
