// The tracker's path for an accepted failure, in one place:
//   Append (the gRPC handler)  -> committed to the FailureQueue
//   -> acknowledged to the producer (by the caller, after Append returns OK)
//   -> read in batches by the WritePipeline -> stored by InfluxDB
//   -> released from the queue.
// With a directory (Butler-SOS.failedPolls.tracker.walDirectory) the queue
// is a SqliteFailureQueue: nothing is acknowledged before SQLite committed
// it, and what InfluxDB has not confirmed when the tracker stops or crashes
// is written after the next start (the pipeline starts from the oldest
// record). Without one it is a MemoryFailureQueue, lost at exit.
//
// A record's payload is the failure's line-protocol line, encoded once when
// it was accepted, so `sqlite3 failures.db "SELECT payload FROM failures"`
// shows exactly what will be written (docs/storage.md).
//
// Memory stays bounded whatever the backlog: it waits in the queue, and only
// the batches in flight are in memory.
//
// Thread-safe.
#ifndef QFP_TRACKER_DURABLE_QUEUE_H_
#define QFP_TRACKER_DURABLE_QUEUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/failure_queue.h"
#include "common/metrics.h"
#include "tracker-service/influx_writer.h"
#include "tracker-service/write_pipeline.h"

namespace qfp::tracker {

struct DurableQueueOptions {
  // walDirectory; empty: the queue is in memory only.
  std::string directory;
  // Most points waiting (maxBufferedPoints) and most payload bytes
  // (walMaxBytes); beyond either, Append refuses.
  uint64_t max_records = 1000000;
  uint64_t max_bytes = uint64_t{1} << 30;
  WritePipelineOptions pipeline;
};

class DurableQueue {
 public:
  // Opens the store (FailedPrecondition naming the directory when it cannot
  // be created, locked or read) and prepares the pipeline. `writer` and
  // `metrics` must outlive the queue.
  static absl::StatusOr<std::unique_ptr<DurableQueue>> Open(
      DurableQueueOptions options, InfluxWriter& writer,
      MetricsRegistry& metrics);

  ~DurableQueue();  // Stop(0) if not stopped.

  // Starts writing, oldest record first.
  void Start();

  // Stores encoded points, all or none, and returns at once; `done` runs
  // exactly once, when they are committed (durable with a directory) or
  // could not be. Only after an OK may the caller acknowledge them. `done`
  // runs on the store's writer thread (or inline, when the outcome is known
  // at once) and delays the next commit while it runs: keep it short.
  // ResourceExhausted: over maxBufferedPoints or walMaxBytes.
  // Unavailable: the store could not commit (disk full, I/O error) or the
  // tracker is stopping. Either way nothing was stored.
  using AppendCallback = absl::AnyInvocable<void(absl::Status status)>;
  void Append(std::vector<std::string> lines, AppendCallback done);

  // Refuses further Appends, keeps writing for up to `deadline`, then closes
  // the store. Returns how many points were not written: kept on disk with
  // a directory, lost without one.
  uint64_t Stop(absl::Duration deadline);

  // False while points cannot reach InfluxDB or the store cannot commit;
  // `why` then says which and why.
  bool healthy(std::string* why = nullptr) const;

  // Points waiting (committed, not yet confirmed by InfluxDB).
  uint64_t backlog() const { return queue_->stats().records; }
  // The store's last commit error; OK while commits succeed.
  absl::Status store_error() const { return queue_->stats().last_error; }
  // Points found in the store at Open, left by an earlier run.
  uint64_t reloaded() const { return queue_->stats().reloaded; }
  bool durable() const { return queue_->durable(); }
  std::string Describe() const { return queue_->Describe(); }

 private:
  DurableQueue(std::unique_ptr<FailureQueue> queue, InfluxWriter& writer,
               const WritePipelineOptions& options, MetricsRegistry& metrics);

  const std::unique_ptr<FailureQueue> queue_;
  WritePipeline pipeline_;
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_DURABLE_QUEUE_H_
