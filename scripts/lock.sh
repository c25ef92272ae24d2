#!/usr/bin/env bash
# The lock files: every package return-handler installs, pinned, with the hashes of its files,
# compiled by uv from pyproject.toml for any platform and Python >= 3.11.
#   requirements/dev.lock.txt      runtime + the dev, sandbox, bench and report extras (make's .venv)
#   requirements/service.lock.txt  runtime only (the image), at the dev lock's versions
#
#   bash scripts/lock.sh                           write them, keeping every pin that still fits
#   bash scripts/lock.sh --upgrade-package httpx   ... moving one package to its newest fitting version
#   bash scripts/lock.sh --upgrade                 ... moving every package
#   bash scripts/lock.sh --check                   compile again into a temporary folder and fail
#                                                  if the pins differ (needs the package index)
# uv is installed on first use into .cache/tools/uv-venv (git-ignored), never into .venv:
# only regenerating or checking the locks needs it, installing from them needs pip alone.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TOOLS="$PWD/.cache/tools"
PYTHON=${PYTHON:-python3}
DEV_LOCK=requirements/dev.lock.txt
SERVICE_LOCK=requirements/service.lock.txt

uv_bin() {
  local venv="$TOOLS/uv-venv"
  if [ ! -x "$venv/bin/uv" ] || [ "$("$venv/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    echo "==> installing uv $UV_VERSION into $venv" >&2
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
  fi
  echo "$venv/bin/uv"
}
UV=$(uv_bin)

# compile OUT [uv pip compile options...]: OUT's own pins are kept where they still fit.
compile() {
  local out=$1
  shift
  "$UV" pip compile pyproject.toml --quiet --universal --python-version 3.11 \
    --generate-hashes --custom-compile-command "make lock" --output-file "$out" "$@"
}

# write DIR [options...]: both lock files in DIR; the service lock is constrained to the dev
# lock's versions, so the image runs exactly what the tests ran.
write() {
  local dir=$1
  shift
  compile "$dir/dev.lock.txt" --extra dev --extra sandbox --extra bench --extra report "$@"
  compile "$dir/service.lock.txt" --constraints "$dir/dev.lock.txt" "$@"
}

# The pinned set of a lock file: `name==version ; markers`, one a line, sorted.
pins() { grep -E '^[A-Za-z0-9]' "$1" | sed -E 's/[[:space:]]*\\$//' | sort; }

if [ "${1:-}" = "--check" ]; then
  shift
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp "$DEV_LOCK" "$SERVICE_LOCK" "$tmp/"
  write "$tmp" "$@"
  status=0
  for lock in "$DEV_LOCK" "$SERVICE_LOCK"; do
    if ! diff -u --label "$lock" --label "$lock (compiled now)" \
      <(pins "$lock") <(pins "$tmp/$(basename "$lock")"); then
      status=1
    fi
  done
  if [ "$status" != 0 ]; then
    echo "error: the lock files do not match pyproject.toml; run make lock and commit them" >&2
    exit 1
  fi
  echo "ok: $DEV_LOCK and $SERVICE_LOCK match pyproject.toml"
else
  mkdir -p requirements
  write requirements "$@"
  echo "wrote $DEV_LOCK ($(pins "$DEV_LOCK" | wc -l) pins) and $SERVICE_LOCK ($(pins "$SERVICE_LOCK" | wc -l) pins)"
fi
