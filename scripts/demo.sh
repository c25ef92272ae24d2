#!/usr/bin/env bash
# `make demo`: the whole path once, end to end, on this machine.
# Broker, sandbox and service up; the example events in; one readable block per outcome;
# everything this script started is stopped again. On failure it says which step failed
# and where that step's log is.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/.venv/bin"
RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOGS="$ROOT/.cache/demo/$RUN_ID"
mkdir -p "$LOGS"
SANDBOX_PORT=${DEMO_SANDBOX_PORT:-18765}
# The service's health and metrics port.
HTTP_PORT=${DEMO_HTTP_PORT:-18080}
export RETURN_HANDLER_OBSERVABILITY__PORT=$HTTP_PORT
EVENTS=("$ROOT"/examples/events/*.json)

# Fresh topics per run, so the outcomes shown are this run's and nothing else's.
export RETURN_HANDLER_KAFKA__RETURNS_TOPIC="demo-$RUN_ID-returns"
export RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC="demo-$RUN_ID-outcomes"
export RETURN_HANDLER_KAFKA__DEAD_LETTER_TOPIC="demo-$RUN_ID-dead-letters"
export RETURN_HANDLER_KAFKA__RETRY_TOPIC="demo-$RUN_ID-retry"
export RETURN_HANDLER_KAFKA__ROUTED_TOPIC="demo-$RUN_ID-routed"
# The state remembers event ids: a shared one would find a previous demo's events finished.
export RETURN_HANDLER_KAFKA__STATE_TOPIC="demo-$RUN_ID-state"
export RETURN_HANDLER_KAFKA__GROUP_ID="demo-$RUN_ID"
export RETURN_HANDLER_CAPILLARY__LOYALTY_BASE_URL="http://127.0.0.1:$SANDBOX_PORT"
export RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL="http://127.0.0.1:$SANDBOX_PORT"
export RETURN_HANDLER_CAPILLARY__OAUTH_BASE_URL="http://127.0.0.1:$SANDBOX_PORT"
export RETURN_HANDLER_CAPILLARY__AUTH_MODE=basic
export RETURN_HANDLER_CAPILLARY__USERNAME=demo
export RETURN_HANDLER_CAPILLARY__PASSWORD=demo
export RETURN_HANDLER_POLICY_PATH="$ROOT/examples/policy.yaml"
export RETURN_HANDLER_LOG_FORMAT=json

step_name=""
step() { step_name="$1"; printf '==> %s\n' "$1"; }
fail() {
  printf '\nFAILED at step: %s\n' "$step_name" >&2
  printf 'Logs of this run: %s\n' "$LOGS" >&2
  [ -n "${1:-}" ] && printf 'See: %s\n' "$1" >&2
  exit 1
}

started_broker=0
sandbox_pid=""
service_pid=""
cleanup() {
  local code=$?
  set +e
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid"; wait "$service_pid" 2>/dev/null
    echo "==> service stopped"
  fi
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -TERM "$sandbox_pid"; wait "$sandbox_pid" 2>/dev/null
    echo "==> sandbox stopped"
  fi
  if [ "$started_broker" = 1 ]; then
    bash scripts/kafka.sh down >/dev/null 2>&1 && echo "==> broker stopped"
  fi
  exit $code
}
trap cleanup EXIT

# GET a path of the service's HTTP port; for /metrics, only the service's own non-zero series.
http_get() {
  "$BIN/python" - "$HTTP_PORT" "$1" <<'PY'
import sys, httpx
port, path = sys.argv[1], sys.argv[2]
response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
if path != "/metrics":
    print(f"{path} -> {response.status_code} {response.text}")
    sys.exit(0)
for line in response.text.splitlines():
    if line.startswith("return_handler_") and not line.endswith(" 0.0") and "_bucket{" not in line \
            and "_created" not in line:
        print(line)
PY
}

wait_for_port() {  # port, seconds, pid
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$3" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

step "Kafka broker (single-node KRaft, official jars from Maven Central)"
if bash scripts/kafka.sh status >/dev/null 2>&1; then
  echo "    already running: using it and leaving it running"
else
  bash scripts/kafka.sh up >"$LOGS/broker-up.log" 2>&1 || fail "$LOGS/broker-up.log"
  started_broker=1
fi

step "Capillary sandbox on 127.0.0.1:$SANDBOX_PORT (seed: examples/sandbox-seed.json)"
if (exec 3<>"/dev/tcp/127.0.0.1/$SANDBOX_PORT") 2>/dev/null; then
  echo "    port $SANDBOX_PORT is taken by another program; choose another: DEMO_SANDBOX_PORT=18766 make demo" >&2
  fail
fi
"$BIN/capillary-sandbox" --port "$SANDBOX_PORT" --seed examples/sandbox-seed.json \
  >"$LOGS/sandbox.log" 2>&1 &
sandbox_pid=$!
wait_for_port "$SANDBOX_PORT" 30 "$sandbox_pid" || fail "$LOGS/sandbox.log"

step "topics demo-$RUN_ID-* (returns, outcomes, dead letters, retry, state)"
"$BIN/return-handler" topics >"$LOGS/topics.log" 2>&1 || fail "$LOGS/topics.log"

step "return-handler service (health and metrics on 127.0.0.1:$HTTP_PORT)"
if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then
  echo "    port $HTTP_PORT is taken by another program; choose another: DEMO_HTTP_PORT=18081 make demo" >&2
  fail
fi
"$BIN/return-handler" run >"$LOGS/service.log" 2>&1 &
service_pid=$!
wait_for_port "$HTTP_PORT" 60 "$service_pid" || fail "$LOGS/service.log"

# Scrapes /metrics every 50 ms while the events flow and keeps one taken mid-way: some
# outcomes counted, not all (the last one if the service was faster than the scrapes).
scrape_while_flowing() {
  "$BIN/python" - "$HTTP_PORT" "${#EVENTS[@]}" <<'PY'
import re, sys, time, httpx
port, total = sys.argv[1], int(sys.argv[2])
kept, deadline = None, time.monotonic() + 120
while time.monotonic() < deadline:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    done = sum(float(v) for v in re.findall(r'^return_handler_outcomes_total\{[^}]*\} (\S+)', text, re.M))
    if 0 < done < total or kept is None:
        kept = (done, text)
    if done >= total:
        break
    time.sleep(0.05)
done, text = kept
print(f"# taken with {done:.0f} of {total} outcomes committed")
for line in text.splitlines():
    if line.startswith("return_handler_") and not line.endswith(" 0.0") and "_bucket{" not in line \
            and "_created" not in line:
        print(line)
PY
}
scrape_while_flowing >"$LOGS/metrics-while-flowing.txt" 2>&1 &
scraper_pid=$!

step "publishing ${#EVENTS[@]} example events from examples/events/"
"$BIN/return-handler" publish "${EVENTS[@]}" >"$LOGS/publish.log" 2>&1 || fail "$LOGS/publish.log"
sed 's/^/    /' "$LOGS/publish.log"

step "publishing one broken event (examples/invalid/), as a faulty till might"
"$BIN/return-handler" publish --raw examples/invalid/missing-fields.json >>"$LOGS/publish.log" 2>&1 \
  || fail "$LOGS/publish.log"
tail -n 1 "$LOGS/publish.log" | sed 's/^/    /'
# Scraped while the events flow; shown after the outcomes.

step "outcomes (one block per event)"
echo
"$BIN/return-handler" outcomes --count "${#EVENTS[@]}" --timeout 120 2>"$LOGS/outcomes.err" \
  | tee "$LOGS/outcomes.txt" || fail "$LOGS/service.log"
echo
step "dead letters (refused input, kept with the reason, nothing blocked)"
"$BIN/return-handler" dead-letters --count 1 --timeout 60 2>"$LOGS/dead-letters.err" \
  | tee "$LOGS/dead-letters.txt" | sed 's/^/    /' || fail "$LOGS/service.log"
echo
kill -0 "$service_pid" 2>/dev/null || fail "$LOGS/service.log"

step "health, readiness and metrics (http://127.0.0.1:$HTTP_PORT/healthz, /readyz, /metrics)"
{ http_get /healthz && http_get /readyz; } | sed 's/^/    /' || fail "$LOGS/service.log"
wait "$scraper_pid" || true
echo "    /metrics while the events flowed ($LOGS/metrics-while-flowing.txt), non-zero series:"
sed 's/^/      /' "$LOGS/metrics-while-flowing.txt"
http_get /metrics >"$LOGS/metrics-after.txt" 2>&1 || fail "$LOGS/service.log"
echo "    /metrics now, outcomes and dead letters:"
grep -E '^return_handler_(outcomes|dead_letters)_total' "$LOGS/metrics-after.txt" | sed 's/^/      /'
echo

step "replay preview: the demo's own events again (nothing is called or published)"
"$BIN/return-handler" replay --source returns --include-done --show 1 \
  --reason "demo: the example events again" --state-dir "$LOGS/replays" \
  2>"$LOGS/replay-preview.err" | tee "$LOGS/replay-preview.txt" || fail "$LOGS/replay-preview.err"
echo

step "replay --execute: the service handles them again; nothing is taken back or given back twice"
"$BIN/return-handler" replay --source returns --include-done --show 0 --execute \
  --reason "demo: the example events again" --state-dir "$LOGS/replays" \
  2>"$LOGS/replay.err" | tee "$LOGS/replay.txt" || fail "$LOGS/replay.err"
echo

step "report of this run's outcomes, for people (chart: $LOGS/report.png)"
"$BIN/return-handler" report --since "$STARTED" --chart "$LOGS/report.png" 2>"$LOGS/report.err" \
  | tee "$LOGS/report.txt" || fail "$LOGS/report.err"
echo

step "stopping"
kill -TERM "$service_pid"
wait "$service_pid" || fail "$LOGS/service.log"
service_pid=""
echo "==> service stopped cleanly"
printf '\nDemo done: %d events in, %d outcomes out, %d dead letter. Logs: %s\n' \
  "${#EVENTS[@]}" "$(grep -c '^\(OK\|FAIL\)' "$LOGS/outcomes.txt")" \
  "$(grep -c '^DEAD' "$LOGS/dead-letters.txt")" "$LOGS"
