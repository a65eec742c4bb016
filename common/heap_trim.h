// Giving the heap's free memory back to the system (glibc malloc).
//
// Why glibc keeps freed memory: free() returns memory to the system only
// from the top of an arena (the main arena's brk heap, or a thread arena's
// 64 MiB mapping); a free chunk below a live allocation stays resident, in
// each of the arenas (glibc gives each thread that allocates an arena of its
// own, up to 8 per core, unless M_ARENA_MAX says fewer). A burst that allocated
// and freed tens of MiB (a thousand polls' libcurl and OpenSSL objects, a
// million failures, 4000 connections' TLS and HTTP/2 state) thus leaves the
// process's RSS near its peak. malloc_trim(0) gives the whole free pages back
// (madvise MADV_DONTNEED on every free chunk of every arena, and shrinks the
// top of each).
//
// Cost (measured; tests/bench/README.md, "Tracker memory after a
// connection flood"): malloc_trim(0) holds each arena's lock in turn while
// it walks that arena's free chunks (one madvise call per free chunk with a
// whole page), so an allocation on another thread may wait that long:
// 0.02 ms on a fresh tracker, about 1 ms for the poller at 1000 servers,
// 3.3 ms giving back 22 MiB after 100,000 failures, 40 to 130 ms giving
// back 270 MiB after a flood of 4000 connections; then 0.3 to 1.5 ms per
// trim on the heap they left fragmented.
//
// Two ways to use it:
// * PeriodicHeapTrim: a thread of its own trimming every interval (the
//   poller: its heap is small, the trim cheap, and the RSS goal tight).
// * HeapTrimPolicy + TrimHeap(clock) from a thread the service already has (the
//   tracker's housekeeping): trims whenever a tick saw no work, and while
//   work keeps coming, at most every `busy_interval`.
#ifndef QFP_COMMON_HEAP_TRIM_H_
#define QFP_COMMON_HEAP_TRIM_H_

#include <cstdint>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace qfp {

// What one trim did: how long malloc_trim(0) took, and the process's
// resident memory (/proc/self/statm) before and after it, in bytes (nullopt
// when /proc could not be read).
struct HeapTrimResult {
  absl::Duration duration;
  std::optional<uint64_t> resident_before;
  std::optional<uint64_t> resident_after;
};

// malloc_trim(0), timed on `clock`'s monotonic time. Thread-safe (glibc
// locks each arena).
HeapTrimResult TrimHeap(const Clock& clock);

// The process's resident memory in bytes (/proc/self/statm's second field
// times the page size), or nullopt if it cannot be read.
std::optional<uint64_t> ResidentBytes();

// When a thread with a regular tick (about a second) should trim, from
// whether that tick saw work (failures accepted, a backlog moving) and the
// monotonic time. Why both rules:
// * a quiet tick trims: whatever grew and ended (a burst of failures, a
//   flood of connections that accept nothing, streams opened and closed) is
//   given back within a tick of its end, and a trim costs nothing that
//   matters when no work waits on the arena locks;
// * a busy tick does not, except every `busy_interval`: in the middle of a
//   burst a trim stalls the receiving threads (it holds each arena's lock
//   for as long as it walks a large heap) and gives back pages the burst
//   takes again at once; but memory a flood of connections left must still
//   come back while a producer keeps sending a failure every second.
// Pure (no clock, no malloc): not thread-safe, one per ticking thread.
class HeapTrimPolicy {
 public:
  struct Options {
    absl::Duration busy_interval = absl::Seconds(30);
  };

  HeapTrimPolicy() : HeapTrimPolicy(Options{}) {}
  explicit HeapTrimPolicy(Options options) : options_(options) {}

  // Once per tick: true when the caller should trim now (the policy then
  // counts it as done at `now`). `now` is monotonic and never decreases.
  // A quiet tick always trims; a busy one trims when `busy_interval` has
  // passed since the last trim (or, before any, since the first busy tick).
  bool ShouldTrim(bool busy, absl::Duration now);

 private:
  const Options options_;
  // When the last trim was, or the first busy tick before any trim.
  std::optional<absl::Duration> interval_start_;
};

// Calls malloc_trim(0) every `interval` on a thread of its own, from
// construction until destruction (which stops and joins it). Not copyable.
class PeriodicHeapTrim {
 public:
  explicit PeriodicHeapTrim(absl::Duration interval);
  ~PeriodicHeapTrim();
  PeriodicHeapTrim(const PeriodicHeapTrim&) = delete;
  PeriodicHeapTrim& operator=(const PeriodicHeapTrim&) = delete;

 private:
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started once mu_ and stop_ exist
};

}  // namespace qfp

#endif  // QFP_COMMON_HEAP_TRIM_H_
