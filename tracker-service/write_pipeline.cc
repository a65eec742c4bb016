#include "tracker-service/write_pipeline.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace qfp {
namespace {
// Longest slice of a rejected line quoted in a log message.
constexpr size_t kLoggedLineChars = 300;
}  // namespace

namespace {
const char* OutcomeName(WriteResult::Kind kind) {
  switch (kind) {
    case WriteResult::Kind::kOk:
      return "ok";
    case WriteResult::Kind::kBadPoints:
      return "bad_points";
    case WriteResult::Kind::kTooLarge:
      return "too_large";
    case WriteResult::Kind::kThrottled:
      return "throttled";
    case WriteResult::Kind::kAuth:
      return "auth";
    case WriteResult::Kind::kNotFound:
      return "not_found";
    case WriteResult::Kind::kRetryable:
      return "retryable";
  }
  return "unknown";
}
}  // namespace

WritePipeline::WritePipeline(InfluxWriter& writer,
                             WritePipelineOptions options)
    : writer_(writer), options_(std::move(options)) {
  if (MetricsRegistry* m = options_.metrics; m != nullptr) {
    points_written_ = &m->AddCounter("qfp_tracker_points_written_total",
                                     "Points InfluxDB confirmed.");
    points_rejected_ = &m->AddCounter(
        "qfp_tracker_points_rejected_total",
        "Points dropped without being written, by reason.", {"reason"});
    write_attempts_ = &m->AddCounter(
        "qfp_tracker_write_attempts_total",
        "HTTP writes to InfluxDB, by outcome.", {"outcome"});
    write_seconds_ = &m->AddHistogram(
        "qfp_tracker_write_duration_seconds",
        "Time of one HTTP write to InfluxDB.", {}, DefaultLatencyBuckets());
    m->AddCallbackGauge("qfp_tracker_buffered_points",
                        "Points waiting to be written to InfluxDB.",
                        [this] { return static_cast<double>(stats().buffered); });
    m->AddCallbackGauge("qfp_tracker_destination_healthy",
                        "1 while InfluxDB takes writes, 0 while it does not.",
                        [this] { return healthy() ? 1.0 : 0.0; });
  }
}

void WritePipeline::Observe(const WriteResult& result, absl::Duration took,
                            size_t points) {
  if (write_attempts_ == nullptr) return;
  write_attempts_->WithLabels({OutcomeName(result.kind)}).Increment();
  write_seconds_->Observe(took);
  if (result.kind == WriteResult::Kind::kOk) points_written_->Increment(points);
}

WritePipeline::~WritePipeline() { Stop(absl::ZeroDuration()); }

void WritePipeline::Start() {
  absl::MutexLock lock(&mu_);
  if (!threads_.empty() || stopping_) return;
  const int n = std::max(1, options_.concurrent_writes);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
}

absl::Status WritePipeline::Enqueue(std::vector<std::string> lines) {
  std::vector<PendingPoint> points;
  points.reserve(lines.size());
  for (std::string& line : lines) {
    points.push_back(PendingPoint{std::move(line), 0});
  }
  return Enqueue(std::move(points));
}

absl::Status WritePipeline::Enqueue(std::vector<PendingPoint> points) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("the tracker is shutting down");
  }
  if (buffer_.size() + points.size() > options_.max_buffered) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "write buffer full (", buffer_.size(), " of ", options_.max_buffered,
        " points waiting for ", writer_.Describe(), ")"));
  }
  if (buffer_.empty()) oldest_enqueued_ = absl::Now();
  for (PendingPoint& point : points) buffer_.push_back(std::move(point));
  return absl::OkStatus();
}

void WritePipeline::EnqueueReplay(std::vector<PendingPoint> points) {
  absl::MutexLock lock(&mu_);
  if (buffer_.empty()) oldest_enqueued_ = absl::Now();
  for (PendingPoint& point : points) buffer_.push_back(std::move(point));
}

void WritePipeline::Settle(const std::vector<PendingPoint>& batch,
                           size_t begin, size_t end) {
  if (!options_.on_settled) return;
  std::vector<uint64_t> lsns;
  for (size_t i = begin; i < end; ++i) {
    if (batch[i].lsn != 0) lsns.push_back(batch[i].lsn);
  }
  if (!lsns.empty()) options_.on_settled(lsns);
}

size_t WritePipeline::Stop(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + deadline;
    }
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  return buffer_.size() + unwritten_on_exit_;
}

bool WritePipeline::healthy() const {
  absl::MutexLock lock(&mu_);
  return healthy_;
}

WritePipelineStats WritePipeline::stats() const {
  absl::MutexLock lock(&mu_);
  WritePipelineStats stats = stats_;
  stats.buffered = buffer_.size();
  return stats;
}

void WritePipeline::SetHealthy(bool healthy, const std::string& why) {
  absl::MutexLock lock(&mu_);
  if (healthy_ == healthy) return;
  healthy_ = healthy;
  if (healthy) {
    spdlog::info("writes to {} succeed again", writer_.Describe());
  } else {
    spdlog::warn("writes to {} failing: {}; points are kept and retried",
                 writer_.Describe(), why);
  }
}

bool WritePipeline::Pause(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  const absl::Time until = std::min(absl::Now() + delay, stop_deadline_);
  auto past = [this, until]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::Now() >= until || (stopping_ && absl::Now() >= stop_deadline_);
  };
  // Re-checked at least every 100 ms so a Stop() shortens the wait.
  while (!past()) {
    mu_.AwaitWithTimeout(absl::Condition(&past), absl::Milliseconds(100));
  }
  return !(stopping_ && absl::Now() >= stop_deadline_);
}

bool WritePipeline::PrepareWithRetry(absl::BitGen& rng) {
  absl::Duration backoff = options_.min_backoff;
  absl::Status status = writer_.Prepare();
  while (!status.ok()) {
    SetHealthy(false, std::string(status.message()));
    if (!Pause(backoff * absl::Uniform(rng, 0.8, 1.2))) return false;
    {
      absl::MutexLock lock(&mu_);
      // Shutting down with nothing to write: no reason to keep trying.
      if (stopping_ && buffer_.empty()) return false;
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
    status = writer_.Prepare();
  }
  SetHealthy(true, "");
  return true;
}

void WritePipeline::Loop() {
  absl::BitGen rng;
  // The database is made ready at start, as Butler SOS does, not at the
  // first failure: dashboards can query it from the beginning.
  {
    absl::MutexLock lock(&prepare_mu_);
    if (!prepared_) {
      if (!PrepareWithRetry(rng)) return;
      prepared_ = true;
    }
  }
  while (true) {
    std::vector<PendingPoint> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || buffer_.size() >= options_.max_batch ||
               (!buffer_.empty() &&
                absl::Now() >= oldest_enqueued_ + options_.flush_interval);
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100));
      if (stopping_ &&
          (buffer_.empty() || absl::Now() >= stop_deadline_)) {
        return;
      }
      if (!ready() || buffer_.empty()) continue;
      const size_t n = std::min(buffer_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(buffer_.front()));
        buffer_.pop_front();
      }
      oldest_enqueued_ = absl::Now();
    }
    if (const size_t left = WriteBatch(batch); left > 0) {
      absl::MutexLock lock(&mu_);
      unwritten_on_exit_ += left;
      return;
    }
  }
}

size_t WritePipeline::WriteBatch(const std::vector<PendingPoint>& batch) {
  absl::BitGen rng;
  absl::Duration backoff = options_.min_backoff;
  // Ranges still to write, last one first; bad points split a range in two.
  std::vector<std::pair<size_t, size_t>> todo = {{0, batch.size()}};
  while (!todo.empty()) {
    const auto [begin, end] = todo.back();
    std::string body;
    for (size_t i = begin; i < end; ++i) {
      if (i > begin) body.push_back('\n');
      body.append(batch[i].line);
    }
    const absl::Time sent = absl::Now();
    const WriteResult result = writer_.Write(body);
    const size_t n = end - begin;
    Observe(result, absl::Now() - sent, n);
    absl::Duration delay;
    switch (result.kind) {
      case WriteResult::Kind::kOk: {
        todo.pop_back();
        Settle(batch, begin, end);
        absl::MutexLock lock(&mu_);
        stats_.points_written += n;
        ++stats_.writes_ok;
        break;
      }
      case WriteResult::Kind::kBadPoints:
      case WriteResult::Kind::kTooLarge: {
        todo.pop_back();
        {
          absl::MutexLock lock(&mu_);
          ++stats_.writes_failed;
        }
        if (n > 1) {
          // Re-sending lines InfluxDB already stored from a partial write is
          // harmless: the same series and timestamp overwrite themselves.
          const size_t mid = begin + n / 2;
          todo.emplace_back(mid, end);
          todo.emplace_back(begin, mid);
          break;
        }
        Settle(batch, begin, end);
        if (points_rejected_ != nullptr) {
          points_rejected_
              ->WithLabels({result.kind == WriteResult::Kind::kTooLarge
                                ? "too_large"
                                : "bad_point"})
              .Increment();
        }
        absl::MutexLock lock(&mu_);
        ++stats_.points_rejected;
        spdlog::warn("{} rejected a point (HTTP {}: {}); dropped: {}",
                     writer_.Describe(), result.http_status, result.message,
                     batch[begin].line.substr(0, kLoggedLineChars));
        break;
      }
      case WriteResult::Kind::kThrottled:
        delay = result.retry_after > absl::ZeroDuration() ? result.retry_after
                                                          : backoff;
        break;
      case WriteResult::Kind::kAuth:
        spdlog::error(
            "{} refused our credentials (HTTP {}: {}); {} points kept, "
            "retrying in {}s",
            writer_.Describe(), result.http_status, result.message, n,
            absl::ToInt64Seconds(options_.auth_retry));
        delay = options_.auth_retry;
        break;
      case WriteResult::Kind::kNotFound:
        // The database went away (dropped by someone): create it again.
        if (absl::Status status = writer_.Prepare(); !status.ok()) {
          spdlog::warn("{}: {}", writer_.Describe(), std::string(status.message()));
        }
        delay = backoff;
        break;
      case WriteResult::Kind::kRetryable:
        delay = backoff;
        break;
    }
    if (delay > absl::ZeroDuration()) {
      {
        absl::MutexLock lock(&mu_);
        ++stats_.writes_failed;
      }
      SetHealthy(false, absl::StrCat("HTTP ", result.http_status, ": ",
                                     result.message));
      if (!Pause(delay * absl::Uniform(rng, 0.8, 1.2))) {
        // Out of time: what is left of the batch stays unwritten.
        size_t left = 0;
        for (const auto& [b, e] : todo) left += e - b;
        return left;
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
    } else {
      SetHealthy(true, "");
    }
  }
  return 0;
}

}  // namespace qfp
