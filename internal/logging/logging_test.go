package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestNoSecretInLogs(t *testing.T) {
	secrets := []string{"s3cr3t-hmac-key-value", "0123456789abcdef0123", "hunter2hunter2", "xoxb-123456789012-abcdefABCDEF", "ghp_abcdefghijklmnopqrstuvwxyz012345", "pgpass-value"}
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		l := New(&buf, format, "debug")
		l.Info("config", "token", secrets[1], "webhook_secret", secrets[0], "Authorization", "Bearer "+secrets[1])
		l.Warn("login", "password", secrets[2], "api_key", secrets[1], "TEMPORAL_API_KEY", secrets[1])
		l.Error("slack failed", "error", errors.New("post: "+secrets[3]+" refused"))
		l.Info("forge", "header", "token "+secrets[4], "url", "postgres://remediator:"+secrets[5]+"@db:5432/ledger")
		l.With("signing_key", secrets[0]).Info("with")
		l.Info("more", "redis", "redis://:"+secrets[2]+"@redis:6379/0", "hook", "https://hooks.slack.com/services/T000/B000/"+secrets[0],
			"jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9."+secrets[0], "basic", "Basic "+secrets[1],
			"pat", "github_pat_"+secrets[1]+"abcdef", "model", "sk-"+secrets[1]+"xyz", "headers", map[string][]string{"X-Gitlab-Token": {"token " + secrets[1]}})
		l.WithGroup("http").Info("grouped", "cookie", secrets[2])
		out := buf.String()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s: %q leaked into the log:\n%s", format, s, out)
			}
		}
		if !strings.Contains(out, Redacted) || !strings.Contains(out, "postgres://remediator:"+Redacted+"@db:5432/ledger") {
			t.Errorf("%s: redaction markers missing:\n%s", format, out)
		}
	}
}

func TestHarmlessAttributesStay(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "text", "info").Info("ok", "tokens_count", 3, "repo", "acme/api", "url", "https://api.github.com/repos/acme/api",
		"job", "https://ci.example:8443/job?email=ann@example.com", "prompt_tokens", 120)
	for _, want := range []string{"tokens_count=3", "repo=acme/api", "url=https://api.github.com/repos/acme/api",
		"job=\"https://ci.example:8443/job?email=ann@example.com\"", "prompt_tokens=120"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%q missing from %s", want, buf.String())
		}
	}
}
