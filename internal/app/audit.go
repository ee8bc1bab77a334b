package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"

	"remediator/internal/audit"
	"remediator/internal/config"
)

// auditFile is the JSON lines audit file: REMEDIATOR_AUDIT_FILE, or
// audit.jsonl in the data dir.
func auditFile(cfg config.Config) string {
	if cfg.AuditFile != "" {
		return cfg.AuditFile
	}
	return filepath.Join(cfg.DataDir, "audit.jsonl")
}

// openAudit opens the audit store: the audit_events table of the
// REMEDIATOR_DATABASE_URL database (migrations applied at open), otherwise
// the JSON lines file, which configuration allows outside dev only when
// named explicitly (REMEDIATOR_AUDIT_FILE).
func openAudit(ctx context.Context, cfg config.Config, logger *slog.Logger) (audit.Store, func(), error) {
	if cfg.DatabaseURL != "" {
		pg, err := audit.OpenPostgres(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REMEDIATOR_DATABASE_URL: %w", err)
		}
		logger.Info("audit store: postgresql")
		return pg, pg.Close, nil
	}
	path := auditFile(cfg)
	f, err := audit.OpenFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("audit store %s: %w", path, err)
	}
	if d := f.Damage(); d != nil {
		// Starting anyway: appends are retried until an operator repairs
		// the file, and the workflows keep their events meanwhile.
		logger.Error("AUDIT FILE DAMAGED: appends are refused until it is repaired", "error", d)
	}
	logger.Info("audit store: json lines file", "path", path)
	return f, f.Close, nil
}

const auditUsage = `usage: remediator audit verify [--file FILE]
       remediator audit list [--file FILE] REMEDIATION_ID

The store is the audit_events table of REMEDIATOR_DATABASE_URL, else the JSON
lines file REMEDIATOR_AUDIT_FILE (default: audit.jsonl in REMEDIATOR_DATA_DIR);
--file reads that JSON lines file instead.
`

// RunAudit is `remediator audit`: verify walks the whole chain and exits 1
// at the first broken record; list prints one remediation's records as
// JSON lines. It only reads: the file is opened read-only, the database
// without migrations.
func RunAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "list") {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("usage: remediator audit verify|list")
	}
	fset := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	file := fset.String("file", "", "read this JSON lines audit file")
	var rest []string
	for tail := args[1:]; ; {
		if err := fset.Parse(tail); err != nil {
			return err
		}
		if fset.NArg() == 0 {
			break
		}
		rest, tail = append(rest, fset.Arg(0)), fset.Args()[1:]
	}
	switch {
	case args[0] == "verify" && len(rest) != 0:
		return fmt.Errorf("audit verify takes no arguments (got %q)", rest)
	case args[0] == "list" && len(rest) != 1:
		return errors.New("usage: remediator audit list [--file FILE] REMEDIATION_ID")
	}
	store, err := openAuditReadOnly(ctx, *file, getenv)
	if err != nil {
		return err
	}
	defer store.Close()

	if args[0] == "list" {
		records, err := store.List(ctx, rest[0])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, r := range records {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	rep, err := store.Verify(ctx)
	if err != nil {
		return err
	}
	if rep.OK {
		fmt.Fprintf(stdout, "audit chain OK: %d records, head %s\n", rep.Records, rep.Head)
		return nil
	}
	fmt.Fprintf(stdout, "audit chain BROKEN at index %d: %s\n(%d records, last hash %s)\n", rep.FirstBad, rep.Problem, rep.Records, rep.Head)
	return fmt.Errorf("audit chain broken at index %d", rep.FirstBad)
}

// openAuditReadOnly opens the store `remediator audit` reads: file, else
// the configured one. A missing file is an error, never an empty chain.
func openAuditReadOnly(ctx context.Context, file string, getenv func(string) string) (audit.Store, error) {
	if file == "" {
		cfg, err := config.Load(config.ModeProduction, getenv)
		if err != nil {
			return nil, err
		}
		if cfg.DatabaseURL != "" {
			pg, err := audit.ConnectPostgres(ctx, cfg.DatabaseURL)
			if err != nil {
				return nil, fmt.Errorf("REMEDIATOR_DATABASE_URL: %w", err)
			}
			return pg, nil
		}
		file = auditFile(cfg)
	}
	f, err := audit.OpenFileReadOnly(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no audit file at %s: set REMEDIATOR_DATABASE_URL or REMEDIATOR_AUDIT_FILE, or pass --file", file)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}
