#!/usr/bin/env bash
# The whole test suite: prepares PostgreSQL and Redis (scripts/test-services.sh),
# then runs every test with the race detector. Extra arguments go to go test
# (for example: scripts/test.sh -run TestApply ./internal/inventory/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-services.sh
if [ "$#" -eq 0 ]; then set -- ./...; fi
exec go test -race -count=1 -timeout 30m "$@"
