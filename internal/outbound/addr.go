package outbound

import (
	"net/netip"
	"strings"
)

// nonPublic lists the ranges a non-trusted host may not resolve to. It is
// wider than net.IP's predicates on purpose: CGNAT space hosts Alibaba's
// metadata service (100.100.100.200), 192.0.0.0/24 Oracle's (192.0.0.192),
// and the deprecated IPv6 transition ranges embed IPv4 addresses a relay
// might route to. Public services publish none of these in DNS, so refusing
// them costs nothing.
var nonPublic = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"},

	{netip.MustParsePrefix("::/96"), "unspecified, loopback or IPv4-compatible"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// nat64 is the well-known NAT64 prefix. Its addresses are judged by the IPv4
// address they carry: on an IPv6-only network with DNS64 every public host
// resolves into it, but 64:ff9b::7f00:1 is still 127.0.0.1 once translated.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// addrReason says why ip is not a public unicast address, or "" if it is.
func addrReason(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	// Prefix.Contains never matches a zoned address, so judge it unzoned;
	// ::ffff:a.b.c.d is judged as the IPv4 address it connects to.
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		if r := addrReason(netip.AddrFrom4([4]byte(b[12:]))); r != "" {
			return "NAT64 of " + r
		}
		return ""
	}
	for _, n := range nonPublic {
		if n.prefix.Contains(ip) {
			return n.reason
		}
	}
	return ""
}

// metadataNames are names that reach a cloud metadata service (and with it
// instance credentials) whatever a resolver says; they are refused before
// DNS so that a pattern like ".internal" cannot admit them.
var metadataNames = map[string]bool{
	"metadata":                   true,
	"metadata.google.internal":   true,
	"metadata.goog":              true,
	"instance-data":              true,
	"instance-data.ec2.internal": true,
}

// nameReason says why a host name is refused regardless of its DNS answer,
// or "" if it is not.
func nameReason(host string) string {
	switch {
	case metadataNames[host]:
		return "cloud metadata host"
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return "loopback name"
	}
	return ""
}
