#include "poller-service/tracker_client.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

namespace {
// How long to wait for the tracker's last acknowledgements after WritesDone.
constexpr absl::Duration kCloseGrace = absl::Seconds(2);

std::shared_ptr<grpc::Channel> MakeChannel(
    const TrackerClientOptions& options) {
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff grows to 120 s by default; held to ours, a
  // tracker that comes back is reached within max_backoff, not minutes later.
  const int min_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.min_backoff));
  const int max_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, min_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, min_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  return grpc::CreateCustomChannel(
      options.address, grpc::InsecureChannelCredentials(), args);
}

// Appends a spooled failure to a request.
void AddSerialized(ReportFailuresRequest& request,
                   absl::string_view serialized) {
  PollFailure* failure = request.add_failures();
  if (!failure->ParseFromArray(serialized.data(),
                               static_cast<int>(serialized.size()))) {
    // The spool checked these bytes when it took or loaded them.
    request.mutable_failures()->RemoveLast();
  }
}
}  // namespace

TrackerClient::TrackerClient(TrackerClientOptions options,
                             std::unique_ptr<FailureSpool> spool)
    : options_(std::move(options)),
      spool_(std::move(spool)),
      channel_(MakeChannel(options_)),
      stub_(failedpolls::v1::FailedPollTracker::NewStub(channel_)) {}

TrackerClient::~TrackerClient() { Shutdown(absl::ZeroDuration()); }

void TrackerClient::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void TrackerClient::Deliver(PollFailure failure) {
  // The spool reports its own overflow and write errors; a duplicate id is
  // the same failure twice, kept once.
  spool_->Add(std::move(failure)).IgnoreError();
  absl::MutexLock lock(&mu_);
  ++stats_.delivered;
  ++changes_;  // wakes the sender
}

TrackerClientStats TrackerClient::stats() const {
  absl::MutexLock lock(&mu_);
  TrackerClientStats stats = stats_;
  stats.pending = spool_->size();
  stats.dropped_overflow = spool_->dropped();
  return stats;
}

bool TrackerClient::FinishedLocked() const {
  return stopping_ && (spool_->size() == 0 || absl::Now() >= stop_deadline_);
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
  return spool_->size();
}

void TrackerClient::Loop() {
  absl::BitGen rng;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (FinishedLocked()) break;
    }
    // A stream is started only over a connected channel. gRPC reconnects on
    // its own schedule (between min_backoff and max_backoff, set when the
    // channel was made), so a tracker that comes back is used as soon as
    // the channel reaches it, and the two backoffs never add up. The wait
    // is sliced so that a shutdown is noticed.
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::milliseconds(500))) {
      continue;
    }
    RunStream();
    absl::MutexLock lock(&mu_);
    if (FinishedLocked()) break;
    // A stream that ended at once over a connected channel (the tracker
    // refusing streams, say) must not turn into a busy loop.
    const absl::Duration wait =
        options_.min_backoff * absl::Uniform(rng, 0.8, 1.2);
    const bool was_stopping = stopping_;
    auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ != was_stopping || FinishedLocked();
    };
    mu_.AwaitWithDeadline(absl::Condition(&wake),
                          std::min(absl::Now() + wait, stop_deadline_));
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
    retry_.clear();
  }
  std::unique_ptr<grpc::ClientReaderWriter<ReportFailuresRequest,
                                           ReportFailuresResponse>>
      stream = stub_->ReportFailures(&context);

  bool broken = false;  // guarded by mu_
  bool got_ack = false;  // guarded by mu_
  std::thread reader([&] {
    ReportFailuresResponse response;
    std::vector<FailureId> accepted;
    while (stream->Read(&response)) {
      accepted.assign(response.accepted().begin(), response.accepted().end());
      // Outside mu_: a DiskSpool records the acknowledgements in its file.
      const size_t removed = spool_->Acknowledge(accepted);
      absl::MutexLock lock(&mu_);
      stats_.acknowledged += removed;
      if (!accepted.empty()) got_ack = true;
      ++changes_;
      for (const auto& refusal : response.refused()) {
        ++stats_.refused;
        if (stats_.refused == 1 || stats_.refused % 1000 == 0) {
          spdlog::warn("tracker refused a failure ({} refusals so far): {}",
                       stats_.refused, refusal.reason());
        }
        retry_.emplace_back(absl::Now() + options_.refusal_delay,
                            refusal.id());
      }
    }
    absl::MutexLock lock(&mu_);
    broken = true;
  });

  // Position of the next spooled failure this stream has not offered yet.
  uint64_t cursor = 0;
  while (true) {
    ReportFailuresRequest request;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return broken || spool_->HasFrom(cursor) ||
               (!retry_.empty() && retry_.front().first <= absl::Now()) ||
               FinishedLocked();
      };
      // The timeout makes due retries and the deadline noticed.
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(200));
      if (broken || FinishedLocked()) break;
      auto add = [&request](uint64_t, absl::string_view serialized) {
        AddSerialized(request, serialized);
      };
      while (!retry_.empty() && retry_.front().first <= absl::Now() &&
             static_cast<size_t>(request.failures_size()) <
                 options_.max_batch) {
        // Acknowledged meanwhile (or dropped): nothing to resend.
        spool_->Find(retry_.front().second, add);
        retry_.pop_front();
      }
      const size_t room =
          options_.max_batch -
          std::min(options_.max_batch,
                   static_cast<size_t>(request.failures_size()));
      if (room > 0) cursor = spool_->VisitFrom(cursor, room, add);
    }
    if (request.failures_size() == 0) continue;
    if (!stream->Write(request)) break;
  }

  stream->WritesDone();
  bool ended = false;
  {
    // Let the tracker answer what it has read, then stop waiting.
    absl::MutexLock lock(&mu_);
    ended = mu_.AwaitWithTimeout(absl::Condition(&broken), kCloseGrace);
  }
  // Cancelling a call that already ended would hide its real status.
  if (!ended) context.TryCancel();
  reader.join();
  grpc::Status status = stream->Finish();

  absl::MutexLock lock(&mu_);
  active_context_ = nullptr;
  if (!status.ok() && !stopping_) {
    spdlog::warn(
        "stream to tracker {} ended: {} ({}); {} failures waiting for "
        "acknowledgement; reconnecting",
        options_.address, status.error_message(),
        static_cast<int>(status.error_code()), spool_->size());
  }
  return got_ack;
}

}  // namespace qfp::poller
