# Run `make` or `make help` to list the targets.

GO       ?= go
BIN      ?= bin/rotator
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 60s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets and what they do
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_\/.-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build a static bin/rotator (VERSION=... to stamp a version)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/rotator

.PHONY: test
test: ## Run all tests (set ROTATOR_TEST_DATABASE_URL to include Postgres)
	$(GO) test ./...

.PHONY: test/race
test/race: ## Run all tests with the race detector (needs cgo and a C compiler)
	CGO_ENABLED=1 $(GO) test -race ./...

.PHONY: lint
lint: ## Run golangci-lint with .golangci.yml
	golangci-lint run

.PHONY: fuzz
fuzz: ## Fuzz the config parser and secret reference parser for FUZZTIME each (default 60s)
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/config
	$(GO) test -run='^$$' -fuzz='^FuzzParseRef$$' -fuzztime=$(FUZZTIME) ./internal/secret

.PHONY: bench
bench: ## Run all benchmarks with allocation counts
	$(GO) test -run='^$$' -bench=. -benchmem ./...

.PHONY: db/reset
db/reset: ## Delete the local SQLite database (./rotator.db and its -wal/-shm); explain how to drop a Postgres one
	@set -e; \
	found=$$(ls ./rotator.db ./rotator.db-wal ./rotator.db-shm ./rotator.db-journal 2>/dev/null || true); \
	if [ -n "$$found" ]; then echo "removing:" $$found; rm -f $$found; else echo "no ./rotator.db to remove"; fi; \
	if [ -e ./rotator.db.key ]; then \
		echo "kept ./rotator.db.key (the generated master key): backups sealed under it need it; delete it yourself if you mean to"; \
	fi; \
	case "$${ROTATOR_DATABASE_URL:-}" in \
	postgres://*|postgresql://*) \
		echo ""; \
		echo "ROTATOR_DATABASE_URL points at Postgres; make does not drop it. To start over:"; \
		echo "  docker compose:  docker compose down --volumes   (deletes the postgres-data volume)"; \
		echo "  elsewhere:       connect as a role that may drop it and run"; \
		echo "                   DROP DATABASE <name> WITH (FORCE); CREATE DATABASE <name> OWNER <role>;"; \
		echo "                   then 'rotator migrate'."; \
		echo "The master key and any backups are not touched." ;; \
	esac

.PHONY: tidy
tidy: ## Tidy go.mod and go.sum
	$(GO) mod tidy
