#!/usr/bin/env bash
# Installs the Debian packages the build, the local stack and the tests need, then the Apache Kafka
# broker's jars (deploy/kafka/pom.xml, pinned) into the git-ignored .local/kafka/libs when that
# folder is missing; a no-op when all is present.
#
#   deploy/install-deps.sh            install what is missing (sudo when not root)
#   deploy/install-deps.sh --check    list what is missing; exit 1 if anything is
#
# It never starts the system's own PostgreSQL or Redis: the local stack runs its own
# (deploy/local/stack.sh), and a system server on 5432/6379 would only be in the way.
set -euo pipefail

# One package per line, grouped by what needs it. Add new needs here.
PACKAGES=(
    # build
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
    # libraries
    librdkafka-dev libpq-dev libhiredis-dev libprotobuf-c-dev protobuf-c-compiler
    protobuf-compiler libmicrohttpd-dev libjansson-dev libxml2-dev libutf8proc-dev libssl-dev
    # tests
    libcmocka-dev kcat curl jq
    # local stack (servers run by deploy/local/stack.sh, not as system services); Java and Maven
    # for the Apache Kafka broker, whose jars come from Maven Central (see kafka_libs below)
    postgresql redis-server openjdk-17-jre-headless maven
    # browser tests (tests/browser)
    chromium nodejs npm fonts-noto-cjk
)

# A package also counts as present when its command is (e.g. node and npm from another source:
# Debian's npm would fight a nodejs that bundles its own).
declare -A PROVIDED_BY_COMMAND=([nodejs]=node [npm]=npm [chromium]=chromium)

check_only=0
if [ "${1:-}" = --check ]; then
    check_only=1
fi

missing=()
present() {
    local cmd=${PROVIDED_BY_COMMAND[$1]:-}
    if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
for p in "${PACKAGES[@]}"; do
    present "$p" || missing+=("$p")
done

# The broker's jars: Maven resolves the pinned deploy/kafka/pom.xml and copies every runtime jar
# into .local/kafka/libs (about 30 MB). Fetched only when the folder is missing or lacks the pinned
# broker jar; written to a temporary folder first so that an interrupted download is never taken
# for a complete one.
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$SCRIPT_DIR/.." && pwd)
KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
KAFKA_LIBS=${TOPUP_KAFKA_LIBS:-$CHECKOUT/.local/kafka/libs}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")
kafka_libs_present() { [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; }
kafka_libs() {
    if kafka_libs_present; then
        echo "install-deps: Kafka $KAFKA_VERSION jars present in $KAFKA_LIBS"
        return 0
    fi
    local tmp=$KAFKA_LIBS.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "install-deps: fetching Kafka $KAFKA_VERSION jars (mvn, $KAFKA_POM) into $KAFKA_LIBS"
    if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp"; then
        rm -rf "$tmp"
        echo "install-deps: mvn could not fetch the Kafka jars (is Maven Central reachable?)" >&2
        return 1
    fi
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
}

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages present"
    if [ "$check_only" = 1 ]; then
        kafka_libs_present || {
            echo "install-deps: missing: Kafka $KAFKA_VERSION jars in $KAFKA_LIBS"
            exit 1
        }
        exit 0
    fi
    kafka_libs
    exit 0
fi
echo "install-deps: missing: ${missing[*]}"
if [ "$check_only" = 1 ]; then
    exit 1
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
        echo "install-deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
        exit 1
    }
    SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

# Keep package scripts from starting services (policy-rc.d answers "not allowed"), and keep the
# postgresql package from creating and starting its default cluster.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Written by topup deploy/install-deps.sh for the duration of an install.\nexit 101\n' |
        as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    own_policy=1
fi
cleanup() {
    if [ "$own_policy" = 1 ]; then
        as_root rm -f "$policy"
    fi
}
trap cleanup EXIT
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    as_root mkdir -p /etc/postgresql-common
    if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' |
            as_root tee -a /etc/postgresql-common/createcluster.conf >/dev/null
    fi
fi

as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
kafka_libs
