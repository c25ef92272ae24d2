#!/usr/bin/env bash
# Validates an AsyncAPI document with the official AsyncAPI parser (@asyncapi/parser, its
# default ruleset): every diagnostic is printed, and any error or warning fails.
#
#   scripts/asyncapi.sh                 schemas/asyncapi.yaml (what make test and make asyncapi run)
#   scripts/asyncapi.sh FILE            another document (its relative $refs resolve from FILE)
#
# Needs Node 18+ and npm. The parser is pinned with its whole tree in
# scripts/asyncapi/package-lock.json and installed on first use with `npm ci` into the
# git-ignored scripts/asyncapi/node_modules; again only when the lock changes (a stamp there
# holds the lock's sha256). Install scripts are not run: the tree needs none (the only one is
# @scarf/scarf's download counter).
set -euo pipefail
cd "$(dirname "$0")/.."

HARNESS=scripts/asyncapi
MODULES=$HARNESS/node_modules
STAMP=$MODULES/.return-handler-lock.sha256

step() { printf '\n==> %s\n' "$*"; }

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is missing; the AsyncAPI check needs Node 18+ and npm" >&2
    exit 2
  fi
done

lock_hash=$(sha256sum "$HARNESS/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$lock_hash" ]; then
  step "installing the AsyncAPI parser from $HARNESS/package-lock.json (npm ci, once)" >&2
  npm ci --prefix "$HARNESS" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" >"$STAMP"
fi

node "$HARNESS/validate.mjs" "${1:-schemas/asyncapi.yaml}"
