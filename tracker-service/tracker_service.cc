#include "tracker-service/tracker_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/failure_names.h"
#include "spdlog/spdlog.h"
#include "tracker-service/line_protocol.h"

namespace qfp {

using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

TrackerService::TrackerService(const TrackerConfig& config,
                               ErrorCounter* counter, WritePipeline* pipeline,
                               WriteAheadLog* wal, MetricsRegistry* metrics)
    : config_(config),
      counter_(counter),
      pipeline_(pipeline),
      wal_(pipeline != nullptr ? wal : nullptr),
      schema_(config.schema) {
  if (metrics != nullptr) {
    received_ = &metrics->AddCounter(
        "qfp_tracker_failures_received_total",
        "Failed polls received from producers, by error_type.",
        {"error_type"});
    accepted_ = &metrics->AddCounter(
        "qfp_tracker_failures_accepted_total",
        "Failed polls accepted (acknowledged and queued for InfluxDB).");
    duplicates_ = &metrics->AddCounter(
        "qfp_tracker_failures_duplicate_total",
        "Re-sent failed polls acknowledged again without a second point.");
    refused_ = &metrics->AddCounter(
        "qfp_tracker_failures_refused_total",
        "Failed polls refused (the producer keeps them), by reason.",
        {"reason"});
  }
}

grpc::Status TrackerService::ReportFailures(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<ReportFailuresResponse, ReportFailuresRequest>*
        stream) {
  spdlog::info("producer connected from {}", context->peer());
  ReportFailuresRequest request;
  while (stream->Read(&request)) {
    ReportFailuresResponse response;
    Handle(request, response);
    // One answer per request: acknowledgements travel in batches.
    if (!stream->Write(response)) break;
  }
  spdlog::info("producer {} disconnected", context->peer());
  return grpc::Status::OK;
}

std::string TrackerService::Invalid(const PollFailure& failure) {
  if (failure.id().poller_id().empty() || failure.id().sequence() == 0) {
    return "missing id (poller_id and a sequence > 0 are required)";
  }
  if (failure.source() == failedpolls::v1::POLL_SOURCE_UNSPECIFIED ||
      !failedpolls::v1::PollSource_IsValid(failure.source())) {
    return "missing or unknown source";
  }
  if (failure.server_name().empty()) return "missing server_name";
  if (!failure.has_occurred_at() || failure.occurred_at().seconds() <= 0 ||
      failure.occurred_at().nanos() < 0 ||
      failure.occurred_at().nanos() > 999999999) {
    return "missing or invalid occurred_at";
  }
  return "";
}

bool TrackerService::SeenBefore(const std::string& key) {
  if (config_.dedupe_window == 0) return false;
  if (!recent_.insert(key).second) return true;
  recent_order_.push_back(key);
  if (recent_order_.size() > config_.dedupe_window) {
    recent_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  return false;
}

void TrackerService::LogRefusal(size_t n, const std::string& why) {
  // Producers resend refused failures every second while the cause lasts:
  // one line at the first refusal, then at most one every 10 s with totals.
  absl::MutexLock lock(&mu_);
  refused_since_log_ += n;
  const absl::Time now = absl::Now();
  if (now - last_refusal_log_ < absl::Seconds(10)) return;
  spdlog::warn(
      "refused {} failures since the last report (producers keep and resend "
      "them): {}",
      refused_since_log_, why);
  refused_since_log_ = 0;
  last_refusal_log_ = now;
}

void TrackerService::Refuse(const failedpolls::v1::FailureId& id,
                            std::string reason, const char* kind,
                            ReportFailuresResponse& response) {
  if (refused_ != nullptr) refused_->WithLabels({kind}).Increment();
  auto* refusal = response.add_refused();
  *refusal->mutable_id() = id;
  refusal->set_reason(std::move(reason));
}

void TrackerService::Handle(const ReportFailuresRequest& request,
                            ReportFailuresResponse& response) {
  struct Accepted {
    const PollFailure* failure;
    std::string key;
    std::string line;
  };
  std::vector<Accepted> batch;
  batch.reserve(static_cast<size_t>(request.failures_size()));
  for (const PollFailure& failure : request.failures()) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.received;
    }
    if (received_ != nullptr) {
      received_->WithLabels({SourceName(failure.source())}).Increment();
    }
    if (std::string why = Invalid(failure); !why.empty()) {
      spdlog::warn("refused a malformed failure from {}: {}",
                   failure.id().poller_id(), why);
      {
        absl::MutexLock lock(&mu_);
        ++stats_.invalid;
      }
      Refuse(failure.id(), std::move(why), "invalid", response);
      continue;
    }
    std::string key =
        absl::StrCat(failure.id().poller_id(), "/", failure.id().instance_id(),
                     "/", failure.id().sequence());
    bool duplicate = false;
    {
      absl::MutexLock lock(&mu_);
      duplicate = recent_.contains(key);
    }
    for (const Accepted& earlier : batch) duplicate |= earlier.key == key;
    if (duplicate) {
      // Accepted before: acknowledge again, write nothing twice.
      if (duplicates_ != nullptr) duplicates_->Increment();
      absl::MutexLock lock(&mu_);
      ++stats_.duplicates;
      *response.add_accepted() = failure.id();
      continue;
    }
    std::string line;
    if (pipeline_ != nullptr) {
      absl::StatusOr<std::string> encoded =
          EncodeLine(FailureToPoint(failure, schema_));
      if (!encoded.ok()) {
        // Unencodable (a producer bug); refused so the producer sees it.
        const std::string why(encoded.status().message());
        spdlog::warn("cannot encode failure {}: {}", key, why);
        {
          absl::MutexLock lock(&mu_);
          ++stats_.invalid;
        }
        Refuse(failure.id(), why, "invalid", response);
        continue;
      }
      line = *std::move(encoded);
    }
    batch.push_back(Accepted{&failure, std::move(key), std::move(line)});
  }
  if (batch.empty()) return;

  std::vector<PendingPoint> points(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) points[i].line = batch[i].line;
  auto refuse_all = [&](const std::string& why,
                        uint64_t TrackerServiceStats::*counter,
                        const char* kind) {
    absl::MutexLock lock(&mu_);
    stats_.*counter += batch.size();
    for (const Accepted& a : batch) {
      Refuse(a.failure->id(), why, kind, response);
    }
  };
  if (wal_ != nullptr) {
    // Durable before acknowledged: one append (and one shared fsync) for
    // the whole request.
    std::vector<std::string> payloads;
    payloads.reserve(batch.size());
    for (const Accepted& a : batch) {
      payloads.push_back(a.failure->SerializeAsString());
    }
    absl::StatusOr<std::vector<uint64_t>> lsns = wal_->Append(payloads);
    if (!lsns.ok()) {
      const std::string why(lsns.status().message());
      LogRefusal(batch.size(), why);
      refuse_all(why, &TrackerServiceStats::refused_wal, "wal");
      return;
    }
    for (size_t i = 0; i < batch.size(); ++i) points[i].lsn = (*lsns)[i];
  }
  if (pipeline_ != nullptr) {
    std::vector<uint64_t> lsns;
    for (const PendingPoint& point : points) lsns.push_back(point.lsn);
    if (absl::Status status = pipeline_->Enqueue(std::move(points));
        !status.ok()) {
      // Refused: the producer keeps them and sends them again.
      if (wal_ != nullptr) wal_->Release(lsns);
      LogRefusal(batch.size(), std::string(status.message()));
      refuse_all(std::string(status.message()),
                 &TrackerServiceStats::refused_full, "buffer_full");
      return;
    }
  }
  for (const Accepted& a : batch) {
    // Every accepted failure is logged once, whatever the switches (a
    // refused one is logged when a later resend is accepted).
    spdlog::warn("failed poll: {}", DescribeFailure(*a.failure));
    if (counter_ != nullptr) {
      if (std::optional<std::string> ended = counter_->Count(
              SourceName(a.failure->source()), a.failure->server_name())) {
        spdlog::info("{}", *ended);
      }
      if (config_.log_summary) spdlog::info("{}", counter_->Summary());
    }
    if (accepted_ != nullptr) accepted_->Increment();
    absl::MutexLock lock(&mu_);
    SeenBefore(a.key);
    ++stats_.accepted;
    *response.add_accepted() = a.failure->id();
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

TrackerServiceStats TrackerService::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace qfp
