// The FailedPollTracker gRPC service: accepts failures from producers, logs
// and counts each, turns it into a point and queues it for InfluxDB, then
// acknowledges it.
#ifndef QFP_TRACKER_TRACKER_SERVICE_H_
#define QFP_TRACKER_TRACKER_SERVICE_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "common/metrics.h"
#include "tracker-service/error_counter.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/tracker_config.h"
#include "tracker-service/write_ahead_log.h"
#include "tracker-service/write_pipeline.h"

namespace qfp {

struct TrackerServiceStats {
  uint64_t received = 0;    // failures read from streams
  uint64_t accepted = 0;    // acknowledged
  uint64_t duplicates = 0;  // acknowledged again without a second point
  uint64_t invalid = 0;     // refused: malformed
  uint64_t refused_full = 0;  // refused: write buffer full or shutting down
  uint64_t refused_wal = 0;   // refused: could not be made durable
};

class TrackerService final
    : public failedpolls::v1::FailedPollTracker::Service {
 public:
  // `pipeline` is null when the config writes no points; `counter` is null
  // when error tracking is off; `wal` is null when no walDirectory is set
  // (then a failure is acknowledged once it is queued in memory). All must
  // outlive the service.
  // `metrics`, when set, gets the service's counters registered.
  TrackerService(const TrackerConfig& config, ErrorCounter* counter,
                 WritePipeline* pipeline, WriteAheadLog* wal = nullptr,
                 MetricsRegistry* metrics = nullptr);

  grpc::Status ReportFailures(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<failedpolls::v1::ReportFailuresResponse,
                               failedpolls::v1::ReportFailuresRequest>* stream)
      override;

  grpc::Status GetErrorStats(
      grpc::ServerContext* context,
      const failedpolls::v1::GetErrorStatsRequest* request,
      failedpolls::v1::GetErrorStatsResponse* response) override;

  TrackerServiceStats stats() const;

 private:
  // Handles one request: every failure in it is accepted or refused in
  // `response`. Accepted ones were logged, made durable (one WAL append for
  // the whole request), queued for InfluxDB and counted.
  void Handle(const failedpolls::v1::ReportFailuresRequest& request,
              failedpolls::v1::ReportFailuresResponse& response);
  // Logs refusals as a summary (first one, then every 10 s).
  void LogRefusal(size_t n, const std::string& why);
  // `kind` labels the refusal in the metrics: invalid, buffer_full, wal.
  void Refuse(const failedpolls::v1::FailureId& id, std::string reason,
              const char* kind,
              failedpolls::v1::ReportFailuresResponse& response);
  // Why `failure` cannot be written, or "" when it is well-formed.
  static std::string Invalid(const failedpolls::v1::PollFailure& failure);
  // True when `key` was accepted recently; otherwise remembers it.
  bool SeenBefore(const std::string& key);

  const TrackerConfig& config_;
  ErrorCounter* const counter_;
  WritePipeline* const pipeline_;
  WriteAheadLog* const wal_;
  PointSchema schema_;
  Counter* received_ = nullptr;  // label: error_type
  Counter* accepted_ = nullptr;
  Counter* duplicates_ = nullptr;
  Counter* refused_ = nullptr;  // label: reason

  mutable absl::Mutex mu_;
  TrackerServiceStats stats_ ABSL_GUARDED_BY(mu_);
  // Recently accepted ids, bounded FIFO: a re-sent failure is acknowledged
  // without a second point.
  absl::flat_hash_set<std::string> recent_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> recent_order_ ABSL_GUARDED_BY(mu_);
  absl::Time last_refusal_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  size_t refused_since_log_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace qfp

#endif  // QFP_TRACKER_TRACKER_SERVICE_H_
