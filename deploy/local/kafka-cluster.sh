#!/usr/bin/env bash
# A 3-node Apache Kafka 3.9 KRaft cluster for chaos runs (tests/fault/chaos): every node is broker
# and controller, replication factor 3, min.insync.replicas 2, unclean leader election off, every
# topic of deploy/kafka/topics.list (and its .dlq twin) created before start reports ready.
#
#   deploy/local/kafka-cluster.sh start|stop|status|env|clean
#   deploy/local/kafka-cluster.sh kill|restart|pause|resume|partition|heal|pid N   (N = 1, 2, 3)
#   deploy/local/kafka-cluster.sh controller        prints the active controller's node id
#
# start      formats the nodes' storage (first start), starts what is not running, creates the
#            topics, writes $TOPUP_KCLUSTER_DIR/env (KAFKA_BOOTSTRAP_SERVERS) and prints it.
# stop       SIGCONT, then SIGTERM (controlled shutdown, SIGKILL after 60 s) to every node; heals
#            partitions and removes the network namespaces.
# clean      stop, then delete the directory (data included).
# kill N     kill -9 node N.            restart N  starts node N again (after kill or stop).
# pause N    SIGSTOP node N.            resume N   SIGCONT node N.
# partition N  cuts node N from the other nodes and from every client: its bridge port stops
#            forwarding (packets are dropped silently, connections hang as on a real partition).
# heal N     lets node N's traffic through again.
#
# Network ("net" in the state file, TOPUP_KCLUSTER_NET):
#   netns     (default when root and `ip netns` works) each node runs in its own network namespace
#             kc<id>n<N>, on a veth pair whose host end is a port of the bridge kc<id>br, address
#             10.213.<s>.1<N> (a /24 of 10.213.0.0/16 not used on this host). Clients in the root
#             namespace reach the nodes through the bridge; nothing listens beyond this host.
#   loopback  (not root, or no namespaces) every node on 127.0.0.1 with free ports; partition and
#             heal are refused (this host has no iptables; netem is not in its kernel).
#
# Environment:
#   TOPUP_KCLUSTER_DIR   state, data and logs (default <checkout>/.local/kcluster)
#   TOPUP_KAFKA_LIBS     the broker's jars (default <checkout>/.local/kafka/libs; install-deps.sh)
#   TOPUP_KCLUSTER_HEAP  each node's JVM heap (default 384m)
#   TOPUP_KAFKA_PARTITIONS  partitions of every topic (default: the list's)
#   TOPUP_KCLUSTER_NET   netns or loopback (see above); a cluster keeps the one it started with
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$SCRIPT_DIR/../.." && pwd)
SELF="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
DIR=${TOPUP_KCLUSTER_DIR:-$CHECKOUT/.local/kcluster}
KAFKA_LIBS=${TOPUP_KAFKA_LIBS:-$CHECKOUT/.local/kafka/libs}
HEAP=${TOPUP_KCLUSTER_HEAP:-384m}
TOPICS_LIST=$CHECKOUT/deploy/kafka/topics.list
TOPICS_TOOL=$CHECKOUT/deploy/kafka/StackTopics.java
NODES=(1 2 3)
START_TIMEOUT_S=180
STOP_TIMEOUT_S=60
FREE_PORT_MIN=20000
FREE_PORT_SPAN=12000

say() { printf 'kafka-cluster: %s\n' "$*"; }
die() {
    printf 'kafka-cluster: error: %s\n' "$*" >&2
    exit 1
}

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
STATE=$DIR/state
ENV_FILE=$DIR/env

alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
    [ "$st" != Z ]
}

port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# ---------------------------------------------------------------- state
NET="" ID="" SUBNET=""
declare -A ADDR=() BPORT=() CPORT=()

load_state() {
    [ -f "$STATE" ] || return 0
    local k v
    while IFS='=' read -r k v; do
        case "$k" in
        NET) NET=$v ;;
        ID) ID=$v ;;
        SUBNET) SUBNET=$v ;;
        ADDR_*) ADDR[${k#ADDR_}]=$v ;;
        BPORT_*) BPORT[${k#BPORT_}]=$v ;;
        CPORT_*) CPORT[${k#CPORT_}]=$v ;;
        esac
    done <"$STATE"
}

save_state() {
    local n
    {
        printf 'NET=%s\nID=%s\nSUBNET=%s\n' "$NET" "$ID" "$SUBNET"
        for n in "${NODES[@]}"; do
            printf 'ADDR_%s=%s\nBPORT_%s=%s\nCPORT_%s=%s\n' "$n" "${ADDR[$n]}" "$n" "${BPORT[$n]}" \
                "$n" "${CPORT[$n]}"
        done
    } >"$STATE.tmp"
    mv "$STATE.tmp" "$STATE"
}

netns_possible() {
    [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v bridge >/dev/null || return 1
    local probe="kcprobe$$"
    ip netns add "$probe" 2>/dev/null || return 1
    ip netns del "$probe"
}

# Chooses the network, addresses and ports once per cluster directory.
plan_cluster() {
    [ -n "$NET" ] && return 0
    NET=${TOPUP_KCLUSTER_NET:-}
    if [ -z "$NET" ]; then
        if netns_possible; then NET=netns; else NET=loopback; fi
    fi
    case "$NET" in
    netns) netns_possible || die "TOPUP_KCLUSTER_NET=netns needs root and ip netns" ;;
    loopback) ;;
    *) die "TOPUP_KCLUSTER_NET must be netns or loopback, not '$NET'" ;;
    esac
    ID=$(printf '%s' "$DIR" | md5sum | cut -c1-4)
    local n s used
    if [ "$NET" = netns ]; then
        used=$(ip -o -4 addr show 2>/dev/null | awk '{print $4}')
        s=$((16#${ID:0:2}))
        for _ in $(seq 0 255); do
            grep -q "^10\.213\.$s\." <<<"$used" || break
            s=$(((s + 1) % 256))
        done
        SUBNET=10.213.$s
        for n in "${NODES[@]}"; do
            ADDR[$n]=$SUBNET.1$n
            BPORT[$n]=9092
            CPORT[$n]=9093
        done
    else
        local taken=" "
        for n in "${NODES[@]}"; do
            ADDR[$n]=127.0.0.1
            BPORT[$n]=$(free_port "$taken")
            taken="$taken${BPORT[$n]} "
            CPORT[$n]=$(free_port "$taken")
            taken="$taken${CPORT[$n]} "
        done
    fi
    save_state
}

free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((FREE_PORT_MIN + RANDOM % FREE_PORT_SPAN))
        case "$1" in *" $p "*) continue ;; esac
        port_in_use 127.0.0.1 "$p" || {
            echo "$p"
            return 0
        }
    done
    die "found no free port"
}

ns() { echo "kc${ID}n$1"; }
br() { echo "kc${ID}br"; }
hveth() { echo "kc${ID}h$1"; }
nveth() { echo "kc${ID}v$1"; }

net_up() {
    [ "$NET" = netns ] || return 0
    local n b
    b=$(br)
    if ! ip link show "$b" >/dev/null 2>&1; then
        ip link add "$b" type bridge
        ip addr add "$SUBNET.1/24" dev "$b"
    fi
    ip link set "$b" up
    for n in "${NODES[@]}"; do
        ip netns list | grep -qw "$(ns "$n")" || ip netns add "$(ns "$n")"
        if ! ip link show "$(hveth "$n")" >/dev/null 2>&1; then
            ip link add "$(hveth "$n")" type veth peer name "$(nveth "$n")"
            ip link set "$(nveth "$n")" netns "$(ns "$n")"
            ip link set "$(hveth "$n")" master "$b"
            ip netns exec "$(ns "$n")" ip addr add "${ADDR[$n]}/24" dev "$(nveth "$n")"
        fi
        ip link set "$(hveth "$n")" up
        ip netns exec "$(ns "$n")" ip link set "$(nveth "$n")" up
        ip netns exec "$(ns "$n")" ip link set lo up
    done
}

net_down() {
    [ "$NET" = netns ] || return 0
    local n
    for n in "${NODES[@]}"; do
        ip link del "$(hveth "$n")" 2>/dev/null || true
        ip netns del "$(ns "$n")" 2>/dev/null || true
    done
    ip link del "$(br)" 2>/dev/null || true
}

# ---------------------------------------------------------------- nodes
node_dir() { echo "$DIR/n$1"; }

node_pid() {
    local pid
    pid=$(cat "$(node_dir "$1")/kafka.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" &&
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = java ] && echo "$pid"
}

voters() {
    local n v=""
    for n in "${NODES[@]}"; do v="$v${v:+,}$n@${ADDR[$n]}:${CPORT[$n]}"; done
    echo "$v"
}

bootstrap() {
    local n b=""
    for n in "${NODES[@]}"; do b="$b${b:+,}${ADDR[$n]}:${BPORT[$n]}"; done
    echo "$b"
}

write_conf() {
    local n=$1 d
    d=$(node_dir "$n")
    mkdir -p "$d"
    cat >"$d/server.properties" <<EOF
# Written by deploy/local/kafka-cluster.sh: node $n of a 3-node KRaft cluster (broker+controller).
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://${ADDR[$n]}:${BPORT[$n]},CONTROLLER://${ADDR[$n]}:${CPORT[$n]}
advertised.listeners=PLAINTEXT://${ADDR[$n]}:${BPORT[$n]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$d/data
auto.create.topics.enable=false
num.partitions=1
# What production runs (deploy/production/kafka-topics.sh): three copies, two must have a write.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# A stopped follower leaves the ISR after 10 s (default 30 s): the faults show within a short run.
replica.lag.time.max.ms=10000
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
background.threads=2
log.retention.hours=168
log.segment.bytes=67108864
EOF
    cat >"$d/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$d/kafka.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.state.change.logger=WARN
EOF
}

tools_log4j() {
    printf 'log4j.rootLogger=WARN, err\nlog4j.appender.err=org.apache.log4j.ConsoleAppender\nlog4j.appender.err.Target=System.err\nlog4j.appender.err.layout=org.apache.log4j.PatternLayout\nlog4j.appender.err.layout.ConversionPattern=%%p %%m%%n\n' \
        >"$DIR/log4j-tools.properties"
}

kjava() {
    java -Xshare:auto -Djava.awt.headless=true -XX:TieredStopAtLevel=1 \
        -Dlog4j.configuration="file:$DIR/log4j-tools.properties" -cp "$KAFKA_LIBS/*" "$@"
}

cluster_id() {
    if [ ! -s "$DIR/cluster.id" ]; then
        local id
        while :; do
            id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
            [ "${id:0:1}" != - ] && break
        done
        echo "$id" >"$DIR/cluster.id"
    fi
    cat "$DIR/cluster.id"
}

node_start() {
    local n=$1 d pid
    d=$(node_dir "$n")
    if pid=$(node_pid "$n"); then
        say "node $n already running (pid $pid)"
        return 0
    fi
    write_conf "$n"
    if [ ! -f "$d/data/meta.properties" ]; then
        kjava kafka.tools.StorageTool format --ignore-formatted -t "$(cluster_id)" \
            -c "$d/server.properties" >"$d/format.log" 2>&1 || {
            cat "$d/format.log" >&2
            die "storage format of node $n failed; log: $d/format.log"
        }
    fi
    echo "--- start $(date -u +%FT%TZ)" >>"$d/kafka.out"
    # Own session, no inherited descriptors; bounded heap, few GC and compiler threads (2 cores
    # shared with the services); exits (not limps) on OOM.
    local pre=()
    [ "$NET" = netns ] && pre=(ip netns exec "$(ns "$n")")
    "${pre[@]}" setsid java -Xmx"$HEAP" -Xms64m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -XX:CICompilerCount=2 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$d/log4j.properties" -cp "$KAFKA_LIBS/*" \
        kafka.Kafka "$d/server.properties" </dev/null >>"$d/kafka.out" 2>&1 9>&- &
    echo $! >"$d/kafka.pid"
    # Should a wrapper have forked, the pid file names Java itself.
    local i p
    for i in $(seq 1 50); do
        for p in $(pgrep -f "kafka.Kafka $d/server.properties\$" || true); do
            if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = java ]; then
                echo "$p" >"$d/kafka.pid"
                break 2
            fi
        done
        sleep 0.1
    done
    say "node $n starting (pid $(cat "$d/kafka.pid")) at ${ADDR[$n]}:${BPORT[$n]}"
}

# Waits until node n logged that it started and its listener answers.
node_wait() {
    local n=$1 d i pid
    d=$(node_dir "$n")
    pid=$(cat "$d/kafka.pid")
    for i in $(seq 1 $((START_TIMEOUT_S * 10))); do
        if alive "$pid" && port_in_use "${ADDR[$n]}" "${BPORT[$n]}"; then
            return 0
        fi
        alive "$pid" || break
        sleep 0.1
    done
    tail -n 30 "$d/kafka.log" "$d/kafka.out" >&2 || true
    if grep -qs 'Address already in use' "$d/kafka.log" "$d/kafka.out"; then
        die "node $n: port ${BPORT[$n]} or ${CPORT[$n]} is taken; log: $d/kafka.log"
    fi
    die "node $n did not start within $START_TIMEOUT_S s; log: $d/kafka.log"
}

node_stop() {
    local n=$1 pid i
    if ! pid=$(node_pid "$n"); then
        rm -f "$(node_dir "$n")/kafka.pid"
        return 0
    fi
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((STOP_TIMEOUT_S * 10))); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "node $n (pid $pid) did not stop within $STOP_TIMEOUT_S s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(node_dir "$n")/kafka.pid"
    say "node $n stopped"
}

topic_args() {
    local name parts
    while read -r name parts; do
        case "$name" in '' | '#'*) continue ;; esac
        parts=${TOPUP_KAFKA_PARTITIONS:-$parts}
        printf '%s=%s\n%s.dlq=%s\n' "$name" "$parts" "$name" "$parts"
    done <"$TOPICS_LIST"
}

write_env() {
    {
        echo "# Written by deploy/local/kafka-cluster.sh start. Source it."
        # Addresses only (no character the shell would need quoted): read as is by tests/lib.
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(bootstrap)"
        printf 'export TOPUP_KAFKA=kafka\n'
        printf 'export TOPUP_KCLUSTER_DIR=%q\n' "$DIR"
        printf 'export TOPUP_KCLUSTER_SH=%q\n' "$SELF"
        printf 'export TOPUP_KCLUSTER_NET=%s\n' "$NET"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- commands
do_start() {
    local t0=$SECONDS n args
    command -v java >/dev/null || die "no java: run deploy/install-deps.sh"
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null ||
        die "Kafka jars missing in $KAFKA_LIBS: run deploy/install-deps.sh"
    plan_cluster
    tools_log4j
    net_up
    for n in "${NODES[@]}"; do node_start "$n"; done
    for n in "${NODES[@]}"; do node_wait "$n"; done
    mapfile -t args < <(topic_args)
    # The tool is idempotent; a node may not know a just-created topic yet: try again.
    local attempt ok=0
    for attempt in 1 2 3 4 5; do
        if kjava -Dtopup.replication=3 "$TOPICS_TOOL" "$(bootstrap)" "${args[@]}" \
            >"$DIR/topics.log" 2>&1; then
            ok=1
            break
        fi
        sleep 2
    done
    if [ "$ok" != 1 ]; then
        cat "$DIR/topics.log" >&2
        die "topics could not be created; log: $DIR/topics.log"
    fi
    write_env
    say "ready in $((SECONDS - t0)) s: 3 nodes ($NET) at $(bootstrap), ${#args[@]} topics," \
        "replication 3, min.insync.replicas 2; env file $ENV_FILE"
}

do_stop() {
    local n
    [ -n "$NET" ] || {
        say "no cluster in $DIR"
        return 0
    }
    for n in "${NODES[@]}"; do
        [ "$NET" = netns ] && bridge link set dev "$(hveth "$n")" state 3 2>/dev/null || true
    done
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then kill -CONT "$pid" 2>/dev/null || true; fi
    done
    for n in "${NODES[@]}"; do node_stop "$n" & done
    wait
    net_down
}

# The active controller: the leader of the highest epoch in the nodes' quorum-state files.
controller() {
    local n f best=-1 leader=-1 e l
    for n in "${NODES[@]}"; do
        f=$(node_dir "$n")/data/__cluster_metadata-0/quorum-state
        [ -s "$f" ] || continue
        e=$(sed -n 's/.*"leaderEpoch":\([0-9-]*\).*/\1/p' "$f")
        l=$(sed -n 's/.*"leaderId":\([0-9-]*\).*/\1/p' "$f")
        # A candidate (e.g. a partitioned node) raises its epoch without a leader: skipped.
        if [ -n "$e" ] && [ -n "$l" ] && [ "$l" -ge 1 ] && [ "$e" -gt "$best" ]; then
            best=$e
            leader=$l
        fi
    done
    [ "$leader" -ge 1 ] 2>/dev/null || die "no controller leader known yet"
    echo "$leader"
}

need_node() {
    case "${1:-}" in 1 | 2 | 3) ;; *) die "node must be 1, 2 or 3, not '${1:-}'" ;; esac
    [ -n "$NET" ] || die "no cluster in $DIR: start it first"
}

lock() {
    exec 9>"$DIR/lock"
    flock -w 300 9 || die "another kafka-cluster.sh holds $DIR/lock"
}

load_state
cmd=${1:-}
case "$cmd" in
start)
    lock
    do_start
    ;;
stop)
    lock
    do_stop
    ;;
clean)
    lock
    do_stop
    rm -rf "$DIR"
    say "removed $DIR"
    ;;
status)
    bad=0
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then
            st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status")
            say "node $n running (pid $pid, state $st) at ${ADDR[$n]}:${BPORT[$n]}"
        else
            say "node $n stopped"
            bad=3
        fi
    done
    exit $bad
    ;;
env)
    [ -f "$ENV_FILE" ] || die "no env file: run $SELF start"
    cat "$ENV_FILE"
    ;;
pid)
    need_node "${2:-}"
    node_pid "$2" || die "node $2 is not running"
    ;;
kill)
    need_node "${2:-}"
    pid=$(node_pid "$2") || die "node $2 is not running"
    kill -KILL "$pid"
    say "node $2 (pid $pid) killed with SIGKILL"
    ;;
restart)
    need_node "${2:-}"
    lock
    tools_log4j
    node_start "$2"
    node_wait "$2"
    ;;
pause | resume)
    need_node "${2:-}"
    pid=$(node_pid "$2") || die "node $2 is not running"
    if [ "$cmd" = pause ]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi
    say "node $2 (pid $pid) ${cmd}d"
    ;;
partition | heal)
    need_node "${2:-}"
    [ "$NET" = netns ] || die "$cmd needs the netns network (this cluster runs on loopback)"
    # Bridge port states: 0 disabled (drops every frame), 3 forwarding.
    if [ "$cmd" = partition ]; then st=0; else st=3; fi
    bridge link set dev "$(hveth "$2")" state "$st"
    say "node $2 ${cmd}ed"
    ;;
controller)
    controller
    ;;
*)
    sed -n '2,35p' "$SELF" | sed 's/^# \{0,1\}//'
    [ "$cmd" = help ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
    ;;
esac
