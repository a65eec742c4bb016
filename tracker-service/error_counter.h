// Today's failed-poll counts per error type and server (UTC days), with the
// summary line Butler SOS logs (§5 of the compatibility reference).
#ifndef QFP_TRACKER_ERROR_COUNTER_H_
#define QFP_TRACKER_ERROR_COUNTER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "common/clock.h"

namespace qfp::tracker {

// Thread-safe.
class ErrorCounter {
 public:
  struct TypeCount {
    std::string error_type;
    uint64_t total = 0;
    // Per server, in first-seen order.
    std::vector<std::pair<std::string, uint64_t>> servers;
  };

  explicit ErrorCounter(const Clock& clock);

  // Counts one failure. If a UTC midnight passed since the last call, the
  // previous day's final summary is returned (to be logged) and the counts
  // restart from zero before this one is added.
  std::optional<std::string> Count(absl::string_view error_type,
                                   absl::string_view server_name);

  // Rolls the day over when midnight UTC has passed: returns the final
  // summary of the day that ended (nullopt when still the same day). Called
  // from a timer so the reset happens even when no failure arrives.
  std::optional<std::string> RollOver();

  // `Error counts today (UTC): Total=3, Details={"PROXY_API":{"total":2,
  // "servers":{"sense1":2}},...}`, types and servers in first-seen order.
  std::string Summary() const;

  // Summary() when the counts changed (a failure counted, or the day
  // rolled over) since the last call that returned one; nullopt otherwise.
  // For logging the summary at most every few seconds, off the path that
  // acknowledges failures: one line per change would cost O(servers) per
  // failure and flood the log.
  std::optional<std::string> SummaryIfChanged();

  uint64_t total() const;
  std::vector<TypeCount> Snapshot() const;
  // The UTC day being counted.
  absl::CivilDay day() const;

 private:
  std::optional<std::string> RollOverLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string SummaryLocked(absl::string_view prefix) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  mutable absl::Mutex mu_;
  absl::CivilDay day_ ABSL_GUARDED_BY(mu_);
  uint64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<TypeCount> types_ ABSL_GUARDED_BY(mu_);
  // (error type, server) -> indices into types_ and its servers, so that
  // counting stays O(1) with thousands of failing servers.
  absl::flat_hash_map<std::pair<std::string, std::string>,
                      std::pair<size_t, size_t>>
      index_ ABSL_GUARDED_BY(mu_);
  // Changes so far, and how many the last SummaryIfChanged saw.
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t summarized_changes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_ERROR_COUNTER_H_
