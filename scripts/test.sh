#!/usr/bin/env bash
# What `make test` runs: static checks, then every test against a real broker it starts
# (and stops again if it started it). Integration tests are never skipped for want of a broker.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
step() { printf '\n==> %s\n' "$*"; }

step "ruff"
$BIN/ruff check service capillary_sandbox tests bench
$BIN/ruff format --check service capillary_sandbox tests bench
# Any warning fails (a broken link or anchor, a page left out of the navigation); offline.
step "documentation site (mkdocs build --strict into .cache/site)"
NO_MKDOCS_2_WARNING=1 $BIN/mkdocs build --strict
step "mypy --strict"
$BIN/mypy
step "schemas match the models"
$BIN/return-handler schemas --check --out schemas
# Any error or warning fails; it installs the pinned parser once (npm ci, a few seconds).
step "AsyncAPI document (official parser, scripts/asyncapi.sh)"
bash scripts/asyncapi.sh
# hadolint and helm lint; it also builds the pinned helm once (about 70 s, cached in the
# git-ignored .cache/tools), which tests/deploy/ then renders the chart with.
step "lint the Dockerfile and the Helm chart (scripts/lint-deploy.sh)"
bash scripts/lint-deploy.sh

started_broker=0
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  step "starting the Kafka broker"
  bash scripts/kafka.sh up
  started_broker=1
fi
stop_broker() {
  if [ "$started_broker" = 1 ]; then
    step "stopping the Kafka broker"
    bash scripts/kafka.sh down || true
  fi
}
trap stop_broker EXIT

step "pytest (unit, deploy and integration)"
$BIN/pytest tests -q -p no:cacheprovider
