# syntax=docker/dockerfile:1
#
# Production images of remediator, one per process:
#
#   docker build --target api    -t remediator-api    .   # `remediator api`
#   docker build --target worker -t remediator-worker .   # `remediator worker` (the default target)
#
# Both run the same static binary, built with `-tags production` (no embedded
# Temporal dev server, no Web UI: `remediator dev` refuses in these images), as
# the fixed non-root user 10001:10001.
#
# - api:    Debian slim + CA certificates: no git, no Go toolchain. It takes
#           forge repositories; with REMEDIATOR_GIT_ROOTS set it would need
#           git and refuses to start without it (local repositories are for
#           `make run` and the worker image).
# - worker: api's base + git + bubblewrap + the Go toolchain (copied from the
#           builder) that the fix recipes run (gofmt, go mod tidy, go vet).
#
# Stamp the images with (all optional):
#   --build-arg VERSION=$(git describe --tags --always --dirty)
#   --build-arg REVISION=$(git rev-parse HEAD)
#   --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
#
# Base images are pinned to exact tags; to pin digests as well, pass e.g.
#   --build-arg GO_IMAGE=golang:1.26.8-bookworm@sha256:<digest>
# The Go version must match the `go` line of go.mod (GOTOOLCHAIN=local makes a
# mismatch fail the build instead of downloading another toolchain).

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-20260824-slim

# ---------------------------------------------------------------- build
FROM ${GO_IMAGE} AS build
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src

# Dependencies first: this layer only changes with go.mod / go.sum.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# -tags production leaves the embedded Temporal dev server and Web UI out;
# -buildvcs=false because .git is not in the build context (.dockerignore).
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go build -tags production -trimpath -buildvcs=false -ldflags "-s -w" \
      -o /out/remediator . \
 && /out/remediator version

# ---------------------------------------------------------------- runtime base
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: forges, Dragon, Slack, the LLM, OTLP.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 remediator \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/remediator \
      --create-home --shell /usr/sbin/nologin remediator \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/remediator
COPY --from=build /out/remediator /usr/local/bin/remediator
ENV REMEDIATOR_DATA_DIR=/var/lib/remediator \
    REMEDIATOR_LOG_FORMAT=json \
    HOME=/home/remediator
WORKDIR /home/remediator
ENTRYPOINT ["remediator"]

# ---------------------------------------------------------------- api
FROM runtime AS api
USER 10001:10001
ENV REMEDIATOR_HTTP_ADDR=:8080
EXPOSE 8080
# `remediator healthcheck URL` exits 0 on a 2xx answer (the images have no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/remediator", "healthcheck", "http://127.0.0.1:8080/readyz"]
CMD ["api"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="remediator-api" \
      org.opencontainers.image.description="remediator HTTP API (remediator api)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# ---------------------------------------------------------------- worker
# The last stage, so a plain `docker build .` builds the worker.
FROM runtime AS worker
# bubblewrap: recipe commands run in a sandbox (REMEDIATOR_RECIPE_SANDBOX).
# Inside a container it needs user namespaces and a mountable /proc: see the
# worker's security_opt in docker-compose.yml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap git \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 10001 -g 10001 -m 0755 /go /go/pkg /go/pkg/mod
# The Go toolchain the recipes run, offline: GOPROXY=off inside the sandbox,
# modules come read-only from GOMODCACHE (/go/pkg/mod, a volume in compose).
COPY --from=build /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOPATH=/go \
    GOTOOLCHAIN=local \
    REMEDIATOR_METRICS_ADDR=:9090
USER 10001:10001
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/remediator", "healthcheck", "http://127.0.0.1:9090/readyz"]
CMD ["worker"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="remediator-worker" \
      org.opencontainers.image.description="remediator Temporal worker with git, bubblewrap and the Go toolchain (remediator worker)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
