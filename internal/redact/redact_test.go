package redact_test

import (
	"strings"
	"testing"
	"time"

	"remediator/internal/redact"
)

// Fake credentials of the right shapes, assembled so no scanner mistakes
// this file for a leak.
var (
	ghToken     = "ghp_" + strings.Repeat("a1B2", 9)
	ghPAT       = "github_pat_" + strings.Repeat("11AB", 6) + "_" + strings.Repeat("xY9z", 14)
	glToken     = "glpat-" + strings.Repeat("Ab3D", 5)
	awsKeyID    = "AKIA" + "IOSFODNN7EXAMPLE"
	awsSecret   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
	jwt         = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	pemBody     = "MIIEowIBAAKCAQEA7bq98p2Vh1xQfakeFAKEfake0123456789abcdefABCDEF"
	pemKey      = "-----BEGIN RSA PRIVATE KEY-----\n" + pemBody + "\nZm9vYmFyYmF6\n-----END RSA PRIVATE KEY-----"
	openAIKey   = "sk-proj-" + strings.Repeat("Q7w", 10)
	stripeKey   = "sk_" + "live_" + strings.Repeat("4eC39H", 4)
	googleKey   = "AIza" + "SyD" + strings.Repeat("x7Y", 10) + "a1"
	slackBot    = "xoxb-" + "123456789012-1234567890123-" + strings.Repeat("AbCd", 6)
	slackApp    = "xapp-1-" + "A0123456789-1234567890123-" + strings.Repeat("ab12", 8)
	slackHook   = "https://hooks.slack.com/services/" + "T00000000/B00000000/" + strings.Repeat("XyZ1", 6)
	azureKey    = strings.Repeat("Eby8vdM02xNOcqFl", 5) + "=="
	azureSig    = "2Bq7L9" + strings.Repeat("kPz4", 8) + "%3D"
	gcpKeyValue = `-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC` + `\nfakefakefake\n-----END PRIVATE KEY-----\n`
)

func TestRedactKinds(t *testing.T) {
	for _, tc := range []struct {
		name, in, secret, want string
	}{
		{"github ghp", "push with " + ghToken + " failed", ghToken, "push with [REDACTED:github-token] failed"},
		{"github gho", "gho_" + strings.Repeat("z9", 18), "gho_", "[REDACTED:github-token]"},
		{"github ghs in url", "https://x-access-token:ghs_" + strings.Repeat("k3", 18) + "@github.com/o/r", "ghs_", "https://x-access-token:[REDACTED:url-password]@github.com/o/r"},
		{"github pat", "token " + ghPAT, ghPAT, "token [REDACTED:github-token]"},
		{"gitlab pat", "PRIVATE-TOKEN: " + glToken, glToken, "PRIVATE-TOKEN: [REDACTED:gitlab-token]"},
		{"gitlab deploy", "gldt-" + strings.Repeat("Zq8", 8), "gldt-", "[REDACTED:gitlab-token]"},
		{"gitlab runner", "glrt-" + strings.Repeat("Zq8", 8), "glrt-", "[REDACTED:gitlab-token]"},
		{"gitlab runner registration", "GR1348941" + strings.Repeat("Zq8", 8), "GR1348941", "[REDACTED:gitlab-token]"},
		{"slack bot", "slack " + slackBot, slackBot, "slack [REDACTED:slack-token]"},
		{"slack user", "xoxp-" + "1234567890-abcdefghij", "xoxp-", "[REDACTED:slack-token]"},
		{"slack app", slackApp, slackApp, "[REDACTED:slack-token]"},
		{"slack webhook", "POST " + slackHook + " 200", "XyZ1", "POST https://hooks.slack.com/services/[REDACTED:slack-webhook] 200"},
		{"aws key id", "key " + awsKeyID + ".", awsKeyID, "key [REDACTED:aws-access-key-id]."},
		{"aws secret", "aws_secret_access_key = " + awsSecret, awsSecret, "aws_secret_access_key = [REDACTED:aws-secret-access-key]"},
		{"aws secret env", "AWS_SECRET_ACCESS_KEY=" + awsSecret, awsSecret, "AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-access-key]"},
		{"google", "key=" + googleKey, googleKey, "key=[REDACTED:google-api-key]"},
		{"gcp service account", `{"type": "service_account", "private_key": "` + gcpKeyValue + `", "client_email": "x@y.iam.gserviceaccount.com"}`, "MIIEvQ",
			`{"type": "service_account", "private_key": "[REDACTED:gcp-private-key]", "client_email": "x@y.iam.gserviceaccount.com"}`},
		{"azure account key", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + azureKey + ";EndpointSuffix=core.windows.net", "Eby8vdM02",
			"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:azure-account-key];EndpointSuffix=core.windows.net"},
		{"azure sas", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=" + azureSig + "&se=2030", azureSig,
			"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=[REDACTED:azure-sas-signature]&se=2030"},
		{"openai", "using " + openAIKey, openAIKey, "using [REDACTED:openai-api-key]"},
		{"stripe", "stripe " + stripeKey, stripeKey, "stripe [REDACTED:stripe-key]"},
		{"stripe restricted", "rk_" + "live_" + strings.Repeat("9aZ", 8), "rk_", "[REDACTED:stripe-key]"},
		{"jwt", "cookie: session " + jwt, jwt, "cookie: session [REDACTED:jwt]"},
		{"pem", "key:\n" + pemKey + "\nafter", pemBody, "key:\n[REDACTED:private-key]\nafter"},
		{"pem truncated", "log\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "b3BlbnNz", "log\n[REDACTED:private-key]"},
		{"pem end only", "log\n" + pemBody + "\nZm9vYmFyYmF6YmF6cXV4\n-----END PRIVATE KEY-----\nafter", pemBody, "log\n[REDACTED:private-key]\nafter"},
		{"url password", "git clone https://deploy:s3cr3t-pass@git.example.com/r.git", "s3cr3t", "git clone https://deploy:[REDACTED:url-password]@git.example.com/r.git"},
		{"postgres url", "DATABASE_URL=postgres://app:hunter2@db:5432/app", "hunter2", "DATABASE_URL=postgres://app:[REDACTED:url-password]@db:5432/app"},
		{"bearer header", "Authorization: Bearer abc.def-123_XYZ", "abc.def-123_XYZ", "Authorization: Bearer [REDACTED:authorization]"},
		{"basic header", `curl -H "Authorization: Basic dXNlcjpwYXNz" https://x`, "dXNlcjpwYXNz", `curl -H "Authorization: Basic [REDACTED:authorization]" https://x`},
		{"env token", "GITHUB_TOKEN=abc123def", "abc123def", "GITHUB_TOKEN=[REDACTED:secret]"},
		{"env password quoted", `export DB_PASSWORD="p@ss word"`, "p@ss word", `export DB_PASSWORD="[REDACTED:secret]"`},
		{"yaml password", "  password: hunter2", "hunter2", "  password: [REDACTED:secret]"},
		{"json secret", `{"client_secret": "0a1b2c3d", "user": "bob"}`, "0a1b2c3d", `{"client_secret": "[REDACTED:secret]", "user": "bob"}`},
		{"api key header", "X-Api-Key: 9f8e7d6c5b", "9f8e7d6c5b", "X-Api-Key: [REDACTED:secret]"},
		{"credentials", "CREDENTIALS=user:pa55", "pa55", "CREDENTIALS=[REDACTED:secret]"},
		{"passwd flag", "mysql --passwd=Tr0ub4dor", "Tr0ub4dor", "mysql --passwd=[REDACTED:secret]"},
		{"pwd", "DB_PWD=letmein9", "letmein9", "DB_PWD=[REDACTED:secret]"},
		{"access key", "ACCESS_KEY: q1w2e3r4", "q1w2e3r4", "ACCESS_KEY: [REDACTED:secret]"},
		{"private key var", "PRIVATE_KEY=abcdef123", "abcdef123", "PRIVATE_KEY=[REDACTED:secret]"},
		{"auth", "NPM_AUTH=Zm9vOmJhcg", "Zm9vOmJhcg", "NPM_AUTH=[REDACTED:secret]"},
		{"two on a line", "A_TOKEN=one1 B_SECRET=two2 make", "two2", "A_TOKEN=[REDACTED:secret] B_SECRET=[REDACTED:secret] make"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := redact.Redact(tc.in)
			if got != tc.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, tc.secret) {
				t.Errorf("the secret %q survived: %q", tc.secret, got)
			}
			if want := strings.Count(tc.want, "[REDACTED:"); n != want {
				t.Errorf("count = %d, want %d", n, want)
			}
			if again, n2 := redact.Redact(got); again != got || n2 != 0 {
				t.Errorf("not idempotent: %q (%d)", again, n2)
			}
		})
	}
}

const normalGo = `// Package client talks to the API.
package client

import (
	"errors"
	"net/http"
	"os"
	"strings"
)

// ErrBadToken is returned for a refused token.
var ErrBadToken = errors.New("bad token")

const authHeader = "Authorization"

// Config holds the credentials.
type Config struct {
	Token    string ` + "`json:\"token,omitempty\"`" + `
	Password string
	APIKey   string
}

type Client struct {
	token  string
	apiKey string
	auth   *http.Client
}

func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, ErrBadToken
	}
	token := strings.TrimSpace(cfg.Token)
	password := os.Getenv("DB_PASSWORD")
	_ = password
	secret := []byte(cfg.Password)
	_ = secret
	c := &Client{
		token:  token,
		apiKey: cfg.APIKey,
		auth:   http.DefaultClient,
	}
	c.apiKey = cfg.APIKey
	return c, nil
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set(authHeader, "Bearer "+c.token)
	req.Header.Set("X-Api-Key", c.apiKey)
	switch req.URL.Query().Get("auth") {
	case "token":
	}
	m := map[string]string{"token": c.token, "password": *new(string)}
	_ = m
	return c.auth.Do(req)
}
`

const normalLog = `2024-05-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4
  with:
    repository: octo/app
    token: ***
    persist-credentials: true
    ssh-strict: true
  env:
    GITHUB_TOKEN: ***
    GOFLAGS: -mod=readonly
##[endgroup]
Syncing repository: octo/app
Author: Jane Doe <jane@example.com>
PWD=/home/runner/work/app/app
go: downloading github.com/google/uuid v1.6.0
# example.com/app/auth
auth/token.go:14:2: declared and not used: secret
./token.go:5:2: undefined: authToken
--- FAIL: TestTokenRefresh (0.01s)
    token_test.go:42: got status 401, want 200
    auth_test.go:7: expected error "invalid token", got nil
FAIL	example.com/app/auth	0.012s
max_tokens: 4096
token_type: ${{ secrets.TYPE }}
password: <your password here>
secret: %s
Error: Process completed with exit code 1.
`

func TestRedactLeavesOrdinaryTextAlone(t *testing.T) {
	for name, in := range map[string]string{"go": normalGo, "log": normalLog} {
		got, n := redact.Redact(in)
		if got != in || n != 0 {
			t.Errorf("%s: %d replacement(s) in ordinary text:\n%s", name, n, diffLines(in, got))
		}
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			out = append(out, "- "+al[i], "+ "+bl[i])
		}
	}
	return strings.Join(out, "\n")
}

// TestRedactIsLinear: adversarial inputs (unterminated PEM headers, long runs
// of key-like text, near-miss tokens) are handled in time proportional to
// their size.
func TestRedactIsLinear(t *testing.T) {
	chunks := []string{
		"-----BEGIN PRIVATE KEY----- ",
		"PASSWORD",
		"eyJ" + strings.Repeat("a", 40) + ".",
		"https://u:",
		"ghp_short ",
		"a=b:c ",
	}
	for _, c := range chunks {
		small := strings.Repeat(c, 2000)
		big := strings.Repeat(c, 32000)
		t0 := time.Now()
		redact.Redact(small)
		ds := time.Since(t0)
		t0 = time.Now()
		redact.Redact(big)
		db := time.Since(t0)
		// 16x the input: allow generous slack for noise, far below quadratic (256x).
		if db > 64*ds+200*time.Millisecond {
			t.Errorf("%q: %s for %d bytes vs %s for %d bytes", c, db, len(big), ds, len(small))
		}
	}
}
