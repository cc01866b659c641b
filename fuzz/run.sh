#!/usr/bin/env bash
# Replays the committed corpus of every fuzz target, then fuzzes each for SECONDS
# (default 60; 0 = replay only). Exits non-zero on any crash, sanitizer report, timeout
# (> 1 s on one input) or allocation above the limit. See docs/reliability.md.
#
#   fuzz/run.sh [SECONDS]
#   MLAMOE_FUZZ_BUILD=build-fuzz   build directory (configured with clang if missing)
#   MLAMOE_FUZZ_TARGETS="gguf ..."  only these targets
#   MLAMOE_FUZZ_NO_BUILD=1          use the targets already built
#   MLAMOE_FUZZ_TIMEOUT=1           seconds one input may take; raise it only when the
#                                   machine is so loaded that a niced fuzzer is starved
#                                   (then check the reported slowest input)
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLAMOE_FUZZ_BUILD:-$root/build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac

if [[ -z ${MLAMOE_FUZZ_NO_BUILD:-} && ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMLAMOE_FUZZ=ON -DMLAMOE_TRAIN=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if [[ -z ${MLAMOE_FUZZ_NO_BUILD:-} ]] && ! out=$(cmake --build "$build" --target fuzz_all -j"$(nproc)" 2>&1); then
  echo "$out" >&2
  exit 1
fi

targets=${MLAMOE_FUZZ_TARGETS:-$(cd "$root/fuzz" && ls ./*_fuzz.cpp | sed 's|^\./||; s|_fuzz\.cpp$||')}
# Inputs that once crashed a target are replayed with its corpus.
regressions() { ls -d "$root"/tests/*/regressions/"$1" 2>/dev/null; true; }

# A hostile input may cost at most 1 s and 256 MiB in one allocation, 2 GiB in all.
limits=(-timeout="${MLAMOE_FUZZ_TIMEOUT:-1}" -malloc_limit_mb=256 -rss_limit_mb=2048)
total_runs=0
status=0
for t in $targets; do
  bin=$build/fuzz/${t}_fuzz
  seeds=$root/fuzz/corpus/$t
  work=$build/fuzz-work/$t            # what the fuzzer learns stays out of the repo
  artifacts=$build/fuzz-artifacts/$t/
  mkdir -p "$work" "$artifacts"
  log=$build/fuzz-work/$t.log
  echo "== $t: replaying $(find "$seeds" $(regressions "$t") -type f | wc -l) corpus files"
  if ! "$bin" "${limits[@]}" -runs=0 -artifact_prefix="$artifacts" "$seeds" $(regressions "$t") >"$log" 2>&1; then
    echo "FAIL $t: corpus replay (see $log)"; status=1; continue
  fi
  [[ $seconds == 0 ]] && continue
  start=$(date +%s)
  if ! "$bin" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1; then
    echo "FAIL $t: see $log and $artifacts"; status=1
  fi
  fuzz_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  runs=$(fuzz_stat number_of_executed_units)
  total_runs=$((total_runs + ${runs:-0}))
  echo "   $t: ${runs:-0} executions in $(($(date +%s) - start)) s, slowest input $(fuzz_stat slowest_unit_time_sec) s," \
       "peak RSS $(fuzz_stat peak_rss_mb) MB, $(ls "$work" | wc -l) inputs in its working corpus"
done
[[ $seconds != 0 ]] && echo "total: $total_runs executions"
exit $status
