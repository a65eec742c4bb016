#!/usr/bin/env bash
# Builds everything and runs every test (unit and integration) with ctest.
#   scripts/test.sh              # build/ (RelWithDebInfo)
#   scripts/test.sh --sanitize   # build-asan/ with -fsanitize=address,undefined
#   scripts/test.sh --build-only # builds, runs nothing (CI builds ahead)
# Extra arguments after the options go to ctest (e.g. -R LineProtocol).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
build_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize)
      build_dir=build-asan
      cmake_args=(-DCMAKE_BUILD_TYPE=Debug -DQFP_SANITIZE=ON)
      # gRPC's and libcurl's own allocations are not ours to fix; leaks in
      # our code still fail under ASan's other checks (use-after-free,
      # overflow).
      export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
      export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
      ;;
    --build-only) build_only=true ;;
    *) break ;;
  esac
  shift
done

scripts/install-deps.sh
cmake -S . -B "$build_dir" -G Ninja "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir"
$build_only && exit 0
# Unit tests (no label) and the chart and dashboard checks run two at a
# time; the integration tests, which start real processes and measure their
# timing, one at a time.
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -LE integration \
  -j2 "$@"
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -L integration \
  "$@"
