#!/usr/bin/env bash
# Build BKV's libFuzzer targets (tests/fuzz/) in build-fuzz with clang-14 and run each
# for a bounded time on a copy of its committed seed corpus.
#
#   scripts/fuzz.sh [--seconds N] [--merge] [--gen-corpus] [--build-dir DIR] [target...]
#
#   --seconds N     fuzz each target for N seconds (default 30)
#   --merge         afterwards, add the inputs that found new coverage to
#                   tests/fuzz/corpus/<target> (libFuzzer -merge=1); for long runs
#   --gen-corpus    rewrite the generated seeds (fuzz-gen-corpus) before running
#   --build-dir DIR the build directory (default build-fuzz)
#   target...       some of: fuzz_envelope fuzz_keyconfig fuzz_msg fuzz_opaque fuzz_cmd
#                   fuzz_token fuzz_config fuzz_stream fuzz_http (default: all)
#
# A longer run of one target: scripts/fuzz.sh --seconds 3600 --merge fuzz_msg
#
# Exits non-zero if any target crashes, leaks, hangs or runs out of memory (including on
# a crash input already kept in its corpus). Each new finding is copied to
# tests/fuzz/corpus/<target>/ (crash-*, leak-*, timeout-*, oom-*) so that it stays a
# regression input; the log with the stack is in DIR/fuzz-run/<target>/log.
# Environment: BKV_FUZZ_CC (default clang-14) for a fresh build directory, and
# BKV_FUZZ_CFLAGS, extra compile options for the whole instrumented build.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(fuzz_envelope fuzz_keyconfig fuzz_msg fuzz_opaque fuzz_cmd fuzz_token
             fuzz_config fuzz_stream fuzz_http)
seconds=30
merge=0
gen=0
build=build-fuzz
targets=()

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --seconds)
        [ $# -ge 2 ] || usage
        seconds=$2
        shift 2
        ;;
    --seconds=*)
        seconds=${1#--seconds=}
        shift
        ;;
    --merge) merge=1; shift ;;
    --gen-corpus) gen=1; shift ;;
    --build-dir)
        [ $# -ge 2 ] || usage
        build=$2
        shift 2
        ;;
    -h | --help) usage ;;
    -*) echo "fuzz: unknown option $1" >&2; usage ;;
    *)
        if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
            echo "fuzz: unknown target $1 (known: ${all_targets[*]})" >&2
            exit 2
        fi
        targets+=("$1")
        shift
        ;;
    esac
done
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz: --seconds needs a positive whole number, not \"$seconds\"" >&2
    exit 2
fi
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if ! grep -q 'fuzz\.cmake' tests/CMakeLists.txt; then
    echo "fuzz: tests/CMakeLists.txt does not include tests/fuzz.cmake;" \
        'add: include(${CMAKE_CURRENT_SOURCE_DIR}/fuzz.cmake)' >&2
    exit 2
fi

echo "== configure and build: $build (clang, -DBKV_FUZZ=ON)"
config=(-DBKV_FUZZ=ON "-DBKV_FUZZ_EXTRA_CFLAGS=${BKV_FUZZ_CFLAGS-}")
if [ ! -f "$build/CMakeCache.txt" ]; then
    config+=(-DCMAKE_C_COMPILER="${BKV_FUZZ_CC:-clang-14}" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$build" "${config[@]}" >/dev/null
build_targets=("${targets[@]}")
[ $gen -eq 0 ] || build_targets+=(fuzz-gen-corpus)
cmake --build "$build" -j"$(nproc)" --target "${build_targets[@]}" -- --no-print-directory \
    >"$build/fuzz-build.log" 2>&1 || {
    tail -n 40 "$build/fuzz-build.log" >&2
    echo "fuzz: build failed (full log: $build/fuzz-build.log)" >&2
    exit 1
}

if [ $gen -eq 1 ]; then
    "$build/tests/fuzz-gen-corpus" tests/fuzz/corpus
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_root=$build/fuzz-run
failed=()
summary=()

# Keep a finding as a regression input, unless the corpus already has these bytes.
keep_finding() {
    local t=$1 f=$2 name existing
    name=$(basename "$f")
    for existing in tests/fuzz/corpus/"$t"/*; do
        if [ -f "$existing" ] && cmp -s "$existing" "$f"; then
            echo "   known input: $existing"
            return
        fi
    done
    cp "$f" "tests/fuzz/corpus/$t/$name"
    echo "   new finding kept: tests/fuzz/corpus/$t/$name"
}

for t in "${targets[@]}"; do
    work=$run_root/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
    echo "== fuzz: $t for ${seconds}s on $(ls "$work/corpus" | wc -l) seeds"
    rc=0
    # The outer timeout only catches a fuzzer that stops answering altogether.
    timeout --kill-after=30 $((seconds + 300)) "$build/tests/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -n 1)
    execs=${execs:-?}
    rate=${rate:-?}
    findings=("$work"/artifacts/*)
    if [ $rc -eq 0 ] && [ ! -e "${findings[0]}" ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed+=("$t")
        echo "   $t failed; log: $work/log"
        grep -E 'ERROR: |fuzz check failed|runtime error|SUMMARY:|^ *#[0-9]+ 0x' "$work/log" |
            grep -vE ' in (fuzzer::|__sanitizer_|__interceptor_|raise|abort|__pthread_kill|__libc_|_start)|libc\.so' |
            head -n 20 | sed 's/^/   | /'
        for f in "${findings[@]}"; do
            [ -e "$f" ] && keep_finding "$t" "$f"
        done
    fi
    if [ $merge -eq 1 ] && [ "$result" = ok ]; then
        before=$(ls tests/fuzz/corpus/"$t" | wc -l)
        "$build/tests/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 \
            "tests/fuzz/corpus/$t" "$work/corpus" >"$work/merge.log" 2>&1
        after=$(ls tests/fuzz/corpus/"$t" | wc -l)
        echo "   merged: $((after - before)) new inputs into tests/fuzz/corpus/$t"
    fi
    printf '   %s: %s execs, %s exec/s, %s\n' "$t" "$execs" "$rate" "$result"
    summary+=("$(printf '%-16s %12s %10s  %s' "$t" "$execs" "$rate" "$result")")
done

echo "== fuzz summary (${seconds}s per target)"
printf '%-16s %12s %10s  %s\n' target execs exec/s result
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${seconds}s without a finding"
