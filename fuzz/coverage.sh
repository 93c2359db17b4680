#!/usr/bin/env bash
# Lines of the C core the fuzz corpora reach: replay the checked-in corpus and
# what fuzz/run.sh found (build/fuzz/corpus/) through a coverage build, then
# llvm-cov's per-file report of aiorusty/{tcp,nic}/_core.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz/build.sh coverage >/dev/null
ver=$(ls /usr/bin/llvm-cov-* 2>/dev/null | sed 's/.*-//' | sort -n | tail -1)
cov=${ver:+llvm-cov-$ver}; prof=${ver:+llvm-profdata-$ver}
out=build/fuzz/coverage-report
mkdir -p "$out"
bins=()
for harness in build/fuzz/coverage/*; do
    name=$(basename "$harness")
    mkdir -p "build/fuzz/corpus/$name"
    LLVM_PROFILE_FILE="$out/$name.profraw" "$harness" -runs=0 "fuzz/corpus/$name" "build/fuzz/corpus/$name" >/dev/null 2>&1
    bins+=(-object "$harness")
done
"${prof:-llvm-profdata}" merge -sparse "$out"/*.profraw -o "$out/all.profdata"
"${cov:-llvm-cov}" report -instr-profile="$out/all.profdata" "${bins[@]:1}" aiorusty/tcp/_core aiorusty/nic/_core
