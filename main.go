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
	"os"
	"os/signal"
	"strings"
	"syscall"

	"remediator/internal/app"
	"remediator/internal/auth"
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
  version  print the version

Configuration is read from environment variables only; see README.md.
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

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
