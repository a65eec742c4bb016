#include "tracker-service/tracker_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/failure_names.h"
#include "spdlog/spdlog.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {
namespace {

bool SameId(const failedpolls::v1::FailureId& a,
            const failedpolls::v1::FailureId& b) {
  return a.sequence() == b.sequence() && a.poller_id() == b.poller_id() &&
         a.instance_id() == b.instance_id();
}

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
                               MetricsRegistry& metrics)
    : config_(config),
      counter_(counter),
      queue_(queue),
      schema_(config.schema),
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
      recent_(RecentFailures::OptionsForDedupeWindow(config.dedupe_window)) {}

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

void TrackerService::Refuse(const failedpolls::v1::FailureId& id,
                            std::string why, const char* reason,
                            ReportFailuresResponse& response) {
  refused_.WithLabels({reason}).Increment();
  auto* refusal = response.add_refused();
  *refusal->mutable_id() = id;
  refusal->set_reason(std::move(why));
}

void TrackerService::Handle(const ReportFailuresRequest& request,
                            ReportFailuresResponse& response) {
  std::vector<const PollFailure*> batch;
  std::vector<const PollFailure*> repeats;
  std::vector<std::string> lines;
  batch.reserve(static_cast<size_t>(request.failures_size()));
  for (const PollFailure& failure : request.failures()) {
    received_.WithLabels({SourceName(failure.source())}).Increment();
    if (std::string why = Invalid(failure); !why.empty()) {
      spdlog::warn("refused a malformed failure from {}: {}",
                   failure.id().poller_id(), why);
      Refuse(failure.id(), std::move(why), "invalid", response);
      continue;
    }
    // The same id twice in one request: the repeat gets the outcome of the
    // first copy (acknowledged only if that one is committed).
    if (std::any_of(batch.begin(), batch.end(),
                    [&](const PollFailure* earlier) {
                      return SameId(earlier->id(), failure.id());
                    })) {
      repeats.push_back(&failure);
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
        spdlog::warn("cannot encode failure {}: {}", DescribeId(failure.id()),
                     why);
        Refuse(failure.id(), why, "invalid", response);
        continue;
      }
      lines.push_back(*std::move(encoded));
    }
    batch.push_back(&failure);
  }
  if (batch.empty()) return;

  if (queue_ != nullptr) {
    // Committed before acknowledged: one Append (one shared commit) for
    // the whole request.
    if (absl::Status status = queue_->Append(std::move(lines)); !status.ok()) {
      const std::string why(status.message());
      const char* reason =
          absl::IsResourceExhausted(status) ? "buffer_full" : "store";
      if (uint64_t n = refusal_log_.Add(batch.size()); n > 0) {
        spdlog::warn(
            "refused {} failures since the last report (producers keep and "
            "resend them): {}",
            n, why);
      }
      for (const PollFailure* failure : batch) {
        Refuse(failure->id(), why, reason, response);
      }
      for (const PollFailure* failure : repeats) {
        Refuse(failure->id(), why, reason, response);
      }
      return;
    }
  }
  for (const PollFailure* failure : batch) {
    // Every accepted failure is logged once, whatever the switches (a
    // refused one is logged when a later resend is accepted).
    spdlog::warn("failed poll: {}", DescribeFailure(*failure));
    if (counter_ != nullptr) {
      if (std::optional<std::string> ended = counter_->Count(
              SourceName(failure->source()), failure->server_name())) {
        spdlog::info("{}", *ended);
      }
      if (config_.log_summary) spdlog::info("{}", counter_->Summary());
    }
    recent_.Insert(failure->id());
    accepted_.Increment();
    *response.add_accepted() = failure->id();
  }
  for (const PollFailure* failure : repeats) {
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
