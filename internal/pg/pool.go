package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool defaults, used unless the URL sets them: a few connections per
// process, checked often, recycled, and a bounded connect.
const (
	DefaultMaxConns          = 4
	DefaultConnectTimeout    = 5 * time.Second
	DefaultHealthCheckPeriod = 15 * time.Second
	DefaultMaxConnIdleTime   = 5 * time.Minute
	DefaultMaxConnLifetime   = 30 * time.Minute
)

// PoolConfig parses url (a postgres:// URL or key=value DSN) with the
// defaults above for whatever it leaves out, and names the connections
// "remediator" unless it sets application_name. component prefixes errors.
func PoolConfig(component, url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: postgres config: %w", component, err)
	}
	set := func(param string) bool { return strings.Contains(url, param) }
	if !set("pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if !set("pool_health_check_period") {
		cfg.HealthCheckPeriod = DefaultHealthCheckPeriod
	}
	if !set("pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = DefaultMaxConnIdleTime
	}
	if !set("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "remediator"
	}
	return cfg, nil
}

// ConnLost tells a lost connection (the server restarted or went away)
// from a statement the server refused: after a loss the pool's idle
// connections are stale and worth dropping.
func ConnLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
