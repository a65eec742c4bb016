#include "tracker-service/tracker_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/failure_names.h"
#include "spdlog/spdlog.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/stream_messages.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace qfp::tracker {
namespace {

// gRPC runs a reactor's callback after the operation that it answers was
// started (StartRead, StartWrite, Finish; the reactor's construction before
// the first), possibly on another thread, ordered inside Debian's gRPC, which
// is not instrumented: these state that order to ThreadSanitizer
// (scripts/tsan.sh). Empty in every other build. The release covers only
// what the thread did before it: read what the callback may change (next_,
// for a read's buffer) before calling BeforeGrpcOperation, not in the
// StartRead call's argument after it.
#if defined(__SANITIZE_THREAD__)
void BeforeGrpcOperation(void* reactor) { __tsan_release(reactor); }
void InGrpcCallback(void* reactor) { __tsan_acquire(reactor); }
#else
void BeforeGrpcOperation(void*) {}
void InGrpcCallback(void*) {}
#endif

std::string DescribeId(const failedpolls::v1::FailureId& id) {
  return absl::StrCat(id.poller_id(), "/", id.instance_id(), "/",
                      id.sequence());
}

}  // namespace

using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

TrackerService::TrackerService(const TrackerConfig& config,
                               ErrorCounter* counter, DurableQueue* queue,
                               MetricsRegistry& metrics, FailureLimits limits,
                               const Clock& clock)
    : config_(config),
      counter_(counter),
      queue_(queue),
      schema_(config.schema),
      limits_(limits),
      clock_(clock),
      received_(metrics.AddCounter(
          "qfp_tracker_failures_received_total",
          "Failed polls received from producers, by error_type.",
          {"error_type"})),
      accepted_(metrics.AddCounter(
          "qfp_tracker_failures_accepted_total",
          "Failed polls accepted (committed to the queue and acknowledged).")),
      duplicates_(metrics.AddCounter(
          "qfp_tracker_failures_duplicate_total",
          "Re-sent failed polls acknowledged again without a second point.")),
      refused_(metrics.AddCounter(
          "qfp_tracker_failures_refused_total",
          "Failed polls refused (the producer keeps them), by reason.",
          {"reason"})),
      heartbeats_received_(
          metrics.AddCounter("qfp_tracker_heartbeats_received_total",
                             "Heartbeats received from producers.")),
      heartbeats_used_(metrics.AddCounter(
          "qfp_tracker_heartbeats_used_total",
          "Heartbeats that passed the checks and were used.")),
      pollers_silent_(metrics.AddCounter(
          "qfp_tracker_pollers_silent_total",
          "Times a poller that sent heartbeats missed missedHeartbeats of "
          "them in a row (one POLLER error point each).")),
      own_points_dropped_(metrics.AddCounter(
          "qfp_tracker_own_points_dropped_total",
          "Points the tracker made itself (poll attempts, silent pollers, "
          "targets not polled) that its queue could not take, by kind.",
          {"kind"})),
      liveness_(config.missed_heartbeats > 0
                    ? std::make_unique<PollerLiveness>(config.missed_heartbeats,
                                                       clock)
                    : nullptr),
      coverage_(config.coverage_enabled
                    ? std::make_unique<Coverage>(config.coverage_targets, clock)
                    : nullptr),
      targets_not_polled_(metrics.AddCounter(
          "qfp_tracker_targets_not_polled_total",
          "Times a configured target was attempted by no poller for its "
          "window (coverage.enable; one not_polled error point each).")),
      recent_(RecentFailures::OptionsForDedupeWindow(config.dedupe_window)),
      streams_refused_(metrics.AddCounter(
          "qfp_tracker_streams_refused_total",
          "ReportFailures streams refused at once with RESOURCE_EXHAUSTED, by "
          "reason: max_streams (all the tracker's places taken) or "
          "max_streams_per_peer (the client's address holds its share).",
          {"reason"})),
      streams_open_(metrics.AddGauge(
          "qfp_tracker_streams_open",
          "ReportFailures streams open now (at most 256, 32 per client "
          "address).")) {
  // Both series from the start, so a scraper sees 0 before the first.
  streams_refused_.WithLabels({"max_streams"});
  streams_refused_.WithLabels({"max_streams_per_peer"});
  attempts_schema_.measurement = config.poll_attempts_measurement;
  attempts_schema_.static_tags = config.schema.static_tags;
}

// A stream's OnDone (a gRPC thread) takes streams_mu_ last; the server's
// shutdown orders it before this destructor inside gRPC, where
// ThreadSanitizer cannot see it. Taking the mutex once here makes that order
// visible through streams_mu_ itself (scripts/tsan.sh).
TrackerService::~TrackerService() { absl::MutexLock lock(&streams_mu_); }

void TrackerService::OnHeartbeat(const failedpolls::v1::Heartbeat& heartbeat,
                                 const std::string& peer) {
  heartbeats_received_.Increment();
  if (std::optional<std::string> bad =
          CheckHeartbeat(heartbeat, limits_, clock_.Now())) {
    if (uint64_t n = heartbeat_log_.Add(1); n > 0) {
      spdlog::warn(
          "ignored {} invalid heartbeats since the last report; the latest, "
          "from {}: {}",
          n, peer, *bad);
    }
    return;
  }
  heartbeats_used_.Increment();
  const absl::Duration interval = absl::Milliseconds(heartbeat.interval_ms());
  if (liveness_ != nullptr) {
    const PollerLiveness::BeatResult result =
        liveness_->Heartbeat(heartbeat.poller_id(), heartbeat.instance_id(),
                             interval, heartbeat.stopping());
    switch (result.beat) {
      case PollerLiveness::Beat::kNew:
        spdlog::info(
            "poller {} (instance {}, from {}) sends heartbeats every {} ms",
            heartbeat.poller_id(), heartbeat.instance_id(), peer,
            heartbeat.interval_ms());
        break;
      case PollerLiveness::Beat::kReturned:
        spdlog::info(
            "poller {} is back (instance {}, from {}): silent for {} ms",
            heartbeat.poller_id(), heartbeat.instance_id(), peer,
            absl::ToInt64Milliseconds(result.quiet_for));
        break;
      case PollerLiveness::Beat::kResumed:
        spdlog::info(
            "poller {} resumed (instance {}, from {}) {} ms after it said it "
            "was stopping",
            heartbeat.poller_id(), heartbeat.instance_id(), peer,
            absl::ToInt64Milliseconds(result.quiet_for));
        break;
      case PollerLiveness::Beat::kUntracked:
        if (uint64_t n = heartbeat_log_.Add(1); n > 0) {
          spdlog::warn(
              "{} heartbeats of pollers over the most tracked were not "
              "watched for silence; the latest: {} from {}",
              n, heartbeat.poller_id(), peer);
        }
        break;
      case PollerLiveness::Beat::kKnown:
        break;
    }
    if (heartbeat.stopping()) {
      spdlog::info(
          "poller {} (instance {}) is stopping: its silence is expected",
          heartbeat.poller_id(), heartbeat.instance_id());
    }
  }
  if (coverage_ != nullptr) {
    for (const failedpolls::v1::TargetAttempts& target : heartbeat.targets()) {
      if (target.attempted() == 0) continue;
      coverage_->Attempted(target.source(), target.server_name(), target.host(),
                           target.virtual_proxy());
    }
  }
  if (config_.poll_attempts_enabled && queue_ != nullptr &&
      heartbeat.targets_size() > 0) {
    WriteOwnPoints(HeartbeatToAttemptsPoints(heartbeat, attempts_schema_),
                   "poll_attempts");
  }
}

void TrackerService::CheckLiveness() {
  if (liveness_ == nullptr) return;
  std::vector<Point> points;
  for (const PollerLiveness::Silence& silence : liveness_->Check()) {
    pollers_silent_.Increment();
    spdlog::warn(
        "poller {} is silent: no heartbeat for {} ms ({} missed at {} ms "
        "each; last instance {})",
        silence.poller_id, absl::ToInt64Milliseconds(silence.quiet_for),
        config_.missed_heartbeats, absl::ToInt64Milliseconds(silence.interval),
        silence.instance_id);
    points.push_back(TrackerErrorPoint(
        ErrorPointSubject{"POLLER", silence.poller_id, silence.poller_id, ""},
        "silent", clock_.Now(), schema_));
  }
  if (!points.empty() && queue_ != nullptr) WriteOwnPoints(points, "silent");
  if (coverage_ == nullptr) return;
  const std::vector<ConfiguredTarget> missed = coverage_->Check();
  if (missed.empty()) return;
  targets_not_polled_.Increment(missed.size());
  // One line per check, however many targets: with no poller at all, every
  // target is missed at once.
  std::string names;
  for (size_t i = 0; i < missed.size() && i < 5; ++i) {
    absl::StrAppend(&names, i == 0 ? "" : ", ", missed[i].Key());
  }
  spdlog::warn(
      "{} configured targets were not polled by any poller within 2 of their "
      "intervals (or timeouts, when longer): {}{}",
      missed.size(), names, missed.size() > 5 ? ", ..." : "");
  if (queue_ == nullptr) return;
  std::vector<Point> not_polled;
  not_polled.reserve(missed.size());
  const absl::Time now = clock_.Now();
  for (const ConfiguredTarget& target : missed) {
    not_polled.push_back(TrackerErrorPoint(
        ErrorPointSubject{std::string(SourceName(target.source)),
                          target.server_name, target.host,
                          target.virtual_proxy},
        "not_polled", now, schema_));
  }
  WriteOwnPoints(not_polled, "not_polled");
}

void TrackerService::WriteOwnPoints(const std::vector<Point>& points,
                                    const char* kind) {
  std::vector<std::string> lines;
  lines.reserve(points.size());
  for (const Point& point : points) {
    absl::StatusOr<std::string> line = EncodeLine(point);
    if (line.ok()) {
      lines.push_back(*std::move(line));
      continue;
    }
    // Only a measurement name InfluxDB cannot take gets here.
    own_points_dropped_.WithLabels({kind}).Increment();
    if (uint64_t n = own_points_log_.Add(1); n > 0) {
      spdlog::error("{} {} points could not be encoded: {}", n, kind,
                    std::string(line.status().message()));
    }
  }
  if (lines.empty()) return;
  const size_t count = lines.size();
  queue_->Append(std::move(lines), [this, kind, count](absl::Status status) {
    if (status.ok()) return;
    own_points_dropped_.WithLabels({kind}).Increment(count);
    if (uint64_t n = own_points_log_.Add(count); n > 0) {
      spdlog::warn(
          "dropped {} points the tracker made itself since the "
          "last report (the latest {}): {}",
          n, kind, std::string(status.message()));
    }
  });
}

// One producer stream. Reads run on gRPC's callback threads; a request's
// store outcome arrives on the queue's writer thread (or inline). mu_
// orders the answers and counts what is in flight; gRPC operations are
// started after mu_ is released, so a reaction that gRPC runs inline never
// meets a held lock. gRPC allows one read and one write outstanding at a
// time, which `reading_` and `writing_` keep.
class TrackerService::Stream final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Stream(TrackerService& service, std::string peer)
      : service_(service),
        peer_(std::move(peer)),
        peer_address_(PeerAddress(peer_)) {
    // Which limit refuses the stream, if one does.
    enum class Refusal { kNone, kPeer, kTracker } refusal = Refusal::kNone;
    {
      absl::MutexLock lock(&service_.streams_mu_);
      auto it = service_.peer_streams_.find(peer_address_);
      if (it != service_.peer_streams_.end() &&
          it->second >= kMaxStreamsPerPeer) {
        refusal = Refusal::kPeer;
      } else if (service_.open_streams_ >= kMaxStreams) {
        refusal = Refusal::kTracker;
      } else {
        ++service_.open_streams_;
        ++service_.peer_streams_[peer_address_];
        service_.streams_open_.Set(service_.open_streams_);
        counted_ = true;
      }
    }
    if (refusal == Refusal::kPeer) {
      service_.streams_refused_.WithLabels({"max_streams_per_peer"})
          .Increment();
      if (uint64_t n = service_.peer_refusal_log_.Add(1); n > 0) {
        spdlog::warn(
            "refused {} streams since the last report: their address had {} "
            "streams open, the most one peer may (latest from {})",
            n, kMaxStreamsPerPeer, peer_);
      }
      RefuseAtOnce("too many open streams from this address; retry later");
      return;
    }
    if (refusal == Refusal::kTracker) {
      service_.streams_refused_.WithLabels({"max_streams"}).Increment();
      if (uint64_t n = service_.stream_refusal_log_.Add(1); n > 0) {
        spdlog::warn(
            "refused {} streams since the last report: {} streams are open, "
            "the most allowed (latest from {})",
            n, kMaxStreams, peer_);
      }
      RefuseAtOnce("too many open streams; retry later");
      return;
    }
    spdlog::info("producer connected from {}", peer_);
    next_ = std::make_unique<Admission>();
    reading_ = true;
    grpc::ByteBuffer* const buffer = &next_->raw_request;
    BeforeGrpcOperation(this);
    StartRead(buffer);
  }

  void OnReadDone(bool ok) override {
    InGrpcCallback(this);
    if (!ok) {
      // The producer half-closed, went away, or the call was cancelled.
      Act(Mutate([&] {
        reading_ = false;
        reads_done_ = true;
      }));
      return;
    }
    std::shared_ptr<Admission> admission(std::move(next_));
    const absl::Status parsed = ParseReportFailuresRequest(
        admission->raw_request, kMaxFailuresPerRequest, &admission->request);
    admission->raw_request.Clear();
    if (!parsed.ok()) {
      // The stream cannot go on past bytes it cannot read: the requests
      // before are still answered, then the stream ends with the reason.
      if (uint64_t n = service_.malformed_log_.Add(1); n > 0) {
        spdlog::warn(
            "ended {} streams since the last report for a request that could "
            "not be read; the latest, from {}: {}",
            n, peer_, std::string(parsed.message()));
      }
      Act(Mutate([&] {
        reading_ = false;
        reads_done_ = true;
        end_status_ = grpc::Status(absl::IsResourceExhausted(parsed)
                                       ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                       : grpc::StatusCode::INVALID_ARGUMENT,
                                   std::string(parsed.message()));
      }));
      return;
    }
    if (admission->request.has_heartbeat()) {
      service_.OnHeartbeat(admission->request.heartbeat(), peer_);
    }
    service_.Admit(*admission);
    auto slot = std::make_shared<Slot>();
    slot->admission = admission;
    Act(Mutate([&] {
      reading_ = false;
      slots_.push_back(slot);
    }));
    if (admission->lines.empty() || service_.queue_ == nullptr) {
      Completed(std::move(slot), absl::OkStatus());
    } else {
      service_.queue_->Append(std::move(admission->lines),
                              [this, slot](absl::Status status) mutable {
                                Completed(std::move(slot), std::move(status));
                              });
    }
  }

  void OnWriteDone(bool ok) override {
    InGrpcCallback(this);
    Act(Mutate([&] {
      writing_ = false;
      if (!ok) broken_ = true;  // the producer is gone: answer no more
    }));
  }

  void OnCancel() override {
    InGrpcCallback(this);
    Act(Mutate([&] { broken_ = true; }));
  }

  void OnDone() override {
    InGrpcCallback(this);
    if (counted_) {
      spdlog::info("producer {} disconnected", peer_);
      absl::MutexLock lock(&service_.streams_mu_);
      --service_.open_streams_;
      service_.streams_open_.Set(service_.open_streams_);
      auto it = service_.peer_streams_.find(peer_address_);
      if (--it->second == 0) service_.peer_streams_.erase(it);
    }
    delete this;
  }

 private:
  // Ends a stream that holds no place, before any read.
  void RefuseAtOnce(const char* message) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    BeforeGrpcOperation(this);
    Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, message));
  }

  struct Slot {
    std::shared_ptr<Admission> admission;
    bool ready = false;  // concluded; its answer may be sent
  };
  // What to start once mu_ is released.
  struct Actions {
    grpc::ByteBuffer* write = nullptr;
    // next_'s buffer, taken under mu_: once the read is started,
    // OnReadDone may take next_ on another thread.
    grpc::ByteBuffer* read = nullptr;
    bool finish = false;
    grpc::Status status;  // with `finish`
  };

  // Runs when the store answered for `slot`: concludes the request (logs,
  // counts, builds the answer) and sends it when its turn comes.
  void Completed(std::shared_ptr<Slot> slot, absl::Status status) {
    // Off the store's writer thread (or the reading thread): the next
    // commit, or the next read, need not wait for this.
    service_.concluder_.Add(
        [this, slot = std::move(slot), status = std::move(status)]() mutable {
          service_.Conclude(*slot->admission, status);
          Act(Mutate([&] { slot->ready = true; }));
        });
  }

  // Applies `change` under mu_, then decides what the stream does next.
  template <typename Change>
  Actions Mutate(Change change) {
    absl::MutexLock lock(&mu_);
    change();
    Actions actions;
    if (!writing_) {
      // Answers go in request order; after a failed write they are only
      // discarded (the failures are stored; the producer resends them and
      // the resend is acknowledged as a duplicate).
      while (!slots_.empty() && slots_.front()->ready &&
             actions.write == nullptr) {
        current_ = std::move(slots_.front());
        slots_.pop_front();
        if (!broken_) {
          writing_ = true;
          current_->admission->raw_response =
              SerializeReportFailuresResponse(current_->admission->response);
          actions.write = &current_->admission->raw_response;
        }
      }
    }
    if (!reading_ && !reads_done_ && !broken_ &&
        slots_.size() + (writing_ ? 1 : 0) <
            static_cast<size_t>(kRequestsInFlightPerStream)) {
      reading_ = true;
      next_ = std::make_unique<Admission>();
      actions.read = &next_->raw_request;
    }
    // Finish only when nothing can call back: no read, no write, and every
    // request the store holds has been answered for.
    if (!finished_ && !reading_ && !writing_ && slots_.empty() &&
        (reads_done_ || broken_)) {
      finished_ = true;
      actions.finish = true;
      actions.status = end_status_;
    }
    return actions;
  }

  void Act(const Actions& actions) {
    BeforeGrpcOperation(this);
    if (actions.write != nullptr) StartWrite(actions.write);
    if (actions.read != nullptr) StartRead(actions.read);
    if (actions.finish) Finish(actions.status);
  }

  TrackerService& service_;
  const std::string peer_;          // gRPC's peer URI, for logs
  const std::string peer_address_;  // its key in peer_streams_
  // Holds one of the kMaxStreams places and one of its peer's.
  bool counted_ = false;
  absl::Mutex mu_;
  // The request being read; only the thread that started the read, then
  // OnReadDone, touch it.
  std::unique_ptr<Admission> next_;
  // Requests admitted, in arrival order, until their answer is sent.
  std::deque<std::shared_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  // The answer being written (kept alive until the write is done).
  std::shared_ptr<Slot> current_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // How the stream ends: OK, or why a request could not be read.
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
};

void TrackerService::ApplyLimits(grpc::ServerBuilder& builder,
                                 const ConnectionLimits& connections) {
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             kMaxStreamsPerConnection);
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(connections.handshake)));
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_IDLE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(connections.idle)));
  grpc::ResourceQuota quota("qs-error-tracker");
  quota.Resize(kGrpcMemoryBytes);
  builder.SetResourceQuota(quota);
}

int TrackerService::open_streams() const {
  absl::MutexLock lock(&streams_mu_);
  return open_streams_;
}

std::string TrackerService::PeerAddress(absl::string_view peer) {
  absl::string_view rest = peer;
  if (!absl::ConsumePrefix(&rest, "ipv4:") &&
      !absl::ConsumePrefix(&rest, "ipv6:")) {
    return std::string(peer);
  }
  // gRPC percent-encodes an IPv6 address's brackets in some versions;
  // "%25" (a zone's '%') is left as it is, which keeps one zone one key.
  std::string address = absl::StrReplaceAll(rest, {{"%5B", "["},
                                                   {"%5D", "]"},
                                                   {"%5b", "["},
                                                   {"%5d", "]"},
                                                   {"%3A", ":"},
                                                   {"%3a", ":"}});
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close != std::string::npos) return address.substr(1, close - 1);
    return address;
  }
  const size_t colon = address.rfind(':');
  if (colon != std::string::npos) address.resize(colon);
  return address;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
TrackerService::ReportFailures(grpc::CallbackServerContext* context) {
  return new Stream(*this, context->peer());
}

void TrackerService::Refuse(const failedpolls::v1::FailureId& id,
                            std::string why, const char* reason,
                            failedpolls::v1::RefusalCode code,
                            ReportFailuresResponse& response) {
  refused_.WithLabels({reason}).Increment();
  auto* refusal = response.add_refused();
  *refusal->mutable_id() = id;
  refusal->set_reason(std::move(why));
  refusal->set_code(code);
}

void TrackerService::Admit(Admission& admission) {
  const ReportFailuresRequest& request = admission.request;
  ReportFailuresResponse& response = admission.response;
  admission.batch.reserve(static_cast<size_t>(request.failures_size()));
  // Ids of this request in `batch`; views into `request`.
  absl::flat_hash_set<
      std::tuple<absl::string_view, absl::string_view, uint64_t>>
      admitted;
  uint64_t malformed = 0;
  std::string latest_why;
  for (const PollFailure& failure : request.failures()) {
    received_.WithLabels({SourceName(failure.source())}).Increment();
    if (std::optional<FailureProblem> problem =
            CheckFailure(failure, limits_, clock_.Now())) {
      // Logged once per request below, without the failure's own strings:
      // a hostile producer must not flood or forge the log.
      ++malformed;
      latest_why = problem->why;
      Refuse(failure.id(), std::move(problem->why), problem->reason,
             failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT, response);
      continue;
    }
    // The same id twice in one request: the repeat gets the outcome of the
    // first copy (acknowledged only if that one is committed). A set, so a
    // huge request costs linear time, not quadratic.
    const std::tuple<absl::string_view, absl::string_view, uint64_t> id{
        failure.id().poller_id(), failure.id().instance_id(),
        failure.id().sequence()};
    if (admitted.contains(id)) {
      admission.repeats.push_back(&failure);
      continue;
    }
    if (recent_.Contains(failure.id())) {
      // Accepted before: acknowledge again, write nothing twice.
      duplicates_.Increment();
      *response.add_accepted() = failure.id();
      continue;
    }
    if (queue_ != nullptr) {
      absl::StatusOr<std::string> encoded =
          EncodeLine(FailureToPoint(failure, schema_));
      if (!encoded.ok()) {
        // Unencodable (a producer bug); refused so the producer sees it.
        const std::string why(encoded.status().message());
        ++malformed;
        latest_why =
            absl::StrCat(DescribeId(failure.id()), " cannot be encoded: ", why);
        Refuse(failure.id(), why, "unencodable",
               failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT, response);
        continue;
      }
      admission.lines.push_back(*std::move(encoded));
    }
    admitted.insert(id);
    admission.batch.push_back(&failure);
  }
  if (malformed > 0) {
    if (uint64_t n = malformed_log_.Add(malformed); n > 0) {
      spdlog::warn(
          "refused {} malformed failures since the last report (not to be "
          "resent); the latest: {}",
          n, latest_why);
    }
  }
}

void TrackerService::Conclude(Admission& admission,
                              const absl::Status& stored) {
  ReportFailuresResponse& response = admission.response;
  if (!stored.ok()) {
    const std::string why(stored.message());
    const bool full = absl::IsResourceExhausted(stored);
    const char* reason = full ? "buffer_full" : "store";
    const failedpolls::v1::RefusalCode code =
        full ? failedpolls::v1::REFUSAL_CODE_RESOURCE_EXHAUSTED
             : failedpolls::v1::REFUSAL_CODE_UNAVAILABLE;
    if (uint64_t n = refusal_log_.Add(admission.batch.size()); n > 0) {
      spdlog::warn(
          "refused {} failures since the last report (producers keep and "
          "resend them): {}",
          n, why);
    }
    for (const PollFailure* failure : admission.batch) {
      Refuse(failure->id(), why, reason, code, response);
    }
    for (const PollFailure* failure : admission.repeats) {
      Refuse(failure->id(), why, reason, code, response);
    }
    return;
  }
  for (const PollFailure* failure : admission.batch) {
    // Every accepted failure is logged once, whatever the switches (a
    // refused one is logged when a later resend is accepted).
    // Checked first: the line is built only when it is written.
    if (spdlog::should_log(spdlog::level::warn)) {
      spdlog::warn("failed poll: {}", DescribeFailure(*failure));
    }
    if (counter_ != nullptr) {
      if (std::optional<std::string> ended = counter_->Count(
              SourceName(failure->source()), failure->server_name())) {
        spdlog::info("{}", *ended);
      }
    }
    recent_.Insert(failure->id());
    accepted_.Increment();
    *response.add_accepted() = failure->id();
  }
  for (const PollFailure* failure : admission.repeats) {
    duplicates_.Increment();
    *response.add_accepted() = failure->id();
  }
}

grpc::Status TrackerService::GetErrorStats(
    grpc::ServerContext* /*context*/,
    const failedpolls::v1::GetErrorStatsRequest* /*request*/,
    failedpolls::v1::GetErrorStatsResponse* response) {
  if (counter_ == nullptr) return grpc::Status::OK;  // tracking is off
  // Roll over first so a quiet tracker never reports yesterday as today.
  if (std::optional<std::string> ended = counter_->RollOver()) {
    spdlog::info("{}", *ended);
  }
  response->set_day(absl::FormatCivilTime(counter_->day()));
  uint64_t total = 0;
  for (const ErrorCounter::TypeCount& type : counter_->Snapshot()) {
    auto* out = response->add_types();
    out->set_error_type(type.error_type);
    out->set_total(type.total);
    total += type.total;
    for (const auto& [server, count] : type.servers) {
      auto* server_count = out->add_servers();
      server_count->set_server_name(server);
      server_count->set_count(count);
    }
  }
  response->set_total(total);
  return grpc::Status::OK;
}

}  // namespace qfp::tracker
