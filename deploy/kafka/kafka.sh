#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) on loopback,
# for development and tests. The jars come from Maven Central (see pom.xml next to this file).
# Run `kafka.sh --help` for usage.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n 1)"
KAFKA_HOME="${CDC_VERIFY_KAFKA_HOME:-$HOME/.cache/cdc-verify/kafka-$KAFKA_VERSION}"
LIB="$KAFKA_HOME/lib"
READY_TIMEOUT="${CDC_VERIFY_KAFKA_READY_TIMEOUT:-120}"
STOP_TIMEOUT=30
HEAP_OPTS="${CDC_VERIFY_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

usage() {
    cat <<EOF
Usage: $(basename "$0") COMMAND [OPTIONS]

A single-node Apache Kafka $KAFKA_VERSION broker (KRaft: process.roles=broker,controller)
listening on 127.0.0.1 only. Jars are fetched from Maven Central with mvn.

Commands:
  fetch                       copy the broker's jars into $LIB
                              (skipped when already complete)
  start --dir DIR [--port PORT] [--controller-port PORT]
                              fetch if needed, write DIR/server.properties, format DIR/data
                              (first start only), start the broker in the background
                              (pid in DIR/kafka.pid, logs in DIR/logs) and wait until it
                              serves (at most ${READY_TIMEOUT}s). Free ports are picked when not given.
                              Prints: kafka: ready on 127.0.0.1:PORT in X.Ys
  stop --dir DIR              SIGTERM the broker, SIGKILL after ${STOP_TIMEOUT}s; fine if not running
  -h, --help                  this text

Environment:
  CDC_VERIFY_KAFKA_HOME           jar cache (default \$HOME/.cache/cdc-verify/kafka-$KAFKA_VERSION)
  CDC_VERIFY_KAFKA_READY_TIMEOUT  seconds to wait for the broker (default 120)
  CDC_VERIFY_KAFKA_HEAP_OPTS      JVM heap flags (default "-Xms256m -Xmx512m")
EOF
}

die() {
    echo "kafka: error: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"
}

now() { echo "${EPOCHREALTIME/,/.}"; }

# ---------------------------------------------------------------------------------- fetch

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() {
    [[ -f "$LIB/.complete" && "$(cat "$LIB/.complete")" == "$(pom_digest)" ]]
}

cmd_fetch() {
    if fetched; then
        echo "kafka: $KAFKA_VERSION already fetched in $LIB ($(find "$LIB" -name '*.jar' | wc -l) jars)"
        return 0
    fi
    need mvn "install Maven 3.8+ (Debian: apt-get install maven) to fetch the Kafka jars"
    need java "install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)"
    echo "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIB"
    local started tmp
    started="$(now)"
    mkdir -p "$KAFKA_HOME"
    tmp="$(mktemp -d "$KAFKA_HOME/lib.tmp.XXXXXX")"
    if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
        cat "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "mvn could not fetch the Kafka jars (output above)"
    fi
    rm -f "$tmp.log"
    pom_digest >"$tmp/.complete"
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
    echo "kafka: fetched $(find "$LIB" -name '*.jar' | wc -l) jars" \
        "($(du -sh "$LIB" | cut -f1)) in $(awk -v a="$started" -v b="$(now)" \
            'BEGIN { printf "%.1f", b - a }')s"
}

# ---------------------------------------------------------------------------------- ports

# True when something accepts connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A port nobody listens on, below Linux's ephemeral range (32768+) so that outgoing
# connections do not take it meanwhile.
free_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000))
        if [[ "$port" != "${1:-}" ]] && ! port_open "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "found no free port on 127.0.0.1"
}

check_port() {
    if ! [[ "$1" =~ ^[0-9]{1,5}$ ]] || ((10#$1 < 1 || 10#$1 > 65535)); then
        die "bad port: $1"
    fi
    if port_open "$1"; then
        die "port 127.0.0.1:$1 is taken (something already listens there)"
    fi
}

# ---------------------------------------------------------------------------------- start

# True while process $1 runs (a zombie, exited but not yet reaped, counts as gone).
alive() {
    local state
    state="$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

running_pid() { # prints the pid when DIR's broker runs
    local dir="$1" pid
    [[ -f "$dir/kafka.pid" ]] || return 1
    pid="$(cat "$dir/kafka.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    # the pid may have been reused by another process since
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

write_config() {
    local dir="$1" port="$2" cport="$3"
    cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh: a single-node KRaft broker on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
EOF
    cat >"$dir/log4j.properties" <<'EOF'
# Written by deploy/kafka/kafka.sh (reload4j); files go to ${kafka.logs.dir}.
log4j.rootLogger=INFO, server

log4j.appender.server=org.apache.log4j.FileAppender
log4j.appender.server.File=${kafka.logs.dir}/server.log
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.stateChange=org.apache.log4j.FileAppender
log4j.appender.stateChange.File=${kafka.logs.dir}/state-change.log
log4j.appender.stateChange.layout=org.apache.log4j.PatternLayout
log4j.appender.stateChange.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.controller=org.apache.log4j.FileAppender
log4j.appender.controller.File=${kafka.logs.dir}/controller.log
log4j.appender.controller.layout=org.apache.log4j.PatternLayout
log4j.appender.controller.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.controller=TRACE, controller
log4j.additivity.kafka.controller=false
log4j.logger.state.change.logger=INFO, stateChange
log4j.additivity.state.change.logger=false
EOF
}

# The JVM flags of kafka-run-class.sh, with a small heap; sets JAVA_ARGS for DIR.
java_args() {
    local dir="$1"
    # shellcheck disable=SC2206 # HEAP_OPTS is a list of flags
    JAVA_ARGS=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
        -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
        "-Dlog4j.configuration=file:$dir/log4j.properties" "-Dkafka.logs.dir=$dir/logs"
        -cp "$LIB/*")
}

size_of() { if [[ -f "$1" ]]; then stat -c %s "$1"; else echo 0; fi; }

# log_has FILE OFFSET TEXT: TEXT occurs in FILE past byte OFFSET. (No pipe into grep -q:
# with pipefail, tail's SIGPIPE when grep stops early would read as "not found".)
log_has() {
    [[ -f "$1" ]] && grep -qF -- "$3" < <(tail -c "+$(($2 + 1))" "$1")
}

tail_logs() {
    local dir="$1" f
    for f in "$dir/logs/kafka.out" "$dir/logs/server.log"; do
        [[ -s "$f" ]] || continue
        echo "----- last lines of $f" >&2
        tail -n 40 "$f" >&2
    done
}

cmd_start() {
    local dir="" port="" cport=""
    while (($#)); do
        case "$1" in
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            --controller-port) cport="${2:?--controller-port needs a value}"; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) die "start: unknown option $1 (see --help)" ;;
        esac
    done
    [[ -n "$dir" ]] || die "start: --dir DIR is required"
    need java "install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local pid
    if pid="$(running_pid "$dir")"; then
        die "a broker already runs from $dir (pid $pid); stop it first"
    fi
    [[ -z "$port" ]] || check_port "$port"
    [[ -z "$cport" ]] || check_port "$cport"
    [[ -z "$port" || "$port" != "$cport" ]] || die "--port and --controller-port must differ"
    cmd_fetch

    local started
    started="$(now)" # the start time reported excludes the fetch
    [[ -n "$port" ]] || port="$(free_port "$cport")"
    [[ -n "$cport" ]] || cport="$(free_port "$port")"
    echo "kafka: broker 127.0.0.1:$port, controller 127.0.0.1:$cport, dir $dir"

    mkdir -p "$dir/logs" "$dir/data"
    write_config "$dir" "$port" "$cport"
    java_args "$dir"

    if [[ ! -f "$dir/data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$(java "${JAVA_ARGS[@]}" kafka.tools.StorageTool random-uuid \
            2>>"$dir/logs/format.log")" ||
            die "kafka-storage random-uuid failed: see $dir/logs/format.log"
        if ! java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$dir/server.properties" >>"$dir/logs/format.log" 2>&1; then
            cat "$dir/logs/format.log" >&2
            die "could not format $dir/data (output above)"
        fi
        echo "kafka: formatted $dir/data (cluster id $cluster_id)"
    fi

    # Only look at what this run writes to the logs (a restarted DIR keeps the old ones).
    local out_at log_at
    out_at="$(size_of "$dir/logs/kafka.out")"
    log_at="$(size_of "$dir/logs/server.log")"
    # setsid: its own session, so the broker outlives the shell (and a Ctrl-C) that started it.
    setsid java "${JAVA_ARGS[@]}" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/logs/kafka.out" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/kafka.pid"

    local deadline
    deadline="$(awk -v a="$started" -v t="$READY_TIMEOUT" 'BEGIN { printf "%d", a + t }')"
    while :; do
        if ! alive "$pid"; then
            tail_logs "$dir"
            rm -f "$dir/kafka.pid"
            if log_has "$dir/logs/kafka.out" "$out_at" 'Address already in use' ||
                log_has "$dir/logs/server.log" "$log_at" 'Address already in use'; then
                die "port 127.0.0.1:$port or :$cport is taken (the broker could not bind)"
            fi
            die "the broker exited during start-up (logs above, in $dir/logs)"
        fi
        if log_has "$dir/logs/server.log" "$log_at" 'Kafka Server started' &&
            port_open "$port"; then
            break
        fi
        if (($(date +%s) >= deadline)); then
            tail_logs "$dir"
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/kafka.pid"
            die "timeout: the broker was not ready after ${READY_TIMEOUT}s (logs above, in $dir/logs)"
        fi
        sleep 0.1
    done
    echo "kafka: pid $pid, logs in $dir/logs"
    echo "kafka: ready on 127.0.0.1:$port in $(awk -v a="$started" -v b="$(now)" \
        'BEGIN { printf "%.1f", b - a }')s"
}

# ---------------------------------------------------------------------------------- stop

cmd_stop() {
    local dir=""
    while (($#)); do
        case "$1" in
            --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) die "stop: unknown option $1 (see --help)" ;;
        esac
    done
    [[ -n "$dir" ]] || die "stop: --dir DIR is required"
    local pid
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/kafka.pid"
        echo "kafka: not running ($dir)"
        return 0
    fi
    local started i
    started="$(now)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "kafka: pid $pid still runs after ${STOP_TIMEOUT}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$dir/kafka.pid"
    echo "kafka: stopped pid $pid in $(awk -v a="$started" -v b="$(now)" \
        'BEGIN { printf "%.1f", b - a }')s"
}

# ---------------------------------------------------------------------------------- main

case "${1:-}" in
    fetch) shift; cmd_fetch "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) echo "kafka: unknown command: $1" >&2; usage >&2; exit 2 ;;
esac
