#!/usr/bin/env bash
# Build the libFuzzer harnesses of the C core (fuzz/*.c) with clang: every .c
# file under aiorusty/*/_core/ (the list aiorusty/_build.py compiles) plus one
# harness each, into build/fuzz/.
#   fuzz/build.sh            fuzzing build: -fsanitize=fuzzer,address,undefined
#   fuzz/build.sh coverage   source-based coverage build (for fuzz/coverage.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

CC=${CC:-$(command -v clang || command -v clang-14 || true)}
[ -n "$CC" ] || { echo "fuzz/build.sh: no clang (apt-get install clang)" >&2; exit 1; }
mode=${1:-fuzz}
out=build/fuzz/$mode
mkdir -p "$out"

core=$(ls aiorusty/nic/_core/*.c aiorusty/tcp/_core/*.c)
# -Wno-sign-compare: clang flags NLMSG_OK, a system macro tap_steer.c uses (gcc, the release build, does not)
flags=(-g -O1 -std=gnu11 -Wall -Wextra -Wno-sign-compare -Iaiorusty/include -Iaiorusty/nic/_core -Iaiorusty/tcp/_core)
case $mode in
    fuzz) flags+=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer) ;;
    coverage) flags+=(-fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping) ;;
    *) echo "fuzz/build.sh: mode is fuzz or coverage, not $mode" >&2; exit 2 ;;
esac

for harness in fuzz/*.c; do
    name=$(basename "$harness" .c)
    "$CC" "${flags[@]}" $core "$harness" -o "$out/$name"
    echo "$out/$name"
done
