#!/bin/sh
# Run by the `temporal-admin-tools` job of docker-compose.yml
# (temporalio/admin-tools image) once postgresql-init has created the
# databases. Follows the official temporalio/samples-server compose
# setup-postgres.sh: setup-schema -v 0.0 (a no-op on a database already past
# 0.0), then update-schema to the newest version shipped in the image, for the
# default store and for visibility. Idempotent; any failure fails the job,
# and the Temporal server does not start.
#
# Environment: POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD (read by
# temporal-sql-tool itself), optional SETUP_ATTEMPTS / SETUP_SLEEP_SECONDS.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
DB_PORT=${DB_PORT:-5432}
attempts=${SETUP_ATTEMPTS:-30}
pause=${SETUP_SLEEP_SECONDS:-2}
schema_dir=/etc/temporal/schema/postgresql/v12

i=1
until nc -z -w 5 "$POSTGRES_SEEDS" "$DB_PORT"; do
	if [ "$i" -ge "$attempts" ]; then
		echo "temporal-schema: $POSTGRES_SEEDS:$DB_PORT not reachable after $attempts attempts" >&2
		exit 1
	fi
	echo "temporal-schema: waiting for $POSTGRES_SEEDS:$DB_PORT ($i/$attempts)"
	i=$((i + 1))
	sleep "$pause"
done

sql_tool() {
	temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for pair in temporal:temporal temporal_visibility:visibility; do
	db=${pair%%:*}
	dir=$schema_dir/${pair#*:}/versioned
	echo "temporal-schema: $db: setup-schema -v 0.0"
	sql_tool --db "$db" setup-schema -v 0.0
	echo "temporal-schema: $db: update-schema -d $dir"
	sql_tool --db "$db" update-schema -d "$dir"
done
echo "temporal-schema: temporal and temporal_visibility are at the newest schema version"
