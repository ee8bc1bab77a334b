#!/bin/sh
# Run by the `postgresql-init` job of docker-compose.yml (official postgres
# image, for its psql) after PostgreSQL is healthy and before anything else
# touches it. Idempotent: every `docker compose up` runs it again.
#
#   - checks the two database passwords (they end up in a URL and in Temporal's
#     YAML configuration, so only URL-safe characters, and no placeholder);
#   - creates Temporal's databases (owned by the superuser `temporal`, which
#     the schema job uses);
#   - creates the role `remediator` (password kept in step with
#     REMEDIATOR_DB_PASSWORD on every run) and its own database `remediator`,
#     which holds remediator's decision ledger. PUBLIC can connect to none of
#     the three databases: each role reaches only its own.
#
# Environment: PGHOST, PGPORT, PGUSER, PGPASSWORD (the superuser),
# REMEDIATOR_DB_PASSWORD, optional SETUP_ATTEMPTS / SETUP_SLEEP_SECONDS.
set -eu

: "${PGHOST:?PGHOST is required}"
: "${PGUSER:?PGUSER is required}"
: "${PGPASSWORD:?PGPASSWORD (TEMPORAL_DB_PASSWORD) is required}"
: "${REMEDIATOR_DB_PASSWORD:?REMEDIATOR_DB_PASSWORD is required}"
attempts=${SETUP_ATTEMPTS:-30}
pause=${SETUP_SLEEP_SECONDS:-2}

check_secret() { # name value
	case $2 in
	*CHANGE_ME* | *change-me* | *changeme*)
		echo "postgresql-init: $1 is still the placeholder from .env.example; generate one: openssl rand -hex 24" >&2
		exit 1
		;;
	*[!A-Za-z0-9._~-]*)
		echo "postgresql-init: $1 may only contain A-Z a-z 0-9 . _ ~ - (it goes into a URL and a YAML file); e.g. openssl rand -hex 24" >&2
		exit 1
		;;
	esac
	if [ "${#2}" -lt 16 ]; then
		echo "postgresql-init: $1 must be at least 16 characters; e.g. openssl rand -hex 24" >&2
		exit 1
	fi
}
check_secret TEMPORAL_DB_PASSWORD "$PGPASSWORD"
check_secret REMEDIATOR_DB_PASSWORD "$REMEDIATOR_DB_PASSWORD"

i=1
until pg_isready -q -d postgres; do
	if [ "$i" -ge "$attempts" ]; then
		echo "postgresql-init: PostgreSQL at $PGHOST not ready after $attempts attempts" >&2
		exit 1
	fi
	echo "postgresql-init: waiting for PostgreSQL ($i/$attempts)"
	i=$((i + 1))
	sleep "$pause"
done

# The password never appears on a command line: psql reads it with \getenv.
psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
\getenv ledger_pw REMEDIATOR_DB_PASSWORD
SELECT 'CREATE DATABASE temporal'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'temporal') \gexec
SELECT 'CREATE DATABASE temporal_visibility'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'temporal_visibility') \gexec
SELECT 'CREATE ROLE remediator LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'remediator') \gexec
SELECT format('ALTER ROLE remediator WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'ledger_pw') \gexec
SELECT 'CREATE DATABASE remediator OWNER remediator'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'remediator') \gexec
ALTER DATABASE remediator OWNER TO remediator;
-- Each role reaches only its own databases.
REVOKE ALL ON DATABASE remediator FROM PUBLIC;
REVOKE ALL ON DATABASE temporal, temporal_visibility FROM PUBLIC;
SQL
echo "postgresql-init: databases temporal, temporal_visibility and remediator (role remediator) are ready"
