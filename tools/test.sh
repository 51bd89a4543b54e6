#!/usr/bin/env bash
# Builds and runs every test: the unit and integration suites, then again under ASan+UBSan, and the
# unit suite under valgrind. Ends with the line "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || exit 1

passed=0 failed=0 skipped=0
count() {
        local sums
        sums=$(awk '/^Ok:/ {ok = $2} /^(Fail|Timeout):/ {f += $2} /^Unexpected Pass:/ {f += $3}
                    /^Skipped:/ {s = $2} END {print ok + 0, f + 0, s + 0}' "$1")
        read -r ok fail skip <<< "$sums"
        passed=$((passed + ok))
        failed=$((failed + fail))
        skipped=$((skipped + skip))
}

run() {
        local name=$1 dir=$2 log
        shift 2
        log=$(mktemp)
        echo "=== $name"
        meson test -C "$dir" --print-errorlogs "$@" 2>&1 | tee "$log"
        if ! grep -q '^Ok:' "$log"; then
                echo "$name: meson test did not run" >&2
                failed=$((failed + 1))
        fi
        count "$log"
        rm -f "$log"
}

if ! tools/build.sh build; then
        echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi
run "unit and integration" build

if tools/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                run "ASan+UBSan" build-asan
else
        echo "ASan build failed"; failed=$((failed + 1))
fi

run "valgrind (unit)" build --suite unit \
        --wrap='valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite'

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
