// Runs the poll plan: starts every poll when it is due, concurrently through
// one HttpTransport, classifies each outcome and hands failures to a sink.
//
// Time: every due time, interval and deadline is kept on the Clock's
// monotonic reading, so that a wall-clock step (NTP, a resumed VM, an
// operator) neither stops nor bunches polls. The wall clock (Clock::Now) is
// read only for a failure's occurred_at and, once at construction, to place
// each target's phase (see SpreadOffset).
//
// Spread: a target's polls start at a fixed offset within its interval, a
// stable hash of its key, as Prometheus spreads scrapes. Thousands of
// targets then start evenly over the interval instead of in one burst, so a
// dead server holds a transport slot only for its own timeout and no healthy
// poll queues behind it.
#ifndef QFP_POLLER_POLL_SCHEDULER_H_
#define QFP_POLLER_POLL_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/string_view.h"
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

// Where in every `interval` the polls of the target whose PollTarget::Key()
// is `key` start: the first 8 bytes of SHA-256(key), big-endian, modulo the
// interval in nanoseconds; in [0, interval) (zero for an interval <= 0).
// SHA-256 rather than std::hash or absl::Hash, which may change between
// builds or runs: the offset must be the same in every build and process,
// so that a restarted poller keeps its targets' phases and pollers sharing
// targets (TargetOwnership) agree on them. It depends on the key alone (no
// poller id mixed in, unlike Prometheus' replica-specific seed): a target
// handed from one poller to another keeps its phase, so its polls stay one
// interval apart across the handover. Thread-safe.
absl::Duration SpreadOffset(absl::string_view key, absl::Duration interval);

// The first due time, on the monotonic reading `monotonic_now`, of a target
// with `offset` and `interval` when the wall clock reads `wall_now`: the
// next instant at or after now whose wall-clock time modulo `interval` (from
// the Unix epoch) is `offset`. Anchoring the phase on the wall clock once
// (then fixed rate on the monotonic clock) is what keeps it across restarts
// and machines whose clocks agree. Thread-safe.
absl::Duration FirstDueTime(absl::Duration offset, absl::Duration interval,
                            absl::Time wall_now, absl::Duration monotonic_now);

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
  // Every target is first due at its phase (FirstDueTime of its
  // SpreadOffset), within one interval of construction; then every
  // `target.interval` of monotonic time (fixed rate, a round skipped while
  // the previous poll still runs, no catch-up burst after a stall: the
  // rounds missed are skipped whole, keeping the phase).
  //
  // Metrics, by source: qfp_poller_polls_total, _poll_failures_total (and
  // category), _polls_skipped_total; qfp_poller_poll_start_lateness_seconds,
  // from the due time to the moment the transport began the request (the
  // scheduler's own delay plus the transport's queue);
  // qfp_poller_poll_queued_seconds, the transport's queue alone (from Start
  // to when the request began: the completion time less
  // RequestOutcome::elapsed, which a transport measures from there); and
  // qfp_poller_poll_duration_seconds, RequestOutcome::elapsed. The last three
  // are observed when a poll completes (not when cancelled).
  PollScheduler(const PollerConfig& config, std::vector<PollTarget> plan,
                HttpTransport& transport, FailureSink& sink, const Clock& clock,
                MetricsRegistry& metrics,
                const TargetOwnership* ownership = nullptr,
                AttemptLedger* ledger = nullptr);

  // Makes every target due now, then every interval from now: targets of
  // one interval are polled together, in rounds (the behaviour before
  // spreading: bursts), rather than at their spread phases. For tests and
  // comparisons that reason in rounds (qs-poller --spread_polls=false).
  // Call before the first Step.
  void PollInRounds();

  // Starts every due poll (O(log n) per due target), then drives transfers
  // until the next poll is due or `max_wait` (monotonic time) has passed,
  // whichever is sooner.
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
    // Of the poll in flight, on the monotonic reading: when it was due and
    // when it was handed to the transport.
    absl::Duration due;
    absl::Duration requested;
  };
  // (due time, index into targets_), earliest first; ties by index so that
  // the order is deterministic.
  using DueEntry = std::pair<absl::Duration, size_t>;

  void StartPoll(TargetState& state, absl::Duration due);
  void OnDone(TargetState& state, const RequestOutcome& outcome);

  const PollerConfig& config_;
  std::vector<TargetState> targets_;
  // One entry per target, at its next_due.
  std::priority_queue<DueEntry, std::vector<DueEntry>, std::greater<DueEntry>>
      due_;
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
  Histogram& lateness_;      // label: source
  Histogram& queued_;        // label: source
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_POLL_SCHEDULER_H_
