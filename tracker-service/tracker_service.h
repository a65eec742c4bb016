// The FailedPollTracker gRPC service: accepts failures from producers, turns
// each into a point and commits it to the DurableQueue, then logs, counts
// and acknowledges it. The handler knows nothing of how the queue stores.
//
// ReportFailures uses gRPC's callback (reactor) API so that one stream keeps
// several requests in flight: while the store commits one request, the next
// is read, checked and encoded, and the store's group commit takes them
// together. Each request still gets exactly one answer, in request order,
// sent only after everything it acknowledges was committed. A stream holds
// at most kRequestsInFlightPerStream requests; beyond that it stops reading
// (gRPC's flow control then holds the producer back).
#ifndef QFP_TRACKER_TRACKER_SERVICE_H_
#define QFP_TRACKER_TRACKER_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/log_rate_limiter.h"
#include "common/metrics.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpcpp/server_builder.h"
#include "tracker-service/coverage.h"
#include "tracker-service/durable_queue.h"
#include "tracker-service/error_counter.h"
#include "tracker-service/failure_check.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/heartbeat.h"
#include "tracker-service/poller_liveness.h"
#include "tracker-service/recent_failures.h"
#include "tracker-service/serial_executor.h"
#include "tracker-service/tracker_config.h"

namespace qfp::tracker {

// How long a connection may stay open without use. gRPC 1.51 cannot cap
// the number of connections, and each costs the tracker about 20-30 KB
// whether or not it ever sends a byte (measured: 10,000 idle TLS
// connections took 270 MB), so a stranger's connections must at least
// end: one that has not finished its handshake (TLS, or the HTTP/2
// preface) within `handshake` is closed, and so is one with no call open
// for `idle` (GOAWAY; gRPC clients reconnect at their next call). Our
// poller always holds its ReportFailures stream, so it is never idle.
struct ConnectionLimits {
  absl::Duration handshake = absl::Seconds(10);
  absl::Duration idle = absl::Seconds(60);
};

class TrackerService final
    : public failedpolls::v1::FailedPollTracker::
          WithRawCallbackMethod_ReportFailures<
              failedpolls::v1::FailedPollTracker::Service> {
 public:
  // `queue` is null when the config writes no points (then a failure is
  // logged and counted, and acknowledged at once); `counter` is null when
  // error tracking is off. The service registers its counters in `metrics`,
  // the one place its numbers are kept. All must outlive the service.
  // Each failure is checked against `limits` (failure_check.h) on
  // `clock`'s wall time.
  TrackerService(const TrackerConfig& config, ErrorCounter* counter,
                 DurableQueue* queue, MetricsRegistry& metrics,
                 FailureLimits limits = {},
                 const Clock& clock = SystemClock::Get());
  // Destroy only after the gRPC server serving it has shut down (then every
  // stream's OnDone has returned).
  ~TrackerService() override;

  // Requests read from one stream and not yet answered, at most. Bounds a
  // stream's memory to this many messages (each at most
  // kMaxRequestBytes) and lets group commits span requests.
  static constexpr int kRequestsInFlightPerStream = 4;
  // The largest request accepted (gRPC's default, stated): a bigger one
  // ends its stream with RESOURCE_EXHAUSTED. Our poller sends at most
  // maxBatch failures of a few hundred bytes each.
  static constexpr int kMaxRequestBytes = 4 << 20;
  // Failures in one request, at most: a request with more ends its stream
  // with RESOURCE_EXHAUSTED (stream_messages.h says why). Our poller sends
  // at most its maxBatch (500).
  static constexpr size_t kMaxFailuresPerRequest = 10000;
  // Streams one connection may have open at once (HTTP/2's
  // SETTINGS_MAX_CONCURRENT_STREAMS); a client queues any beyond.
  static constexpr int kMaxStreamsPerConnection = 16;
  // ReportFailures streams open at once in all; more are answered
  // RESOURCE_EXHAUSTED at once (the producer retries with back-off).
  static constexpr int kMaxStreams = 256;
  // ReportFailures streams one peer may have open at once, over all its
  // connections; more are answered RESOURCE_EXHAUSTED at once, so that one
  // peer opening many connections cannot take all kMaxStreams places. A
  // peer is the client's IP address without the port (PeerAddress). Not
  // the client certificate's identity under mutual TLS: the Helm chart
  // gives every poller the same certificate (mtls.poller.secretName) and
  // any certificate of the CA is a valid poller, so it would make all
  // pollers one peer. A poller holds one stream at a time
  // (poller-service/tracker_client.h), so 32 serves 32 pollers behind one
  // address (NAT, an egress proxy), twice a connection's
  // kMaxStreamsPerConnection, while one address holds at most an eighth
  // of kMaxStreams.
  static constexpr int kMaxStreamsPerPeer = 32;
  // The memory gRPC may use for its buffers in all; beyond it, gRPC stops
  // reading from connections until memory is free.
  static constexpr size_t kGrpcMemoryBytes = size_t{256} << 20;

  // Applies the limits above to the server that will serve this service;
  // the tracker's main and the tests build their servers with it.
  static void ApplyLimits(grpc::ServerBuilder& builder,
                          const ConnectionLimits& connections = {});

  // ReportFailures streams open now.
  int open_streams() const;

  // The peer a stream counts against for kMaxStreamsPerPeer: the address
  // of gRPC's peer URI (ServerContext::peer()) without scheme and port,
  // "ipv4:10.0.0.7:53412" -> "10.0.0.7", "ipv6:[fd00::7]:53412" (or
  // percent-encoded, "ipv6:%5Bfd00::7%5D:53412") -> "fd00::7". Any other
  // URI (a Unix socket: every client is local) is its own key, whole.
  static std::string PeerAddress(absl::string_view peer);

  // Raw bytes, parsed by stream_messages.h under kMaxFailuresPerRequest.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ReportFailures(
      grpc::CallbackServerContext* context) override;

  grpc::Status GetErrorStats(
      grpc::ServerContext* context,
      const failedpolls::v1::GetErrorStatsRequest* request,
      failedpolls::v1::GetErrorStatsResponse* response) override;

  // Failures accepted since start (the qfp_tracker_failures_accepted_total
  // counter).
  uint64_t accepted() const { return accepted_.value(); }

  // Reports pollers that went silent since the previous call (a warning and
  // one error point each, error_type POLLER, error_category silent) and,
  // with coverage.enable, configured targets no poller attempted
  // (coverage.h; error_category not_polled). The tracker's main calls it
  // every second; any thread, one at a time.
  void CheckLiveness();

  // Heartbeats used since start (qfp_tracker_heartbeats_received_total
  // minus the invalid ones).
  uint64_t heartbeats_used() const { return heartbeats_used_.value(); }

 private:
  class Stream;

  // One request from reading to answering. The pointers point into
  // `request`, which the admission owns.
  struct Admission {
    grpc::ByteBuffer raw_request;  // as read; parsed into `request`
    failedpolls::v1::ReportFailuresRequest request;
    failedpolls::v1::ReportFailuresResponse response;
    grpc::ByteBuffer raw_response;  // `response`, serialized for the write
    // Well-formed and new: stored, then acknowledged.
    std::vector<const failedpolls::v1::PollFailure*> batch;
    // The same id again in this request: shares the first copy's fate.
    std::vector<const failedpolls::v1::PollFailure*> repeats;
    std::vector<std::string> lines;  // batch's points, encoded
  };

  // First half of a request: refuses malformed failures, acknowledges ones
  // accepted before, and encodes the rest into `lines`, all in
  // `admission`. Any thread.
  void Admit(Admission& admission);
  // Second half, once the store answered for `lines` (OK when there were
  // none or no queue): accepts or refuses `batch` and `repeats`, logs and
  // counts the accepted ones. Any thread.
  void Conclude(Admission& admission, const absl::Status& stored);
  // `reason` labels the refusal in the metrics: a FailureProblem reason,
  // unencodable, buffer_full or store; `code` tells the producer whether to
  // send it again.
  // A request's heartbeat: checked, recorded for liveness, and written as
  // poll attempts points when enabled. A bad one is logged and ignored (the
  // request's failures go on). Any thread.
  void OnHeartbeat(const failedpolls::v1::Heartbeat& heartbeat,
                   const std::string& peer);
  // Stores points the tracker makes itself (kind: poll_attempts, silent,
  // not_polled) through the queue, best effort: one the queue cannot take
  // is counted and logged, never retried.
  void WriteOwnPoints(const std::vector<Point>& points, const char* kind);

  void Refuse(const failedpolls::v1::FailureId& id, std::string why,
              const char* reason, failedpolls::v1::RefusalCode code,
              failedpolls::v1::ReportFailuresResponse& response);

  const TrackerConfig& config_;
  ErrorCounter* const counter_;
  DurableQueue* const queue_;
  PointSchema schema_;
  const FailureLimits limits_;
  const Clock& clock_;
  Counter& received_;  // label: error_type
  Counter& accepted_;
  Counter& duplicates_;
  Counter& refused_;  // label: reason
  Counter& heartbeats_received_;
  Counter& heartbeats_used_;
  Counter& pollers_silent_;
  Counter& own_points_dropped_;  // label: kind
  AttemptsSchema attempts_schema_;
  // Null when missedHeartbeats is 0.
  std::unique_ptr<PollerLiveness> liveness_;
  // Null unless coverage.enable.
  std::unique_ptr<Coverage> coverage_;
  Counter& targets_not_polled_;
  LogRateLimiter heartbeat_log_{absl::Seconds(10)};
  LogRateLimiter own_points_log_{absl::Seconds(10)};
  // Ids accepted recently: a re-sent failure is acknowledged again without
  // a second point. Thread-safe on its own.
  RecentFailures recent_;
  // Producers resend refused failures every second while the cause lasts.
  LogRateLimiter refusal_log_{absl::Seconds(10)};
  LogRateLimiter malformed_log_{absl::Seconds(10)};
  LogRateLimiter stream_refusal_log_{absl::Seconds(10)};
  LogRateLimiter peer_refusal_log_{absl::Seconds(10)};
  // Streams refused at once: reason max_streams (kMaxStreams) or
  // max_streams_per_peer (kMaxStreamsPerPeer).
  Counter& streams_refused_;
  Gauge& streams_open_;  // open_streams_, for scrapers
  mutable absl::Mutex streams_mu_;
  int open_streams_ ABSL_GUARDED_BY(streams_mu_) = 0;
  // Open streams by PeerAddress; a peer leaves when its last stream ends,
  // so at most kMaxStreams entries.
  absl::flat_hash_map<std::string, int> peer_streams_
      ABSL_GUARDED_BY(streams_mu_);
  // Concludes committed requests (log, count, answer), so that the store's
  // writer thread only commits. Last: joined first, while all it uses lives.
  SerialExecutor concluder_{"qfp-conclude"};
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_TRACKER_SERVICE_H_
