// Package redact removes credentials from text before it leaves the service,
// in particular before CI logs and repository files are sent to a language
// model. It recognises the token formats of the common providers by their
// shape, private keys, passwords in URLs, authorization headers and
// KEY=value assignments whose key names a secret.
//
// Every pattern is a Go regexp (RE2), so redaction runs in time linear in
// the input whatever the text holds.
package redact

import (
	"regexp"
	"strings"
)

// marker starts every replacement; a value that already starts with it is
// left alone, so Redact is idempotent and never counts a secret twice.
const marker = "[REDACTED:"

// Kinds of secrets, as they appear in the replacement "[REDACTED:<kind>]".
const (
	KindPrivateKey      = "private-key"
	KindGCPPrivateKey   = "gcp-private-key"
	KindURLPassword     = "url-password"
	KindAuthorization   = "authorization"
	KindSlackWebhook    = "slack-webhook"
	KindGitHubToken     = "github-token"
	KindGitLabToken     = "gitlab-token"
	KindSlackToken      = "slack-token"
	KindAWSAccessKeyID  = "aws-access-key-id"
	KindAWSSecretKey    = "aws-secret-access-key"
	KindGoogleAPIKey    = "google-api-key"
	KindAzureAccountKey = "azure-account-key"
	KindAzureSAS        = "azure-sas-signature"
	KindStripeKey       = "stripe-key"
	KindOpenAIKey       = "openai-api-key"
	KindJWT             = "jwt"
	KindSecret          = "secret"
)

// rule replaces the submatch group of every match of re with the marker of
// kind. accept, when set, may veto a match (shape checks a regexp cannot
// express without look-around); span, when set, replaces both and says
// which bytes to replace.
type rule struct {
	kind   string
	re     *regexp.Regexp
	group  int
	accept func(v string) bool
	span   func(s string, m []int) (start, end int, ok bool)
	// keywords, when set, make the rule run only on lines holding one of
	// them (ASCII case-insensitively): a cheap filter in front of an
	// expensive pattern.
	keywords []string
}

// keyWords are the lower-case words a credential's key contains.
var keyWords = []string{"secret", "token", "passw", "pwd", "key", "credential", "auth"}

// keyPrefix is what may precede a KEY=value key: a line start, a blank or
// punctuation that ends the previous item, then an optional export, flag
// dashes (--password=x) and quote.
const keyPrefix = `(?:^|[\s,;{(\[])(?:export[ \t]+)?-{0,2}["']?([A-Za-z_][A-Za-z0-9_.-]*)["']?([ \t]*)`

// rules are applied in order: specific shapes first (so the replacement
// names the kind), the generic KEY=value rules last.
var rules = []rule{
	// A service-account JSON's key, whose PEM has escaped newlines.
	{kind: KindGCPPrivateKey, re: regexp.MustCompile(`"private_key"\s*:\s*"((?:[^"\\\n]|\\.)+)"`), group: 1},
	// PEM private keys, the whole block; an unterminated block (a truncated
	// log) is redacted to the end of the text.
	{kind: KindPrivateKey, re: regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*$)`)},
	// The end of a block whose start was cut off (a log's tail): the key
	// lines before the END line.
	{kind: KindPrivateKey, re: regexp.MustCompile(`(?m)(?:^[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*\r?\n)+[ \t]*-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----`)},
	// scheme://user:password@host keeps the user.
	{kind: KindURLPassword, re: regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"'<>]+:([^\s/?#@"'<>]+)@`), group: 1, accept: literal},
	// Authorization: Bearer/Basic/token ... keeps the scheme.
	{kind: KindAuthorization, re: regexp.MustCompile(`(?i)\b(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?(?:bearer|basic|token|bot|digest|negotiate|apikey)[ \t]+([^\s"']+)`), group: 1, accept: literal},
	{kind: KindAuthorization, re: regexp.MustCompile(`(?i)\bbearer[ \t]+([A-Za-z0-9._~+/-]{20,}=*)`), group: 1, accept: hasDigit},
	{kind: KindSlackWebhook, re: regexp.MustCompile(`hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/-]+)`), group: 1},
	{kind: KindGitHubToken, re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{22,255})\b`)},
	{kind: KindGitLabToken, re: regexp.MustCompile(`\b(?:gl(?:pat|dt|rt|ptt|cbt|imt|soat|ft|oas|ffct|agent)-[A-Za-z0-9_.-]{20,}|GR1348941[A-Za-z0-9_-]{20,})`)},
	{kind: KindSlackToken, re: regexp.MustCompile(`\b(?:xox[abprs]-[A-Za-z0-9-]{10,}|xapp-[0-9]+-[A-Za-z0-9-]{10,})`)},
	{kind: KindAWSAccessKeyID, re: regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b`)},
	{kind: KindAWSSecretKey, re: regexp.MustCompile(`(?i)\baws_?secret_?access_?key["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9/+=]{30,})`), group: 1},
	{kind: KindGoogleAPIKey, re: regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35,}`)},
	{kind: KindAzureAccountKey, re: regexp.MustCompile(`(?i)\b(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}=*)`), group: 1},
	{kind: KindAzureSAS, re: regexp.MustCompile(`(?i)(?:^|[?&;\s"'])sig=([A-Za-z0-9%+/=]{16,})`), group: 1},
	{kind: KindStripeKey, re: regexp.MustCompile(`\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}`)},
	{kind: KindOpenAIKey, re: regexp.MustCompile(`\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,}`), accept: hasDigit},
	{kind: KindJWT, re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`)},
	// KEY=value, export KEY='value', key = "value": the value ends at the
	// first blank unless quoted.
	{kind: KindSecret, re: regexp.MustCompile(keyPrefix + `(=)([ \t]*)("[^"\n]*"|'[^'\n]*'|[^\s"']\S*)`), span: genericSpan, keywords: keyWords},
	// KEY: value, "key": "value": an unquoted value runs to the end of the
	// line or to the punctuation that closes a flow mapping or a call.
	{kind: KindSecret, re: regexp.MustCompile(keyPrefix + `(:)([ \t]*)("[^"\n]*"|'[^'\n]*'|[^\s"',{}()\[\]][^\n,{}()\[\]]*)`), span: genericSpan, keywords: keyWords},
}

// Redact returns s with every secret it recognises replaced by
// "[REDACTED:<kind>]", and how many it replaced.
func Redact(s string) (string, int) {
	total := 0
	for _, r := range rules {
		var n int
		s, n = r.apply(s)
		total += n
	}
	return s, total
}

func (r rule) apply(s string) (string, int) {
	if r.keywords == nil {
		return r.replace(s, r.re.FindAllStringSubmatchIndex(s, -1))
	}
	var matches [][]int
	for off := 0; off < len(s); {
		end := lineEnd(s, off)
		if line := s[off:end]; containsFold(line, r.keywords) {
			for _, m := range r.re.FindAllStringSubmatchIndex(line, -1) {
				for i := range m {
					if m[i] >= 0 {
						m[i] += off
					}
				}
				matches = append(matches, m)
			}
		}
		off = end + 1
	}
	return r.replace(s, matches)
}

// containsFold reports whether line holds one of the lower-case words,
// ignoring ASCII case.
func containsFold(line string, words []string) bool {
	var buf [256]byte
	lower := buf[:0]
	for i := 0; i < len(line); i++ {
		c := line[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	for _, w := range words {
		if strings.Contains(string(lower), w) {
			return true
		}
	}
	return false
}

func (r rule) replace(s string, matches [][]int) (string, int) {
	if len(matches) == 0 {
		return s, 0
	}
	var b strings.Builder
	last, n := 0, 0
	for _, m := range matches {
		start, end, ok := m[2*r.group], m[2*r.group+1], true
		if r.span != nil {
			start, end, ok = r.span(s, m)
		} else if start >= 0 && r.accept != nil {
			ok = r.accept(s[start:end])
		}
		if !ok || start < last || start >= end || strings.HasPrefix(s[start:end], marker) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(marker + r.kind + "]")
		last = end
		n++
	}
	if n == 0 {
		return s, 0
	}
	b.WriteString(s[last:])
	return b.String(), n
}

func hasDigit(v string) bool { return strings.ContainsAny(v, "0123456789") }

// literal refuses references and placeholders: "$TOKEN", "${{ x }}",
// "<password>", "%s", "***".
func literal(v string) bool { return !placeholder(v) }

func placeholder(v string) bool {
	v = strings.Trim(v, "\"' \t\r")
	if v == "" {
		return true
	}
	switch v[0] {
	case '$', '<', '%', '{':
		return true
	}
	return strings.Trim(v, "*xX•") == "" || strings.Contains(v, marker) || strings.HasPrefix(v, "[MASKED")
}

// secretKey reports whether a key names a credential. AUTH counts, but not
// as part of AUTHOR or AUTHORITY; PWD and OLDPWD (the shell's working
// directory) do not.
func secretKey(key string) bool {
	k := strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(key))
	if k == "PWD" || k == "OLDPWD" {
		return false
	}
	for _, w := range []string{"SECRET", "TOKEN", "PASSWORD", "PASSWD", "PWD", "API_KEY", "APIKEY",
		"ACCESS_KEY", "ACCESSKEY", "PRIVATE_KEY", "PRIVATEKEY", "CREDENTIAL"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	k = strings.ReplaceAll(k, "AUTHORIZ", "AUTHZ")
	k = strings.ReplaceAll(k, "AUTHOR", "")
	return strings.Contains(k, "AUTH")
}

// envKey is the shape of environment variables (GITHUB_TOKEN): a value
// assigned to one is configuration, never code.
func envKey(key string) bool {
	for _, c := range key {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

var (
	number     = regexp.MustCompile(`^[-+]?[0-9][0-9_.]*[smhdkKMG]?$`)
	lineRef    = regexp.MustCompile(`^[0-9]+(?::[0-9]+)?:`)
	identChain = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$`)
)

// genericSpan decides whether the value of a KEY=value match is a secret
// and which bytes hold it (the inside of quotes). It keeps ordinary code
// and logs intact: comparisons and Go's :=, references, placeholders and
// masks, booleans and numbers, expressions and references in code (calls,
// cfg.Token, composite literal entries), concatenations, and string
// constants that merely name the thing ("X-Auth-Token").
func genericSpan(s string, m []int) (int, int, bool) {
	key, pre, sep, post := s[m[2]:m[3]], s[m[4]:m[5]], s[m[6]:m[7]], s[m[8]:m[9]]
	start, end := m[10], m[11]
	v := s[start:end]
	if !secretKey(key) || v == "" || v[0] == '=' || (sep == ":" && v[0] == ':') {
		return 0, 0, false
	}
	if strings.Contains(s[start:lineEnd(s, start)], marker) {
		return 0, 0, false // a specific rule took care of this line's secret
	}
	shell := envKey(key) && sep == "=" && pre == "" && post == ""
	quoted := v[0] == '"' || v[0] == '\''
	if quoted {
		start, end = start+1, end-1
		// "Bearer " + token, "a" + "b": code building a value.
		if rest := strings.TrimLeft(s[m[11]:lineEnd(s, m[11])], " \t"); strings.HasPrefix(rest, "+") {
			return 0, 0, false
		}
	} else {
		end = start + len(strings.TrimRight(v, " \t\r"))
	}
	inner := s[start:end]
	if placeholder(inner) || number.MatchString(inner) {
		return 0, 0, false
	}
	lower := strings.ToLower(inner)
	switch lower {
	case "true", "false", "null", "nil", "none", "yes", "no", "on", "off", "required", "optional", "inherit":
		return 0, 0, false
	}
	if shell {
		return start, end, true
	}
	if !quoted {
		if lineRef.MatchString(inner) || strings.ContainsAny(inner, "(){}[]") || strings.ContainsAny(inner[:1], "*&") ||
			strings.HasSuffix(inner, ",") || strings.HasSuffix(inner, ";") {
			// token_test.go:12: ..., f(x), *pw, entries of a literal.
			return 0, 0, false
		}
		// token: cfg.Token, Token: tok, in code. A bare word followed by
		// nothing stays a value ("hunter2").
		if identChain.MatchString(inner) && (strings.Contains(inner, ".") || (end < len(s) && strings.IndexByte(",;(){}[]", s[end]) >= 0)) {
			return 0, 0, false
		}
	}
	if quoted && strings.ContainsAny(inner, " \t") && !envKey(key) {
		// A phrase ("Bearer ", "invalid token") rather than a credential.
		return 0, 0, false
	}
	if !hasDigit(inner) {
		for _, w := range []string{"secret", "token", "password", "passwd", "auth", "key", "credential"} {
			if strings.Contains(lower, w) {
				return 0, 0, false // names the thing: "X-Auth-Token", "access_token"
			}
		}
	}
	return start, end, true
}

// lineEnd is the index of the newline ending the line that holds i.
func lineEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(s)
}
