#!/usr/bin/env bash
# Builds the unit tests that run code on several threads with
# ThreadSanitizer in build-tsan/ and runs them; any report fails the run.
#   scripts/tsan.sh              # CI
#   scripts/tsan.sh -R Sqlite    # extra arguments go to ctest
#   scripts/tsan.sh --build-only # builds abseil and the tests, runs nothing
# ThreadSanitizer sees absl::Mutex only when abseil itself is built with
# -fsanitize=thread, and Debian's is not: the first run rebuilds Debian's own
# abseil source package (the installed version, its options.h, its SONAMEs)
# with it into $QFP_TSAN_CACHE (default ~/.cache/qfp-tsan), reused after.
# gRPC, protobuf, OpenSSL and SQLite stay Debian's, libcurl the static one of
# scripts/build-curl.sh (all uninstrumented):
# tests/tsan.supp lists what is suppressed in them and why (docs/threading.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build_only=false
if [ "${1:-}" = "--build-only" ]; then
  build_only=true
  shift
fi

# The test binaries that run our code on more than one thread (a thread of
# the test's, or one our code starts: writer, reader, scheduler, listener,
# gRPC's own); the others are single-threaded and would only cost build time.
tests=(
  clock_test                # RealClock's step detector thread
  failure_queue_test        # memory and SQLite queues, concurrent producers
  failure_queue_fault_test  # SQLite queue's writer thread on a failing disk
  log_rate_limiter_test     # concurrent callers
  metrics_test              # registry updates while the HTTP listener renders
  curl_transport_test       # Wakeup from another thread, a fake server thread
  peer_membership_test      # the refresh thread
  rendezvous_ownership_test # ownership swapped while read
  tracker_client_test       # stream thread, reader thread, a real gRPC server
  recent_failures_test      # concurrent Record and snapshot
  serial_executor_test      # tasks added from many threads
  http_client_test          # concurrent requests over one client
  write_pipeline_test       # writer threads, queue, error counter, flushes
  durable_queue_test        # pipeline over a real influxd
  tracker_service_test      # gRPC handlers, pipeline, recent failures
)

scripts/install-deps.sh
. scripts/debian-source.sh

# --- abseil with -fsanitize=thread, once per Debian version -----------------
absl_version=$(dpkg-query -W -f='${source:Version}' libabsl-dev)
# Bump when the way abseil is built below changes.
recipe=2
cache=${QFP_TSAN_CACHE:-$HOME/.cache/qfp-tsan}
absl_dir=$cache/abseil-$absl_version-r$recipe
absl_lib=$absl_dir/lib
if [ ! -f "$absl_dir/done" ]; then
  start=$(date +%s)
  echo "Building abseil $absl_version with -fsanitize=thread into $absl_dir"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/abseil-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  src=$(debian_source abseil "$absl_version" "$work")
  # Debian's build (debian/rules): C++17, shared libraries, the default build
  # type (no NDEBUG); its patches (options.h, SONAME) are applied by
  # apt-get source. Optimisation and debug level do not change the ABI.
  cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_SHARED_LIBS=ON \
    -DBUILD_TESTING=OFF \
    "-DCMAKE_CXX_FLAGS=-O1 -g1 -fno-omit-frame-pointer -fsanitize=thread" \
    -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
  if ! cmp -s "$src/absl/base/options.h" /usr/include/absl/base/options.h; then
    echo "abseil's options.h differs from the installed one" >&2
    exit 1
  fi
  # All of abseil's libraries (about 60, of which the tests load 56): a
  # library left out would load Debian's uninstrumented copy.
  ninja -C "$work/build" -j2 >"$work/build.log" ||
    { tail -50 "$work/build.log"; exit 1; }
  rm -rf "$absl_dir"
  mkdir -p "$absl_lib"
  find "$work/build" -name 'libabsl_*.so.*' -exec cp -a {} "$absl_lib/" \;
  touch "$absl_dir/done"
  rm -rf "$work"
  trap - EXIT
  echo "abseil built in $(($(date +%s) - start)) s"
fi

# --- our tests --------------------------------------------------------------
build_dir=build-tsan
# -O1 -g1: ThreadSanitizer's advice, and it keeps file:line in the reports
# while compiling and linking faster than RelWithDebInfo's -O2 -g.
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DQFP_TSAN=ON "-DQFP_TSAN_ABSL_LIBDIR=$absl_lib" >/dev/null
start=$(date +%s)
cmake --build "$build_dir" -j2 --target "${tests[@]}" qfp_fault_shim
echo "build-tsan built in $(($(date +%s) - start)) s"

# Every abseil library a test loads must be the instrumented one: one
# uninstrumented absl::Mutex would make guarded accesses look racy.
for t in "${tests[@]}"; do
  stray=$(ldd "$build_dir/tests/$t" | grep 'libabsl_' | grep -v "=> $absl_lib/" || true)
  if [ -n "$stray" ]; then
    echo "$t loads abseil from outside $absl_lib:" >&2
    echo "$stray" >&2
    exit 1
  fi
done
$build_only && exit 0

# halt_on_error: the first report ends the test binary with exit code 66, so
# ctest counts it failed. second_deadlock_stack: both stacks of a lock-order
# inversion. die_after_fork=0: two tests fork a child that starts threads
# (AwaitUntilTest.WorksInAForkedChild, FailureQueueFaultTest's crash test),
# which ThreadSanitizer would end (it does not promise to check such a child).
# history_size=7: the most history kept per thread, so that the earlier
# access of a report has its stack (which the suppressions are matched on).
# Tests not built here are listed by ctest as *_NOT_BUILT.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:history_size=7:suppressions=$repo/tests/tsan.supp:${TSAN_OPTIONS:-}"
start=$(date +%s)
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -j2 \
  -LE 'integration|helm|dashboards|binaries' -E '_NOT_BUILT$' "$@"
echo "TSan tests ran in $(($(date +%s) - start)) s"
