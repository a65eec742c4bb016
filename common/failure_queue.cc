#include "common/failure_queue.h"

#include <utility>

#include "absl/synchronization/notification.h"

namespace qfp {

absl::StatusOr<std::vector<int64_t>> FailureQueue::AppendAndWait(
    std::vector<std::string> payloads) {
  // `done` runs exactly once (the contract), so the wait always ends; it
  // writes `result` before Notify, and Notify/Wait order the two threads.
  absl::StatusOr<std::vector<int64_t>> result =
      absl::InternalError("failure queue never called back");
  absl::Notification committed;
  Append(std::move(payloads),
         [&result, &committed](absl::StatusOr<std::vector<int64_t>> ids) {
           result = std::move(ids);
           committed.Notify();
         });
  committed.WaitForNotification();
  return result;
}

}  // namespace qfp
