// Runs the poll plan: starts every poll when it is due, concurrently through
// one HttpTransport, classifies each outcome and hands failures to a sink.
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
#include "failedpolls/v1/failed_polls.pb.h"
#include "poller-service/http_transport.h"
#include "poller-service/poll_plan.h"
#include "poller-service/poller_config.h"

namespace qfp {

// Where failures go (the tracker client; a vector in tests).
class FailureSink {
 public:
  virtual ~FailureSink() = default;
  // Takes a failure. Called on the scheduler's thread; must not block long.
  virtual void Deliver(failedpolls::v1::PollFailure failure) = 0;
};

// Numbers shown in logs and metrics.
struct SchedulerStats {
  uint64_t polls_started = 0;
  uint64_t polls_failed = 0;
  // Rounds skipped because the target's previous poll was still running.
  uint64_t polls_skipped = 0;
};

class PollScheduler {
 public:
  // `config`, `transport`, `sink`, `clock` (and `metrics`, where the
  // scheduler registers its counters when set) must outlive the scheduler.
  // Every target is first due at construction time.
  PollScheduler(const PollerConfig& config, std::vector<PollTarget> plan,
                HttpTransport& transport, FailureSink& sink,
                const Clock& clock, MetricsRegistry* metrics = nullptr);

  // Starts every due poll, then drives transfers until the next poll is due
  // or `max_wait` has passed, whichever is sooner.
  void Step(absl::Duration max_wait);

  // Calls Step until `stop` becomes true, then lets in-flight polls finish
  // (each is bounded by its request timeout) and returns.
  void Run(const std::atomic<bool>& stop);

  const SchedulerStats& stats() const { return stats_; }
  const std::string& instance_id() const { return instance_id_; }

 private:
  struct TargetState {
    PollTarget target;
    absl::Time next_due;
    bool in_flight = false;
  };

  void StartPoll(TargetState& state, absl::Time now);
  void OnDone(TargetState& state, const RequestOutcome& outcome);

  const PollerConfig& config_;
  std::vector<TargetState> targets_;
  HttpTransport& transport_;
  FailureSink& sink_;
  const Clock& clock_;
  absl::BitGen rng_;
  std::string instance_id_;
  uint64_t next_sequence_ = 1;
  SchedulerStats stats_;
  Counter* polls_ = nullptr;     // label: source
  Counter* failed_ = nullptr;    // labels: source, category
  Counter* skipped_ = nullptr;   // label: source
  Histogram* poll_seconds_ = nullptr;  // label: source
};

}  // namespace qfp

#endif  // QFP_POLLER_POLL_SCHEDULER_H_
