package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"remediator/internal/auth"
	"remediator/internal/config"
	"remediator/internal/vote"
)

func TestRunRefusesUnknownOrMissingCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Fatal("no command must fail")
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, &out, &errOut); err == nil ||
		!strings.Contains(errOut.String(), "usage") {
		t.Fatalf("unknown command: %v %q", err, errOut.String())
	}
}

func TestAPIRefusesToStartWithoutCredentials(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"api"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no API credentials") {
		t.Fatalf("the production API must fail closed without credentials, got %v", err)
	}
}

func TestClientCommandsAreDispatched(t *testing.T) {
	id, digest := "rem-0123456789abcdef01234567", strings.Repeat("ab", 32)
	for _, args := range [][]string{
		{"status", id},
		{"approve", id, "--digest", digest},
		{"reject", id, "--digest", digest, "--reason", "r"},
		{"list"},
	} {
		cmd := args[0]
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "REMEDIATOR_URL is not set") {
			t.Errorf("%s must reach the API client and need REMEDIATOR_URL, got %v", cmd, err)
		}
		if !strings.Contains(usage, "\n  "+cmd+" ") {
			t.Errorf("usage does not list %s", cmd)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &out); err != nil || out.Len() == 0 {
		t.Fatalf("version: %v %q", err, out.String())
	}
}

func TestAPIKeyCreatePrintsAUsableEntry(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"apikey", "create", "--name", "ci-bot", "--roles", "developer", "--repos", "acme/*"},
		func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	var key, entry string
	for i, l := range lines {
		if strings.HasPrefix(l, "API key") {
			key = strings.TrimSpace(lines[i+1])
		}
		if strings.HasPrefix(l, "Add this entry") {
			entry = strings.TrimSpace(lines[i+1])
		}
	}
	keys, err := auth.ParseAPIKeys(entry)
	if err != nil || len(keys) != 1 || keys[0].Name != "ci-bot" {
		t.Fatalf("entry %q: %v", entry, err)
	}
	if strings.Contains(entry, key) {
		t.Fatal("the configuration entry must not contain the key itself")
	}
	a := &auth.Authenticator{APIKeys: keys}
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("X-API-Key", key)
	p, err := a.Authenticate(req)
	if err != nil || p.Subject != "ci-bot" || !p.CanAccessRepo("acme/api") || p.CanAccessRepo("other/x") {
		t.Fatalf("minted key: %+v %v", p, err)
	}
}

func TestVoteKeyCreateWritesAKeyWorkersAccept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vote.pem")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"votekey", "create", "--out", path}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the private key must be a 0600 file: %v %v", st, err)
	}
	var pub string
	lines := strings.Split(out.String(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "Public key") && i+1 < len(lines) {
			pub = strings.TrimSpace(lines[i+1])
		}
	}
	env := map[string]string{"REMEDIATOR_VOTE_SIGNING_KEY_FILE": path, "REMEDIATOR_VOTE_PUBLIC_KEYS": pub}
	cfg, err := config.Load(config.ModeProduction, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	signer, err := vote.NewSigner(cfg.VoteSigningKey)
	if err != nil || len(cfg.VotePublicKeys) != 1 || cfg.VotePublicKeys[0].ID != signer.PublicKey().ID {
		t.Fatalf("the printed public key must verify the file's key: %v %v", cfg.VotePublicKeys, err)
	}
	if strings.Contains(out.String(), "PRIVATE KEY") {
		t.Error("the private key must not be printed")
	}
	// The file is never overwritten.
	if err := run(context.Background(), []string{"votekey", "create", "--out", path}, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Error("votekey create overwrote an existing key")
	}
}

func TestProductionCommandsFailClosedWithoutVoteKeys(t *testing.T) {
	var out, errOut bytes.Buffer
	env := map[string]string{"REMEDIATOR_API_TOKENS": "ops:admin:0123456789abcdef0123"}
	err := run(context.Background(), []string{"api"}, func(k string) string { return env[k] }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "vote signing key") {
		t.Fatalf("the API must refuse to start without a vote signing key, got %v", err)
	}
	err = run(context.Background(), []string{"worker"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "vote verification keys") {
		t.Fatalf("the worker must refuse to start without vote verification keys, got %v", err)
	}
}

// Outside dev, the file ledger is no decision store: a directory on one host
// is not something other replicas can read.
func TestProductionCommandsRefuseTheFileLedger(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "vote.pem")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"votekey", "create", "--out", keyFile}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	pub := strings.TrimSpace(lines[len(lines)-1])
	env := map[string]string{
		"REMEDIATOR_API_TOKENS": "ops:admin:0123456789abcdef0123", "REMEDIATOR_VOTE_SIGNING_KEY_FILE": keyFile,
		"REMEDIATOR_VOTE_PUBLIC_KEYS": pub, "REMEDIATOR_DATA_DIR": dir,
	}
	for _, cmd := range []string{"api", "worker"} {
		err := run(context.Background(), []string{cmd}, func(k string) string { return env[k] }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "REMEDIATOR_DATABASE_URL") {
			t.Fatalf("%s must refuse to start with the file ledger outside dev, got %v", cmd, err)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, "http://192.0.2.1/readyz", http.StatusFound)
			return
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var out bytes.Buffer
	hc := func(args ...string) error {
		return run(context.Background(), append([]string{"healthcheck"}, args...), func(string) string { return "" }, &out, &out)
	}
	if err := hc(srv.URL + "/readyz"); err != nil {
		t.Fatalf("a 200 must pass: %v", err)
	}
	ready = false
	if err := hc(srv.URL + "/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a 503 must fail: %v", err)
	}
	// A redirect is an answer, not something to follow off loopback.
	if err := hc(srv.URL + "/away"); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("a redirect must fail without being followed: %v", err)
	}
	for _, bad := range [][]string{{}, {"ftp://127.0.0.1/x"}, {"http://example.com/readyz"}, {"a", "b"}} {
		if err := hc(bad...); err == nil {
			t.Errorf("%q must be refused", bad)
		}
	}
}

// The production build (tag production) carries neither the embedded
// Temporal server nor its Web UI, and its `dev` command says why it refuses.
func TestProductionBuildLeavesOutTheDevServer(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the build's packages")
	}
	cmd := exec.Command("go", "list", "-tags", "production", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := string(outb)
	for _, pkg := range []string{"go.temporal.io/server/", "github.com/temporalio/ui-server/", "remediator/internal/devserver"} {
		if strings.Contains(deps, pkg) {
			t.Errorf("the production build depends on %s", pkg)
		}
	}
	for _, pkg := range []string{"remediator/internal/app", "go.temporal.io/sdk/client", "github.com/jackc/pgx/v5"} {
		if !strings.Contains(deps, pkg) {
			t.Errorf("the production build lacks %s", pkg)
		}
	}
	cmd = exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if outb, err = cmd.Output(); err != nil || !strings.Contains(string(outb), "remediator/internal/devserver") {
		t.Fatalf("the default build must keep the dev server: %v", err)
	}
}
