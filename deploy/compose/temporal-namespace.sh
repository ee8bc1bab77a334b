#!/bin/sh
# Run by the `temporal-create-namespace` job of docker-compose.yml
# (temporalio/admin-tools image) once the Temporal server is up. Waits for the
# cluster to be healthy, creates the namespace and remediator's five custom
# search attributes (type Keyword; the SearchAttr* constants of
# workflows/contract.go), then checks that all of them are there. Idempotent.
# Every step is retried SETUP_ATTEMPTS times; then the job fails, loudly, and
# remediator-api / remediator-worker do not start.
#
# Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_NAMESPACE_RETENTION,
# optional SETUP_ATTEMPTS / SETUP_SLEEP_SECONDS.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
namespace=${TEMPORAL_NAMESPACE:-default}
retention=${TEMPORAL_NAMESPACE_RETENTION:-168h}
attempts=${SETUP_ATTEMPTS:-30}
pause=${SETUP_SLEEP_SECONDS:-5}
search_attributes="RemediationPhase RemediationRepo RemediationRequester RemediationIncident CorrelationID"

# retry DESCRIPTION COMMAND...: runs COMMAND until it succeeds, at most
# $attempts times.
retry() {
	what=$1
	shift
	n=1
	until "$@"; do
		if [ "$n" -ge "$attempts" ]; then
			echo "temporal-create-namespace: $what: still failing after $attempts attempts" >&2
			exit 1
		fi
		echo "temporal-create-namespace: $what: not yet ($n/$attempts), retrying in ${pause}s"
		n=$((n + 1))
		sleep "$pause"
	done
}

cluster_healthy() {
	temporal operator cluster health --address "$TEMPORAL_ADDRESS"
}

ensure_namespace() {
	temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$namespace" >/dev/null 2>&1 ||
		temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$namespace" --retention "$retention"
}

# has_keyword NAME: the namespace lists NAME with type Keyword.
has_keyword() {
	temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" -n "$namespace" 2>/dev/null |
		grep -Eiq "(^|[^A-Za-z0-9_])$1([^A-Za-z0-9_].*)?keyword([^A-Za-z0-9_]|$)"
}

ensure_keyword() {
	has_keyword "$1" ||
		temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" -n "$namespace" --name "$1" --type Keyword
}

retry "cluster health at $TEMPORAL_ADDRESS" cluster_healthy
retry "namespace $namespace" ensure_namespace
for sa in $search_attributes; do
	retry "search attribute $sa" ensure_keyword "$sa"
done
# Creation is asynchronous on some stores: wait until every one is listed.
for sa in $search_attributes; do
	retry "search attribute $sa listed as Keyword" has_keyword "$sa"
done
echo "temporal-create-namespace: namespace $namespace (retention $retention) with search attributes: $search_attributes"
