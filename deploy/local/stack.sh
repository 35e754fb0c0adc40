#!/usr/bin/env bash
# Local stack: PostgreSQL 15, Redis and Kafka on loopback, for development and tests. Kafka is an
# Apache Kafka 3.9 broker (single-node KRaft, jars from deploy/install-deps.sh) or, with
# TOPUP_KAFKA=devbroker, the dev broker (librdkafka's mock cluster, with fault injection).
#
#   deploy/local/stack.sh start|stop|restart|status|env|clean [pg|redis|broker]
#
# start   starts what is not running (all three, or the one named), applies the migrations with
#         topupctl migrate, writes $TOPUP_STACK_DIR/env and prints where everything listens.
# stop    stops what is running: pg_ctl stop -m fast, redis SHUTDOWN, SIGTERM to the broker
#         (Kafka: a controlled shutdown, SIGKILL after 60 s).
# restart stop then start (tests restart one piece: `stack.sh restart pg`).
# status  prints each piece's state; exit 0 when all three run, 3 otherwise.
# env     prints the env file (`source <(deploy/local/stack.sh env)`).
# clean   stops everything and deletes the stack directory (data included).
#
# Environment:
#   TOPUP_STACK_DIR    state, data and logs (default <checkout>/.local/stack)
#   TOPUP_BUILD_DIR    where topup-devbroker and topupctl are built (default <checkout>/build)
#   TOPUP_STACK_PORTS  "fixed" (default: PostgreSQL 55432, Redis 56379, Kafka 59092 and its
#                      controller 59093) or "free" (pick unused)
#   TOPUP_PG_PORT, TOPUP_REDIS_PORT, TOPUP_KAFKA_PORT, TOPUP_KAFKA_CONTROLLER_PORT  fixed ports
#   TOPUP_KAFKA        "kafka" (default: Apache Kafka) or "devbroker"; a running stack keeps the
#                      kind it was started with until it is stopped
#   TOPUP_KAFKA_LIBS   the broker's jars (default <checkout>/.local/kafka/libs)
#   TOPUP_KAFKA_HEAP   the broker JVM's heap (default 512m)
#   TOPUP_KAFKA_PARTITIONS  partitions of every topic of deploy/kafka/topics.list (default: the list's)
#   TOPUP_KAFKA_AUTH   "none" (default: PLAINTEXT listener, no authorizer) or "scram": a
#                      SASL_PLAINTEXT listener with SCRAM-SHA-256, one principal per service, the
#                      ACLs of deploy/production/kafka-acls.sh (StandardAuthorizer, nothing granted
#                      is refused); passwords in $TOPUP_STACK_DIR/kafka/secrets/<principal>.password.
#                      Fixed when the storage is formatted (unset: what it was formatted
#                      with); switching needs `stack.sh clean`.
#   TOPUP_PG_BIN       PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   TOPUP_PG_DURABLE   "on": fsync and full_page_writes on, as in production (for benchmarks);
#                      default "off" (faster; a killed server still loses nothing committed)
#   DEVBROKER_BROKERS, DEVBROKER_PARTITIONS, DEVBROKER_TOPIC_PARTITIONS  passed to the broker
# Root works too: PostgreSQL refuses to run as root, so it runs as the `postgres` user.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$SCRIPT_DIR/../.." && pwd)
STACK_SH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"

STACK_DIR=${TOPUP_STACK_DIR:-$CHECKOUT/.local/stack}
BUILD_DIR=${TOPUP_BUILD_DIR:-$CHECKOUT/build}
PORTS_MODE=${TOPUP_STACK_PORTS:-fixed}
PG_BIN=${TOPUP_PG_BIN:-/usr/lib/postgresql/15/bin}
FIXED_PG_PORT=${TOPUP_PG_PORT:-55432}
FIXED_REDIS_PORT=${TOPUP_REDIS_PORT:-56379}
FIXED_KAFKA_PORT=${TOPUP_KAFKA_PORT:-59092}
FIXED_KAFKA_CTL_PORT=${TOPUP_KAFKA_CONTROLLER_PORT:-59093}
KAFKA_KIND_WANTED=${TOPUP_KAFKA:-kafka}
KAFKA_LIBS=${TOPUP_KAFKA_LIBS:-$CHECKOUT/.local/kafka/libs}
KAFKA_HEAP=${TOPUP_KAFKA_HEAP:-512m}
KAFKA_TOPICS_LIST=$CHECKOUT/deploy/kafka/topics.list
KAFKA_TOPICS_TOOL=$CHECKOUT/deploy/kafka/StackTopics.java
KAFKA_ACLS_TOOL=$CHECKOUT/deploy/kafka/StackAcls.java
KAFKA_ACLS_SH=$CHECKOUT/deploy/production/kafka-acls.sh
KAFKA_AUTH_WANTED=${TOPUP_KAFKA_AUTH:-none}
# The principals of kafka-acls.sh (one per service) and the stack's super user, which only the
# bootstrap tools (topics, ACLs) and the broker itself use.
KAFKA_ADMIN=admin
KAFKA_START_TIMEOUT_S=120
KAFKA_STOP_TIMEOUT_S=60
HOST=127.0.0.1
# Free ports are drawn below Linux's ephemeral range (32768+), where the broker's listeners live.
FREE_PORT_MIN=20000
FREE_PORT_SPAN=12000
START_TIMEOUT_S=30

say() { printf 'stack: %s\n' "$*"; }
die() {
    printf 'stack: error: %s\n' "$*" >&2
    exit 1
}

case "$PORTS_MODE" in
fixed | free) ;;
*) die "TOPUP_STACK_PORTS must be fixed or free, not '$PORTS_MODE'" ;;
esac
case "$KAFKA_KIND_WANTED" in
kafka | devbroker) ;;
*) die "TOPUP_KAFKA must be kafka or devbroker, not '$KAFKA_KIND_WANTED'" ;;
esac
case "$KAFKA_AUTH_WANTED" in
none | scram) ;;
*) die "TOPUP_KAFKA_AUTH must be none or scram, not '$KAFKA_AUTH_WANTED'" ;;
esac

mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)
PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/postgres.log
REDIS_DIR=$STACK_DIR/redis
BROKER_DIR=$STACK_DIR/broker
KAFKA_DIR=$STACK_DIR/kafka
STATE_FILE=$STACK_DIR/state
ENV_FILE=$STACK_DIR/env
BROKER_BIN=$BUILD_DIR/services/dev-broker/topup-devbroker
TOPUPCTL=$BUILD_DIR/services/topupctl/topupctl

# A Unix socket path is limited to 107 bytes; a deep checkout gets a short directory in /tmp.
PG_SOCKET_DIR=$PG_DIR/run
if [ $((${#PG_SOCKET_DIR} + 20)) -gt 100 ]; then
    PG_SOCKET_DIR=/tmp/topup-pg-$(printf '%s' "$STACK_DIR" | md5sum | cut -c1-12)
fi

# ---------------------------------------------------------------- who runs PostgreSQL
if [ "$(id -u)" = 0 ]; then
    PG_OS_USER=postgres
    as_pg() { runuser -u "$PG_OS_USER" -- "$@"; }
else
    PG_OS_USER=$(id -un)
    as_pg() { "$@"; }
fi

ensure_pg_os_user() {
    [ "$(id -u)" = 0 ] || return 0
    if ! id "$PG_OS_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
    # The postgres user must be able to walk down to its data directory (e.g. a clone in /root):
    # from the top down, grant search (o+x, not read) where it is missing.
    local d=$PG_DIR dirs=()
    while [ "$d" != / ]; do
        d=$(dirname "$d")
        dirs=("$d" "${dirs[@]}")
    done
    for d in "${dirs[@]}"; do
        if ! runuser -u "$PG_OS_USER" -- test -x "$d" 2>/dev/null; then
            say "granting o+x on $d so that $PG_OS_USER can reach $PG_DIR"
            chmod o+x "$d"
        fi
    done
}

# True while pid runs. A daemon that exited stays a zombie until init reaps it, which can take a
# while in containers: a zombie counts as gone.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
    [ "$st" != Z ]
}

# term_then_kill PID SECONDS WHAT: SIGTERM, wait up to SECONDS for it to exit, then SIGKILL.
term_then_kill() {
    local pid=$1 secs=$2 what=$3 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((secs * 10))); do
        alive "$pid" || return 0
        sleep 0.1
    done
    say "$what (pid $pid) did not stop within $secs s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- ports
declare -A PORT=()
# The broker kind of this stack: the one recorded while a broker runs, else the one asked for.
KAFKA_KIND=""

load_state() {
    PORT[pg]=""
    PORT[redis]=""
    PORT[kafka]=""
    PORT[kafka_ctl]=""
    if [ -f "$STATE_FILE" ]; then
        local k v
        while IFS='=' read -r k v; do
            case "$k" in
            PG_PORT) PORT[pg]=$v ;;
            REDIS_PORT) PORT[redis]=$v ;;
            KAFKA_PORT) PORT[kafka]=$v ;;
            KAFKA_CONTROLLER_PORT) PORT[kafka_ctl]=$v ;;
            KAFKA_KIND) KAFKA_KIND=$v ;;
            esac
        done <"$STATE_FILE"
    fi
}

save_state() {
    printf 'PG_PORT=%s\nREDIS_PORT=%s\nKAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\nKAFKA_KIND=%s\n' \
        "${PORT[pg]}" "${PORT[redis]}" "${PORT[kafka]}" "${PORT[kafka_ctl]}" "$KAFKA_KIND" \
        >"$STATE_FILE.tmp"
    mv "$STATE_FILE.tmp" "$STATE_FILE"
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Sets PORT[$1] for a piece about to start: the fixed port, or in free mode the last one if it is
# still unused (a restarted piece keeps its address), else a new unused one.
choose_port() {
    local piece=$1 fixed=$2 p
    if [ "$PORTS_MODE" = fixed ]; then
        PORT[$piece]=$fixed
        return 0
    fi
    p=${PORT[$piece]}
    if [ -n "$p" ] && ! port_in_use "$p"; then
        return 0
    fi
    for _ in $(seq 1 50); do
        p=$((FREE_PORT_MIN + RANDOM % FREE_PORT_SPAN))
        if ! port_in_use "$p" && [ "$p" != "${PORT[kafka]}" ] && [ "$p" != "${PORT[kafka_ctl]}" ] &&
            [ "$p" != "${PORT[pg]}" ] && [ "$p" != "${PORT[redis]}" ]; then
            PORT[$piece]=$p
            return 0
        fi
    done
    die "found no free port for $piece"
}

# ---------------------------------------------------------------- PostgreSQL
pg_running() {
    [ -f "$PG_DATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_psql() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "${PORT[pg]}" -U topup "$@"
}

pg_init() {
    [ -f "$PG_DATA/PG_VERSION" ] && return 0
    say "initialising PostgreSQL in $PG_DATA"
    rm -rf "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U topup --auth=trust -E UTF8 --no-locale -N \
        >"$PG_DIR/initdb.log" 2>&1 || {
        cat "$PG_DIR/initdb.log" >&2
        die "initdb failed"
    }
    # Only the topup role, only from this machine.
    as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Local stack: trust for the topup role on loopback and the Unix socket, nothing else.
local   all   topup                  trust
host    all   topup   127.0.0.1/32   trust
host    all   topup   ::1/128        trust
EOF
    echo "include_if_exists = 'stack.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_write_conf() {
    # Rewritten at every start: the port may change in free mode. fsync=off is safe here (a
    # killed server loses nothing that was committed; only an OS crash could) and much faster.
    local durable=off
    case ${TOPUP_PG_DURABLE:-off} in
    on | off) durable=${TOPUP_PG_DURABLE:-off} ;;
    *) die "TOPUP_PG_DURABLE must be on or off, not '$TOPUP_PG_DURABLE'" ;;
    esac
    as_pg tee "$PG_DATA/stack.conf" >/dev/null <<EOF
# Written by deploy/local/stack.sh at every start.
port = ${PORT[pg]}
listen_addresses = '$HOST'
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
fsync = $durable
full_page_writes = $durable
log_min_messages = warning
log_connections = off
EOF
}

pg_start() {
    if pg_running; then
        [ -n "${PORT[pg]}" ] || PORT[pg]=$(sed -n 4p "$PG_DATA/postmaster.pid")
        say "PostgreSQL already running on $HOST:${PORT[pg]}"
        return 0
    fi
    ensure_pg_os_user
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" = 0 ]; then
        chown "$PG_OS_USER:" "$PG_DIR"
    fi
    as_pg mkdir -p "$PG_SOCKET_DIR"
    pg_init
    local attempt
    for attempt in 1 2 3; do
        choose_port pg "$FIXED_PG_PORT"
        pg_write_conf
        if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT_S" start \
            </dev/null >/dev/null 2>&1 9>&-; then
            save_state
            pg_create_db
            return 0
        fi
        # Another process may have taken the port between the check and the bind.
        [ "$PORTS_MODE" = free ] && PORT[pg]="" || break
        say "PostgreSQL did not start (attempt $attempt), trying another port"
    done
    tail -n 20 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start; log: $PG_LOG"
}

pg_create_db() {
    local have
    have=$(pg_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'topup'")
    if [ "$have" != 1 ]; then
        pg_psql -d postgres -c "CREATE DATABASE topup"
    fi
}

pg_migrate() {
    [ -x "$TOPUPCTL" ] || die "topupctl not found at $TOPUPCTL: build first (cmake --build)"
    # Tests copy this database as a template, so nothing may stay connected to it afterwards.
    (cd "$CHECKOUT" && PG_CONNINFO="host=$HOST port=${PORT[pg]} dbname=topup user=topup" \
        TOPUP_SOURCE_DIR="$CHECKOUT" TOPUP_MIGRATIONS_DIR="$CHECKOUT/deploy/migrations" \
        "$TOPUPCTL" migrate) ||
        die "topupctl migrate failed; if an applied migration changed, start this stack afresh:" \
            "TOPUP_STACK_DIR=$STACK_DIR $STACK_SH clean"
}

pg_stop() {
    if ! pg_running; then
        say "PostgreSQL not running"
        return 0
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$START_TIMEOUT_S" stop >/dev/null
    say "PostgreSQL stopped"
}

# ---------------------------------------------------------------- Redis
redis_pid() {
    local pid
    pid=$(cat "$REDIS_DIR/redis.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" && echo "$pid"
}

redis_running() {
    redis_pid >/dev/null && [ -n "${PORT[redis]}" ] &&
        [ "$(redis-cli -h "$HOST" -p "${PORT[redis]}" ping 2>/dev/null)" = PONG ]
}

redis_start() {
    if redis_running; then
        say "Redis already running on $HOST:${PORT[redis]}"
        return 0
    fi
    mkdir -p "$REDIS_DIR"
    local attempt i pid
    for attempt in 1 2 3; do
        choose_port redis "$FIXED_REDIS_PORT"
        rm -f "$REDIS_DIR/redis.pid"
        # Not --daemonize: with our own child's pid a failed bind is seen at once, not after a
        # timeout.
        setsid redis-server --port "${PORT[redis]}" --bind "$HOST" --protected-mode yes \
            --daemonize no --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
            --dir "$REDIS_DIR" --save '' --appendonly no </dev/null >/dev/null 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$REDIS_DIR/redis.pid"
        for i in $(seq 1 $((START_TIMEOUT_S * 10))); do
            redis_running && break
            alive "$pid" || break
            sleep 0.1
        done
        if redis_running; then
            save_state
            return 0
        fi
        [ "$PORTS_MODE" = free ] && PORT[redis]="" || break
        say "Redis did not start (attempt $attempt), trying another port"
    done
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "Redis did not start; log: $REDIS_DIR/redis.log"
}

redis_stop() {
    local pid i
    if ! pid=$(redis_pid); then
        say "Redis not running"
        return 0
    fi
    redis-cli -h "$HOST" -p "${PORT[redis]}" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid"
    for i in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && die "Redis (pid $pid) did not stop"
    rm -f "$REDIS_DIR/redis.pid"
    say "Redis stopped"
}

# ---------------------------------------------------------------- dev broker
broker_pid() {
    local pid
    pid=$(cat "$BROKER_DIR/broker.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q topup-devbroker && echo "$pid"
}

broker_running() {
    broker_pid >/dev/null && [ -s "$BROKER_DIR/bootstrap" ] && [ -s "$BROKER_DIR/control" ]
}

broker_start() {
    if broker_running; then
        say "dev broker already running at $(cat "$BROKER_DIR/bootstrap")"
        return 0
    fi
    [ -x "$BROKER_BIN" ] || die "dev broker not found at $BROKER_BIN: build first (cmake --build)"
    mkdir -p "$BROKER_DIR"
    local pid old i
    if old=$(broker_pid); then
        kill -TERM "$old" 2>/dev/null || true
    fi
    rm -f "$BROKER_DIR/bootstrap" "$BROKER_DIR/control"
    # Own session and no inherited descriptors (not the lock on fd 9, not ctest's output pipe).
    setsid "$BROKER_BIN" --bootstrap-file "$BROKER_DIR/bootstrap" \
        --control-file "$BROKER_DIR/control" </dev/null >>"$BROKER_DIR/broker.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$BROKER_DIR/broker.pid"
    for i in $(seq 1 $((START_TIMEOUT_S * 10))); do
        [ -s "$BROKER_DIR/bootstrap" ] && break
        alive "$pid" || break
        sleep 0.1
    done
    if ! broker_running; then
        tail -n 20 "$BROKER_DIR/broker.log" >&2 || true
        die "dev broker did not start; log: $BROKER_DIR/broker.log"
    fi
}

broker_stop() {
    local pid i
    if ! pid=$(broker_pid); then
        say "dev broker not running"
        rm -f "$BROKER_DIR/broker.pid"
        return 0
    fi
    term_then_kill "$pid" 10 "dev broker"
    rm -f "$BROKER_DIR/broker.pid" "$BROKER_DIR/bootstrap" "$BROKER_DIR/control"
    say "dev broker stopped"
}

# ---------------------------------------------------------------- Apache Kafka (KRaft, one node)
kafka_pid() {
    local pid
    pid=$(cat "$KAFKA_DIR/kafka.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ' kafka.Kafka ' && echo "$pid"
}

# Running and ready: the process lives, its listener answers and its topics were created.
kafka_running() {
    kafka_pid >/dev/null && [ -s "$KAFKA_DIR/bootstrap" ] && [ -n "${PORT[kafka]}" ] &&
        port_in_use "${PORT[kafka]}"
}

# Kafka's cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
kafka_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
        [ "${id:0:1}" != - ] && break
    done
    echo "$id"
}

# The topics of deploy/kafka/topics.list and their .dlq twins, as NAME=PARTITIONS arguments.
kafka_topic_args() {
    local name parts
    while read -r name parts; do
        case "$name" in '' | '#'*) continue ;; esac
        parts=${TOPUP_KAFKA_PARTITIONS:-$parts}
        printf '%s=%s\n%s.dlq=%s\n' "$name" "$parts" "$name" "$parts"
    done <"$KAFKA_TOPICS_LIST"
}

# ---- identities (TOPUP_KAFKA_AUTH=scram)
KAFKA_SECRETS_DIR=$KAFKA_DIR/secrets
KAFKA_AUTH_FILE=$KAFKA_DIR/auth

# The mode the storage was formatted with (none when formatted before modes existed), else the one
# asked for.
kafka_auth() {
    if [ -f "$KAFKA_DIR/data/meta.properties" ]; then
        cat "$KAFKA_AUTH_FILE" 2>/dev/null || echo none
    else
        echo "$KAFKA_AUTH_WANTED"
    fi
}

# The service principals, read from the production list so that both grant the same.
kafka_principals() {
    local line
    line=$(sed -n 's/^PRINCIPALS=(\(.*\))$/\1/p' "$KAFKA_ACLS_SH")
    [ -n "$line" ] || die "no PRINCIPALS=(...) line in $KAFKA_ACLS_SH"
    echo "$line"
}

# Prints the password of principal $1, made once per stack (mode 0600, hex: no quoting issues).
kafka_secret() {
    local f=$KAFKA_SECRETS_DIR/$1.password
    if [ ! -s "$f" ]; then
        (umask 077 && mkdir -p "$KAFKA_SECRETS_DIR" &&
            od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$f.tmp" && mv "$f.tmp" "$f")
    fi
    cat "$f"
}

# The client settings of the super user, for the bootstrap tools (mode 0600).
kafka_admin_props() {
    local pw
    pw=$(kafka_secret "$KAFKA_ADMIN")
    (umask 077 && cat >"$KAFKA_SECRETS_DIR/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_ADMIN" password="$pw";
EOF
    )
    echo "$KAFKA_SECRETS_DIR/admin.properties"
}

# The listener part of server.properties for the mode of this storage.
kafka_listener_conf() {
    if [ "$(kafka_auth)" != scram ]; then
        cat <<EOF
listeners=PLAINTEXT://$HOST:${PORT[kafka]},CONTROLLER://$HOST:${PORT[kafka_ctl]}
advertised.listeners=PLAINTEXT://$HOST:${PORT[kafka]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
        return 0
    fi
    local pw
    pw=$(kafka_secret "$KAFKA_ADMIN")
    # Clients: SCRAM-SHA-256 only. The controller listener: PLAIN with one static user, the broker
    # itself (SCRAM credentials live in the metadata the controller serves, so they cannot
    # authenticate the controller's own peers). Only the admin is a super user; every other
    # principal gets what kafka-acls.sh grants, and what is not granted is refused.
    cat <<EOF
listeners=SASL_PLAINTEXT://$HOST:${PORT[kafka]},CONTROLLER://$HOST:${PORT[kafka_ctl]}
advertised.listeners=SASL_PLAINTEXT://$HOST:${PORT[kafka]}
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_ADMIN" password="$pw";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_ADMIN" password="$pw" user_$KAFKA_ADMIN="$pw";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$KAFKA_ADMIN
EOF
}

# --add-scram arguments of the storage format: the admin and every principal.
kafka_scram_args() {
    local p
    for p in "$KAFKA_ADMIN" $(kafka_principals); do
        printf -- '--add-scram\nSCRAM-SHA-256=[name=%s,password=%s]\n' "$p" "$(kafka_secret "$p")"
    done
}

kafka_write_conf() {
    # Rewritten at every start: the ports may change in free mode. Holds the admin's password.
    (umask 077 && cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by deploy/local/stack.sh at every start: one KRaft node, broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:${PORT[kafka_ctl]}
controller.listener.names=CONTROLLER
$(kafka_listener_conf)
log.dirs=$KAFKA_DIR/data
# Every topic is created by the stack with its partition count (deploy/kafka/topics.list).
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
# Tests join many groups: no 3 s wait for more members before the first assignment.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=67108864
EOF
    )
    cat >"$KAFKA_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$KAFKA_DIR/kafka.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.state.change.logger=WARN
EOF
}

kafka_java() {
    java -Xshare:auto -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$KAFKA_DIR/log4j-tools.properties" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_start() {
    if kafka_running; then
        say "Kafka already running at $(cat "$KAFKA_DIR/bootstrap")"
        return 0
    fi
    command -v java >/dev/null || die "no java for the Kafka broker: run deploy/install-deps.sh"
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null ||
        die "Kafka jars missing in $KAFKA_LIBS: run deploy/install-deps.sh"
    mkdir -p "$KAFKA_DIR"
    printf 'log4j.rootLogger=WARN, err\nlog4j.appender.err=org.apache.log4j.ConsoleAppender\nlog4j.appender.err.Target=System.err\nlog4j.appender.err.layout=org.apache.log4j.PatternLayout\nlog4j.appender.err.layout.ConversionPattern=%%p %%m%%n\n' \
        >"$KAFKA_DIR/log4j-tools.properties"
    local pid="" old i attempt p
    if old=$(kafka_pid); then
        say "Kafka (pid $old) runs but does not answer; stopping it"
        kafka_stop
    fi
    rm -f "$KAFKA_DIR/bootstrap"
    # Unset, TOPUP_KAFKA_AUTH keeps what the storage was formatted with (restarts, `start broker`).
    [ -n "${TOPUP_KAFKA_AUTH:-}" ] || KAFKA_AUTH_WANTED=$(kafka_auth)
    if [ "$(kafka_auth)" != "$KAFKA_AUTH_WANTED" ]; then
        die "Kafka storage in $KAFKA_DIR/data was formatted with TOPUP_KAFKA_AUTH=$(kafka_auth), not" \
            "$KAFKA_AUTH_WANTED: start it with that, or start afresh with" \
            "TOPUP_STACK_DIR=$STACK_DIR $STACK_SH clean"
    fi
    for attempt in 1 2 3; do
        choose_port kafka "$FIXED_KAFKA_PORT"
        choose_port kafka_ctl "$FIXED_KAFKA_CTL_PORT"
        [ "${PORT[kafka]}" != "${PORT[kafka_ctl]}" ] || PORT[kafka_ctl]=$((PORT[kafka] + 1))
        for p in "${PORT[kafka]}" "${PORT[kafka_ctl]}"; do
            if [ "$PORTS_MODE" = fixed ] && port_in_use "$p"; then
                die "Kafka port $p is taken by another process (set TOPUP_KAFKA_PORT and" \
                    "TOPUP_KAFKA_CONTROLLER_PORT, or TOPUP_STACK_PORTS=free)"
            fi
        done
        kafka_write_conf
        if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
            say "formatting Kafka storage in $KAFKA_DIR/data (auth $KAFKA_AUTH_WANTED)"
            local scram=()
            [ "$KAFKA_AUTH_WANTED" = scram ] && mapfile -t scram < <(kafka_scram_args)
            kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$(kafka_cluster_id)" \
                -c "$KAFKA_DIR/server.properties" "${scram[@]}" >"$KAFKA_DIR/format.log" 2>&1 || {
                sed 's/password=[^],]*/password=<secret>/g' "$KAFKA_DIR/format.log" >&2
                die "Kafka storage format failed; log: $KAFKA_DIR/format.log"
            }
            echo "$KAFKA_AUTH_WANTED" >"$KAFKA_AUTH_FILE"
        fi
        : >"$KAFKA_DIR/kafka.log"
        # Own session, no inherited descriptors; bounded heap; exits (not limps) on OOM.
        setsid java -Xmx"$KAFKA_HEAP" -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
            -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" -cp "$KAFKA_LIBS/*" \
            kafka.Kafka "$KAFKA_DIR/server.properties" </dev/null >>"$KAFKA_DIR/kafka.out" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$KAFKA_DIR/kafka.pid"
        for i in $(seq 1 $((KAFKA_START_TIMEOUT_S * 10))); do
            grep -qs 'Kafka Server started\|KafkaRaftServer.*started' "$KAFKA_DIR/kafka.log" && break
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid" && port_in_use "${PORT[kafka]}"; then
            break
        fi
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        if [ "$PORTS_MODE" = free ] && grep -qs 'Address already in use' "$KAFKA_DIR/kafka.log"; then
            PORT[kafka]=""
            PORT[kafka_ctl]=""
            say "Kafka did not start (attempt $attempt, port taken), trying other ports"
            continue
        fi
        tail -n 20 "$KAFKA_DIR/kafka.log" "$KAFKA_DIR/kafka.out" >&2 || true
        die "Kafka did not start within $KAFKA_START_TIMEOUT_S s; log: $KAFKA_DIR/kafka.log"
    done
    [ -n "$pid" ] && alive "$pid" || die "Kafka did not start; log: $KAFKA_DIR/kafka.log"
    local args props=()
    mapfile -t args < <(kafka_topic_args)
    [ "$(kafka_auth)" = scram ] && props=("$(kafka_admin_props)")
    if ! kafka_java "$KAFKA_TOPICS_TOOL" "$HOST:${PORT[kafka]}" "${props[@]}" "${args[@]}" \
        >"$KAFKA_DIR/topics.log" 2>&1; then
        cat "$KAFKA_DIR/topics.log" >&2
        die "Kafka topics could not be created; log: $KAFKA_DIR/topics.log"
    fi
    # The grants of the production list, as its DRY_RUN prints them (ACLs are a set: idempotent).
    if [ "$(kafka_auth)" = scram ] &&
        ! DRY_RUN=1 bash "$KAFKA_ACLS_SH" | kafka_java "$KAFKA_ACLS_TOOL" "$HOST:${PORT[kafka]}" \
            "${props[0]}" >"$KAFKA_DIR/acls.log" 2>&1; then
        cat "$KAFKA_DIR/acls.log" >&2
        die "Kafka ACLs could not be created; log: $KAFKA_DIR/acls.log"
    fi
    printf '%s\n' "$HOST:${PORT[kafka]}" >"$KAFKA_DIR/bootstrap.tmp"
    mv "$KAFKA_DIR/bootstrap.tmp" "$KAFKA_DIR/bootstrap"
    say "Kafka ($(basename "$(compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" | head -1)" .jar)) ready" \
        "at $HOST:${PORT[kafka]} with ${#args[@]} topics"
}

kafka_stop() {
    local pid i
    if ! pid=$(kafka_pid); then
        say "Kafka not running"
        rm -f "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/bootstrap"
        return 0
    fi
    kill -CONT "$pid" 2>/dev/null || true # a test may have stopped it with SIGSTOP
    term_then_kill "$pid" "$KAFKA_STOP_TIMEOUT_S" Kafka
    rm -f "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/bootstrap"
    say "Kafka stopped"
}

# The broker piece is either kind: the one this stack runs, else the one asked for.
kafka_kind() {
    if [ "$KAFKA_KIND" = kafka ] && kafka_pid >/dev/null; then
        echo kafka
    elif [ "$KAFKA_KIND" = devbroker ] && broker_pid >/dev/null; then
        echo devbroker
    else
        echo "$KAFKA_KIND_WANTED"
    fi
}

any_broker_start() {
    KAFKA_KIND=$(kafka_kind)
    if [ "$KAFKA_KIND" = kafka ]; then kafka_start; else broker_start; fi
    save_state
}

any_broker_stop() {
    # Both, whichever runs: a stack switched from one kind to the other leaves nothing behind.
    kafka_stop
    broker_stop
}

any_broker_bootstrap() {
    if [ "$(kafka_kind)" = kafka ]; then
        cat "$KAFKA_DIR/bootstrap" 2>/dev/null || true
    else
        cat "$BROKER_DIR/bootstrap" 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------- env file and report
# The signing secret of API bearer tokens (order-intake verifies, topupctl token issues): one per
# stack, made once, kept across restarts so that issued tokens stay valid; never a shipped default.
token_secret() {
    local f=$STACK_DIR/token_secret
    if [ ! -s "$f" ]; then
        (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$f.tmp" && mv "$f.tmp" "$f")
    fi
    cat "$f"
}

write_env() {
    local bootstrap="" control="" secret
    secret=$(token_secret)
    bootstrap=$(any_broker_bootstrap)
    if [ "$(kafka_kind)" = devbroker ]; then
        control=$(cat "$BROKER_DIR/control" 2>/dev/null || true)
    fi
    {
        echo "# Written by deploy/local/stack.sh start: the local stack's addresses. Source it."
        printf 'export PG_CONNINFO=%q\n' "host=$HOST port=${PORT[pg]} dbname=topup user=topup"
        printf 'export REDIS_HOST=%q\n' "$HOST"
        printf 'export REDIS_PORT=%q\n' "${PORT[redis]}"
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$bootstrap"
        echo "# The broker: kafka (Apache Kafka; its pid file for SIGSTOP/SIGKILL tests) or devbroker"
        printf 'export TOPUP_KAFKA=%q\n' "$(kafka_kind)"
        if [ "$(kafka_kind)" = kafka ]; then
            printf 'export TOPUP_KAFKA_PID_FILE=%q\n' "$KAFKA_DIR/kafka.pid"
        else
            printf 'export TOPUP_KAFKA_PID_FILE=\n'
        fi
        printf 'export TOPUP_KAFKA_LIBS=%q\n' "$KAFKA_LIBS"
        if [ "$(kafka_kind)" = kafka ] && [ "$(kafka_auth)" = scram ]; then
            echo "# SASL/SCRAM: each service sets KAFKA_SASL_USERNAME=<principal> and"
            echo "# KAFKA_SASL_PASSWORD_FILE=\$TOPUP_KAFKA_SECRETS_DIR/<principal>.password"
            printf 'export KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n'
            printf 'export KAFKA_SASL_MECHANISMS=SCRAM-SHA-256\n'
            printf 'export TOPUP_KAFKA_SECRETS_DIR=%q\n' "$KAFKA_SECRETS_DIR"
        fi
        echo "# Signs and verifies API bearer tokens: topupctl token issue --account ID"
        printf 'export TOKEN_SECRET=%q\n' "$secret"
        echo "# The dev broker's fault-injection channel: topup-devbroker ctl broker-down 1 (empty with Kafka)"
        printf 'export DEVBROKER_CONTROL=%q\n' "$control"
        echo "# PostgreSQL administration (tests that create databases or restart the server)."
        printf 'export TOPUP_PG_ADMIN_CONNINFO=%q\n' "host=$HOST port=${PORT[pg]} dbname=postgres user=topup"
        printf 'export TOPUP_PG_HOST=%q\n' "$HOST"
        printf 'export TOPUP_PG_PORT=%q\n' "${PORT[pg]}"
        printf 'export TOPUP_PG_BIN=%q\n' "$PG_BIN"
        printf 'export TOPUP_PG_DATA=%q\n' "$PG_DATA"
        printf 'export TOPUP_PG_SOCKET_DIR=%q\n' "$PG_SOCKET_DIR"
        printf 'export TOPUP_PG_OS_USER=%q\n' "$PG_OS_USER"
        echo "# Restart one piece: \"\$TOPUP_STACK_SH\" restart pg|redis|broker"
        printf 'export TOPUP_STACK_DIR=%q\n' "$STACK_DIR"
        printf 'export TOPUP_STACK_SH=%q\n' "$STACK_SH"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

report() {
    say "PostgreSQL  $HOST:${PORT[pg]} (database topup, user topup; socket $PG_SOCKET_DIR; log $PG_LOG)"
    say "Redis       $HOST:${PORT[redis]} (log $REDIS_DIR/redis.log)"
    if [ "$(kafka_kind)" = kafka ]; then
        say "Kafka       $(any_broker_bootstrap) (Apache Kafka, KRaft, auth $(kafka_auth); log $KAFKA_DIR/kafka.log)"
    else
        say "dev broker  $(cat "$BROKER_DIR/bootstrap" 2>/dev/null || echo '?')" \
            "(control $(cat "$BROKER_DIR/control" 2>/dev/null || echo '?'); log $BROKER_DIR/broker.log)"
    fi
    say "env file    $ENV_FILE  (source it: . $ENV_FILE)"
}

status() {
    local bad=0
    if pg_running; then
        say "PostgreSQL  running on $HOST:${PORT[pg]}"
    else
        say "PostgreSQL  stopped"
        bad=1
    fi
    if redis_running; then
        say "Redis       running on $HOST:${PORT[redis]}"
    else
        say "Redis       stopped"
        bad=1
    fi
    if [ "$(kafka_kind)" = kafka ]; then
        if kafka_running; then
            say "Kafka       running at $(cat "$KAFKA_DIR/bootstrap") (pid $(kafka_pid))"
        else
            say "Kafka       stopped"
            bad=1
        fi
    elif broker_running; then
        say "dev broker  running at $(cat "$BROKER_DIR/bootstrap") (control $(cat "$BROKER_DIR/control"))"
    else
        say "dev broker  stopped"
        bad=1
    fi
    return $((bad * 3))
}

# ---------------------------------------------------------------- main
cmd=${1:-}
piece=${2:-all}
case "$piece" in
all | pg | redis | broker) ;;
*) die "unknown piece '$piece' (pg, redis or broker)" ;;
esac

want() { [ "$piece" = all ] || [ "$piece" = "$1" ]; }

do_start() {
    local t0=$SECONDS
    want pg && pg_start
    want redis && redis_start
    want broker && any_broker_start
    want pg && pg_migrate
    save_state
    write_env
    report
    say "started in $((SECONDS - t0)) s"
}

do_stop() {
    want broker && any_broker_stop
    want redis && redis_stop
    want pg && pg_stop
    return 0
}

# One start/stop at a time per stack directory (ctest fixtures, two terminals). Every daemon is
# started with 9>&- so that it does not inherit and keep holding the lock.
lock() {
    exec 9>"$STACK_DIR/lock"
    flock -w 120 9 || die "another stack.sh holds $STACK_DIR/lock"
}

load_state
case "$cmd" in
start)
    lock
    do_start
    ;;
stop)
    lock
    do_stop
    ;;
restart)
    lock
    do_stop
    do_start
    ;;
status)
    status
    ;;
env)
    [ -f "$ENV_FILE" ] || die "no env file: run deploy/local/stack.sh start"
    cat "$ENV_FILE"
    ;;
clean)
    lock
    piece=all
    do_stop
    rm -rf "$STACK_DIR"
    case "$PG_SOCKET_DIR" in /tmp/topup-pg-*) rm -rf "$PG_SOCKET_DIR" ;; esac
    say "removed $STACK_DIR"
    ;;
*)
    sed -n '2,32p' "$STACK_SH" | sed 's/^# \{0,1\}//'
    [ "$cmd" = help ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
    ;;
esac
