#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, broker+controller in one
# JVM) for development, the demo and the integration tests.
#
#   scripts/kafka.sh fetch          download the broker jars with Maven (once)
#   scripts/kafka.sh up             start it and wait until it answers
#   scripts/kafka.sh down           stop it
#   scripts/kafka.sh status         running/stopped and the bootstrap address
#   scripts/kafka.sh logs [-f]      last lines of the broker log (or follow it)
#
# Needs only Java 17+ and Maven. State lives in the git-ignored .cache/:
#   .cache/kafka/libs/   jars (shared by every state dir)
#   $KAFKA_HOME_DIR/     default .cache/kafka: config, data, logs, pid file
#
# Environment:
#   KAFKA_PORT               client listener port           (default 9092)
#   KAFKA_CONTROLLER_PORT    KRaft controller port          (default 9093)
#   KAFKA_HOME_DIR           state dir, lets two brokers coexist
#   KAFKA_LIBS_DIR           jar dir                        (default .cache/kafka/libs)
#   KAFKA_HEAP_OPTS          JVM heap                       (default -Xms256m -Xmx512m)
#   KAFKA_START_TIMEOUT      seconds to wait for readiness  (default 60)
#   KAFKA_STOP_TIMEOUT       seconds before SIGKILL         (default 30)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF_SRC="$ROOT/scripts/kafka"

PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HOME_DIR="${KAFKA_HOME_DIR:-$ROOT/.cache/kafka}"
LIBS_DIR="${KAFKA_LIBS_DIR:-$ROOT/.cache/kafka/libs}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HOST=127.0.0.1

DATA_DIR="$HOME_DIR/data"
LOG_DIR="$HOME_DIR/logs"
SERVER_PROPERTIES="$HOME_DIR/server.properties"
PID_FILE="$HOME_DIR/broker.pid"
SERVER_LOG="$LOG_DIR/server.log"
STDOUT_LOG="$LOG_DIR/stdout.log"
FORMAT_LOG="$LOG_DIR/format.log"
FETCH_LOG="$HOME_DIR/fetch.log"
# The marker holds a hash of the pom, so editing the pom (a version bump)
# triggers a fresh fetch instead of silently running the old jars.
FETCH_MARKER="$LIBS_DIR/.fetched"

# Byte offset in the broker log where the current 'up' began, so a failure
# shows this start's lines rather than the end of an earlier run.
LOG_OFFSET=0

say() { printf 'kafka.sh: %s\n' "$*"; }

# die STEP MESSAGE [LOG]: every failure names its step and the log to read.
die() {
    local step="$1" message="$2" log="${3:-}"
    printf 'kafka.sh: %s failed: %s\n' "$step" "$message" >&2
    if [[ -n "$log" ]]; then
        local from=1
        [[ "$log" == "$SERVER_LOG" ]] && from=$((LOG_OFFSET + 1))
        local lines
        lines="$(tail -c "+$from" "$log" 2>/dev/null | tail -n 30 || true)"
        if [[ -n "$lines" ]]; then
            printf -- '--- last lines of %s ---\n%s\n--- end ---\n' "$log" "$lines" >&2
        fi
        printf 'kafka.sh: full log: %s\n' "$log" >&2
    fi
    exit 1
}

require() {
    command -v "$1" >/dev/null 2>&1 || die "$2" "'$1' not found on PATH (needs Java 17+ and Maven)"
}

pom_hash() { sha256sum "$CONF_SRC/pom.xml" | cut -d' ' -f1; }

is_fetched() { [[ -f "$FETCH_MARKER" && "$(cat "$FETCH_MARKER")" == "$(pom_hash)" ]]; }

cmd_fetch() {
    if is_fetched; then
        say "jars already in $LIBS_DIR"
        return 0
    fi
    require mvn fetch
    require java fetch
    mkdir -p "$HOME_DIR" "$(dirname "$LIBS_DIR")"
    # Copy into a private dir and rename at the end so an interrupted or
    # concurrent fetch never leaves a half-filled libs dir that looks complete.
    local staging="$LIBS_DIR.partial.$$"
    rm -rf "$staging"
    say "fetching Kafka jars with Maven into $LIBS_DIR"
    local started=$SECONDS
    if ! mvn -q -B -Dstyle.color=never -f "$CONF_SRC/pom.xml" \
        dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$staging" >"$FETCH_LOG" 2>&1; then
        rm -rf "$staging"
        die fetch "Maven could not copy the Kafka jars" "$FETCH_LOG"
    fi
    pom_hash >"$staging/.fetched"
    rm -rf "$LIBS_DIR"
    if ! mv "$staging" "$LIBS_DIR" 2>>"$FETCH_LOG"; then
        rm -rf "$staging"
        is_fetched || die fetch "could not move jars into $LIBS_DIR" "$FETCH_LOG"
    fi
    say "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
}

# Pid of our broker if it is alive, else nothing. Checks the command line too,
# so a recycled pid that now belongs to another program is not taken for it.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 0
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    if [[ -r "/proc/$pid/cmdline" ]]; then
        local cmdline
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        [[ "$cmdline" == *"kafka.Kafka $SERVER_PROPERTIES"* ]] || return 0
    fi
    printf '%s\n' "$pid"
}

# Bootstrap address of the broker this state dir last configured.
bootstrap() {
    local listener
    listener="$(sed -n 's#^advertised.listeners=PLAINTEXT://##p' "$SERVER_PROPERTIES" 2>/dev/null || true)"
    printf '%s\n' "${listener:-$HOST:$PORT}"
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# Sends an ApiVersions v0 request and checks the reply carries our
# correlation id and error code 0. A KRaft broker binds its port early but
# only processes requests once it has joined the quorum and is unfenced, so a
# reply here means clients can really use it.
broker_answers() {
    local host="$1" port="$2" reply
    # size=10 | api_key=18 | api_version=0 | correlation_id=7 | client_id=null
    reply="$(timeout 3 bash -c "
        exec 3<>/dev/tcp/$host/$port
        printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff' >&3
        od -An -tx1 -N10 <&3
    " 2>/dev/null | tr -d ' \n')" || return 1
    # reply = size(4) correlation_id(4) error_code(2)
    [[ "${reply:8:12}" == "000000070000" ]]
}

write_server_properties() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    cat >"$SERVER_PROPERTIES" <<EOF
# Written by scripts/kafka.sh on every 'up'; edit the script, not this file.
process.roles=broker,controller
node.id=1
# A static voter set rather than --standalone: the formatted log then does not
# pin the controller's address, so KAFKA_CONTROLLER_PORT may change later.
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR

num.partitions=3
auto.create.topics.enable=true
delete.topic.enable=true

# One broker: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: faster first use on 2 cores.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5

# Consumers in tests join at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0

# After a crash or SIGKILL the restarted broker waits for its previous
# registration to expire; a shorter session makes that 4 s instead of 9 s.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
EOF
}

java_opts() {
    # Word splitting of HEAP_OPTS is intended: it holds several JVM flags.
    # shellcheck disable=SC2206
    local heap=($HEAP_OPTS)
    JAVA_OPTS=(
        "${heap[@]}"
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true
        "-Dkafka.logs.dir=$LOG_DIR"
        "-Dlog4j2.configurationFile=$CONF_SRC/log4j2.yaml"
        -cp "$LIBS_DIR/*"
    )
}

format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    java_opts
    local cluster_id
    if ! cluster_id="$(java "${JAVA_OPTS[@]}" kafka.tools.StorageTool random-uuid 2>>"$FORMAT_LOG")"; then
        die "format storage" "StorageTool random-uuid" "$FORMAT_LOG"
    fi
    cluster_id="$(printf '%s' "$cluster_id" | tail -n 1 | tr -d '[:space:]')"
    if ! java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$SERVER_PROPERTIES" >>"$FORMAT_LOG" 2>&1; then
        die "format storage" "StorageTool format of $DATA_DIR" "$FORMAT_LOG"
    fi
    say "formatted $DATA_DIR (cluster id $cluster_id)"
}

cmd_up() {
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        say "already running (pid $pid), bootstrap $(bootstrap)"
        return 0
    fi
    if [[ -f "$PID_FILE" ]]; then
        say "removing stale pid file $PID_FILE"
        rm -f "$PID_FILE"
    fi

    require java up
    require timeout up
    for p in "$PORT" "$CONTROLLER_PORT"; do
        if port_open "$HOST" "$p"; then
            die "up" "port $HOST:$p is already taken by another process; choose free ports with KAFKA_PORT / KAFKA_CONTROLLER_PORT and a separate KAFKA_HOME_DIR"
        fi
    done

    cmd_fetch
    write_server_properties
    format_storage

    java_opts
    local started=$SECONDS
    LOG_OFFSET="$(wc -c <"$SERVER_LOG" 2>/dev/null || echo 0)"
    # setsid detaches the broker from the caller's session so Ctrl-C in a
    # terminal running make or pytest does not take it down half-way; the
    # inner shell records its own pid and then becomes java via exec.
    local detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    : >"$STDOUT_LOG"
    # The pid file is renamed into place so a reader never sees it half-written.
    "${detach[@]}" bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1"; shift; exec "$@"' \
        _ "$PID_FILE" java "${JAVA_OPTS[@]}" kafka.Kafka "$SERVER_PROPERTIES" \
        </dev/null >>"$STDOUT_LOG" 2>&1 &

    say "starting broker on $HOST:$PORT (log: $SERVER_LOG)"
    local deadline=$((SECONDS + START_TIMEOUT)) launched=""
    while ((SECONDS < deadline)); do
        # The pid file appears a moment after the fork.
        if [[ -z "$launched" && -s "$PID_FILE" ]]; then
            launched="$(tr -dc '0-9' <"$PID_FILE")"
        fi
        if [[ -n "$launched" ]]; then
            if ! kill -0 "$launched" 2>/dev/null; then
                rm -f "$PID_FILE"
                tail -n 20 "$STDOUT_LOG" >&2 2>/dev/null || true
                die "start" "the broker exited during startup (JVM output: $STDOUT_LOG)" "$SERVER_LOG"
            fi
            if port_open "$HOST" "$PORT" && broker_answers "$HOST" "$PORT"; then
                say "ready in $((SECONDS - started)) s (pid $launched), bootstrap $HOST:$PORT"
                return 0
            fi
        fi
        sleep 0.5
    done
    tail -n 20 "$STDOUT_LOG" >&2 2>/dev/null || true
    # A half-started JVM would hold the ports and make the next 'up' report
    # "already running", so a failed start leaves nothing behind.
    [[ -n "$launched" ]] && stop_pid "$launched" >&2
    rm -f "$PID_FILE"
    die "start" "the broker did not answer on $HOST:$PORT within ${START_TIMEOUT} s (raise KAFKA_START_TIMEOUT if the machine is just slow)" "$SERVER_LOG"
}

# SIGTERM, a bounded wait for the broker's own clean shutdown, then SIGKILL.
stop_pid() {
    local pid="$1"
    say "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "broker did not exit within ${STOP_TIMEOUT} s after SIGTERM; sending SIGKILL (log: $SERVER_LOG)"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
}

cmd_down() {
    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PID_FILE"
        say "not running"
        return 0
    fi
    stop_pid "$pid"
    rm -f "$PID_FILE"
    say "stopped"
}

cmd_status() {
    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        say "stopped (state in $HOME_DIR)"
        return 1
    fi
    local address host port
    address="$(bootstrap)"
    host="${address%:*}"
    port="${address##*:}"
    if broker_answers "$host" "$port"; then
        say "running (pid $pid), bootstrap $address"
        return 0
    fi
    say "running (pid $pid) but not answering on $address yet (log: $SERVER_LOG)"
    return 1
}

cmd_logs() {
    [[ -f "$SERVER_LOG" ]] || die logs "no broker log yet" "$SERVER_LOG"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n 50 -F "$SERVER_LOG"
    fi
    tail -n "${KAFKA_LOG_LINES:-100}" "$SERVER_LOG"
}

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local command="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$command" in
        fetch) cmd_fetch ;;
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
