#!/usr/bin/env bash
# BKV's test command: install the dependencies, then configure, build and run
# every test twice, once in a plain optimised build and once with
# AddressSanitizer and UndefinedBehaviorSanitizer. Needs root (for apt) on
# Debian bookworm; needs nothing else. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
jobs=$(nproc)

build_and_test() {
    local dir=$1
    shift
    echo "== configure and build: $dir ($*)"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" -- --no-print-directory >/dev/null
    echo "== test: $dir"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$jobs" | tee "$dir/ctest.out"
}

build_and_test build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBKV_SANITIZE=OFF
echo "== RFC vector sets checked (plain build)"
grep -h '^VECTORS' build/Testing/Temporary/LastTest.log
build_and_test build-asan -DCMAKE_BUILD_TYPE=Debug -DBKV_SANITIZE=ON
echo "== RFC vector sets checked (sanitizer build)"
grep -h '^VECTORS' build-asan/Testing/Temporary/LastTest.log
# Every parser's libFuzzer target, for a bounded time on its committed corpus (clang-14).
echo "== fuzz: every target for ${BKV_FUZZ_SECONDS:-25} s"
bash scripts/fuzz.sh --seconds "${BKV_FUZZ_SECONDS:-25}" | tee build-fuzz-summary.txt
# Both runs passed (set -e stops at the first failure): one closing line for both.
total=0
for dir in build build-asan; do
    n=$(sed -n 's/^100% tests passed, 0 tests failed out of \([0-9][0-9]*\)$/\1/p' "$dir/ctest.out")
    if ! [[ $n =~ ^[0-9]+$ ]] || grep -qE '\*\*\*(Skipped|Not Run)' "$dir/ctest.out"; then
        echo "test: $dir did not report every test passed" >&2
        exit 1
    fi
    total=$((total + n))
done
echo "plain+sanitizers: $total passed, 0 failed; fuzz targets: $(grep -c '^fuzz_.* ok' build-fuzz-summary.txt || true) ran clean"
