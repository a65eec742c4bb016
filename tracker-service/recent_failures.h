// Which failure ids the tracker accepted recently, so that a re-sent failure
// is acknowledged again without a second point, in kilobytes rather than one
// string per id.
//
// Shape. Ids are grouped by producer instance, the pair (poller_id,
// instance_id); the two strings are compared as a pair, never joined, so
// ("a/b", "c") and ("a", "b/c") are different instances. Within an instance
// the accepted sequence numbers are kept as runs: sorted, disjoint closed
// ranges [lo, hi] of sequences that were all accepted, with at least one
// never-accepted sequence (a gap) between two runs. A producer sends its
// sequences in increasing order, so an instance normally has one run: its
// high-water mark, [1, hwm] (or [first seen, hwm] when the tracker met the
// instance mid-stream, after a tracker restart or an eviction). Out-of-order
// acceptance (a refused failure resent later, several batches in flight, a
// restarted poller resending its spool) adds runs above the gaps; a run
// merges with its neighbours when a gap closes. A run is 16 bytes.
//
// Gaps stay open: a run only ever grows over a sequence that was inserted.
// A sequence below the high-water mark that was never inserted (refused
// earlier and now resent, or skipped by the producer) is NOT seen, so it is
// written, not acknowledged without a point.
//
// Bounds. Memory is bounded by forgetting, never by assuming:
//   - At most `max_runs_per_instance` runs per instance: when an insertion
//     makes one more, the instance's LOWEST run (its oldest accepted
//     sequences, the least likely to be resent) is forgotten. The gaps around
//     it stay gaps; the high-water mark never jumps over them.
//   - At most `max_instances` instances and `max_runs` runs in all: over
//     either, the instance least recently inserted into is forgotten whole (a
//     restarted poller has a new instance_id; its old one goes stale).
//   Forgetting turns "seen" into "not seen" for the forgotten sequences: if
//   one is resent, its point is written a second time, which InfluxDB stores
//   once (same series and timestamp). It never turns "not seen" into "seen".
//
// Guarantee. Contains(id) is true only if Insert(id) was called earlier (no
// false positives: not through gaps, caps, evictions or concurrent calls), so
// an id reported as seen was durably accepted before and no failure is ever
// acknowledged without its point. Contains(id) is false for an inserted id
// only if its run or its instance was forgotten under the bounds above (or
// dedupe is off), which costs one duplicate write, never a lost failure.
// Without forgetting (stats().forgotten_runs and .evicted_instances zero)
// Contains answers exactly.
//
// Memory (x86-64 libstdc++): about 250 bytes per instance (its list node,
// its index slot, the two id strings when longer than 15 characters,
// allocator overhead) + 16 bytes per run (up to 32 with std::vector's spare
// capacity). In-order producers use one run each: 100 pollers take ~25 KiB,
// 10 instances after 1,000,000 failures ~2 KiB. The worst case is
// max_instances * ~250 B + max_runs * 32 B, and max_runs_per_instance * 32 B
// for one instance: with the defaults (65,536 instances, 1,000,000 runs,
// 4,096 per instance) about 16 MiB + 31 MiB, 128 KiB per instance (measured:
// 38 MiB with 1,000,000 runs over 59,000 instances). approximate_bytes()
// reports the current figure.
//
// Thread-safe: every method takes the object's own mutex (Contains and the
// accessors as readers). Each call is atomic on its own; a Contains followed
// by an Insert is not, so two streams delivering the same id at the same time
// can both see "not seen" and both write it (a harmless duplicate point).
#ifndef QFP_TRACKER_RECENT_FAILURES_H_
#define QFP_TRACKER_RECENT_FAILURES_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp::tracker {

class RecentFailures {
 public:
  struct Options {
    // Instances remembered; over it the least recently inserted into is
    // forgotten. 0 turns dedupe off.
    size_t max_instances = 65536;
    // Runs per instance; over it the instance's lowest run is forgotten.
    // 0 turns dedupe off; capped at max_runs.
    size_t max_runs_per_instance = 4096;
    // Runs in all instances together; over it the least recently inserted
    // into instances are forgotten. 0 turns dedupe off.
    size_t max_runs = 1000000;
  };

  struct Stats {
    size_t instances = 0;  // instances remembered now
    size_t runs = 0;       // runs remembered now, all instances
    // Since construction: runs forgotten by max_runs_per_instance, and
    // instances forgotten by max_instances or max_runs.
    uint64_t forgotten_runs = 0;
    uint64_t evicted_instances = 0;
  };

  // The tracker's `dedupeWindow` (TrackerConfig::dedupe_window): 0 turns
  // dedupe off; otherwise it is max_runs, the number of runs (ranges of
  // consecutive accepted sequences, one per in-order producer) remembered in
  // all, and it also caps the per-instance and instance limits (4096 and
  // 65536 by default).
  static Options OptionsForDedupeWindow(size_t dedupe_window);

  explicit RecentFailures(const Options& options);
  RecentFailures(const RecentFailures&) = delete;
  RecentFailures& operator=(const RecentFailures&) = delete;

  // True when `id` was inserted and is still remembered: a failure with this
  // id was accepted before and may be acknowledged without a point. Never
  // true for an id that was not inserted. Does not count as a use of the
  // instance for the LRU order. Always false when dedupe is off.
  bool Contains(const failedpolls::v1::FailureId& id) const;

  // Remembers `id`; call it only once the failure is accepted (durable or
  // queued, about to be acknowledged), never for a refused one. Returns true
  // when `id` was not remembered before the call (Contains was false), false
  // when it was (nothing changes then but the LRU order). The instance
  // becomes the most recently used. May forget other ids to stay within the
  // bounds (the inserted one too, when it is the instance's lowest run over
  // max_runs_per_instance). A no-op returning false when dedupe is off.
  bool Insert(const failedpolls::v1::FailureId& id);

  // False when constructed with a zero limit (dedupeWindow: 0).
  bool enabled() const { return enabled_; }
  size_t instances() const;
  size_t runs() const;
  Stats stats() const;
  // Approximate heap and object bytes held now (see Memory above), O(number
  // of instances).
  size_t approximate_bytes() const;

 private:
  // Accepted sequences lo..hi, inclusive; lo <= hi.
  struct Run {
    uint64_t lo;
    uint64_t hi;
  };
  // One producer instance. Its strings never change once it is in `lru_`,
  // whose nodes never move, so `index_` keys point into them.
  struct Instance {
    std::string poller_id;
    std::string instance_id;
    // Sorted by lo; runs[i].hi + 1 < runs[i + 1].lo; never empty.
    std::vector<Run> runs;
  };
  using Lru = std::list<Instance>;
  // (poller_id, instance_id) without copying the strings.
  struct Key {
    absl::string_view poller_id;
    absl::string_view instance_id;
    friend bool operator==(const Key& a, const Key& b) {
      return a.poller_id == b.poller_id && a.instance_id == b.instance_id;
    }
    template <typename H>
    friend H AbslHashValue(H h, const Key& key) {
      return H::combine(std::move(h), key.poller_id, key.instance_id);
    }
  };

  static bool RunsContain(const std::vector<Run>& runs, uint64_t sequence);
  // Adds `sequence` to `runs`, merging neighbours; false if already there.
  static bool AddToRuns(std::vector<Run>& runs, uint64_t sequence);
  void EvictLeastRecentlyUsed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const bool enabled_;
  const Options options_;  // normalised by the constructor

  mutable absl::Mutex mu_;
  // Front: most recently inserted into.
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t total_runs_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t forgotten_runs_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evicted_instances_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_RECENT_FAILURES_H_
