// Delivers failures to the tracker over the FailedPollTracker.ReportFailures
// stream, keeping each one in the poller's FailureQueue (the spool) until the
// tracker acknowledges it.
#ifndef QFP_POLLER_TRACKER_CLIENT_H_
#define QFP_POLLER_TRACKER_CLIENT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/failure_queue.h"
#include "common/grpc_tls.h"
#include "common/log_rate_limiter.h"
#include "common/metrics.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "poller-service/attempt_ledger.h"
#include "poller-service/failure_sink.h"

namespace qfp::poller {

struct TrackerClientOptions {
  std::string address = "127.0.0.1:50051";
  // Mutual TLS to the tracker (Butler-SOS.failedPolls.poller.tls); off:
  // plaintext.
  GrpcTlsConfig tls;
  // Most failures per ReportFailuresRequest.
  size_t max_batch = 500;
  // Most failures sent and not yet answered; beyond it the client waits for
  // acknowledgements (flow control against a slow tracker).
  size_t max_in_flight = 5000;
  // Reconnect backoff. The channel's own connection backoff is held to the
  // same range, so a tracker that comes back is reached within backoff.max.
  BackOff::Options backoff{absl::Milliseconds(200), 2.0, 0.2,
                           absl::Seconds(10)};
  // How long a refused failure waits before it is offered again.
  absl::Duration refusal_delay = absl::Seconds(1);
};

// Heartbeats (Heartbeat in failed_polls.proto): who the poller is, how
// often it beats, and where its attempt counts come from.
struct HeartbeatOptions {
  std::string poller_id;
  std::string instance_id;
  absl::Duration interval = absl::Seconds(10);
  // Taken at every heartbeat; must outlive the client.
  AttemptLedger* ledger = nullptr;
};

// The heartbeat interval for `plan`: its shortest polling interval, held to
// [kMinHeartbeatInterval, kMaxHeartbeatInterval] (the most a silent poller
// goes unnoticed is missedHeartbeats times this); kMaxHeartbeatInterval for
// an empty plan.
inline constexpr absl::Duration kMinHeartbeatInterval = absl::Seconds(1);
inline constexpr absl::Duration kMaxHeartbeatInterval = absl::Seconds(60);
absl::Duration HeartbeatInterval(const std::vector<PollTarget>& plan);

// Thread-safe. Deliver hands a failure to the spool and returns at once: it
// never waits on a disk or the network (it runs on the poll loop). A
// background thread keeps one stream open (reconnecting with backoff when
// the tracker is away) and sends every failure the spool holds, oldest
// first; on each new stream everything held is offered again, so failures a
// SQLite spool kept from an earlier run go out with their original ids (the
// tracker deduplicates re-sends). An acknowledged failure is released from
// the spool.
//
// Threads: Deliver's caller (the poll loop); the sender thread, which owns
// the stream's writes; one reader thread per stream for acknowledgements;
// the spool's writer thread, which runs the spool's callbacks. mu_ guards
// the client's state and is never held while calling the spool.
//
// Outages are logged (spdlog): while the tracker cannot be reached (no
// connection, TLS refused) or its stream breaks, a warning names the
// tracker's address, the gRPC status code and message, how many failures
// wait in the spool and when the next try is, at most once per
// kOutageLogInterval; when a stream is answered again after an outage, one
// info line says how long it lasted and how many failures were waiting.
inline constexpr absl::Duration kOutageLogInterval = absl::Seconds(30);

class TrackerClient final : public FailureSink {
 public:
  // `spool` is open and owned by the client; `metrics` must outlive it.
  TrackerClient(TrackerClientOptions options,
                std::unique_ptr<FailureQueue> spool, MetricsRegistry& metrics);
  ~TrackerClient() override;  // Calls Shutdown(0) if not done yet.

  void Start();
  // Sends a heartbeat on every stream: at once when the stream opens, then
  // every `heartbeat.interval`, alone or with the failures of the next
  // request, and a last one with `stopping` set when Shutdown ends a
  // stream that still works. Best effort: a heartbeat is never stored, and
  // counts taken for one whose write fails are lost (the counts taken while
  // no stream is open wait in the ledger for the next one). Never delays a
  // failure: it rides in the request being written anyway or goes alone
  // between two. Call before or after Start, once.
  void EnableHeartbeats(HeartbeatOptions heartbeat);
  // Hands the failure to the spool (the oldest go if it is full).
  void Deliver(failedpolls::v1::PollFailure failure) override;

  // Sends what is pending for at most `deadline`, then closes the stream and
  // the spool. Returns how many failures were still unacknowledged and
  // stored: they stay in a SQLite spool (resent at the next start) or are
  // lost with a memory one. Failures the spool could not store at all are
  // counted in lost().
  uint64_t Shutdown(absl::Duration deadline);
  // Failures that never got into the spool (qfp_poller_failures_lost_total).
  uint64_t lost() const { return lost_.value(); }
  // Failures the tracker acknowledged since Start
  // (qfp_poller_failures_acknowledged_total).
  uint64_t acknowledged() const { return acknowledged_.value(); }
  // Failures the tracker refused as malformed and that were dropped.
  uint64_t rejected() const { return rejected_.value(); }
  // Heartbeats written to a stream (qfp_poller_heartbeats_sent_total).
  uint64_t heartbeats_sent() const { return heartbeats_sent_.value(); }

  const FailureQueue& spool() const { return *spool_; }

 private:
  // A failure sent on the current stream and not yet answered.
  struct InFlight {
    int64_t spool_id = 0;
  };
  using IdKey = std::tuple<std::string, std::string, uint64_t>;
  static IdKey KeyOf(const failedpolls::v1::FailureId& id);

  // Appends one serialized failure to the spool; hands it over again when
  // the spool's commit fails.
  void Store(std::string payload);
  void Loop();
  // Runs one stream until it breaks or shutdown; returns how it ended.
  grpc::Status RunStream();
  // Called when the channel did not connect in time: once it is in
  // TRANSIENT_FAILURE an outage begins, and a warning with the reason (from
  // Probe) is logged when one is due.
  void NoteUnreachable();
  // A stream ended while not stopping: an outage begins; a warning is
  // logged when one is due. `next_try` is the backoff before the next.
  void NoteStreamEnded(const grpc::Status& status, absl::Duration next_try);
  // Why the channel cannot carry a call: a call that does not wait for the
  // channel to be ready fails at once with gRPC's last connection error.
  grpc::Status Probe();
  // Seconds since the outage began, or -1 when there is none.
  double OutageSeconds() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Handles one answer of the tracker (on the stream's reader thread).
  void OnResponse(const failedpolls::v1::ReportFailuresResponse& response);
  // Builds the next request: due refusals first, then what the stream has
  // not offered yet. Empty when there is nothing to send now.
  failedpolls::v1::ReportFailuresRequest NextRequest();
  bool StoppedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a heartbeat to `request` when one is due (or `stopping`) and
  // heartbeats are on; returns whether it did.
  bool AddHeartbeat(failedpolls::v1::ReportFailuresRequest& request,
                    bool stopping);

  const TrackerClientOptions options_;
  const Clock& clock_;
  const std::unique_ptr<FailureQueue> spool_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<failedpolls::v1::FailedPollTracker::Stub> stub_;
  Counter& delivered_;
  Counter& acknowledged_;
  Counter& refused_;
  Counter& rejected_;  // malformed: dropped, not resent
  Counter& stream_starts_;
  Counter& store_errors_;
  Counter& lost_;
  Counter& heartbeats_sent_;
  LogRateLimiter outage_log_;

  mutable absl::Mutex mu_;
  // Bumped by every spool commit and every answer, so that the sender looks
  // at the spool again.
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  // The current stream: the last spool id it offered, what it has in flight
  // and the refused failures with when to offer them again.
  int64_t offered_up_to_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<IdKey, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<absl::Duration, int64_t>> retry_ ABSL_GUARDED_BY(mu_);
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  // Whether the current stream has had an answer (it is up).
  bool stream_answered_ ABSL_GUARDED_BY(mu_) = false;
  // When the current outage began (monotonic); none while a stream is up
  // or before the first failure to connect.
  std::optional<absl::Duration> outage_since_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();
  bool loop_done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* active_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Heartbeats: off while heartbeat_.ledger is null; when the next is due
  // (monotonic; reset to "now" by every new stream).
  HeartbeatOptions heartbeat_ ABSL_GUARDED_BY(mu_);
  absl::Duration next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::thread thread_;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_TRACKER_CLIENT_H_
