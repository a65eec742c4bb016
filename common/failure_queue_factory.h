// Opens the failure queue a service is configured for: in SQLite when it has
// a directory (spoolDirectory, walDirectory), in memory when it has none.
// Both services choose the same way; this is the one place that does.
#ifndef QFP_COMMON_FAILURE_QUEUE_FACTORY_H_
#define QFP_COMMON_FAILURE_QUEUE_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/failure_queue.h"
#include "common/metrics.h"

namespace qfp {

struct FailureQueueOptions {
  // Empty: a MemoryFailureQueue, lost at exit.
  std::string directory;
  QueueLimits limits;
  // SqliteQueueOptions::purpose ("qs-poller spool", ...).
  std::string purpose;
  // Where the queue registers its metrics, named <metrics_prefix>_...;
  // must outlive the queue.
  MetricsRegistry* metrics = nullptr;
  std::string metrics_prefix;
};

// The errors of OpenSqliteFailureQueue; a memory queue always opens.
absl::StatusOr<std::unique_ptr<FailureQueue>> OpenFailureQueue(
    FailureQueueOptions options);

}  // namespace qfp

#endif  // QFP_COMMON_FAILURE_QUEUE_FACTORY_H_
