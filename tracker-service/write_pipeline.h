// Moves points from the tracker's queue into InfluxDB.
#ifndef QFP_TRACKER_WRITE_PIPELINE_H_
#define QFP_TRACKER_WRITE_PIPELINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/failure_queue.h"
#include "common/metrics.h"
#include "tracker-service/influx_writer.h"

namespace qfp::tracker {

// What the pipeline did with the points it took from the queue, for the
// shutdown summary. Each record is counted once, when it leaves the queue:
// written (InfluxDB confirmed it) or dropped for one of two reasons. Owned by
// the caller; thread-safe.
struct WriteTotals {
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> dropped_bad_point{0};  // InfluxDB refused the line
  std::atomic<uint64_t> dropped_too_large{0};  // 413 for one line alone
};

struct WritePipelineOptions {
  size_t max_batch = 1000;  // influxdbConfig.maxBatchSize
  // Batches in flight at once. InfluxDB ingests several bodies in parallel;
  // two keep it busy while one batch is being compressed and sent.
  int concurrent_writes = 2;
  // A batch smaller than max_batch waits at most this long for more points.
  absl::Duration flush_interval = absl::Seconds(1);
  // Backoff for network errors, 5xx and setup (Prepare) failures.
  BackOff::Options backoff{absl::Milliseconds(100), 2.0, 0.2,
                           absl::Seconds(30)};
  // Wrong credentials, or a request InfluxDB refuses whatever its points
  // (kRequestRejected), will not fix themselves quickly: retry slowly.
  absl::Duration auth_retry = absl::Seconds(30);
  // True when the caller already ran the writer's Prepare() successfully
  // (the tracker does, at start, to stop on errors no retry can fix).
  bool prepared = false;
  // Counted into when not null; must outlive the pipeline.
  WriteTotals* totals = nullptr;
};

// Reads batches of points (one line-protocol line per record) from a
// FailureQueue in id order, writes them through an InfluxWriter on
// `concurrent_writes` threads, and releases each record from the queue once
// InfluxDB has stored it or rejected it as bad. Retry policy per answer:
// split around bad points and on 413, wait out throttling, back off on
// outages, retry auth failures and refused requests (a 400 that names no
// line) slowly, never dropping their points. Nothing is held in memory beyond
// the batches in flight: a backlog waits in the queue.
//
// Threads: `concurrent_writes` writer threads. Each gathers a batch (one at a
// time, under gather_mu_), then writes it without any lock held. The queue's
// commit listener only bumps a counter under mu_ and wakes them.
//
// Thread-safe.
class WritePipeline {
 public:
  // `writer`, `queue` and `metrics` must outlive the pipeline. Sets the
  // queue's commit listener.
  WritePipeline(InfluxWriter& writer, FailureQueue& queue,
                WritePipelineOptions options, MetricsRegistry& metrics,
                const Clock& clock = SystemClock::Get());
  ~WritePipeline();  // Stop(0) if still running.

  // Starts the writer threads. They begin with the oldest record in the
  // queue: records left by an earlier run are written first.
  void Start();

  // Keeps writing what the queue holds for up to `deadline`, then stops the
  // threads. Records not written stay in the queue (on disk for a
  // SqliteFailureQueue, written at the next start).
  void Stop(absl::Duration deadline);

  // False while the destination is unusable (Prepare or the last write
  // failed for a reason other than bad points); `why` then says why.
  bool healthy(std::string* why = nullptr) const;

 private:
  void Loop();
  // Prepare() until it succeeds; false when Stop's deadline came first.
  bool PrepareWithRetry();
  // Waits for a batch: max_batch records, or fewer once the oldest of them
  // has waited flush_interval, or whatever there is when stopping. Empty
  // when the pipeline should end.
  std::vector<QueueRecord> NextBatch();
  // Writes `batch`, splitting as answers require. Returns false when the
  // stop deadline came first (what is left stays in the queue).
  bool WriteBatch(const std::vector<QueueRecord>& batch);
  // Releases batch[begin, end) from the queue.
  void Settle(const std::vector<QueueRecord>& batch, size_t begin, size_t end);
  // Sleeps `delay` (monotonic), returning early (false) when the stop
  // deadline passes.
  bool Pause(absl::Duration delay);
  void SetHealthy(bool healthy, const std::string& why);
  bool PastStopDeadline() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Counts one write attempt's outcome and latency in the metrics.
  void Observe(const WriteResult& result, absl::Duration took, size_t points);

  InfluxWriter& writer_;
  FailureQueue& queue_;
  const WritePipelineOptions options_;
  const Clock& clock_;
  Counter& points_written_;
  Counter& points_rejected_;  // label: reason
  Counter& write_attempts_;   // label: outcome
  Histogram& write_seconds_;

  // Only one thread gathers at a time, so batches leave the queue in order.
  absl::Mutex gather_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The id of the last record handed to a writer thread.
  int64_t read_after_ ABSL_GUARDED_BY(gather_mu_) = 0;

  mutable absl::Mutex mu_;
  // Commits the queue reported; a change means records may be readable.
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  std::string unhealthy_reason_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
  // Prepare() runs once, by whichever writer thread comes first.
  absl::Mutex prepare_mu_ ABSL_ACQUIRED_BEFORE(gather_mu_);
  bool prepared_ ABSL_GUARDED_BY(prepare_mu_) = false;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_WRITE_PIPELINE_H_
