package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/contrib/envconfig"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(ModeDev, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.Temporal.Address != "127.0.0.1:7233" || c.Temporal.Namespace != "default" {
		t.Fatalf("unexpected defaults: %s", c)
	}
	if c.ApprovalTimeout != 24*time.Hour || c.Dev.Retention < 7*24*time.Hour || c.Dev.UIPort != 8233 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if len(c.GitRoots) != 1 || c.GitRoots[0] != c.DataDir {
		t.Fatalf("dev mode allows the data dir only, got %v", c.GitRoots)
	}
	if err := c.ValidateAPI(); err != nil {
		t.Fatalf("dev mode needs no configured tokens: %v", err)
	}
}

func TestProductionFailsClosed(t *testing.T) {
	c, err := Load(ModeProduction, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GitRoots) != 0 {
		t.Fatalf("production allows no local repositories by default, got %v", c.GitRoots)
	}
	if err := c.ValidateAPI(); err == nil {
		t.Fatal("production API without credentials must refuse to start")
	}
	c, err = Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_API_TOKENS": "alice:approver|admin:0123456789abcdef0123"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateAPI(); err == nil || !strings.Contains(err.Error(), "vote signing key") {
		t.Fatalf("production API without a vote signing key must refuse to start: %v", err)
	}
	if err := c.ValidateWorker(); err == nil {
		t.Fatal("production worker without vote verification keys must refuse to start")
	}
	const seed = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	c, err = Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_API_TOKENS": "alice:approver|admin:0123456789abcdef0123",
		"REMEDIATOR_VOTE_SIGNING_KEY": seed, "REMEDIATOR_VOTE_PUBLIC_KEYS": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="}))
	if err != nil {
		t.Fatal(err)
	}
	// Keys alone are not enough: the decisions need the shared ledger.
	for name, err := range map[string]error{"api": c.ValidateAPI(), "worker": c.ValidateWorker()} {
		if err == nil || !strings.Contains(err.Error(), "REMEDIATOR_DATABASE_URL") {
			t.Fatalf("production %s with the file ledger must refuse to start: %v", name, err)
		}
	}
	c, err = Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_API_TOKENS": "alice:approver|admin:0123456789abcdef0123",
		"REMEDIATOR_VOTE_SIGNING_KEY": seed, "REMEDIATOR_VOTE_PUBLIC_KEYS": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"REMEDIATOR_DATABASE_URL": "postgres://remediator:pw@db:5432/ledger", "REMEDIATOR_CODEC_KEYS": testCodecKeys}))
	if err != nil || c.ValidateAPI() != nil || c.ValidateWorker() != nil {
		t.Fatalf("configured token, keys and database: %v", err)
	}
	if strings.Contains(c.String(), "postgres://") || c.LogFormat != "json" {
		t.Fatalf("String() must not show the database URL; production logs are JSON (%q)", c.LogFormat)
	}
	if strings.Contains(c.String(), seed) {
		t.Fatal("String() leaks the vote signing key")
	}
	if _, err := Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_RECIPE_SANDBOX": "sometimes"})); err == nil || !strings.Contains(err.Error(), "REMEDIATOR_RECIPE_SANDBOX") {
		t.Fatalf("an unknown sandbox mode must stop the process: %v", err)
	}
	if strings.Contains(c.String(), "0123456789abcdef") {
		t.Fatal("String() leaks a token")
	}
	if len(c.Tokens[0].Roles) != 2 {
		t.Fatalf("roles: %v", c.Tokens[0].Roles)
	}
}

// testCodecKeys is a current and an older payload codec key.
const testCodecKeys = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=, k1:HxgdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="

func TestCodecFailsClosed(t *testing.T) {
	base := map[string]string{"REMEDIATOR_API_TOKENS": "alice:approver|admin:0123456789abcdef0123",
		"REMEDIATOR_VOTE_SIGNING_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "REMEDIATOR_VOTE_PUBLIC_KEYS": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"REMEDIATOR_DATABASE_URL": "postgres://remediator:pw@db:5432/ledger"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// Outside dev, no keys: api and worker refuse to start, naming the variable.
	c, err := Load(ModeProduction, envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{"api": c.ValidateAPI(), "worker": c.ValidateWorker()} {
		if err == nil || !strings.Contains(err.Error(), "REMEDIATOR_CODEC_KEYS") || !strings.Contains(err.Error(), "REMEDIATOR_CODEC=off") {
			t.Fatalf("%s without codec keys must refuse to start naming the variable: %v", name, err)
		}
	}
	// Keys inline: the first is current, all decrypt; String names ids only.
	c, err = Load(ModeProduction, envOf(with("REMEDIATOR_CODEC_KEYS", testCodecKeys)))
	if err != nil || c.ValidateAPI() != nil || c.ValidateWorker() != nil {
		t.Fatalf("with keys: %v", err)
	}
	ring, err := c.Codec.Ring()
	if err != nil || ring.CurrentID() != "k2" || strings.Join(ring.IDs(), ",") != "k2,k1" {
		t.Fatalf("ring: %v %v", ring, err)
	}
	if s := c.String(); strings.Contains(s, "AAECAwQF") || !strings.Contains(s, "codec=[k2 k1]") {
		t.Fatalf("String() must name the key ids, never the keys: %s", s)
	}
	// The same from a file, one key a line.
	file := filepath.Join(t.TempDir(), "codec-keys")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(testCodecKeys, ", ", "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(ModeProduction, envOf(with("REMEDIATOR_CODEC_KEYS_FILE", file)))
	if err != nil || len(c.Codec.Keys) != 2 || c.Codec.Keys[0].ID != "k2" || c.ValidateWorker() != nil {
		t.Fatalf("keys from a file: %v %v", c.Codec.Keys, err)
	}
	// Explicitly off: starts (insecure; the process warns).
	c, err = Load(ModeProduction, envOf(with("REMEDIATOR_CODEC", "off")))
	if err != nil || !c.Codec.Off || c.ValidateAPI() != nil || c.ValidateWorker() != nil {
		t.Fatalf("REMEDIATOR_CODEC=off: %v", err)
	}
	if r, err := c.Codec.Ring(); r != nil || err != nil || !strings.Contains(c.String(), "codec=off") {
		t.Fatalf("off has no ring: %v %v", r, err)
	}
	// Dev needs no keys (StartDev keeps one in the data dir); the embedded
	// UI's origin may call the codec endpoint.
	c, err = Load(ModeDev, envOf(map[string]string{"REMEDIATOR_DEV_UI_PORT": "9233"}))
	if err != nil || c.ValidateAPI() != nil || c.ValidateWorker() != nil || len(c.Codec.Keys) != 0 {
		t.Fatalf("dev: %v", err)
	}
	if strings.Join(c.Codec.CORSOrigins, ",") != "http://127.0.0.1:9233,http://localhost:9233" {
		t.Fatalf("dev CORS origins: %v", c.Codec.CORSOrigins)
	}
	c, err = Load(ModeProduction, envOf(with("REMEDIATOR_CODEC_KEYS", testCodecKeys, "REMEDIATOR_CODEC_CORS_ORIGINS", "https://Temporal.example.com/, http://127.0.0.1:8233")))
	if err != nil || strings.Join(c.Codec.CORSOrigins, ",") != "https://temporal.example.com,http://127.0.0.1:8233" {
		t.Fatalf("CORS origins: %v %v", c.Codec.CORSOrigins, err)
	}
	if c, _ := Load(ModeProduction, envOf(base)); len(c.Codec.CORSOrigins) != 0 {
		t.Fatalf("production allows no browser origin by default: %v", c.Codec.CORSOrigins)
	}
}

func TestInvalidValuesAreReported(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"bad token format":   {"REMEDIATOR_API_TOKENS": "alice-no-colons"},
		"unknown role":       {"REMEDIATOR_API_TOKENS": "alice:root:0123456789abcdef0123"},
		"short token":        {"REMEDIATOR_API_TOKENS": "alice:admin:short"},
		"bad duration":       {"REMEDIATOR_APPROVAL_TIMEOUT": "soon"},
		"timeout too long":   {"REMEDIATOR_APPROVAL_TIMEOUT": "2000h"},
		"short retention":    {"REMEDIATOR_DEV_RETENTION": "1h"},
		"relative git root":  {"REMEDIATOR_GIT_ROOTS": "repos"},
		"half TLS pair":      {"TEMPORAL_TLS_CERT": "/x.pem"},
		"alias disagrees":    {"TEMPORAL_TLS_CA": "/a.pem", "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/b.pem"},
		"missing profile":    {"TEMPORAL_PROFILE": "nope", "TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"},
		"key in clear":       {"TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "false"},
		"mtls dropped":       {"TEMPORAL_TLS_CERT": "/c.pem", "TEMPORAL_TLS_KEY": "/k.pem", "TEMPORAL_TLS": "false"},
		"bad database url":   {"REMEDIATOR_DATABASE_URL": "mysql://x"},
		"one poller":         {"REMEDIATOR_WORKER_WORKFLOW_POLLERS": "1"},
		"bad log format":     {"REMEDIATOR_LOG_FORMAT": "xml"},
		"bad int":            {"REMEDIATOR_MAX_DIFF_BYTES": "-3"},
		"codec maybe":        {"REMEDIATOR_CODEC": "maybe"},
		"codec off and keys": {"REMEDIATOR_CODEC": "off", "REMEDIATOR_CODEC_KEYS": testCodecKeys},
		"codec keys twice":   {"REMEDIATOR_CODEC_KEYS": testCodecKeys, "REMEDIATOR_CODEC_KEYS_FILE": "/x"},
		"codec short key":    {"REMEDIATOR_CODEC_KEYS": "k1:AAECAwQFBgcICQoLDA0ODw=="},
		"codec bad id":       {"REMEDIATOR_CODEC_KEYS": "k/1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
		"codec dup ids":      {"REMEDIATOR_CODEC_KEYS": "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,k1:HxgdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="},
		"codec missing file": {"REMEDIATOR_CODEC_KEYS_FILE": "/nonexistent/codec-keys"},
		"codec cors path":    {"REMEDIATOR_CODEC_CORS_ORIGINS": "https://ui.example.com/app"},
		"codec cors star":    {"REMEDIATOR_CODEC_CORS_ORIGINS": "*"},
	} {
		if _, err := Load(ModeProduction, envOf(env)); err == nil {
			t.Errorf("%s: expected an error", name)
		}
	}
}

func TestSlackUsers(t *testing.T) {
	users, err := ParseSlackUsers("U012AB3CD=alice:approver|admin:acme/*|tools/*, W0BOB=bob:approver:*")
	if err != nil {
		t.Fatal(err)
	}
	a := users["U012AB3CD"]
	if a.Subject != "alice" || len(a.Roles) != 2 || !a.CanAccessRepo("acme/api") || a.CanAccessRepo("other/x") {
		t.Fatalf("alice: %+v", a)
	}
	for _, bad := range []string{"alice=approver", "U012AB3CD=alice:root:*", "U012=alice:approver:", "U012=alice:approver:*,U012=bob:approver:*"} {
		if _, err := ParseSlackUsers(bad); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
}

func TestForgeConfiguration(t *testing.T) {
	c, err := Load(ModeProduction, envOf(nil))
	if err != nil || c.GitHub != nil || c.GitLab != nil || len(c.ChangeLabels) != 1 || c.ChangeLabels[0] != "autofix" || c.AlertRepoLabel != "repository" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = Load(ModeProduction, envOf(map[string]string{
		"GITHUB_TOKEN": "ghp_x", "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
		"GITLAB_TOKEN": "glpat", "GITLAB_URL": "https://gitlab.example.com", "GITLAB_WEBHOOK_TOKEN": "hook",
		"REMEDIATOR_ALERT_ROUTES": "DiskFull=acme/ops, Lint = gitlab:g/p", "REMEDIATOR_CHANGE_REVIEWERS": "alice,bob",
	}))
	if err != nil || c.GitHub == nil || c.GitHub.APIURL != "https://ghe.example.com/api/v3/" || c.GitLab == nil ||
		string(c.GitLab.WebhookToken) != "hook" || c.AlertRoutes["Lint"] != "gitlab:g/p" || len(c.ChangeReviewers) != 2 {
		t.Fatalf("configured: %+v %v", c, err)
	}
	if strings.Contains(c.String(), "ghp_x") || strings.Contains(c.String(), "glpat") {
		t.Fatal("String() leaks a forge token")
	}
	key := "-----BEGIN RSA PRIVATE KEY-----\\nabc\\n-----END RSA PRIVATE KEY-----"
	c, err = Load(ModeProduction, envOf(map[string]string{"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY_PEM": key}))
	if err != nil || c.GitHub.AppID != 42 || !strings.Contains(string(c.GitHub.PrivateKeyPEM), "KEY-----\nabc\n") {
		t.Fatalf("App: %+v %v", c.GitHub, err)
	}
	for name, env := range map[string]map[string]string{
		"token and app":   {"GITHUB_TOKEN": "x", "GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_PEM": key},
		"app without key": {"GITHUB_APP_ID": "1"},
		"bad app id":      {"GITHUB_APP_ID": "one", "GITHUB_APP_PRIVATE_KEY_PEM": key},
		"key without app": {"GITHUB_APP_PRIVATE_KEY_PEM": key},
		"bad api url":     {"GITHUB_TOKEN": "x", "GITHUB_API_URL": "ftp://x"},
		"userinfo":        {"GITLAB_TOKEN": "x", "GITLAB_URL": "https://u:p@gitlab.example.com"},
		"hook no token":   {"GITLAB_WEBHOOK_TOKEN": "x"},
		"bad route":       {"REMEDIATOR_ALERT_ROUTES": "nope"},
	} {
		if _, err := Load(ModeProduction, envOf(env)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestGovernanceConfiguration(t *testing.T) {
	c, err := Load(ModeProduction, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dragon != nil || c.Incident != nil || c.Slack != nil || c.LLM != nil {
		t.Fatalf("no integration is on by default: %+v %+v %+v %+v", c.Dragon, c.Incident, c.Slack, c.LLM)
	}
	c, err = Load(ModeProduction, envOf(map[string]string{
		"KLYNX_DRAGON_BASE_URL": "https://dragon.example.com/", "KLYNX_DRAGON_TOKEN": "t0ken", "KLYNX_DRAGON_POLL_INTERVAL": "5s",
		"KLYNX_INCIDENT_API_BASE": "https://inc.example.com/api/incidents",
		"SLACK_BOT_TOKEN":         "xoxb-1", "SLACK_CHANNEL": "C0123ABCD",
		"REMEDIATOR_LLM_BASE_URL": "http://127.0.0.1:11434/v1", "REMEDIATOR_LLM_MODEL": "llama", "REMEDIATOR_LLM_CHECK": "go build ./...",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dragon.BaseURL != "https://dragon.example.com" || c.Dragon.Org != "default-org" || c.Dragon.Region != "global" || c.Dragon.PollInterval != 5*time.Second {
		t.Fatalf("dragon: %+v", c.Dragon)
	}
	if c.Slack.APIURL != "https://slack.com/api/" || c.LLM.MaxAttempts != 3 || c.LLM.Check != "go build ./..." || c.Incident == nil {
		t.Fatalf("slack %+v llm %+v", c.Slack, c.LLM)
	}
	if s := c.String(); strings.Contains(s, "t0ken") || strings.Contains(s, "xoxb-1") {
		t.Fatalf("String() leaks a secret: %s", s)
	}
	for name, env := range map[string]map[string]string{
		"dragon without token":      {"KLYNX_DRAGON_BASE_URL": "https://dragon.example.com"},
		"dragon token without base": {"KLYNX_DRAGON_TOKEN": "x"},
		"short webhook secret":      {"KLYNX_DRAGON_BASE_URL": "https://d.example.com", "KLYNX_DRAGON_TOKEN": "x", "KLYNX_DRAGON_WEBHOOK_SECRET": "short"},
		"dragon base with query":    {"KLYNX_DRAGON_BASE_URL": "https://d.example.com/?a=1", "KLYNX_DRAGON_TOKEN": "x"},
		"slack bot without channel": {"SLACK_BOT_TOKEN": "xoxb-1"},
		"slack channel alone":       {"SLACK_CHANNEL": "C0123ABCD"},
		"llm without model":         {"REMEDIATOR_LLM_BASE_URL": "https://api.openai.com/v1"},
		"llm attempts":              {"REMEDIATOR_LLM_BASE_URL": "https://api.openai.com/v1", "REMEDIATOR_LLM_MODEL": "m", "REMEDIATOR_LLM_MAX_ATTEMPTS": "50"},
		"incident token alone":      {"KLYNX_INCIDENT_API_TOKEN": "x"},
	} {
		if _, err := Load(ModeProduction, envOf(env)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The Temporal client follows the SDK's environment conventions; the old
// names still work for one release, with a deprecation line.
func TestTemporalEnvConventions(t *testing.T) {
	c, err := Load(ModeProduction, envOf(map[string]string{
		"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233", "TEMPORAL_NAMESPACE": "ns.acct", "TEMPORAL_API_KEY": "key-value-123",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Temporal.Address != "ns.acct.tmprl.cloud:7233" || c.Temporal.Namespace != "ns.acct" || !c.Temporal.TLS || c.Temporal.Profile.APIKey != "key-value-123" {
		t.Fatalf("Temporal Cloud with an API key: %+v", c.Temporal)
	}
	if strings.Contains(c.String(), "key-value-123") || !strings.Contains(c.String(), "temporal_api_key=true") {
		t.Fatalf("String() must mask the API key: %s", c.String())
	}
	opts, err := c.Temporal.Profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil || opts.Credentials == nil || opts.ConnectionOptions.TLS == nil {
		t.Fatalf("client options carry the key and TLS: %+v %v", opts, err)
	}

	c, err = Load(ModeProduction, envOf(map[string]string{"TEMPORAL_TLS_CERT": "/c.pem", "TEMPORAL_TLS_KEY": "/k.pem", "TEMPORAL_TLS_CA": "/ca.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	tls := c.Temporal.Profile.TLS
	if tls == nil || tls.ClientCertPath != "/c.pem" || tls.ClientKeyPath != "/k.pem" || tls.ServerCACertPath != "/ca.pem" || !c.Temporal.TLS {
		t.Fatalf("deprecated aliases: %+v", tls)
	}
	if len(c.Temporal.Deprecated) != 3 || !strings.Contains(c.Temporal.Deprecated[0], "TEMPORAL_TLS_CLIENT_CERT_PATH") {
		t.Fatalf("deprecations: %v", c.Temporal.Deprecated)
	}

	// A TOML profile file, selected by TEMPORAL_PROFILE; the environment
	// overrides it.
	file := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(file, []byte("[profile.prod]\naddress = \"prod.example:7233\"\nnamespace = \"payments\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(ModeProduction, envOf(map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "prod", "TEMPORAL_NAMESPACE": "override"}))
	if err != nil || c.Temporal.Address != "prod.example:7233" || c.Temporal.Namespace != "override" || c.Temporal.TLS {
		t.Fatalf("profile file: %+v %v", c.Temporal, err)
	}
	// Dev dials its own embedded server: no profile file, key or TLS.
	c, err = Load(ModeDev, envOf(map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "prod", "TEMPORAL_API_KEY": "k", "TEMPORAL_TLS": "true"}))
	if err != nil || c.Temporal.Namespace != "default" || c.Temporal.TLS || c.Temporal.Profile.APIKey != "" {
		t.Fatalf("dev must ignore client profiles: %+v %v", c.Temporal, err)
	}
}

// The policy file is validated at start; an error names the file and line.
func TestPolicyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(good, []byte("levels:\n  HIGH: {approvals: 2, roles: [admin]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_POLICY_FILE": good}))
	if err != nil || c.Policy == nil || c.Policy.Levels["HIGH"].Approvals != 2 {
		t.Fatalf("policy: %+v %v", c.Policy, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("levels:\n  HIGH: {approvals: 2, roles: [admin]}\n  URGENT: {approvals: 1, roles: [admin]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_POLICY_FILE": bad})); err == nil || !strings.Contains(err.Error(), bad+":3:") {
		t.Fatalf("want an error naming %s:3, got %v", bad, err)
	}
	if _, err := Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_POLICY_FILE": filepath.Join(dir, "missing.yaml")})); err == nil {
		t.Fatal("a missing policy file must stop the process")
	}
}

func TestOIDC(t *testing.T) {
	c, err := Load(ModeDev, envOf(nil))
	if err != nil || c.OIDC != nil {
		t.Fatalf("OIDC without settings = %+v, %v; want nil", c.OIDC, err)
	}
	c, err = Load(ModeDev, envOf(map[string]string{
		"REMEDIATOR_OIDC_ISSUER": "https://idp.example.com/realms/eng", "REMEDIATOR_OIDC_CLIENT_ID": "remediator",
		"REMEDIATOR_OIDC_CLIENT_SECRET": "s3cret", "REMEDIATOR_OIDC_REDIRECT_URL": "https://remediator.example.com/ui/oidc/callback",
		"REMEDIATOR_JWT_ROLES_CLAIM": "realm_access.roles", "REMEDIATOR_JWT_REPOS_CLAIM": "https://example.com/repos",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := OIDC{Issuer: "https://idp.example.com/realms/eng", ClientID: "remediator", ClientSecret: "s3cret",
		RedirectURL: "https://remediator.example.com/ui/oidc/callback", RolesClaim: "realm_access.roles",
		ReposClaim: "https://example.com/repos", Scopes: []string{"profile", "email"}}
	if c.OIDC == nil || !reflect.DeepEqual(*c.OIDC, want) {
		t.Fatalf("OIDC = %+v, want %+v", c.OIDC, want)
	}
	for name, env := range map[string]map[string]string{
		"no client id":      {"REMEDIATOR_OIDC_ISSUER": "https://idp.example.com", "REMEDIATOR_OIDC_REDIRECT_URL": "https://r.example.com/ui/oidc/callback"},
		"no redirect":       {"REMEDIATOR_OIDC_ISSUER": "https://idp.example.com", "REMEDIATOR_OIDC_CLIENT_ID": "r"},
		"wrong redirect":    {"REMEDIATOR_OIDC_ISSUER": "https://idp.example.com", "REMEDIATOR_OIDC_CLIENT_ID": "r", "REMEDIATOR_OIDC_REDIRECT_URL": "https://r.example.com/callback"},
		"issuer not an URL": {"REMEDIATOR_OIDC_ISSUER": "idp", "REMEDIATOR_OIDC_CLIENT_ID": "r", "REMEDIATOR_OIDC_REDIRECT_URL": "https://r.example.com/ui/oidc/callback"},
		"client id only":    {"REMEDIATOR_OIDC_CLIENT_ID": "r", "REMEDIATOR_OIDC_REDIRECT_URL": "https://r.example.com/ui/oidc/callback"},
	} {
		if _, err := Load(ModeDev, envOf(env)); err == nil || !strings.Contains(err.Error(), "REMEDIATOR_OIDC_") {
			t.Errorf("%s: err = %v, want a REMEDIATOR_OIDC_ error", name, err)
		}
	}
}
