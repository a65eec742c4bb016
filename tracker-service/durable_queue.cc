#include "tracker-service/durable_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/failure_queue_factory.h"

namespace qfp::tracker {

absl::StatusOr<std::unique_ptr<DurableQueue>> DurableQueue::Open(
    DurableQueueOptions options, InfluxWriter& writer,
    MetricsRegistry& metrics) {
  QueueLimits limits;
  limits.max_records = options.max_records;
  limits.max_bytes = options.max_bytes;
  // A full tracker refuses: the producer keeps the failures and resends.
  limits.overflow = QueueLimits::Overflow::kRefuse;
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue = OpenFailureQueue(
      FailureQueueOptions{options.directory, limits, "qs-error-tracker queue",
                          &metrics, "qfp_tracker_queue"});
  if (!queue.ok()) return queue.status();
  return std::unique_ptr<DurableQueue>(
      new DurableQueue(*std::move(queue), writer, options.pipeline, metrics));
}

DurableQueue::DurableQueue(std::unique_ptr<FailureQueue> queue,
                           InfluxWriter& writer,
                           const WritePipelineOptions& options,
                           MetricsRegistry& metrics)
    : queue_(std::move(queue)), pipeline_(writer, *queue_, options, metrics) {}

DurableQueue::~DurableQueue() { Stop(absl::ZeroDuration()); }

void DurableQueue::Start() { pipeline_.Start(); }

void DurableQueue::Append(std::vector<std::string> lines, AppendCallback done) {
  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = stopped_;
  }
  // After Stop the store may be closed; it would refuse too, less clearly.
  if (stopped) {
    done(absl::UnavailableError("the tracker is shutting down"));
    return;
  }
  queue_->Append(std::move(lines),
                 [done = std::move(done)](
                     absl::StatusOr<std::vector<int64_t>> ids) mutable {
                   done(ids.status());
                 });
}

uint64_t DurableQueue::Stop(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return queue_->stats().records;
    stopped_ = true;
  }
  pipeline_.Stop(deadline);
  // Commits the last releases, so the count below is what stays.
  queue_->Close();
  return queue_->stats().records;
}

bool DurableQueue::healthy(std::string* why) const {
  std::string destination;
  if (!pipeline_.healthy(&destination)) {
    if (why != nullptr) *why = absl::StrCat("InfluxDB: ", destination);
    return false;
  }
  const QueueStats stats = queue_->stats();
  if (!stats.last_error.ok()) {
    if (why != nullptr) {
      *why = absl::StrCat(queue_->Describe(),
                          " cannot commit: ", stats.last_error.message());
    }
    return false;
  }
  if (why != nullptr) why->clear();
  return true;
}

}  // namespace qfp::tracker
