// Command remediator turns CI failures and alerts into validated,
// human-approved fixes, one durable Temporal workflow per remediation.
//
//	remediator dev      embedded Temporal (SQLite file) + Web UI + worker + API
//	remediator worker   worker against an external Temporal cluster
//	remediator api      HTTP API against an external Temporal cluster
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"remediator/internal/app"
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
