#include "poller-service/tracker_client.h"

#include <algorithm>
#include <atomic>

#include "absl/random/random.h"
#include "spdlog/spdlog.h"

namespace qfp {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

namespace {
// How long a refused failure waits before it is offered again.
constexpr absl::Duration kRefusalDelay = absl::Seconds(1);
// How long to wait for the tracker's last acknowledgements after WritesDone.
constexpr absl::Duration kCloseGrace = absl::Seconds(2);
}  // namespace

TrackerClient::TrackerClient(TrackerClientOptions options)
    : options_(std::move(options)),
      channel_(grpc::CreateChannel(options_.address,
                                   grpc::InsecureChannelCredentials())),
      stub_(failedpolls::v1::FailedPollTracker::NewStub(channel_)) {}

TrackerClient::~TrackerClient() { Shutdown(absl::ZeroDuration()); }

TrackerClient::Key TrackerClient::KeyOf(const FailureId& id) {
  return Key(id.poller_id(), id.instance_id(), id.sequence());
}

void TrackerClient::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void TrackerClient::Deliver(PollFailure failure) {
  absl::MutexLock lock(&mu_);
  ++stats_.delivered;
  Key key = KeyOf(failure.id());
  auto [it, inserted] = pending_.emplace(key, std::move(failure));
  if (!inserted) return;  // the same failure twice: keep one
  unsent_.push_back(std::move(key));
  EnforceBoundLocked();
}

void TrackerClient::EnforceBoundLocked() {
  size_t dropped = 0;
  while (pending_.size() > options_.max_pending) {
    pending_.erase(pending_.begin());
    ++dropped;
  }
  if (dropped == 0) return;
  stats_.dropped_overflow += dropped;
  // A summary, not a line per failure: overflow happens in floods.
  const uint64_t total = stats_.dropped_overflow;
  if (total == dropped || total / 1000 != (total - dropped) / 1000) {
    spdlog::warn(
        "pending failures over the cap of {}: dropped the oldest ({} dropped "
        "so far); is the tracker at {} reachable?",
        options_.max_pending, total, options_.address);
  }
}

TrackerClientStats TrackerClient::stats() const {
  absl::MutexLock lock(&mu_);
  TrackerClientStats stats = stats_;
  stats.pending = pending_.size();
  return stats;
}

size_t TrackerClient::Shutdown(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + deadline;
    }
    if (thread_.joinable()) {
      // A stream blocked in Write past the deadline is cancelled.
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return loop_done_;
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&done),
                                 stop_deadline_ + absl::Seconds(1)) &&
          active_context_ != nullptr) {
        active_context_->TryCancel();
      }
    }
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  return pending_.size();
}

void TrackerClient::Loop() {
  absl::BitGen rng;
  absl::Duration backoff = options_.min_backoff;
  auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ && (pending_.empty() || absl::Now() >= stop_deadline_);
  };
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (finished()) break;
    }
    if (RunStream()) backoff = options_.min_backoff;
    absl::MutexLock lock(&mu_);
    if (finished()) break;
    const absl::Duration wait = backoff * absl::Uniform(rng, 0.8, 1.2);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  absl::MutexLock lock(&mu_);
  loop_done_ = true;
}

bool TrackerClient::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    active_context_ = &context;
    ++stats_.stream_starts;
    // A new stream knows nothing of the old one: offer everything again.
    unsent_.clear();
    retry_.clear();
    for (const auto& [key, entry] : pending_) unsent_.push_back(key);
  }
  std::unique_ptr<grpc::ClientReaderWriter<ReportFailuresRequest,
                                           ReportFailuresResponse>>
      stream = stub_->ReportFailures(&context);

  bool broken = false;  // guarded by mu_
  bool got_ack = false;  // guarded by mu_
  std::thread reader([&] {
    ReportFailuresResponse response;
    while (stream->Read(&response)) {
      absl::MutexLock lock(&mu_);
      for (const FailureId& id : response.accepted()) {
        if (pending_.erase(KeyOf(id)) > 0) ++stats_.acknowledged;
        got_ack = true;
      }
      for (const auto& refusal : response.refused()) {
        ++stats_.refused;
        if (stats_.refused == 1 || stats_.refused % 1000 == 0) {
          spdlog::warn("tracker refused a failure ({} refusals so far): {}",
                       stats_.refused, refusal.reason());
        }
        retry_.emplace_back(absl::Now() + kRefusalDelay,
                            KeyOf(refusal.id()));
      }
    }
    absl::MutexLock lock(&mu_);
    broken = true;
  });

  while (true) {
    ReportFailuresRequest request;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return broken || !unsent_.empty() ||
               (!retry_.empty() && retry_.front().first <= absl::Now()) ||
               (stopping_ &&
                (pending_.empty() || absl::Now() >= stop_deadline_));
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(200));
      if (broken) break;
      if (stopping_ && (pending_.empty() || absl::Now() >= stop_deadline_)) {
        break;
      }
      while (!retry_.empty() && retry_.front().first <= absl::Now()) {
        unsent_.push_back(std::move(retry_.front().second));
        retry_.pop_front();
      }
      while (!unsent_.empty() &&
             static_cast<size_t>(request.failures_size()) <
                 options_.max_batch) {
        auto it = pending_.find(unsent_.front());
        unsent_.pop_front();
        if (it != pending_.end()) *request.add_failures() = it->second;
      }
    }
    if (request.failures_size() == 0) continue;
    if (!stream->Write(request)) break;
  }

  stream->WritesDone();
  {
    // Let the tracker answer what it has read, then stop waiting.
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&broken), kCloseGrace);
  }
  context.TryCancel();
  reader.join();
  grpc::Status status = stream->Finish();

  absl::MutexLock lock(&mu_);
  active_context_ = nullptr;
  if (!status.ok() && !stopping_) {
    spdlog::warn(
        "stream to tracker {} ended: {} ({}); {} failures waiting for "
        "acknowledgement; reconnecting",
        options_.address, status.error_message(),
        static_cast<int>(status.error_code()), pending_.size());
  }
  return got_ack;
}

}  // namespace qfp
