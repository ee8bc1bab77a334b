// Package clustertest runs remediator the way production does: the official
// Temporal server binary on PostgreSQL (every service on fixed loopback
// ports), two `remediator worker` and two `remediator api` processes of the
// production build, the PostgreSQL ledger and Redis rate limits shared by
// the replicas, and a fake GitHub — then breaks pieces of it (kill -9 of a
// worker, of the server, of an API replica, a PostgreSQL restart).
//
// Behind the build tag "cluster"; run it with `make test-cluster` or
//
//	go test -count=1 -tags cluster -v -timeout 40m ./internal/clustertest/
//
// It needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres) and Redis
// at 127.0.0.1:6379; without them it skips loudly, except under CI=true.
package clustertest
