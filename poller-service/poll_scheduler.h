// Runs the poll plan: starts every poll when it is due, concurrently through
// one HttpTransport, classifies each outcome and hands failures to a sink.
//
// Time: every due time, interval and deadline is kept on the Clock's
// monotonic reading, so that a wall-clock step (NTP, a resumed VM, an
// operator) neither stops nor bunches polls. The wall clock (Clock::Now) is
// read only for a failure's occurred_at.
#ifndef QFP_POLLER_POLL_SCHEDULER_H_
#define QFP_POLLER_POLL_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "poller-service/attempt_ledger.h"
#include "poller-service/failure_sink.h"
#include "poller-service/http_transport.h"
#include "poller-service/poll_plan.h"
#include "poller-service/poller_config.h"
#include "poller-service/target_ownership.h"

namespace qfp::poller {

// Numbers shown in logs and metrics.
struct SchedulerStats {
  uint64_t polls_started = 0;
  uint64_t polls_failed = 0;
  // Rounds skipped because the target's previous poll was still running.
  uint64_t polls_skipped = 0;
};

// Not thread-safe: construct, Step and Run on one thread (the transport's);
// the transport's callbacks run on it too. Only `stop` (see Run) is read
// across threads.
class PollScheduler {
 public:
  // `config`, `transport`, `sink`, `clock` and `metrics` (where the
  // scheduler registers its counters, the one place its counts are kept)
  // must outlive the scheduler, as must `ownership` and `ledger` when given.
  // At each due time a target is polled only when `ownership` owns it (no
  // ownership: every target); each completed poll is counted in `ledger`.
  // Every target is first due at construction time; then every
  // `target.interval` of monotonic time (fixed rate, a round skipped while
  // the previous poll still runs, no catch-up burst after a stall).
  PollScheduler(const PollerConfig& config, std::vector<PollTarget> plan,
                HttpTransport& transport, FailureSink& sink, const Clock& clock,
                MetricsRegistry& metrics,
                const TargetOwnership* ownership = nullptr,
                AttemptLedger* ledger = nullptr);

  // Starts every due poll, then drives transfers until the next poll is due
  // or `max_wait` (monotonic time) has passed, whichever is sooner.
  void Step(absl::Duration max_wait);

  // Calls Step until `stop` becomes true, then lets in-flight polls finish
  // and returns: after at most the longest timeout of a running poll, capped
  // at PollerConfig::request_timeout, plus 1 s of monotonic time, when the
  // transport still holds requests (its destructor cancels them).
  void Run(const std::atomic<bool>& stop);

  // Totals over every source, read from the metrics.
  SchedulerStats stats() const;
  const std::string& instance_id() const { return instance_id_; }

 private:
  struct TargetState {
    PollTarget target;
    // On the clock's monotonic reading (Clock::Monotonic).
    absl::Duration next_due;
    bool in_flight = false;
  };

  void StartPoll(TargetState& state);
  void OnDone(TargetState& state, const RequestOutcome& outcome);

  const PollerConfig& config_;
  std::vector<TargetState> targets_;
  HttpTransport& transport_;
  FailureSink& sink_;
  const Clock& clock_;
  const TargetOwnership* ownership_;  // null: every target
  AttemptLedger* ledger_;             // null: none kept
  absl::BitGen rng_;
  std::string instance_id_;
  uint64_t next_sequence_ = 1;
  Counter& polls_;           // label: source
  Counter& failed_;          // labels: source, category
  Counter& skipped_;         // label: source
  Histogram& poll_seconds_;  // label: source
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_POLL_SCHEDULER_H_
