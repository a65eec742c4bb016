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
                               ErrorCounter* counter, WritePipeline* pipeline)
    : config_(config),
      counter_(counter),
      pipeline_(pipeline),
      schema_(config.schema) {}

grpc::Status TrackerService::ReportFailures(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<ReportFailuresResponse, ReportFailuresRequest>*
        stream) {
  spdlog::info("producer connected from {}", context->peer());
  ReportFailuresRequest request;
  while (stream->Read(&request)) {
    ReportFailuresResponse response;
    for (const PollFailure& failure : request.failures()) {
      Handle(failure, response);
    }
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

void TrackerService::Handle(const PollFailure& failure,
                            ReportFailuresResponse& response) {
  {
    absl::MutexLock lock(&mu_);
    ++stats_.received;
  }
  if (std::string why = Invalid(failure); !why.empty()) {
    spdlog::warn("refused a malformed failure from {}: {}",
                 failure.id().poller_id(), why);
    absl::MutexLock lock(&mu_);
    ++stats_.invalid;
    auto* refusal = response.add_refused();
    *refusal->mutable_id() = failure.id();
    refusal->set_reason(std::move(why));
    return;
  }
  const std::string key =
      absl::StrCat(failure.id().poller_id(), "/", failure.id().instance_id(),
                   "/", failure.id().sequence());
  {
    absl::MutexLock lock(&mu_);
    if (recent_.contains(key)) {
      ++stats_.duplicates;
      *response.add_accepted() = failure.id();
      return;
    }
  }

  // Every failure is logged, whatever the switches.
  spdlog::warn("failed poll: {}", DescribeFailure(failure));

  if (pipeline_ != nullptr) {
    absl::StatusOr<std::string> line =
        EncodeLine(FailureToPoint(failure, schema_));
    if (!line.ok()) {
      // Unencodable (a producer bug); logged above, refused so it is seen.
      spdlog::warn("cannot encode failure {}: {}", key, std::string(line.status().message()));
      absl::MutexLock lock(&mu_);
      ++stats_.invalid;
      auto* refusal = response.add_refused();
      *refusal->mutable_id() = failure.id();
      refusal->set_reason(std::string(line.status().message()));
      return;
    }
    std::vector<std::string> lines;
    lines.push_back(*std::move(line));
    if (absl::Status status = pipeline_->Enqueue(std::move(lines));
        !status.ok()) {
      absl::MutexLock lock(&mu_);
      ++stats_.refused_full;
      auto* refusal = response.add_refused();
      *refusal->mutable_id() = failure.id();
      refusal->set_reason(std::string(status.message()));
      return;
    }
  }
  if (counter_ != nullptr) {
    if (std::optional<std::string> ended = counter_->Count(
            SourceName(failure.source()), failure.server_name())) {
      spdlog::info("{}", *ended);
    }
    if (config_.log_summary) spdlog::info("{}", counter_->Summary());
  }
  absl::MutexLock lock(&mu_);
  SeenBefore(key);
  ++stats_.accepted;
  *response.add_accepted() = failure.id();
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
