#include "poller-service/tracker_client.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

namespace {
// How long to wait for the tracker's last acknowledgements after WritesDone.
constexpr absl::Duration kCloseGrace = absl::Seconds(2);
// Most bytes of spooled failures read into one request (the tracker takes
// messages up to gRPC's default 4 MiB).
constexpr uint64_t kMaxRequestBytes = uint64_t{1} << 20;
// How long Probe waits; a channel in TRANSIENT_FAILURE fails it at once.
constexpr absl::Duration kProbeDeadline = absl::Seconds(1);

// "UNAVAILABLE: failed to connect to all addresses; ..." (gRPC's codes are
// absl's, number for number).
std::string Describe(const grpc::Status& status) {
  if (status.ok()) return "OK: the tracker closed the stream";
  return absl::StrCat(
      absl::StatusCodeToString(
          static_cast<absl::StatusCode>(static_cast<int>(status.error_code()))),
      ": ",
      status.error_message().empty() ? "(no message)" : status.error_message());
}

std::string Seconds(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(10)));
}

std::shared_ptr<grpc::Channel> MakeChannel(
    const TrackerClientOptions& options) {
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff grows to 120 s by default; held to ours, a
  // tracker that comes back is reached within backoff.max, not minutes later.
  const int min_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.backoff.initial));
  const int max_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.backoff.max));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, min_ms);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, min_ms);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  ApplyServerNameOverride(options.tls, &args);
  return grpc::CreateCustomChannel(options.address,
                                   MakeChannelCredentials(options.tls), args);
}
}  // namespace

absl::Duration HeartbeatInterval(const std::vector<PollTarget>& plan) {
  absl::Duration shortest = kMaxHeartbeatInterval;
  for (const PollTarget& target : plan) {
    shortest = std::min(shortest, target.interval);
  }
  return std::max(shortest, kMinHeartbeatInterval);
}

TrackerClient::IdKey TrackerClient::KeyOf(const FailureId& id) {
  return IdKey(id.poller_id(), id.instance_id(), id.sequence());
}

TrackerClient::TrackerClient(TrackerClientOptions options,
                             std::unique_ptr<FailureQueue> spool,
                             MetricsRegistry& metrics)
    : options_(std::move(options)),
      clock_(SystemClock::Get()),
      spool_(std::move(spool)),
      channel_(MakeChannel(options_)),
      stub_(failedpolls::v1::FailedPollTracker::NewStub(channel_)),
      delivered_(metrics.AddCounter("qfp_poller_failures_delivered_total",
                                    "Failed polls handed to the spool.")),
      acknowledged_(metrics.AddCounter("qfp_poller_failures_acknowledged_total",
                                       "Failures the tracker acknowledged.")),
      refused_(metrics.AddCounter(
          "qfp_poller_failures_refused_total",
          "Refusals received from the tracker (each failure is resent).")),
      rejected_(metrics.AddCounter(
          "qfp_poller_failures_rejected_total",
          "Failures the tracker rejected as malformed "
          "(REFUSAL_CODE_INVALID_ARGUMENT): dropped, not resent.")),
      stream_starts_(metrics.AddCounter(
          "qfp_poller_stream_starts_total",
          "Streams opened to the tracker (reconnects + 1).")),
      store_errors_(metrics.AddCounter(
          "qfp_poller_spool_store_retries_total",
          "Failures handed to the spool again because its commit failed.")),
      lost_(metrics.AddCounter(
          "qfp_poller_failures_lost_total",
          "Failures that never got into the spool: dropped while its commits "
          "failed, or still unstored at shutdown.")),
      heartbeats_sent_(
          metrics.AddCounter("qfp_poller_heartbeats_sent_total",
                             "Heartbeats written to the tracker's stream.")),
      outage_log_(kOutageLogInterval, clock_) {
  spool_->SetCommitListener([this] {
    absl::MutexLock lock(&mu_);
    ++changes_;
  });
}

TrackerClient::~TrackerClient() { Shutdown(absl::ZeroDuration()); }

void TrackerClient::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void TrackerClient::EnableHeartbeats(HeartbeatOptions heartbeat) {
  absl::MutexLock lock(&mu_);
  heartbeat_ = std::move(heartbeat);
  next_heartbeat_ = clock_.Monotonic();
  ++changes_;  // the sender looks again (a heartbeat is due)
}

bool TrackerClient::AddHeartbeat(ReportFailuresRequest& request,
                                 bool stopping) {
  HeartbeatOptions options;
  {
    absl::MutexLock lock(&mu_);
    if (heartbeat_.ledger == nullptr) return false;
    const absl::Duration now = clock_.Monotonic();
    if (!stopping && now < next_heartbeat_) return false;
    // From now, not from the due time: a late beat (a slow Write) does not
    // make the next ones bunch up.
    next_heartbeat_ = now + heartbeat_.interval;
    options = heartbeat_;
  }
  failedpolls::v1::Heartbeat* beat = request.mutable_heartbeat();
  beat->set_poller_id(options.poller_id);
  beat->set_instance_id(options.instance_id);
  const int64_t nanos = absl::ToUnixNanos(clock_.Now());
  beat->mutable_sent_at()->set_seconds(nanos / 1000000000);
  beat->mutable_sent_at()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  beat->set_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options.interval)));
  beat->set_stopping(stopping);
  for (const TargetAttempts& counts : options.ledger->Take()) {
    failedpolls::v1::TargetAttempts* target = beat->add_targets();
    target->set_source(counts.source);
    target->set_server_name(counts.server_name);
    target->set_host(counts.host);
    target->set_virtual_proxy(counts.virtual_proxy);
    target->set_attempted(counts.attempted);
    target->set_failed(counts.failed);
  }
  return true;
}

void TrackerClient::Deliver(PollFailure failure) {
  delivered_.Increment();
  Store(failure.SerializeAsString());
}

void TrackerClient::Store(std::string payload) {
  std::vector<std::string> payloads{payload};
  spool_->Append(
      std::move(payloads),
      [this, payload = std::move(payload)](
          absl::StatusOr<std::vector<int64_t>> ids) mutable {
        if (ids.ok()) return;
        bool stopping;
        {
          absl::MutexLock lock(&mu_);
          stopping = stopping_;
        }
        if (absl::IsUnavailable(ids.status()) && !stopping) {
          // The spool's commit failed (its disk): hand it over again. The
          // spool backs off between failed commits, so this is no busy loop,
          // and it logs the cause.
          store_errors_.Increment();
          Store(std::move(payload));
          return;
        }
        lost_.Increment();
        static LogRateLimiter limiter(absl::Seconds(10));
        if (uint64_t n = limiter.Add(); n > 0) {
          spdlog::error(
              "{} failed polls could not be kept in spool {} and are lost "
              "(logged above): {}",
              n, spool_->Describe(), std::string(ids.status().message()));
        }
      });
}

bool TrackerClient::StoppedLocked() const {
  return stopping_ && clock_.Monotonic() >= stop_deadline_;
}

uint64_t TrackerClient::Shutdown(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = clock_.Monotonic() + deadline;
    }
    if (thread_.joinable()) {
      // A stream blocked in Write past the deadline is cancelled.
      auto done = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return loop_done_; };
      if (!AwaitUntil(mu_, absl::Condition(&done), clock_,
                      stop_deadline_ + absl::Seconds(1)) &&
          active_context_ != nullptr) {
        active_context_->TryCancel();
      }
    }
  }
  if (thread_.joinable()) thread_.join();
  // The last try to store what waits; what still fails is counted lost.
  spool_->Close();
  return spool_->stats().records;
}

void TrackerClient::Loop() {
  BackOff backoff(options_.backoff);
  while (true) {
    // Done once shutdown began and nothing is left unacknowledged.
    const QueueStats spool = spool_->stats();
    {
      absl::MutexLock lock(&mu_);
      if (StoppedLocked() ||
          (stopping_ && spool.records + spool.pending == 0)) {
        break;
      }
    }
    // A stream is started only over a connected channel. gRPC reconnects on
    // its own schedule (held to our backoff when the channel was made), so
    // a tracker that comes back is used as soon as the channel reaches it.
    // The wait is sliced so that a shutdown is noticed.
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::milliseconds(500))) {
      NoteUnreachable();
      continue;
    }
    const uint64_t acknowledged_before = acknowledged_.value();
    const grpc::Status status = RunStream();
    if (acknowledged_.value() != acknowledged_before) backoff.Reset();
    const absl::Duration delay = backoff.Next();
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      if (StoppedLocked()) break;
      stopping = stopping_;
    }
    if (!stopping) NoteStreamEnded(status, delay);
    absl::MutexLock lock(&mu_);
    // A stream that ended at once over a connected channel (the tracker
    // refusing streams, say) must not turn into a busy loop.
    const bool was_stopping = stopping_;
    auto stop_called = [this, was_stopping]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                           mu_) { return stopping_ != was_stopping; };
    AwaitUntil(mu_, absl::Condition(&stop_called), clock_,
               std::min(clock_.Monotonic() + delay, stop_deadline_));
  }
  absl::MutexLock lock(&mu_);
  loop_done_ = true;
}

double TrackerClient::OutageSeconds() {
  if (!outage_since_.has_value()) return -1;
  return absl::ToDoubleSeconds(clock_.Monotonic() - *outage_since_);
}

grpc::Status TrackerClient::Probe() {
  grpc::ClientContext context;
  context.set_wait_for_ready(false);
  context.set_deadline(absl::ToChronoTime(absl::Now() + kProbeDeadline));
  std::unique_ptr<
      grpc::ClientReaderWriter<ReportFailuresRequest, ReportFailuresResponse>>
      stream = stub_->ReportFailures(&context);
  // Connected meanwhile: an empty stream, which the tracker just closes.
  stream->WritesDone();
  return stream->Finish();
}

void TrackerClient::NoteUnreachable() {
  // CONNECTING (a slow handshake) is no outage yet; gRPC's connect timeout
  // turns a tracker that never answers into TRANSIENT_FAILURE.
  if (channel_->GetState(/*try_to_connect=*/false) !=
      GRPC_CHANNEL_TRANSIENT_FAILURE) {
    return;
  }
  double outage_seconds;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if (!outage_since_.has_value()) outage_since_ = clock_.Monotonic();
    outage_seconds = OutageSeconds();
  }
  if (outage_log_.Add() == 0) return;
  const grpc::Status status = Probe();
  if (status.ok()) return;  // connected meanwhile
  const QueueStats spool = spool_->stats();
  spdlog::warn(
      "cannot reach tracker {} (outage for {:.1f} s): {}; {} failures "
      "waiting in spool {}; gRPC connects again with its backoff, {} "
      "growing to {}, 20% jitter (this warning at most every {})",
      options_.address, outage_seconds, Describe(status),
      spool.records + spool.pending, spool_->Describe(),
      Seconds(options_.backoff.initial), Seconds(options_.backoff.max),
      Seconds(kOutageLogInterval));
}

void TrackerClient::NoteStreamEnded(const grpc::Status& status,
                                    absl::Duration next_try) {
  double outage_seconds;
  {
    absl::MutexLock lock(&mu_);
    if (!outage_since_.has_value()) outage_since_ = clock_.Monotonic();
    outage_seconds = OutageSeconds();
  }
  if (outage_log_.Add() == 0) return;
  const QueueStats spool = spool_->stats();
  spdlog::warn(
      "stream to tracker {} ended (outage for {:.1f} s): {}; {} failures "
      "waiting in spool {}; next try in {} (this warning at most every {})",
      options_.address, outage_seconds, Describe(status),
      spool.records + spool.pending, spool_->Describe(), Seconds(next_try),
      Seconds(kOutageLogInterval));
}

void TrackerClient::OnResponse(const ReportFailuresResponse& response) {
  std::optional<double> outage_seconds;
  {
    absl::MutexLock lock(&mu_);
    if (!stream_answered_) {
      // The first answer: the stream is up (TLS and all).
      stream_answered_ = true;
      outage_seconds = OutageSeconds();
      outage_since_.reset();
    }
  }
  if (outage_seconds.has_value() && *outage_seconds >= 0) {
    // The outage is over: the next one is reported when it starts.
    outage_log_.Reset();
    // Before this answer releases anything: the backlog the outage left.
    const QueueStats spool = spool_->stats();
    spdlog::info(
        "reconnected to tracker {} after {:.1f} s; {} failures waiting in "
        "spool {}",
        options_.address, *outage_seconds, spool.records + spool.pending,
        spool_->Describe());
  }
  std::vector<int64_t> release;
  release.reserve(static_cast<size_t>(response.accepted_size()));
  size_t refusals = 0;
  std::vector<const failedpolls::v1::Refusal*> rejected;
  {
    absl::MutexLock lock(&mu_);
    for (const FailureId& id : response.accepted()) {
      auto it = in_flight_.find(KeyOf(id));
      if (it == in_flight_.end()) continue;  // answered twice, or unknown
      release.push_back(it->second.spool_id);
      in_flight_.erase(it);
    }
    const absl::Duration due = clock_.Monotonic() + options_.refusal_delay;
    for (const auto& refusal : response.refused()) {
      auto it = in_flight_.find(KeyOf(refusal.id()));
      if (it == in_flight_.end()) continue;
      if (refusal.code() == failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT) {
        // The same bytes would be refused again: resending forever would
        // only hold spool room. Dropped, loudly (counted and logged).
        release.push_back(it->second.spool_id);
        rejected.push_back(&refusal);
      } else {
        retry_.emplace_back(due, it->second.spool_id);
        ++refusals;
      }
      in_flight_.erase(it);
    }
    ++changes_;
  }
  if (!release.empty()) {
    spool_->Release(release);
    acknowledged_.Increment(release.size() - rejected.size());
  }
  if (!rejected.empty()) {
    rejected_.Increment(rejected.size());
    static LogRateLimiter limiter(absl::Seconds(10));
    if (uint64_t n = limiter.Add(rejected.size()); n > 0) {
      spdlog::error(
          "tracker rejected {} malformed failures since the last report "
          "(dropped: sending them again cannot succeed); the latest, "
          "sequence {}: {}",
          n, rejected.back()->id().sequence(), rejected.back()->reason());
    }
  }
  if (refusals > 0) {
    refused_.Increment(refusals);
    static LogRateLimiter limiter(absl::Seconds(10));
    if (uint64_t n = limiter.Add(refusals); n > 0) {
      spdlog::warn(
          "tracker refused {} failures since the last report (each is "
          "resent in {} ms): {}",
          n, absl::ToInt64Milliseconds(options_.refusal_delay),
          response.refused(0).reason());
    }
  }
}

ReportFailuresRequest TrackerClient::NextRequest() {
  std::vector<int64_t> due;
  int64_t after = 0;
  size_t room = 0;
  {
    absl::MutexLock lock(&mu_);
    const absl::Duration now = clock_.Monotonic();
    while (!retry_.empty() && retry_.front().first <= now &&
           due.size() < options_.max_batch) {
      due.push_back(retry_.front().second);
      retry_.pop_front();
    }
    after = offered_up_to_;
    if (in_flight_.size() + due.size() < options_.max_in_flight) {
      room = std::min(options_.max_batch - due.size(),
                      options_.max_in_flight - in_flight_.size() - due.size());
    }
  }
  std::vector<QueueRecord> records;
  for (int64_t id : due) {
    // Acknowledged or dropped meanwhile: nothing to resend.
    absl::StatusOr<std::vector<QueueRecord>> one = spool_->Read(id - 1, 1, 1);
    if (one.ok() && !one->empty() && one->front().id == id) {
      records.push_back(std::move(one->front()));
    }
  }
  int64_t offered = after;
  if (room > 0) {
    absl::StatusOr<std::vector<QueueRecord>> fresh =
        spool_->Read(after, room, kMaxRequestBytes);
    if (!fresh.ok()) {
      static LogRateLimiter limiter(absl::Seconds(10));
      if (uint64_t n = limiter.Add(); n > 0) {
        spdlog::error("cannot read spool {} ({} times): {}", spool_->Describe(),
                      n, std::string(fresh.status().message()));
      }
    } else if (!fresh->empty()) {
      offered = fresh->back().id;
      for (QueueRecord& record : *fresh) records.push_back(std::move(record));
    }
  }
  ReportFailuresRequest request;
  std::vector<std::pair<IdKey, int64_t>> sent;
  std::vector<int64_t> unreadable;
  for (const QueueRecord& record : records) {
    PollFailure* failure = request.add_failures();
    if (!failure->ParseFromString(record.payload)) {
      // Not written by us (a damaged or edited file): never sendable.
      request.mutable_failures()->RemoveLast();
      unreadable.push_back(record.id);
      continue;
    }
    sent.emplace_back(KeyOf(failure->id()), record.id);
  }
  if (!unreadable.empty()) {
    spdlog::error("spool {}: {} records are not failures; removed",
                  spool_->Describe(), unreadable.size());
    spool_->Release(unreadable);
  }
  absl::MutexLock lock(&mu_);
  offered_up_to_ = std::max(offered_up_to_, offered);
  for (auto& [key, id] : sent) in_flight_[std::move(key)] = InFlight{id};
  return request;
}

grpc::Status TrackerClient::RunStream() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    active_context_ = &context;
    // A new stream knows nothing of the old one: offer everything again.
    offered_up_to_ = 0;
    in_flight_.clear();
    retry_.clear();
    stream_broken_ = false;
    stream_answered_ = false;
    // A new stream beats at once, so a tracker learns of us (again) now.
    next_heartbeat_ = clock_.Monotonic();
  }
  stream_starts_.Increment();
  std::unique_ptr<
      grpc::ClientReaderWriter<ReportFailuresRequest, ReportFailuresResponse>>
      stream = stub_->ReportFailures(&context);

  std::thread reader([&] {
    ReportFailuresResponse response;
    while (stream->Read(&response)) OnResponse(response);
    absl::MutexLock lock(&mu_);
    stream_broken_ = true;
  });

  while (true) {
    uint64_t seen_changes;
    bool was_stopping;
    {
      absl::MutexLock lock(&mu_);
      if (stream_broken_ || StoppedLocked()) break;
      seen_changes = changes_;
      was_stopping = stopping_;
    }
    if (was_stopping) {
      const QueueStats spool = spool_->stats();
      if (spool.records + spool.pending == 0) break;  // all acknowledged
    }
    ReportFailuresRequest request = NextRequest();
    const bool beat = AddHeartbeat(request, /*stopping=*/false);
    if (request.failures_size() > 0 || beat) {
      if (!stream->Write(request)) break;
      if (beat) heartbeats_sent_.Increment();
      continue;
    }
    // Nothing to send now: wait for a commit, an answer, a due refusal or
    // the stop deadline.
    absl::MutexLock lock(&mu_);
    auto changed = [this, seen_changes, was_stopping]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return changes_ != seen_changes || stream_broken_ ||
                                stopping_ != was_stopping;
                       };
    const absl::Duration wake = std::min(
        {retry_.empty() ? absl::InfiniteDuration() : retry_.front().first,
         stop_deadline_,
         heartbeat_.ledger == nullptr ? absl::InfiniteDuration()
                                      : next_heartbeat_});
    AwaitUntil(mu_, absl::Condition(&changed), clock_, wake);
  }

  bool stream_works;
  bool stopping_now;
  {
    absl::MutexLock lock(&mu_);
    stream_works = !stream_broken_;
    stopping_now = stopping_;
  }
  if (stream_works && stopping_now) {
    // Stopping on purpose: say so, so that the tracker does not report
    // the silence that follows.
    ReportFailuresRequest last;
    if (AddHeartbeat(last, /*stopping=*/true) && stream->Write(last)) {
      heartbeats_sent_.Increment();
    }
  }
  stream->WritesDone();
  bool ended = false;
  {
    // Let the tracker answer what it has read, then stop waiting.
    absl::MutexLock lock(&mu_);
    auto broken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stream_broken_;
    };
    ended = AwaitUntil(mu_, absl::Condition(&broken), clock_,
                       clock_.Monotonic() + kCloseGrace);
  }
  // Cancelling a call that already ended would hide its real status.
  if (!ended) context.TryCancel();
  reader.join();
  grpc::Status status = stream->Finish();

  absl::MutexLock lock(&mu_);
  active_context_ = nullptr;
  return status;
}

}  // namespace qfp::poller
