#include "common/memory_failure_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace qfp {
namespace {

std::string Prefix(const MemoryQueueOptions& options) {
  return options.metrics_prefix.empty() ? "qfp_queue" : options.metrics_prefix;
}

}  // namespace

MemoryFailureQueue::MemoryFailureQueue(MemoryQueueOptions options)
    : limits_(options.limits),
      own_metrics_(options.metrics == nullptr
                       ? std::make_unique<MetricsRegistry>()
                       : nullptr),
      registry_(options.metrics != nullptr ? *options.metrics : *own_metrics_),
      commits_(registry_.AddCounter(
          Prefix(options) + "_commits_total",
          "Appends stored in the in-memory failure queue.")),
      dropped_(registry_.AddCounter(
          Prefix(options) + "_dropped_total",
          "Records dropped, oldest first, to make room for newer ones "
          "(overflow: drop_oldest).")),
      levels_(std::make_shared<Levels>()),
      drop_log_(absl::Seconds(10)) {
  std::shared_ptr<Levels> levels = levels_;
  registry_.AddCallbackGauge(
      Prefix(options) + "_records", "Records held in the failure queue.",
      [levels] { return static_cast<double>(levels->records.load()); });
  registry_.AddCallbackGauge(
      Prefix(options) + "_bytes", "Payload bytes held in the failure queue.",
      [levels] { return static_cast<double>(levels->bytes.load()); });
}

MemoryFailureQueue::~MemoryFailureQueue() { Close(); }

void MemoryFailureQueue::PublishLevelsLocked() {
  levels_->records.store(records_.size());
  levels_->bytes.store(bytes_);
}

void MemoryFailureQueue::Append(std::vector<std::string> payloads,
                                AppendCallback done) {
  if (payloads.empty()) {
    done(std::vector<int64_t>{});
    return;
  }
  uint64_t batch_bytes = 0;
  for (const std::string& p : payloads) batch_bytes += p.size();
  const uint64_t batch_records = payloads.size();

  absl::StatusOr<std::vector<int64_t>> result;
  std::shared_ptr<const std::function<void()>> listener;
  uint64_t dropped_now = 0;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      result = absl::UnavailableError("failure queue (memory) is closed");
    } else if (batch_records > limits_.max_records ||
               batch_bytes > limits_.max_bytes) {
      result = absl::ResourceExhaustedError(absl::StrCat(
          "Append of ", batch_records, " records / ", batch_bytes,
          " bytes can never fit the failure queue's limits of ",
          limits_.max_records, " records / ", limits_.max_bytes, " bytes"));
    } else if (limits_.overflow == QueueLimits::Overflow::kRefuse &&
               (records_.size() + batch_records > limits_.max_records ||
                bytes_ + batch_bytes > limits_.max_bytes)) {
      result = absl::ResourceExhaustedError(absl::StrCat(
          "failure queue full: holds ", records_.size(), " records / ", bytes_,
          " bytes, limits ", limits_.max_records, " records / ",
          limits_.max_bytes, " bytes; this Append has ", batch_records,
          " records / ", batch_bytes, " bytes"));
    } else {
      std::vector<int64_t> ids;
      ids.reserve(payloads.size());
      for (std::string& p : payloads) {
        const int64_t id = next_id_++;
        bytes_ += p.size();
        records_.emplace_hint(records_.end(), id, std::move(p));
        ids.push_back(id);
      }
      while (records_.size() > limits_.max_records ||
             bytes_ > limits_.max_bytes) {
        auto oldest = records_.begin();
        bytes_ -= oldest->second.size();
        records_.erase(oldest);
        ++dropped_now;
      }
      commits_.Increment();
      if (dropped_now > 0) dropped_.Increment(dropped_now);
      PublishLevelsLocked();
      listener = listener_;
      result = std::move(ids);
    }
  }
  if (dropped_now > 0) {
    if (const uint64_t n = drop_log_.Add(dropped_now); n > 0) {
      spdlog::warn(
          "failure queue (memory) full: dropped the {} oldest records since "
          "the last report to make room (limits {} records / {} bytes)",
          n, limits_.max_records, limits_.max_bytes);
    }
  }
  done(std::move(result));
  if (listener != nullptr && *listener) (*listener)();
}

absl::StatusOr<std::vector<QueueRecord>> MemoryFailureQueue::Read(
    int64_t after_id, size_t max_records, uint64_t max_bytes) const {
  absl::MutexLock lock(&mu_);
  if (closed_)
    return absl::UnavailableError("failure queue (memory) is closed");
  std::vector<QueueRecord> out;
  uint64_t total = 0;
  for (auto it = records_.upper_bound(after_id);
       it != records_.end() && out.size() < max_records; ++it) {
    if (!out.empty() && total + it->second.size() > max_bytes) break;
    total += it->second.size();
    out.push_back(QueueRecord{it->first, it->second});
  }
  return out;
}

void MemoryFailureQueue::Release(absl::Span<const int64_t> ids) {
  std::shared_ptr<const std::function<void()>> listener;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    bool released = false;
    for (const int64_t id : ids) {
      auto it = records_.find(id);
      if (it == records_.end()) continue;
      bytes_ -= it->second.size();
      records_.erase(it);
      released = true;
    }
    if (!released) return;
    PublishLevelsLocked();
    listener = listener_;
  }
  if (listener != nullptr && *listener) (*listener)();
}

void MemoryFailureQueue::ReleaseRange(int64_t first, int64_t last) {
  if (first > last) return;
  std::shared_ptr<const std::function<void()>> listener;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    auto begin = records_.lower_bound(first);
    auto end = records_.upper_bound(last);
    if (begin == end) return;
    for (auto it = begin; it != end; ++it) bytes_ -= it->second.size();
    records_.erase(begin, end);
    PublishLevelsLocked();
    listener = listener_;
  }
  if (listener != nullptr && *listener) (*listener)();
}

void MemoryFailureQueue::SetCommitListener(std::function<void()> listener) {
  auto shared =
      std::make_shared<const std::function<void()>>(std::move(listener));
  absl::MutexLock lock(&mu_);
  listener_ = std::move(shared);
}

void MemoryFailureQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

QueueStats MemoryFailureQueue::stats() const {
  QueueStats s;
  {
    absl::MutexLock lock(&mu_);
    s.records = records_.size();
    s.bytes = bytes_;
  }
  s.dropped = dropped_.value();
  s.commits = commits_.value();
  return s;
}

}  // namespace qfp
