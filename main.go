// Command remediator turns CI failures and alerts into validated,
// human-approved fixes, one durable Temporal workflow per remediation.
//
//	remediator dev      embedded Temporal (SQLite file) + Web UI + worker + API
//	remediator worker   worker against an external Temporal cluster
//	remediator api      HTTP API against an external Temporal cluster
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"remediator/internal/app"
	"remediator/internal/auth"
	"remediator/internal/cli"
	"remediator/internal/vote"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "remediator:", err)
		os.Exit(1)
	}
}

const usage = `usage: remediator <command>

commands:
  dev      run everything in one process: embedded Temporal server on a SQLite
           file, Temporal Web UI, worker and API, with local providers (offline)
  worker   run the worker against TEMPORAL_ADDRESS
  api      run the HTTP API against TEMPORAL_ADDRESS
  apikey create --name NAME --roles r1,r2 --repos glob1,glob2
           mint an API key: prints the key once and the entry for REMEDIATOR_API_KEYS
  votekey create --out FILE
           mint the API's vote signing key into FILE (0600) and print the public
           key for the workers' REMEDIATOR_VOTE_PUBLIC_KEYS
  status ID [--json] [--diff]
           show a remediation; --diff prints the change byte for byte as applied
  approve ID --digest DIGEST [--comment TEXT]
           approve the reviewed change (DIGEST as shown by status)
  reject ID --digest DIGEST --reason TEXT
           reject the reviewed change
  list [--phase P] [--repo R] [--page-size N] [--page-token T] [--all]
           list remediations you may see
  audit verify [--file FILE]
           walk the audit chain (REMEDIATOR_DATABASE_URL, else the audit file):
           "audit chain OK: N records, head H", or exit 1 naming the first
           broken index and why
  audit list [--file FILE] ID
           print one remediation's audit records as JSON lines
  healthcheck URL
           exit 0 when URL (e.g. http://127.0.0.1:8080/readyz) answers 2xx
           within 3s: the container images' HEALTHCHECK (they carry no curl)
  version  print the version

Configuration is read from environment variables only; see README.md.
status, approve, reject and list call the API at REMEDIATOR_URL with
REMEDIATOR_TOKEN (bearer token) or REMEDIATOR_API_KEY (set exactly one).
`

// run is main without globals, so tests can drive every command.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "dev":
		return app.RunDev(ctx, getenv, stdout, stderr)
	case "worker":
		return app.RunWorker(ctx, getenv, stderr)
	case "api":
		return app.RunAPI(ctx, getenv, stderr)
	case "apikey":
		return runAPIKey(args[1:], stdout, stderr)
	case "votekey":
		return runVoteKey(args[1:], stdout, stderr)
	case "approve", "reject", "regenerate", "status", "list":
		return cli.Run(ctx, args, getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:])
	case "audit":
		return app.RunAudit(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, app.Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// runHealthcheck probes one loopback http URL; the images' HEALTHCHECK.
func runHealthcheck(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: remediator healthcheck http://127.0.0.1:8080/readyz")
	}
	u, err := url.Parse(args[0])
	if err != nil || u.Scheme != "http" || u.Hostname() == "" {
		return fmt.Errorf("healthcheck: %q is not an http URL", args[0])
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("healthcheck: %q is not a loopback address", u.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	// Never follow a redirect: the probe stays on loopback.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s answered %s", u.Redacted(), res.Status)
	}
	return nil
}

// runAPIKey mints an API key. Only the hash goes into configuration; the key
// itself is printed once and never stored.
func runAPIKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: remediator apikey create --name NAME --roles developer,approver --repos 'acme/*'")
	}
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name of the key (shown as the principal)")
	roles := fs.String("roles", "", "comma-separated roles: developer, approver, admin")
	repos := fs.String("repos", "", "comma-separated repository globs the key may act on ('*' for all)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	key, entry, err := auth.NewAPIKey(*name, splitComma(*roles), splitComma(*repos))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "API key (shown once; send it as X-API-Key):\n  %s\n\nAdd this entry to REMEDIATOR_API_KEYS (comma-separated):\n  %s\n", key, entry)
	return nil
}

// runVoteKey mints the Ed25519 key the API signs votes with. The private key
// only ever goes to the file; the public key is printed for the workers.
func runVoteKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: remediator votekey create --out FILE")
	}
	fs := flag.NewFlagSet("votekey create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the private key to (must not exist)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("votekey create: --out FILE is required")
	}
	key, err := vote.GenerateKey()
	if err != nil {
		return err
	}
	pemBytes, err := vote.EncodePrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("votekey create: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	signer, err := vote.NewSigner(key)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Private key written to %s: give it to the API only (REMEDIATOR_VOTE_SIGNING_KEY_FILE).\n\nPublic key for the workers (REMEDIATOR_VOTE_PUBLIC_KEYS, comma-separated):\n  %s\n",
		*out, vote.EncodePublicKey(signer.PublicKey()))
	return nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
