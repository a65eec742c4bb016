// FailureQueue in memory only (see failure_queue.h for the contract), for
// deployments without a directory to keep failures in. Nothing survives the
// process: durable() is false.
//
// Every call is complete before it returns: Append runs `done` inline (OK
// with the ids, or the refusal), and the commit listener runs inline after
// an Append that stored something and after a Release or ReleaseRange that
// released something, always without the queue lock held. "Committed" here
// means "in the map"; stats().pending is always 0.
//
// Records are kept in a B-tree keyed by id, so Append, Release by id and the
// start of a Read are O(log n), ReleaseRange is O(log n + released) and
// dropping the oldest is O(1) each, for the million records a queue may hold.
//
// Thread-safe; one mutex guards everything.
#ifndef QFP_COMMON_MEMORY_FAILURE_QUEUE_H_
#define QFP_COMMON_MEMORY_FAILURE_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/synchronization/mutex.h"
#include "common/failure_queue.h"
#include "common/log_rate_limiter.h"
#include "common/metrics.h"

namespace qfp {

struct MemoryQueueOptions {
  QueueLimits limits;
  // Where the queue's metrics go; when null the queue keeps a private
  // registry (same code path, nothing exported). One queue per prefix per
  // registry: registering a prefix twice aborts (see metrics.h).
  MetricsRegistry* metrics = nullptr;
  // Metric names are <prefix>_records, _bytes (gauges), _commits_total and
  // _dropped_total.
  std::string metrics_prefix = "qfp_queue";
};

class MemoryFailureQueue final : public FailureQueue {
 public:
  explicit MemoryFailureQueue(MemoryQueueOptions options);
  ~MemoryFailureQueue() override;
  MemoryFailureQueue(const MemoryFailureQueue&) = delete;
  MemoryFailureQueue& operator=(const MemoryFailureQueue&) = delete;

  void Append(std::vector<std::string> payloads, AppendCallback done) override;
  // After Close: Unavailable (the records are gone with the queue's life).
  absl::StatusOr<std::vector<QueueRecord>> Read(
      int64_t after_id, size_t max_records, uint64_t max_bytes) const override;
  void Release(absl::Span<const int64_t> ids) override;
  void ReleaseRange(int64_t first, int64_t last) override;
  void SetCommitListener(std::function<void()> listener) override;
  void Close() override;
  QueueStats stats() const override;
  bool durable() const override { return false; }
  std::string Describe() const override { return "memory"; }

 private:
  // Gauge values, shared with the registry's callbacks so that a registry
  // outliving the queue reads the last values instead of freed memory.
  struct Levels {
    std::atomic<uint64_t> records{0};
    std::atomic<uint64_t> bytes{0};
  };

  void PublishLevelsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const QueueLimits limits_;
  // Declared before the metric references, which may point into it.
  const std::unique_ptr<MetricsRegistry> own_metrics_;
  MetricsRegistry& registry_;
  Counter& commits_;
  Counter& dropped_;
  const std::shared_ptr<Levels> levels_;
  LogRateLimiter drop_log_;

  mutable absl::Mutex mu_;
  absl::btree_map<int64_t, std::string> records_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const std::function<void()>> listener_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qfp

#endif  // QFP_COMMON_MEMORY_FAILURE_QUEUE_H_
