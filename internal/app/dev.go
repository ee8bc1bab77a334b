//go:build !production

package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"remediator/api"
	"remediator/internal/auth"
	"remediator/internal/codec"
	"remediator/internal/config"
	"remediator/internal/demo"
	"remediator/internal/devserver"
	"remediator/internal/logging"
	"remediator/internal/orchestrator"
	"remediator/internal/telemetry"
	"remediator/internal/vote"
	"remediator/workflows"
)

// DevToken is a credential that exists only in dev mode.
type DevToken struct {
	Subject string `json:"subject"`
	Role    string `json:"role"`
	Token   string `json:"token"`
}

// devPrincipals: one developer, two approvers (four eyes), one admin.
var devPrincipals = []struct{ subject, role string }{
	{"dev", "developer"}, {"alice", "approver"}, {"bob", "approver"}, {"admin", "admin"},
}

// DevPorts derives every embedded-server port from the frontend port, so one
// setting moves them all and they stay fixed across restarts.
func DevPorts(d config.Dev) devserver.Ports {
	f := d.FrontendPort
	return devserver.Ports{
		Frontend: f, FrontendHTTP: f + 10, History: f + 1, Matching: f + 2, Worker: f + 3,
		FrontendMembership: f - 300, HistoryMembership: f - 299, MatchingMembership: f - 298, WorkerMembership: f - 297,
		UI: d.UIPort,
	}
}

// FreeDevPorts picks ports for a `remediator dev` child process: a frontend
// port whose derived ports (DevPorts) are all free on loopback, and free UI
// and API ports beside them, all far from the defaults of `make run`.
func FreeDevPorts() (frontend, ui, api int, err error) {
	free := func(p int) bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		_ = l.Close()
		return true
	}
	for range 200 {
		f := 21000 + mrand.IntN(9000)
		d := DevPorts(config.Dev{FrontendPort: f, UIPort: f + 20})
		set := []int{d.Frontend, d.FrontendHTTP, d.History, d.Matching, d.Worker, d.FrontendMembership, d.HistoryMembership,
			d.MatchingMembership, d.WorkerMembership, d.UI, f + 21}
		if !slices.ContainsFunc(set, func(p int) bool { return !free(p) }) {
			return f, f + 20, f + 21, nil
		}
	}
	return 0, 0, 0, errors.New("no free port range for remediator dev")
}

// Dev is the whole single-process stack of `remediator dev`.
type Dev struct {
	Config  config.Config
	Server  *devserver.Server
	Client  client.Client
	Worker  sdkworker.Worker
	Handler http.Handler
	Tokens  []DevToken
	Demo    demo.Repo
	api     *APIDeps
	// closeLedger releases the decision ledger (PostgreSQL connections).
	closeLedger func()
}

// StartDev starts the embedded server, worker and API handler on cfg.DataDir.
// Everything persists there: a restart on the same directory resumes waiting
// remediations.
func StartDev(ctx context.Context, cfg config.Config, ports devserver.Ports, logger *slog.Logger) (*Dev, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	sas := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames {
		sas[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	// The dev payload codec key lives in the data dir, like the vote key:
	// a restart on the same directory still reads the histories it wrote.
	devKeys, err := devCodec(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Codec = devKeys
	ring, err := codecRing(cfg, logger)
	if err != nil {
		return nil, err
	}
	codecEndpoint := ""
	if ring != nil {
		// The embedded Web UI asks the dev API to decode payloads, passing
		// its user's access token (an admin's; see README, Encrypted payloads).
		codecEndpoint = cfg.PublicURL + "/codec"
	}
	srv, err := devserver.Start(ctx, devserver.Config{
		DataDir: filepath.Join(cfg.DataDir, "temporal"), Host: "127.0.0.1", Ports: ports,
		Namespace: cfg.Temporal.Namespace, Retention: cfg.Dev.Retention, SearchAttributes: sas,
		Logger: logger.With("component", "temporal-server"), CodecEndpoint: codecEndpoint,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the embedded Temporal server: %w", err)
	}
	d := &Dev{Config: cfg, Server: srv}
	fail := func(err error) (*Dev, error) {
		d.Stop()
		return nil, err
	}
	cfg.Temporal.Address = srv.FrontendAddress()
	if srv.UIAddress() != "" {
		cfg.UIURL = srv.UIAddress()
		// The embedded UI calls the codec endpoint from the browser.
		if !slices.Contains(cfg.Codec.CORSOrigins, srv.UIAddress()) {
			cfg.Codec.CORSOrigins = append(slices.Clone(cfg.Codec.CORSOrigins), srv.UIAddress())
		}
	}
	d.Config = cfg
	if d.Tokens, err = loadDevTokens(filepath.Join(cfg.DataDir, "dev-tokens.json")); err != nil {
		return fail(err)
	}
	if d.Demo, err = demo.Ensure(ctx, filepath.Join(cfg.DataDir, "demo-repo")); err != nil {
		return fail(fmt.Errorf("creating the demo repository: %w", err))
	}
	// The dev signing key lives in the data dir; its public half is what the
	// in-process worker verifies votes with.
	key, err := vote.LoadOrCreate(filepath.Join(cfg.DataDir, "vote-signing-key.pem"))
	if err != nil {
		return fail(fmt.Errorf("the dev vote signing key: %w", err))
	}
	if cfg.VoteSigningKey == nil {
		cfg.VoteSigningKey = key
	}
	signer, err := vote.NewSigner(cfg.VoteSigningKey)
	if err != nil {
		return fail(err)
	}
	cfg.VotePublicKeys = append(cfg.VotePublicKeys, signer.PublicKey())
	d.Config = cfg
	reg := NewRegistry()
	comps, err := BuildActivities(ctx, cfg, logger, reg)
	if err != nil {
		return fail(err)
	}
	d.closeLedger = comps.Close
	// The SDK's metrics (and the workflow's business metrics) join the
	// API's on the one /metrics of the dev process.
	sdkMetrics, err := telemetry.SDKMetricsHandler(reg)
	if err != nil {
		return fail(err)
	}
	if d.Client, err = orchestrator.Dial(ctx, cfg.Temporal, logger, orchestrator.Extras{MetricsHandler: sdkMetrics, Codec: ring}); err != nil {
		return fail(err)
	}
	d.Worker = NewWorker(d.Client, comps.Acts, logger, cfg.Worker, nil)
	if err := d.Worker.Start(); err != nil {
		d.Worker = nil
		return fail(fmt.Errorf("starting the worker: %w", err))
	}
	// Dev credentials exist only here, in `remediator dev`.
	devTokens := make([]auth.StaticToken, 0, len(d.Tokens))
	for _, t := range d.Tokens {
		st, err := auth.NewStaticToken(t.Subject, t.Token, []string{t.Role}, []string{"*"})
		if err != nil {
			return fail(err)
		}
		devTokens = append(devTokens, st)
	}
	if d.api, err = NewAPI(ctx, cfg, d.Client, comps.Ledger, comps.Audit, devTokens, logger, reg, false); err != nil {
		return fail(err)
	}
	d.Handler = d.api.Handler
	return d, nil
}

// devCodecKeyFile is the dev payload codec key in the data dir.
const devCodecKeyFile = "codec-keys"

// devCodec gives dev its payload codec key: the data dir's (created on the
// first start, 0600), unless REMEDIATOR_CODEC_KEYS configures keys, in which
// case an existing data dir key is kept for reading older histories.
func devCodec(cfg config.Config) (config.Codec, error) {
	c := cfg.Codec
	if c.Off {
		return c, nil
	}
	path := filepath.Join(cfg.DataDir, devCodecKeyFile)
	if len(c.Keys) > 0 {
		if _, err := os.Stat(path); err != nil {
			return c, nil
		}
	}
	keys, err := codec.LoadOrCreateKeyFile(path)
	if err != nil {
		return c, fmt.Errorf("the dev payload codec key: %w", err)
	}
	configured := map[string]bool{}
	for _, k := range c.Keys {
		configured[k.ID] = true
	}
	c.Keys = slices.Clone(c.Keys)
	for _, k := range keys {
		if !configured[k.ID] {
			c.Keys = append(c.Keys, k)
		}
	}
	return c, nil
}

// Stop stops the worker, the client and the server, in that order.
func (d *Dev) Stop() {
	if d.api != nil {
		d.api.Close()
		d.api = nil
	}
	if d.Worker != nil {
		d.Worker.Stop()
		d.Worker = nil
	}
	if d.Client != nil {
		d.Client.Close()
		d.Client = nil
	}
	if d.closeLedger != nil {
		d.closeLedger()
		d.closeLedger = nil
	}
	if d.Server != nil {
		_ = d.Server.Stop()
		d.Server = nil
	}
}

// Token returns the dev token of subject.
func (d *Dev) Token(subject string) string {
	for _, t := range d.Tokens {
		if t.Subject == subject {
			return t.Token
		}
	}
	return ""
}

// loadDevTokens keeps dev credentials stable across restarts of one data
// directory, and random per directory.
func loadDevTokens(path string) ([]DevToken, error) {
	if b, err := os.ReadFile(path); err == nil {
		var toks []DevToken
		if err := json.Unmarshal(b, &toks); err != nil || len(toks) != len(devPrincipals) {
			return nil, fmt.Errorf("%s is corrupt; delete it to mint new dev tokens", path)
		}
		return toks, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	toks := make([]DevToken, 0, len(devPrincipals))
	for _, p := range devPrincipals {
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return nil, err
		}
		toks = append(toks, DevToken{Subject: p.subject, Role: p.role, Token: "dev_" + hex.EncodeToString(buf)})
	}
	b, _ := json.MarshalIndent(toks, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return toks, nil
}

// RunDev is `remediator dev`.
func RunDev(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(config.ModeDev, getenv)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("API address %s: %w", cfg.HTTPAddr, err)
	}
	d, err := StartDev(ctx, cfg, DevPorts(cfg.Dev), logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer d.Stop()
	if err := writeDevEnv(d, ln.Addr().String()); err != nil {
		ln.Close()
		return err
	}
	printBanner(stdout, d, ln.Addr().String())
	srv := api.NewServer(cfg.HTTPAddr, d.Handler)
	err = Serve(ctx, srv, ln, cfg.ShutdownTimeout)
	logger.Info("shutting down")
	return err
}

// writeDevEnv writes DATA_DIR/dev.env for `source`: tokens and addresses.
func writeDevEnv(d *Dev, apiAddr string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "export REMEDIATOR_URL=http://%s\n", apiAddr)
	for _, t := range d.Tokens {
		fmt.Fprintf(&b, "export %s_TOKEN=%s\n", strings.ToUpper(t.Subject), t.Token)
	}
	fmt.Fprintf(&b, "export DEMO_REPO=%s\n", d.Demo.Path)
	fmt.Fprintf(&b, "export TEMPORAL_ADDRESS=%s\n", d.Server.FrontendAddress())
	return os.WriteFile(filepath.Join(d.Config.DataDir, "dev.env"), []byte(b.String()), 0o600)
}

func printBanner(w io.Writer, d *Dev, apiAddr string) {
	body, _ := json.Marshal(map[string]string{
		"repo": d.Demo.Path, "ref": d.Demo.Branch, "failure_summary": d.Demo.FailureSummary, "log_excerpt": d.Demo.LogExcerpt,
	})
	fmt.Fprintf(w, `
remediator dev is running (Ctrl-C stops it; data in %s)

  API          http://%s
  Temporal     %s   (temporal workflow list --address %s)
  Web UI       %s
  Codec        %s

Dev credentials (dev mode only; also in %s):
`, d.Config.DataDir, apiAddr, d.Server.FrontendAddress(), d.Server.FrontendAddress(), orNone(d.Server.UIAddress()),
		codecLine(d.Config, apiAddr), filepath.Join(d.Config.DataDir, "dev.env"))
	for _, t := range d.Tokens {
		fmt.Fprintf(w, "  %-6s %-10s %s\n", t.Subject, t.Role, t.Token)
	}
	fmt.Fprintf(w, `
Demo repository with a real gofmt defect: %s

Start a remediation against it:
  curl -s -X POST http://%s/api/remediations \
    -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
    -d '%s'

`, d.Demo.Path, apiAddr, d.Token("dev"), strings.ReplaceAll(string(body), "'", `'\''`))
}

// codecLine says where payloads are decoded, or that they are in clear.
func codecLine(cfg config.Config, apiAddr string) string {
	if cfg.Codec.Off || len(cfg.Codec.Keys) == 0 {
		return "off: payloads are written in clear (REMEDIATOR_CODEC=off)"
	}
	return fmt.Sprintf("http://%s/codec   (admin token; temporal … --codec-endpoint http://%s/codec --codec-auth \"Bearer $ADMIN_TOKEN\")", apiAddr, apiAddr)
}

func orNone(s string) string {
	if s == "" {
		return "(disabled)"
	}
	return s
}
