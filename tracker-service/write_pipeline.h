// Gathers encoded points into batches and writes them through an
// InfluxWriter on one background thread, with the retry policy of each
// answer: split around bad points, wait out throttling, back off on outages.
#ifndef QFP_TRACKER_WRITE_PIPELINE_H_
#define QFP_TRACKER_WRITE_PIPELINE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "tracker-service/influx_writer.h"

namespace qfp {

// One encoded point and, when the write-ahead log holds it, its LSN.
struct PendingPoint {
  std::string line;
  uint64_t lsn = 0;  // 0: not in the write-ahead log
};

struct WritePipelineOptions {
  size_t max_batch = 1000;  // influxdbConfig.maxBatchSize
  // Batches in flight at once. InfluxDB ingests several bodies in parallel;
  // two keep it busy while one batch is being compressed and sent.
  int concurrent_writes = 2;
  absl::Duration flush_interval = absl::Seconds(1);
  // Most points held in memory; Enqueue refuses beyond it.
  size_t max_buffered = 1000000;
  // Backoff for network errors and 5xx: doubles from min to max, +-20%.
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);
  // Wrong credentials will not fix themselves quickly: retry slowly.
  absl::Duration auth_retry = absl::Seconds(30);
  // Called (on the pipeline's thread) with the LSNs of points that are
  // settled: stored by InfluxDB, or rejected by it as bad and dropped.
  std::function<void(const std::vector<uint64_t>&)> on_settled;
  // Where to register the pipeline's metrics; none when null. Must outlive
  // the pipeline.
  MetricsRegistry* metrics = nullptr;
};

struct WritePipelineStats {
  uint64_t points_written = 0;
  uint64_t points_rejected = 0;  // refused by InfluxDB as bad, not retried
  uint64_t writes_ok = 0;
  uint64_t writes_failed = 0;  // attempts answered other than 2xx
  size_t buffered = 0;
};

// Thread-safe.
class WritePipeline {
 public:
  // `writer` must outlive the pipeline.
  WritePipeline(InfluxWriter& writer, WritePipelineOptions options);
  ~WritePipeline();  // Stop(0) if still running.

  void Start();

  // Queues encoded points, all or none: ResourceExhausted when they would
  // take the buffer over max_buffered (the caller keeps them).
  absl::Status Enqueue(std::vector<PendingPoint> points);
  absl::Status Enqueue(std::vector<std::string> lines);
  // Queues points replayed from the write-ahead log at start, whatever the
  // cap: they are already durable and must not be refused.
  void EnqueueReplay(std::vector<PendingPoint> points);

  // Stops taking points, keeps writing for up to `deadline`, then stops the
  // thread. Returns how many points were left unwritten.
  size_t Stop(absl::Duration deadline);

  // False while the destination is unusable (Prepare or the last write
  // failed for a reason other than bad points).
  bool healthy() const;
  WritePipelineStats stats() const;

 private:
  enum class Step { kDone, kRetry };

  void Loop();
  // Prepare() until it succeeds; false when Stop's deadline came first.
  bool PrepareWithRetry(absl::BitGen& rng);
  // Writes `batch`, splitting as answers require. Returns how many points
  // are left unwritten because the stop deadline came first (0: all done).
  size_t WriteBatch(const std::vector<PendingPoint>& batch);
  void Settle(const std::vector<PendingPoint>& batch, size_t begin,
              size_t end);
  // Sleeps `delay`, returning early (false) when the stop deadline passes.
  bool Pause(absl::Duration delay);
  void SetHealthy(bool healthy, const std::string& why);

  // Counts one write attempt's outcome and latency in the metrics.
  void Observe(const WriteResult& result, absl::Duration took, size_t points);

  InfluxWriter& writer_;
  const WritePipelineOptions options_;
  // Registered in the constructor when options.metrics is set.
  Counter* points_written_ = nullptr;
  Counter* points_rejected_ = nullptr;  // label: reason
  Counter* write_attempts_ = nullptr;   // label: outcome
  Histogram* write_seconds_ = nullptr;

  mutable absl::Mutex mu_;
  std::deque<PendingPoint> buffer_ ABSL_GUARDED_BY(mu_);
  absl::Time oldest_enqueued_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  size_t unwritten_on_exit_ ABSL_GUARDED_BY(mu_) = 0;
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  WritePipelineStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
  // Prepare() runs once, by whichever writer thread comes first.
  absl::Mutex prepare_mu_;
  bool prepared_ ABSL_GUARDED_BY(prepare_mu_) = false;
};

}  // namespace qfp

#endif  // QFP_TRACKER_WRITE_PIPELINE_H_
