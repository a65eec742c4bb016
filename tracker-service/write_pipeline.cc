#include "tracker-service/write_pipeline.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/log_rate_limiter.h"
#include "spdlog/spdlog.h"

namespace qfp::tracker {
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
    case WriteResult::Kind::kRequestRejected:
      return "request_rejected";
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

WritePipeline::WritePipeline(InfluxWriter& writer, FailureQueue& queue,
                             WritePipelineOptions options,
                             MetricsRegistry& metrics, const Clock& clock)
    : writer_(writer),
      queue_(queue),
      options_(std::move(options)),
      clock_(clock),
      points_written_(metrics.AddCounter("qfp_tracker_points_written_total",
                                         "Points InfluxDB confirmed.")),
      points_rejected_(metrics.AddCounter(
          "qfp_tracker_points_rejected_total",
          "Points dropped without being written, by reason.", {"reason"})),
      write_attempts_(metrics.AddCounter("qfp_tracker_write_attempts_total",
                                         "HTTP writes to InfluxDB, by outcome.",
                                         {"outcome"})),
      write_seconds_(metrics.AddHistogram("qfp_tracker_write_duration_seconds",
                                          "Time of one HTTP write to InfluxDB.",
                                          {}, DefaultLatencyBuckets())) {
  metrics.AddCallbackGauge(
      "qfp_tracker_destination_healthy",
      "1 while InfluxDB takes writes, 0 while it does not.",
      [this] { return healthy() ? 1.0 : 0.0; });
  queue_.SetCommitListener([this] {
    absl::MutexLock lock(&mu_);
    ++commits_;
  });
}

void WritePipeline::Observe(const WriteResult& result, absl::Duration took,
                            size_t points) {
  write_attempts_.WithLabels({OutcomeName(result.kind)}).Increment();
  write_seconds_.Observe(took);
  if (result.kind == WriteResult::Kind::kOk) {
    points_written_.Increment(points);
    if (options_.totals != nullptr) options_.totals->written += points;
  }
}

WritePipeline::~WritePipeline() {
  Stop(absl::ZeroDuration());
  queue_.SetCommitListener(nullptr);
}

void WritePipeline::Start() {
  absl::MutexLock lock(&mu_);
  if (!threads_.empty() || stopping_) return;
  const int n = std::max(1, options_.concurrent_writes);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
}

void WritePipeline::Settle(const std::vector<QueueRecord>& batch, size_t begin,
                           size_t end) {
  // A batch is a run of consecutive records of the queue (read in id order
  // with nothing skipped), so its ids can be released as one range.
  if (begin < end) queue_.ReleaseRange(batch[begin].id, batch[end - 1].id);
}

void WritePipeline::Stop(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = clock_.Monotonic() + deadline;
    }
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

bool WritePipeline::healthy(std::string* why) const {
  absl::MutexLock lock(&mu_);
  if (why != nullptr) *why = unhealthy_reason_;
  return healthy_;
}

void WritePipeline::SetHealthy(bool healthy, const std::string& why) {
  absl::MutexLock lock(&mu_);
  unhealthy_reason_ = healthy ? "" : why;
  if (healthy_ == healthy) return;
  healthy_ = healthy;
  if (healthy) {
    spdlog::info("writes to {} succeed again", writer_.Describe());
  } else {
    spdlog::warn("writes to {} failing: {}; points are kept and retried",
                 writer_.Describe(), why);
  }
}

bool WritePipeline::PastStopDeadline() const {
  return stopping_ && clock_.Monotonic() >= stop_deadline_;
}

bool WritePipeline::Pause(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  const absl::Duration end = clock_.Monotonic() + delay;
  while (true) {
    // A Stop wakes the pause so that its deadline is taken into account.
    const bool was_stopping = stopping_;
    auto stop_called = [this, was_stopping]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                           mu_) { return stopping_ != was_stopping; };
    if (!AwaitUntil(mu_, absl::Condition(&stop_called), clock_,
                    std::min(end, stop_deadline_))) {
      break;
    }
  }
  return !PastStopDeadline();
}

bool WritePipeline::PrepareWithRetry() {
  BackOff backoff(options_.backoff);
  absl::Status status = writer_.Prepare();
  while (!status.ok()) {
    SetHealthy(false, std::string(status.message()));
    if (!Pause(backoff.Next())) return false;
    {
      absl::MutexLock lock(&mu_);
      // Shutting down: what is queued stays queued; no reason to go on.
      if (stopping_) return false;
    }
    status = writer_.Prepare();
  }
  SetHealthy(true, "");
  return true;
}

std::vector<QueueRecord> WritePipeline::NextBatch() {
  absl::MutexLock gather(&gather_mu_);
  std::vector<QueueRecord> batch;
  // Monotonic time the first record of this batch was seen.
  absl::Duration first_seen = absl::InfiniteDuration();
  while (true) {
    uint64_t seen_commits;
    {
      absl::MutexLock lock(&mu_);
      if (PastStopDeadline()) return {};
      seen_commits = commits_;
    }
    // Read what was committed since the last read (records only become
    // readable by commits, so reading once per commit misses nothing).
    const int64_t after = batch.empty() ? read_after_ : batch.back().id;
    absl::StatusOr<std::vector<QueueRecord>> more =
        queue_.Read(after, options_.max_batch - batch.size(),
                    std::numeric_limits<uint64_t>::max());
    bool read_failed = !more.ok();
    if (read_failed) {
      static LogRateLimiter limiter(absl::Seconds(10));
      if (uint64_t n = limiter.Add(); n > 0) {
        spdlog::error("cannot read the failure queue ({} times): {}", n,
                      std::string(more.status().message()));
      }
    } else {
      for (QueueRecord& record : *more) {
        batch.push_back(std::move(record));
      }
    }
    if (!batch.empty() && first_seen == absl::InfiniteDuration()) {
      first_seen = clock_.Monotonic();
    }
    absl::MutexLock lock(&mu_);
    const bool full = batch.size() >= options_.max_batch;
    const bool due = !batch.empty() &&
                     (stopping_ || clock_.Monotonic() >=
                                       first_seen + options_.flush_interval);
    if (full || due) {
      read_after_ = batch.back().id;
      return batch;
    }
    if (stopping_ && batch.empty()) return {};  // nothing left to write
    // Wait for a commit (more records), the flush time or a Stop.
    auto changed = [this, seen_commits]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return commits_ != seen_commits || stopping_;
    };
    // A failed read is tried again after a second.
    const absl::Duration wake =
        read_failed     ? clock_.Monotonic() + absl::Seconds(1)
        : batch.empty() ? absl::InfiniteDuration()
                        : first_seen + options_.flush_interval;
    AwaitUntil(mu_, absl::Condition(&changed), clock_, wake);
  }
}

void WritePipeline::Loop() {
  // The database is made ready at start, as Butler SOS does, not at the
  // first failure: dashboards can query it from the beginning.
  {
    absl::MutexLock lock(&prepare_mu_);
    if (!prepared_ && options_.prepared) prepared_ = true;
    if (!prepared_) {
      if (!PrepareWithRetry()) return;
      prepared_ = true;
    }
  }
  while (true) {
    std::vector<QueueRecord> batch = NextBatch();
    if (batch.empty()) return;
    if (!WriteBatch(batch)) return;
  }
}

bool WritePipeline::WriteBatch(const std::vector<QueueRecord>& batch) {
  BackOff backoff(options_.backoff);
  // Ranges still to write, last one first; bad points split a range in two.
  std::vector<std::pair<size_t, size_t>> todo = {{0, batch.size()}};
  while (!todo.empty()) {
    const auto [begin, end] = todo.back();
    std::string body;
    for (size_t i = begin; i < end; ++i) {
      if (i > begin) body.push_back('\n');
      body.append(batch[i].payload);
    }
    const absl::Duration sent = clock_.Monotonic();
    const WriteResult result = writer_.Write(body);
    const size_t n = end - begin;
    Observe(result, clock_.Monotonic() - sent, n);
    absl::Duration delay;
    switch (result.kind) {
      case WriteResult::Kind::kOk:
        todo.pop_back();
        Settle(batch, begin, end);
        break;
      case WriteResult::Kind::kBadPoints:
      case WriteResult::Kind::kTooLarge: {
        todo.pop_back();
        if (n > 1) {
          // Re-sending lines InfluxDB already stored from a partial write is
          // harmless: the same series and timestamp overwrite themselves.
          const size_t mid = begin + n / 2;
          todo.emplace_back(mid, end);
          todo.emplace_back(begin, mid);
          break;
        }
        Settle(batch, begin, end);
        const bool too_large = result.kind == WriteResult::Kind::kTooLarge;
        points_rejected_.WithLabels({too_large ? "too_large" : "bad_point"})
            .Increment();
        if (options_.totals != nullptr) {
          ++(too_large ? options_.totals->dropped_too_large
                       : options_.totals->dropped_bad_point);
        }
        spdlog::warn("{} rejected a point (HTTP {}: {}); dropped: {}",
                     writer_.Describe(), result.http_status, result.message,
                     batch[begin].payload.substr(0, kLoggedLineChars));
        break;
      }
      case WriteResult::Kind::kThrottled:
        delay = result.retry_after > absl::ZeroDuration() ? result.retry_after
                                                          : backoff.Next();
        break;
      case WriteResult::Kind::kAuth: {
        static LogRateLimiter limiter(absl::Seconds(60));
        if (uint64_t times = limiter.Add(); times > 0) {
          spdlog::error(
              "{} refused our credentials ({} times; HTTP {}: {}); points "
              "are kept, retrying every {}s",
              writer_.Describe(), times, result.http_status, result.message,
              absl::ToInt64Seconds(options_.auth_retry));
        }
        delay = options_.auth_retry;
        break;
      }
      case WriteResult::Kind::kRequestRejected: {
        // No line is at fault (bad database name, encoding): dropping the
        // batch would lose good points. Keep them until someone fixes it.
        static LogRateLimiter limiter(absl::Seconds(60));
        if (uint64_t times = limiter.Add(); times > 0) {
          spdlog::error(
              "{} refused the write request itself ({} times; HTTP {}: {}); "
              "no point is at fault, so points are kept, retrying every {}s",
              writer_.Describe(), times, result.http_status, result.message,
              absl::ToInt64Seconds(options_.auth_retry));
        }
        delay = options_.auth_retry;
        break;
      }
      case WriteResult::Kind::kNotFound:
        // The database went away (dropped by someone): create it again.
        if (absl::Status status = writer_.Prepare(); !status.ok()) {
          spdlog::warn("{}: {}", writer_.Describe(),
                       std::string(status.message()));
        }
        delay = backoff.Next();
        break;
      case WriteResult::Kind::kRetryable:
        delay = backoff.Next();
        break;
    }
    if (delay > absl::ZeroDuration()) {
      SetHealthy(false, absl::StrCat("HTTP ", result.http_status, ": ",
                                     result.message));
      // Out of time: what is left of the batch stays in the queue.
      if (!Pause(delay)) return false;
    } else {
      backoff.Reset();
      SetHealthy(true, "");
    }
  }
  return true;
}

}  // namespace qfp::tracker
