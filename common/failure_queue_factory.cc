#include "common/failure_queue_factory.h"

#include <utility>

#include "common/memory_failure_queue.h"
#include "common/sqlite_failure_queue.h"

namespace qfp {

absl::StatusOr<std::unique_ptr<FailureQueue>> OpenFailureQueue(
    FailureQueueOptions options) {
  if (options.directory.empty()) {
    MemoryQueueOptions memory;
    memory.limits = options.limits;
    memory.metrics = options.metrics;
    memory.metrics_prefix = std::move(options.metrics_prefix);
    return std::make_unique<MemoryFailureQueue>(std::move(memory));
  }
  SqliteQueueOptions sqlite;
  sqlite.directory = std::move(options.directory);
  sqlite.limits = options.limits;
  sqlite.purpose = std::move(options.purpose);
  sqlite.metrics = options.metrics;
  sqlite.metrics_prefix = std::move(options.metrics_prefix);
  return OpenSqliteFailureQueue(std::move(sqlite));
}

}  // namespace qfp
