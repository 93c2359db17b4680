#!/usr/bin/env bash
# Run every harness for a bounded time from its checked-in corpus (new inputs go
# to build/fuzz/corpus/, not into the repository); a crash fails the run and
# leaves its input in build/fuzz/artifacts/.
#   fuzz/run.sh            60 s per harness (what .ci/run does)
#   fuzz/run.sh 3600       an hour each
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
fuzz/build.sh >/dev/null
mkdir -p build/fuzz/artifacts
for harness in build/fuzz/fuzz/*; do
    name=$(basename "$harness")
    mkdir -p "build/fuzz/corpus/$name"
    echo "== fuzz $name for ${seconds}s"
    "$harness" "build/fuzz/corpus/$name" "fuzz/corpus/$name" -max_total_time="$seconds" -timeout=10 \
        -max_len=4096 -artifact_prefix="build/fuzz/artifacts/$name-" -print_final_stats=1 2>&1 \
        | grep -E '^stat::(number_of_executed_units|new_units_added)|ERROR|runtime error|SUMMARY|Test unit written' || true
    test "${PIPESTATUS[0]}" -eq 0
done
