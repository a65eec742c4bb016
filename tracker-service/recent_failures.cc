#include "tracker-service/recent_failures.h"

#include <algorithm>
#include <iterator>

namespace qfp::tracker {

namespace {

constexpr size_t kDefaultMaxInstances = 65536;
constexpr size_t kDefaultMaxRunsPerInstance = 4096;

// Heap bytes of a string's characters; 0 while they fit in the object.
size_t StringHeapBytes(const std::string& s) {
  static const size_t kInline = std::string().capacity();
  return s.capacity() > kInline ? s.capacity() + 1 : 0;
}

}  // namespace

RecentFailures::Options RecentFailures::OptionsForDedupeWindow(
    size_t dedupe_window) {
  Options options;
  options.max_runs = dedupe_window;
  options.max_runs_per_instance =
      std::min(kDefaultMaxRunsPerInstance, dedupe_window);
  options.max_instances = std::min(kDefaultMaxInstances, dedupe_window);
  return options;
}

RecentFailures::RecentFailures(const Options& options)
    : enabled_(options.max_instances > 0 && options.max_runs_per_instance > 0 &&
               options.max_runs > 0),
      options_([&options] {
        Options normalised = options;
        normalised.max_runs_per_instance =
            std::min(normalised.max_runs_per_instance, normalised.max_runs);
        return normalised;
      }()) {}

bool RecentFailures::RunsContain(const std::vector<Run>& runs,
                                 uint64_t sequence) {
  // The first run starting above `sequence`; the one before it is the only
  // one that can hold it.
  auto next = std::upper_bound(
      runs.begin(), runs.end(), sequence,
      [](uint64_t value, const Run& run) { return value < run.lo; });
  return next != runs.begin() && sequence <= std::prev(next)->hi;
}

bool RecentFailures::AddToRuns(std::vector<Run>& runs, uint64_t sequence) {
  // The common case: in order, at or above the high end.
  if (runs.empty() || sequence > runs.back().hi) {
    // runs.back().hi < sequence, so hi + 1 cannot overflow.
    if (!runs.empty() && runs.back().hi + 1 == sequence) {
      runs.back().hi = sequence;
    } else {
      runs.push_back(Run{sequence, sequence});
    }
    return true;
  }
  auto next = std::upper_bound(
      runs.begin(), runs.end(), sequence,
      [](uint64_t value, const Run& run) { return value < run.lo; });
  const bool has_prev = next != runs.begin();
  if (has_prev && sequence <= std::prev(next)->hi) return false;
  // prev->hi < sequence < next->lo: neither + 1 overflows.
  const bool joins_prev = has_prev && std::prev(next)->hi + 1 == sequence;
  const bool joins_next = next != runs.end() && sequence + 1 == next->lo;
  if (joins_prev && joins_next) {
    // The gap was exactly this sequence: the two runs become one.
    std::prev(next)->hi = next->hi;
    runs.erase(next);
  } else if (joins_prev) {
    std::prev(next)->hi = sequence;
  } else if (joins_next) {
    next->lo = sequence;
  } else {
    runs.insert(next, Run{sequence, sequence});
  }
  return true;
}

bool RecentFailures::Contains(const failedpolls::v1::FailureId& id) const {
  if (!enabled_) return false;
  absl::ReaderMutexLock lock(&mu_);
  auto found = index_.find(Key{id.poller_id(), id.instance_id()});
  if (found == index_.end()) return false;
  return RunsContain(found->second->runs, id.sequence());
}

bool RecentFailures::Insert(const failedpolls::v1::FailureId& id) {
  if (!enabled_) return false;
  absl::MutexLock lock(&mu_);
  Lru::iterator instance;
  if (auto found = index_.find(Key{id.poller_id(), id.instance_id()});
      found != index_.end()) {
    instance = found->second;
    lru_.splice(lru_.begin(), lru_, instance);  // iterators stay valid
  } else {
    if (lru_.size() >= options_.max_instances) EvictLeastRecentlyUsed();
    lru_.push_front(Instance{id.poller_id(), id.instance_id(), {}});
    instance = lru_.begin();
    index_.emplace(Key{instance->poller_id, instance->instance_id}, instance);
  }

  std::vector<Run>& runs = instance->runs;
  const size_t before = runs.size();
  if (!AddToRuns(runs, id.sequence())) return false;
  // One insertion adds at most one run. Forget the lowest: never close a
  // gap, which would report a never-accepted sequence as seen.
  while (runs.size() > options_.max_runs_per_instance) {
    runs.erase(runs.begin());
    ++forgotten_runs_;
  }
  total_runs_ = total_runs_ - before + runs.size();
  // Give back what a burst of out-of-order runs grew, with hysteresis.
  if (runs.capacity() > 16 && runs.size() * 4 < runs.capacity()) {
    runs.shrink_to_fit();
  }
  // The instance just used is at the front and alone fits in max_runs
  // (max_runs_per_instance <= max_runs), so this stops before reaching it.
  while (total_runs_ > options_.max_runs && lru_.size() > 1) {
    EvictLeastRecentlyUsed();
  }
  return true;
}

void RecentFailures::EvictLeastRecentlyUsed() {
  if (lru_.empty()) return;
  const Instance& victim = lru_.back();
  // The key points into the node: unindex it before freeing the node.
  index_.erase(Key{victim.poller_id, victim.instance_id});
  total_runs_ -= victim.runs.size();
  lru_.pop_back();
  ++evicted_instances_;
}

size_t RecentFailures::instances() const {
  absl::ReaderMutexLock lock(&mu_);
  return lru_.size();
}

size_t RecentFailures::runs() const {
  absl::ReaderMutexLock lock(&mu_);
  return total_runs_;
}

RecentFailures::Stats RecentFailures::stats() const {
  absl::ReaderMutexLock lock(&mu_);
  Stats stats;
  stats.instances = lru_.size();
  stats.runs = total_runs_;
  stats.forgotten_runs = forgotten_runs_;
  stats.evicted_instances = evicted_instances_;
  return stats;
}

size_t RecentFailures::approximate_bytes() const {
  // A std::list node is the element plus two links.
  constexpr size_t kNodeBytes = sizeof(Instance) + 2 * sizeof(void*);
  // flat_hash_map: one slot and one control byte per bucket of capacity.
  constexpr size_t kBucketBytes =
      sizeof(std::pair<const Key, Lru::iterator>) + 1;
  absl::ReaderMutexLock lock(&mu_);
  size_t bytes = sizeof(*this) + index_.capacity() * kBucketBytes;
  for (const Instance& instance : lru_) {
    bytes += kNodeBytes + StringHeapBytes(instance.poller_id) +
             StringHeapBytes(instance.instance_id) +
             instance.runs.capacity() * sizeof(Run);
  }
  return bytes;
}

}  // namespace qfp::tracker
