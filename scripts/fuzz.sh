#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang in build-fuzz/ (only
# them and the libraries they link) and runs each on its seed corpus
# (tests/fuzz/corpus/<target>/) for a bounded number of runs.
#   scripts/fuzz.sh                  # CI: a few thousand runs per target
#   scripts/fuzz.sh --long           # 1,000,000 runs per target (README)
#   scripts/fuzz.sh --runs N [TARGET...]
#   scripts/fuzz.sh --build-only     # builds the targets, runs nothing
# QFP_FUZZ_JOBS=N splits each target's runs over N libFuzzer processes
# (-jobs, sharing the found-inputs directory): the same number of runs in
# less time where cores are idle.
# New inputs a run finds go to build-fuzz/corpus/<target>/ (never into the
# repo's seeds); a crashing input goes to build-fuzz/artifacts/<target>/ and
# makes the script fail after every target has run. Prints runs, seconds and
# crashes per target.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(config_fuzzer line_protocol_fuzzer json_shape_fuzzer
             failure_check_fuzzer influx_answer_fuzzer)
# CI's runs per target: chosen so that all five together run in about a
# minute on CI's two cores (tests/fuzz/README.md has the measured rates).
runs=${QFP_FUZZ_RUNS:-20000}
build_only=false
if [ "${1:-}" = "--build-only" ]; then
  build_only=true
  shift
elif [ "${1:-}" = "--long" ]; then
  shift
  runs=1000000
elif [ "${1:-}" = "--runs" ]; then
  runs=$2
  shift 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

scripts/install-deps.sh
jobs=${QFP_FUZZ_JOBS:-1}
build_dir=build-fuzz
CC=${QFP_FUZZ_CC:-clang} CXX=${QFP_FUZZ_CXX:-clang++} \
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQFP_FUZZ=ON -DQFP_BUILD_TESTS=OFF >/dev/null
cmake --build "$build_dir" --target "${targets[@]}"
$build_only && exit 0

# Leaks are checked for every input; the sanitizers stop at the first error.
export ASAN_OPTIONS="abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

failed=0
summary=()
for target in "${targets[@]}"; do
  seeds=$PWD/tests/fuzz/corpus/$target
  found=$PWD/$build_dir/corpus/$target
  artifacts=$PWD/$build_dir/artifacts/$target
  log=$PWD/$build_dir/$target.log
  job_dir=$PWD/$build_dir/jobs/$target
  mkdir -p "$found" "$artifacts" "$job_dir"
  rm -f "$artifacts"/* "$job_dir"/*
  start=$(date +%s%N)
  status=0
  # -timeout: an input taking over 10 s counts as a crash (a hang);
  # -rss_limit_mb: so does one that needs over 2 GiB.
  flags=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix="$artifacts/")
  if [ "$jobs" -gt 1 ]; then
    # Each job writes fuzz-<n>.log into the current directory.
    (cd "$job_dir" && "$OLDPWD/$build_dir/tests/fuzz/$target" \
      -runs=$((runs / jobs)) -jobs="$jobs" -workers="$jobs" "${flags[@]}" \
      "$found" "$seeds") >"$log" 2>&1 || status=$?
    # The parent copies each job's log into its own when the job ends.
    if grep -q '^SUMMARY: ' "$job_dir"/fuzz-*.log; then status=1; fi
  else
    "$build_dir/tests/fuzz/$target" -runs="$runs" "${flags[@]}" \
      "$found" "$seeds" >"$log" 2>&1 || status=$?
  fi
  ms=$((($(date +%s%N) - start) / 1000000))
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
    awk '{ n += $1 } END { print n + 0 }')
  crashes=$(find "$artifacts" -type f | wc -l)
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  line=$(printf '%-22s runs %8s  seconds %4d.%d  crashes %d' "$target" \
    "${done_runs:-?}" $((ms / 1000)) $((ms % 1000 / 100)) "$crashes")
  echo "$line"
  summary+=("$line")
  if [ "$crashes" -ne 0 ]; then
    failed=1
    tail -n 60 "$log"
    ls -l "$artifacts"
  fi
done
echo "=== fuzzing: $runs runs per target ==="
printf '%s\n' "${summary[@]}"
exit "$failed"
