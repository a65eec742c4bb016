// Delivers failures to the tracker over the FailedPollTracker.ReportFailures
// stream, keeping each one until the tracker acknowledges it.
#ifndef QFP_POLLER_TRACKER_CLIENT_H_
#define QFP_POLLER_TRACKER_CLIENT_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "poller-service/poll_scheduler.h"

namespace qfp {

struct TrackerClientOptions {
  std::string address = "127.0.0.1:50051";
  // Most failures held while waiting for acknowledgement; beyond it the
  // oldest are dropped, counted and logged.
  size_t max_pending = 100000;
  // Most failures per ReportFailuresRequest.
  size_t max_batch = 500;
  // Reconnect backoff: doubles from min to max, with +-20% jitter.
  absl::Duration min_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
};

struct TrackerClientStats {
  uint64_t delivered = 0;  // handed to the client
  uint64_t acknowledged = 0;
  uint64_t dropped_overflow = 0;
  uint64_t refused = 0;  // refusals received (each is resent later)
  uint64_t stream_starts = 0;
  size_t pending = 0;
};

// Thread-safe. A background thread keeps one stream open (reconnecting with
// backoff when the tracker is away) and sends every unacknowledged failure.
class TrackerClient final : public FailureSink {
 public:
  explicit TrackerClient(TrackerClientOptions options);
  ~TrackerClient() override;  // Calls Shutdown(0) if not done yet.

  void Start();
  void Deliver(failedpolls::v1::PollFailure failure) override;

  // Sends what is pending for at most `deadline`, then closes the stream.
  // Returns how many failures were still unacknowledged (and are lost unless
  // a spool keeps them).
  size_t Shutdown(absl::Duration deadline);

  TrackerClientStats stats() const;

 private:
  // (poller_id, instance_id, sequence): orders a poller's failures by age.
  using Key = std::tuple<std::string, std::string, uint64_t>;
  using Entry = failedpolls::v1::PollFailure;
  static Key KeyOf(const failedpolls::v1::FailureId& id);
  // Drops the oldest pending failures while over max_pending.
  void EnforceBoundLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void Loop();
  // Runs one stream until it breaks or shutdown; true if it ever got an ack.
  bool RunStream();

  const TrackerClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<failedpolls::v1::FailedPollTracker::Stub> stub_;

  mutable absl::Mutex mu_;
  // Every failure not yet acknowledged, oldest first.
  std::map<Key, Entry> pending_ ABSL_GUARDED_BY(mu_);
  // Keys to send on the current stream, in order (may name entries that
  // have since been acknowledged or dropped: skipped when popped).
  std::deque<Key> unsent_ ABSL_GUARDED_BY(mu_);
  // Refused keys and when to send them again.
  std::deque<std::pair<absl::Time, Key>> retry_ ABSL_GUARDED_BY(mu_);
  bool loop_done_ ABSL_GUARDED_BY(mu_) = false;
  TrackerClientStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  grpc::ClientContext* active_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace qfp

#endif  // QFP_POLLER_TRACKER_CLIENT_H_
