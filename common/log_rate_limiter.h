// Keeps a repeating log line readable: the first event is logged at once,
// then at most one line per interval carries the count of the events since
// the last line, so a count in a log line is always the true number.
//
//   static LogRateLimiter limiter(absl::Seconds(10));
//   if (uint64_t n = limiter.Add(); n > 0) spdlog::warn("... {} ...", n);
//
// Thread-safe. Intervals are measured on the Clock's monotonic reading.
#ifndef QFP_COMMON_LOG_RATE_LIMITER_H_
#define QFP_COMMON_LOG_RATE_LIMITER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace qfp {

class LogRateLimiter {
 public:
  explicit LogRateLimiter(absl::Duration interval,
                          const Clock& clock = SystemClock::Get())
      : interval_(interval), clock_(clock) {}

  // Counts `n` events. Returns 0 when no line is due; otherwise the number
  // of events to report (these and every one held back since the last
  // line), and starts a new interval.
  uint64_t Add(uint64_t n = 1) {
    absl::MutexLock lock(&mu_);
    held_ += n;
    const absl::Duration now = clock_.Monotonic();
    if (reported_once_ && now - last_ < interval_) return 0;
    reported_once_ = true;
    last_ = now;
    const uint64_t report = held_;
    held_ = 0;
    return report;
  }

  // Ends the current interval: the next event is logged at once (with the
  // count of any held back). For a line about a state that ended (an
  // outage over), so the next occurrence is reported when it starts.
  void Reset() {
    absl::MutexLock lock(&mu_);
    reported_once_ = false;
  }

 private:
  const absl::Duration interval_;
  const Clock& clock_;
  absl::Mutex mu_;
  bool reported_once_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration last_ ABSL_GUARDED_BY(mu_);
  uint64_t held_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace qfp

#endif  // QFP_COMMON_LOG_RATE_LIMITER_H_
