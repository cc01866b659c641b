#!/usr/bin/env bash
# CI's hardening pass, run by .ci/run after scripts/test.sh (docs/reliability.md):
#   1. sanitize: the test suite built with AddressSanitizer + UndefinedBehaviorSanitizer
#      (g++, -DMLAMOE_SANITIZE=ON, -O1, without the libtorch trainer) in build-asan/, run
#      by ctest; any ASan, UBSan or LeakSanitizer report fails its test.
#   2. fuzz: every libFuzzer target (clang) in build-fuzz/: the committed corpus and the
#      regression inputs replayed, then each target fuzzed for FUZZ_SECONDS
#      (fuzz/run.sh).
#
#   scripts/ci-hardening.sh [FUZZ_SECONDS]      default 10 s per target
#   MLAMOE_CI_SANITIZE=0 / MLAMOE_CI_FUZZ=0      skip a part
#   MLAMOE_CI_ASAN_AREAS="format tokenizer ..."  only these areas' tests (and not the
#                                                 cli tests unless "cli" is listed)
#   MLAMOE_ASAN_BUILD, MLAMOE_FUZZ_BUILD          build directories (build-asan, build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzz_seconds=${1:-10}
jobs=$(nproc)

timed() {  # timed NAME COMMAND...: runs it and says how long it took (wall and CPU)
  local TIMEFORMAT="ci-hardening: $1 took %0R s (CPU: %0U s user + %0S s sys)"
  shift
  time "$@"
}

sanitize() {
  local build=${MLAMOE_ASAN_BUILD:-$root/build-asan}
  # The trainer (libtorch) is left out: libtorch itself is not built with ASan.
  # -O1 -g1 (line tables for the reports) instead of RelWithDebInfo's -O2 -g: about half
  # the compile time under ASan (measured on the largest files), which keeps CI in budget.
  cmake -S . -B "$build" -DMLAMOE_SANITIZE=ON -DMLAMOE_TRAIN=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" >/dev/null
  # Every area with tests (tests/<area>/*_test.cpp) but the trainer's.
  local areas=${MLAMOE_CI_ASAN_AREAS:-$(cd tests && ls ./*/*_test.cpp | cut -d/ -f2 | sort -u | grep -vx train)}
  local targets=() labels=()
  for a in $areas; do
    targets+=("test_$a")
    labels+=("$a")
  done
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # LeakSanitizer needs ptrace; some containers forbid it, and then every test (and the
  # build's gtest discovery) would fail on exit for a reason that is not the code's.
  # Check once with a tiny program and say so.
  local probe=$build/lsan-probe
  echo 'int main() { return 0; }' | g++ -x c++ -fsanitize=address - -o "$probe"
  if "$probe" 2>&1 | grep -q "LeakSanitizer has encountered a fatal error"; then
    echo "ci-hardening: LeakSanitizer cannot run here (no ptrace): leak detection off"
    export ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0
  fi
  # Only the tests and the binary the cli tests run: no benchmarks.
  timed "sanitizer build (${#targets[@]} test executables)" cmake --build "$build" -j"$jobs" --target "${targets[@]}"
  local label_regex
  label_regex="^($(IFS='|'; echo "${labels[*]}"))\$"
  # Left to the Release pass: tests whose cost is timing or whole-model arithmetic, not
  # input handling (3-4x slower under ASan; together 190 of the 300 s of test time). The
  # code they run is covered here by smaller tests (kernels, quantize, plan).
  local slow=(
    KernelProbe.TimesTheEngineKernelsAtEveryTokenCount    # times the kernels at every token count
    PlanCli.LocalMachineIsMeasured                        # the local bandwidth/compute/kernel probes
    QuantizeCli.KQuantsOfAWideRandomModelStayCloseToF32   # logits of a wide model, f32 vs K-quants
    QuantizeCli.TiledQ4KGivesTheLogitsOfTheFileWeights    # the same logits through two layouts
  )
  local exclude
  exclude="^($(IFS='|'; echo "${slow[*]}"))\$"
  timed "sanitizer tests" ctest --test-dir "$build" -L "$label_regex" -E "$exclude" --output-on-failure -j"$jobs" --timeout 1800
}

fuzz() {
  local build=${MLAMOE_FUZZ_BUILD:-$root/build-fuzz}
  if [[ ! -f $build/CMakeCache.txt ]]; then
    CC=clang CXX=clang++ cmake -S . -B "$build" -DMLAMOE_FUZZ=ON -DMLAMOE_TRAIN=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  timed "fuzz build" cmake --build "$build" --target fuzz_all -j"$jobs"
  # Per-input time limit: 5 s in CI, not the 1 s of the local runs. Under ASan and
  # coverage the three hostile-template regressions that the render budget stops
  # (oom-string-doubling, timeout-nested-range-loops, oom-list-doubling) cost up to
  # ~1.4 s of CPU, mostly page faults of 32 MiB strings; the Release build refuses each
  # in well under 1 s. 5 s still catches a hang. See docs/reliability.md.
  export MLAMOE_FUZZ_BUILD=$build MLAMOE_FUZZ_NO_BUILD=1 MLAMOE_FUZZ_TIMEOUT=${MLAMOE_FUZZ_TIMEOUT:-5}
  timed "fuzz replay + ${fuzz_seconds} s per target" bash fuzz/run.sh "$fuzz_seconds"
}

start=$SECONDS
[[ ${MLAMOE_CI_SANITIZE:-1} == 0 ]] || timed "sanitize" sanitize
[[ ${MLAMOE_CI_FUZZ:-1} == 0 ]] || timed "fuzz" fuzz
echo "ci-hardening: finished in $((SECONDS - start)) s"
