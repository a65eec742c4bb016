// Delivers failures to the tracker over the FailedPollTracker.ReportFailures
// stream, keeping each one in a FailureSpool until the tracker acknowledges
// it.
#ifndef QFP_POLLER_TRACKER_CLIENT_H_
#define QFP_POLLER_TRACKER_CLIENT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "poller-service/failure_sink.h"
#include "poller-service/failure_spool.h"

namespace qfp::poller {

struct TrackerClientOptions {
  std::string address = "127.0.0.1:50051";
  // Most failures per ReportFailuresRequest.
  size_t max_batch = 500;
  // Reconnect backoff: doubles from min to max, with +-20% jitter. The
  // channel's own connection backoff is held to the same range, so a
  // tracker that comes back is reached within max_backoff.
  absl::Duration min_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  // How long a refused failure waits before it is offered again.
  absl::Duration refusal_delay = absl::Seconds(1);
};

struct TrackerClientStats {
  uint64_t delivered = 0;  // handed to the client
  uint64_t acknowledged = 0;
  uint64_t dropped_overflow = 0;  // the spool's dropped()
  uint64_t refused = 0;  // refusals received (each is resent later)
  uint64_t stream_starts = 0;
  size_t pending = 0;  // the spool's size()
};

// Thread-safe. A background thread keeps one stream open (reconnecting with
// backoff when the tracker is away) and sends every failure the spool holds:
// on each new stream everything held is offered again, oldest first, so
// failures a DiskSpool reloaded from an earlier run go out with their
// original ids (the tracker deduplicates re-sends).
class TrackerClient final : public FailureSink {
 public:
  // `spool` must already be open (FailureSpool::Open); the client owns it.
  TrackerClient(TrackerClientOptions options,
                std::unique_ptr<FailureSpool> spool);
  ~TrackerClient() override;  // Calls Shutdown(0) if not done yet.

  void Start();
  // Adds the failure to the spool (the oldest go if it is full).
  void Deliver(failedpolls::v1::PollFailure failure) override;

  // Sends what is pending for at most `deadline`, then closes the stream.
  // Returns how many failures were still unacknowledged: they stay in the
  // spool (on disk for a DiskSpool, resent at the next start).
  size_t Shutdown(absl::Duration deadline);

  TrackerClientStats stats() const;
  const FailureSpool& spool() const { return *spool_; }

 private:
  void Loop();
  // Runs one stream until it breaks or shutdown; true if it ever got an ack.
  bool RunStream();
  bool FinishedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TrackerClientOptions options_;
  // Thread-safe on its own; mu_ is never held while it does disk work
  // except inside VisitFrom/Find, which only copy from memory.
  const std::unique_ptr<FailureSpool> spool_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<failedpolls::v1::FailedPollTracker::Stub> stub_;

  mutable absl::Mutex mu_;
  // Bumped on every Deliver and acknowledgement, so waiters on mu_ look at
  // the spool again.
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  // Refused failures and when to send them again.
  std::deque<std::pair<absl::Time, failedpolls::v1::FailureId>> retry_
      ABSL_GUARDED_BY(mu_);
  bool loop_done_ ABSL_GUARDED_BY(mu_) = false;
  TrackerClientStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  grpc::ClientContext* active_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_TRACKER_CLIENT_H_
