#!/usr/bin/env bash
# Builds every fuzz target with clang + libFuzzer (a TOPUP_FUZZ=ON build) and runs each briefly.
# Usage: tests/fuzz/run.sh SOURCE_DIR BUILD_DIR SECONDS_PER_TARGET
# A longer run by hand: tests/fuzz/run.sh . build-fuzz 600   (or run one target binary directly)
set -euo pipefail
src=$(cd "$1" && pwd)
build=$2
secs=${3:-15}

if ! command -v clang >/dev/null; then
    echo "fuzz: clang is missing (deploy/install-deps.sh installs it)" >&2
    exit 1
fi
CC=clang cmake -S "$src" -B "$build" -DTOPUP_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" 2>&1 \
    || { cat "$build.configure.log" >&2; exit 1; }
targets=()
for f in "$build"/fuzz-targets/*.txt; do
    [ -e "$f" ] || continue
    targets+=("$(basename "$f" .txt)")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no fuzz targets are defined" >&2
    exit 1
fi
cmake --build "$build" --target "${targets[@]}" -j2 >"$build.build.log" 2>&1 \
    || { tail -50 "$build.build.log" >&2; exit 1; }

failed=0
for t in "${targets[@]}"; do
    read -r exe seeds <"$build/fuzz-targets/$t.txt"
    corpus="$build/corpus/$t"
    mkdir -p "$corpus"
    seed_dirs=()
    IFS=',' read -ra seed_list <<<"${seeds:-}"
    for s in "${seed_list[@]}"; do
        [ -n "$s" ] || continue
        if [ -d "$s" ]; then
            seed_dirs+=("$s")
        elif [ -f "$s" ]; then
            cp -f "$s" "$corpus/" 2>/dev/null || true
        fi
    done
    echo "fuzz: $t for ${secs}s (seeds: ${seeds:-none})"
    if ! (cd "$build" && ASAN_OPTIONS=detect_leaks=1 "$exe" -max_total_time="$secs" -rss_limit_mb=1024 \
            -max_len=65536 -print_final_stats=0 "$corpus" "${seed_dirs[@]}" >"$build/$t.log" 2>&1); then
        echo "fuzz: $t FAILED; the crashing input is in $build (crash-*), log: $build/$t.log" >&2
        tail -40 "$build/$t.log" >&2
        failed=$((failed + 1))
    fi
done
echo "fuzz: ${#targets[@]} targets run, $failed failed"
[ "$failed" -eq 0 ]
