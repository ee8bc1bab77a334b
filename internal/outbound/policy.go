// Package outbound is the one place the service builds HTTP clients for
// calls it makes to other systems (GitHub, GitLab, the decision service,
// Slack, ...). Some of the URLs it is handed come from payloads — log URLs
// and redirects a forge answers with, self-hosted bases named in events — so
// every client made here carries an SSRF guard: a URL is only fetched if its
// host is configured, and a host that is merely allowed by pattern must
// resolve to public addresses. The address check happens when the socket is
// dialled, against the IP actually connected, so DNS rebinding cannot slip
// an internal address past a check made earlier.
//
// It depends on the standard library and internal/correlation only.
package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrBlocked is what every refusal by the guard matches with errors.Is, so
// callers can classify it as permanent without knowing the reason: retrying
// a URL the policy refuses can never succeed.
var ErrBlocked = errors.New("outbound: destination refused by policy")

// BlockedError says which host was refused and why, for logs and for the
// operator who has to decide whether to configure it.
type BlockedError struct {
	Host   string
	Reason string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("outbound: %q refused: %s", e.Host, e.Reason)
}

// Is lets errors.Is(err, ErrBlocked) hold for every refusal.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

func blocked(host, format string, args ...any) error {
	return &BlockedError{Host: host, Reason: fmt.Sprintf(format, args...)}
}

// Policy decides which hosts may be dialled. It has two tiers because the
// two sources of hosts deserve different trust: an operator who names a base
// URL means that exact server, wherever it lives, while a pattern is a
// promise about the public internet only.
type Policy struct {
	// Trusted are exact hosts taken from configured base URLs (GITHUB_API_URL,
	// GITLAB_URL, ...). They may resolve to any address, private and loopback
	// included (a self-hosted GitLab on 10.0.0.5, a test fake on 127.0.0.1),
	// and they are the only hosts that may be spoken to over plain http.
	// An entry is a hostname or IP, optionally with ":port"; with a port only
	// that port is trusted, so build entries with TrustedHost to keep a
	// trusted internal host from exposing its other ports.
	Trusted []string
	// Allowed are host patterns, usually from ParseAllowHosts: "example.com"
	// matches that host, ".example.com" or "*.example.com" any subdomain
	// (not the apex). Such hosts are reached over https only, on any port, and
	// only at public addresses.
	Allowed []string
}

// Check refuses a URL before any connection is attempted: the scheme, the
// userinfo and the host's place in the policy are all visible here. It is
// not the whole guard — for an allowed hostname only the dial-time check
// knows where it resolves — but it gives early, readable errors for URLs
// taken from payloads, and the client runs it on every request and redirect.
func (p Policy) Check(u *url.URL) error {
	if u == nil || u.Host == "" {
		return blocked("", "the URL has no host")
	}
	raw := u.Hostname()
	host := normHost(raw)
	if u.User != nil {
		// Credentials in a URL become a Basic Authorization header that a
		// redirect target chose; no configured call needs them.
		return blocked(host, "the URL carries userinfo")
	}
	if err := validHost(host); err != nil {
		return blocked(raw, "%v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	if p.trusted(host, port) && (scheme == "https" || scheme == "http") {
		return nil
	}
	if scheme != "https" {
		return blocked(host, "scheme %q is only allowed for trusted hosts (https otherwise)", u.Scheme)
	}
	return p.checkUntrusted(host)
}

// ParseURL is the one door for URLs that arrive in payloads: code past it
// holds a URL the policy accepts rather than a string it has to re-check.
func (p Policy) ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if err := p.Check(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkUntrusted applies the rules every non-trusted host must pass before
// DNS is consulted: it must match a pattern, must not be a name that always
// means "this machine" or "the cloud metadata service", and if it is an IP
// literal it must be public.
func (p Policy) checkUntrusted(host string) error {
	if !p.allowed(host) {
		return blocked(host, "host is neither trusted nor allowed")
	}
	if reason := nameReason(host); reason != "" {
		return blocked(host, "%s", reason)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := addrReason(ip); reason != "" {
			return blocked(host, "%s address", reason)
		}
	}
	return nil
}

func (p Policy) trusted(host, port string) bool {
	for _, e := range p.Trusted {
		h, ep := splitEntry(e)
		if h != "" && sameHost(h, host) && (ep == "" || ep == port) {
			return true
		}
	}
	return false
}

func (p Policy) allowed(host string) bool {
	for _, e := range p.Allowed {
		pat := normHost(strings.TrimSpace(e))
		pat = strings.TrimPrefix(pat, "*")
		switch {
		case pat == "" || pat == ".":
		case strings.HasPrefix(pat, "."):
			if len(host) > len(pat) && strings.HasSuffix(host, pat) {
				return true
			}
		case sameHost(pat, host):
			return true
		}
	}
	return false
}

// TrustedHost turns a configured base URL into a Policy.Trusted entry with
// the port made explicit, so trusting "http://gitlab.internal" trusts port 80
// of that host and not, say, its Redis on 6379.
func TrustedHost(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("outbound: base URL %q: scheme must be http or https", baseURL)
	}
	if u.User != nil {
		return "", fmt.Errorf("outbound: base URL %q: userinfo is not allowed", baseURL)
	}
	host := normHost(u.Hostname())
	if err := validHost(host); err != nil {
		return "", fmt.Errorf("outbound: base URL %q: %w", baseURL, err)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	return net.JoinHostPort(host, port), nil
}

// ParseAllowHosts reads REMEDIATOR_OUTBOUND_ALLOW_HOSTS. It is strict because
// a typo here widens what payloads can make the service fetch: every entry
// must be a bare hostname, ".suffix" or "*.suffix", or a public IP; schemes,
// ports, paths and empty entries are errors. Entries come back lower-cased,
// with "*.x" written as ".x".
func ParseAllowHosts(s string) ([]string, error) {
	var out []string
	var errs []error
	for i, raw := range strings.Split(s, ",") {
		e := strings.ToLower(strings.TrimSpace(raw))
		bad := func(why string) {
			errs = append(errs, fmt.Errorf("outbound allow-list entry %d %q: %s", i+1, raw, why))
		}
		if e == "" {
			bad("empty entry")
			continue
		}
		if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")); err == nil {
			if reason := addrReason(ip); reason != "" {
				bad(reason + " address; name its base URL as a trusted host instead")
				continue
			}
			out = append(out, ip.String())
			continue
		}
		wild := false
		switch {
		case strings.HasPrefix(e, "*."):
			e, wild = e[1:], true
		case strings.HasPrefix(e, "."):
			wild = true
		}
		name := strings.TrimPrefix(e, ".")
		if err := validName(name); err != nil {
			bad(err.Error())
			continue
		}
		if wild && !strings.Contains(name, ".") {
			bad("a wildcard needs at least two labels (it would match a whole top-level domain)")
			continue
		}
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// validHost accepts an IP literal or a DNS name. Refusing everything else
// (non-ASCII, spaces, "%" escapes) keeps the host Check sees identical to the
// one the transport dials, which it IDNA-encodes first.
func validHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	return validName(host)
}

// validName checks DNS syntax. A numeric last label is refused because
// resolvers read forms like "127.1" or "2130706433" as IPv4 addresses.
func validName(name string) error {
	if name == "" {
		return errors.New("empty host")
	}
	if len(name) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label in host name")
		}
		if len(l) > 63 {
			return errors.New("label longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("label starts or ends with '-'")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name", c)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("numeric top-level label (not a valid IP address either)")
	}
	return nil
}

// normHost lower-cases and drops one trailing dot, because "Example.COM."
// and "example.com" reach the same server and must meet the same rules.
func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// sameHost compares IP literals as addresses (so "::1" equals
// "0:0:0:0:0:0:0:1") and names as strings.
func sameHost(a, b string) bool {
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return ia == ib
	}
	return errA != nil && errB != nil && a == b
}

// splitEntry reads "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6.
func splitEntry(e string) (host, port string) {
	e = strings.TrimSpace(e)
	if h, p, err := net.SplitHostPort(e); err == nil {
		return normHost(h), p
	}
	return normHost(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")), ""
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
