SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

BIN        ?= bin/remediator
GO         ?= go
HISTORIES  := workflows/testdata/histories
# Packages with their own goroutines and locks run under the race detector;
# the rest would only pay its build cost.
RACE_PKGS  := ./internal/gitlocal/... ./internal/ledger/... ./internal/recipe/... ./internal/audit/...

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## Run everything in one process: embedded Temporal (SQLite) + Web UI + worker + API
	$(BIN) dev

.PHONY: build
build: ## Build the remediator binary into bin/ (with the embedded dev server: `remediator dev`)
	$(GO) build -o $(BIN) .

.PHONY: build-prod
build-prod: ## Build the production binary into bin/remediator-prod (api/worker only: no embedded Temporal server or UI)
	CGO_ENABLED=0 $(GO) build -tags production -trimpath -ldflags "-s -w" -o bin/remediator-prod .
	@ls -l bin/remediator-prod | awk '{printf "bin/remediator-prod: %.1f MB\n", $$5/1048576}'

.PHONY: test-cluster
test-cluster: ## Replicas on a real PostgreSQL-backed Temporal cluster with fault scenarios (machine's PostgreSQL and Redis; ~10 min)
	$(GO) test -count=1 -tags cluster -v -timeout 40m ./internal/clustertest/ 2>&1 | grep --line-buffered -v '^=== \(PAUSE\|CONT\)'

TEMPORAL_CLI ?= bin/temporal

.PHONY: temporal-cli
temporal-cli: ## Install the Temporal CLI v1.5.1 into bin/ (the runbook's CLI)
	@if [[ -x $(TEMPORAL_CLI) ]] && $(GO) version -m $(TEMPORAL_CLI) 2>/dev/null | grep -qE 'mod[[:space:]]+github.com/temporalio/cli[[:space:]]+v1\.5\.1'; then \
	  echo "$(TEMPORAL_CLI): $$($(TEMPORAL_CLI) --version)"; \
	else \
	  echo "installing the Temporal CLI v1.5.1 into bin/ (a cold build takes minutes)"; \
	  mkdir -p bin && d=$$(mktemp -d) && gobin=$$(cd bin && pwd) && \
	  (cd $$d && GOFLAGS=-mod=mod GOBIN=$$gobin $(GO) install \
	    -ldflags "-X github.com/temporalio/cli/temporalcli.Version=1.5.1" github.com/temporalio/cli/cmd/temporal@v1.5.1) && rm -rf $$d; \
	fi

.PHONY: test-operator
test-operator: temporal-cli ## Run every runbook command (remediator CLI + Temporal CLI) against a `remediator dev`
	TEMPORAL_CLI=$(CURDIR)/$(TEMPORAL_CLI) $(GO) test -count=1 -tags operator -v -timeout 20m ./internal/operatortest/

.PHONY: test-browser
test-browser: ## The approver console in headless Chromium (Debian package chromium) against a real `remediator dev`; screenshots in bin/browser-artifacts
	REMEDIATOR_BROWSER_ARTIFACTS=$(CURDIR)/bin/browser-artifacts $(GO) test -count=1 -tags browser -v -timeout 10m -run TestBrowser ./internal/console/

.PHONY: test
test: ## Run all tests (offline; e2e tests start a real embedded Temporal server)
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race $(RACE_PKGS)

.PHONY: fmt-check
fmt-check: ## Fail if any Go file is not gofmt'd
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet (default build, production build, and the cluster/operator harnesses)
	$(GO) vet ./...
	$(GO) vet -tags production ./...
	$(GO) vet -tags cluster ./internal/clustertest/
	$(GO) vet -tags operator ./internal/operatortest/
	$(GO) vet -tags browser ./internal/console/

.PHONY: staticcheck
staticcheck: ## staticcheck (pinned as a go.mod tool)
	$(GO) tool staticcheck ./...

.PHONY: workflowcheck
workflowcheck: ## Check workflow code for non-determinism (pinned as a go.mod tool)
	$(GO) tool workflowcheck -show-pos ./workflows/...

.PHONY: compose-check
compose-check: ## Validate docker-compose.yml (needs docker-compose; no engine required)
	TEMPORAL_DB_PASSWORD=compose-check REMEDIATOR_DB_PASSWORD=compose-check REMEDIATOR_API_TOKENS=compose-check \
	  REMEDIATOR_VOTE_SIGNING_KEY=compose-check REMEDIATOR_VOTE_PUBLIC_KEYS=compose-check REMEDIATOR_CODEC_KEYS=compose-check \
	  docker-compose -f docker-compose.yml config -q
	docker-compose --env-file .env.example -f docker-compose.yml config -q

.PHONY: check
check: fmt-check vet staticcheck workflowcheck test ## Everything CI runs: fmt-check, vet, staticcheck, workflowcheck, test

.PHONY: history
history: ## Capture histories missing from workflows/testdata/histories (existing files are never rewritten) and replay all
	REMEDIATOR_CAPTURE_HISTORIES=$(CURDIR)/$(HISTORIES) $(GO) test -count=1 -run TestCaptureHistories -v ./internal/e2e/
	$(GO) test -count=1 -run TestReplayCommittedHistories ./workflows/

# Extra flags for the benchmark, e.g. BENCH_FLAGS=-quick or BENCH_FLAGS='-burst-n 1000'.
BENCH_FLAGS ?=

.PHONY: bench
bench: ## Benchmark the service against raw Temporal in one run (table + bench/results/<timestamp>.json; < 10 min)
	$(GO) run ./bench -out bench/results -timeout 9m $(BENCH_FLAGS)

.PHONY: clean
clean: ## Remove build output (keeps .data/)
	rm -rf bin
