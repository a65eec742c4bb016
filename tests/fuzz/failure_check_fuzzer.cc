// Fuzzes what the tracker accepts from a producer: the raw bytes as one
// PollFailure checked by CheckFailure (tracker-service/failure_check.h), and
// as a ReportFailuresRequest read by ParseReportFailuresRequest
// (stream_messages.h) from a grpc::ByteBuffer, as the stream reads it.
// Properties:
//  - an accepted failure keeps every rule of failure_check.h (checked here
//    again, separately) and becomes a line InfluxDB takes: EncodeLine of its
//    point succeeds with every PointSchema switch, so an accepted failure is
//    never dropped at the encoder;
//  - a refusal has one of the documented reasons and says why;
//  - ParseReportFailuresRequest agrees with protobuf's own parser: it accepts
//    the bytes exactly when protobuf parses them into at most `max_failures`
//    failures, and then gives the same message; ResourceExhausted only for
//    more failures than that.
#include <cstdint>
#include <cstring>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/failure_names.h"
#include "failedpolls/v1/failed_polls.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "tests/fuzz/fuzz_support.h"
#include "tracker-service/failure_check.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/stream_messages.h"

namespace {

using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;

bool TextOk(const std::string& text, size_t max_bytes) {
  if (text.size() > max_bytes) return false;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// failure_check.h's rules, restated.
bool KeepsTheRules(const PollFailure& f, const qfp::tracker::FailureLimits& l,
                   absl::Time now) {
  if (f.id().poller_id().empty() || f.id().sequence() == 0) return false;
  if (f.source() < 1 || f.source() > 3) return false;
  if (f.error_category() < 0 || f.error_category() > 12) return false;
  if (f.server_name().empty()) return false;
  for (const std::string* id : {&f.id().poller_id(), &f.id().instance_id()}) {
    if (!TextOk(*id, l.max_id_bytes)) return false;
  }
  for (const std::string* name :
       {&f.server_name(), &f.host(), &f.virtual_proxy(), &f.error_code(),
        &f.remote_address(), &f.syscall()}) {
    if (!TextOk(*name, l.max_name_bytes)) return false;
  }
  if (!TextOk(f.request_url(), l.max_url_bytes)) return false;
  if (!TextOk(f.message(), l.max_message_bytes)) return false;
  if (static_cast<size_t>(f.server_tags_size()) > l.max_server_tags) {
    return false;
  }
  for (const auto& [key, value] : f.server_tags()) {
    if (key.empty() || !TextOk(key, l.max_name_bytes) ||
        !TextOk(value, l.max_name_bytes)) {
      return false;
    }
  }
  // No key that loses trailing backslashes on the way (line_protocol.h)
  // becomes empty, one of our own tags (the four failure tags, poll attempts'
  // poller_id), "time", or another key; and no key is exactly one of our own
  // tags but host and server_name (which Butler SOS lets a server tag
  // replace).
  std::set<std::string> written;
  for (const auto& [key, value] : f.server_tags()) {
    std::string k = key;
    while (!k.empty() && k.back() == '\\') k.pop_back();
    const bool own = k == "error_type" || k == "server_name" || k == "host" ||
                     k == "virtual_proxy" || k == "poller_id";
    if (k == "time") return false;
    if (k.size() == key.size()) {
      if (own && k != "host" && k != "server_name") return false;
      continue;
    }
    if (k.empty() || own || f.server_tags().count(k) > 0 ||
        !written.insert(k).second) {
      return false;
    }
  }
  if (!f.has_occurred_at() || f.occurred_at().seconds() <= 0 ||
      f.occurred_at().nanos() < 0 || f.occurred_at().nanos() >= 1000000000) {
    return false;
  }
  const absl::Time at = absl::FromUnixSeconds(f.occurred_at().seconds()) +
                        absl::Nanoseconds(f.occurred_at().nanos());
  return at - now <= l.max_future_skew && now - at <= l.max_age;
}

void CheckOne(const PollFailure& failure, absl::Time now) {
  const qfp::tracker::FailureLimits limits;
  const std::optional<qfp::tracker::FailureProblem> problem =
      qfp::tracker::CheckFailure(failure, limits, now);
  if (problem) {
    const std::string reason = problem->reason;
    QFP_FUZZ_CHECK(reason == "missing_id" || reason == "unknown_enum" ||
                       reason == "too_long" || reason == "bad_text" ||
                       reason == "too_many_tags" || reason == "bad_tag_key" ||
                       reason == "bad_time",
                   "undocumented reason [%s]", reason.c_str());
    QFP_FUZZ_CHECK(!problem->why.empty(), "a refusal without a why");
    return;
  }
  QFP_FUZZ_CHECK(KeepsTheRules(failure, limits, now),
                 "accepted a failure that breaks a rule: %s",
                 failure.ShortDebugString().c_str());
  for (int schema_bits = 0; schema_bits < 4; ++schema_bits) {
    qfp::tracker::PointSchema schema;
    schema.include_server_tags = (schema_bits & 1) != 0;
    schema.integer_numbers = (schema_bits & 2) != 0;
    const absl::StatusOr<std::string> line =
        qfp::tracker::EncodeLine(qfp::tracker::FailureToPoint(failure, schema));
    // Nothing may stop an accepted failure (with no static tags, the one
    // clash CheckFailure cannot see).
    QFP_FUZZ_CHECK(line.ok(),
                   "an accepted failure cannot be written (server tags %d): "
                   "%s; failure %s",
                   schema.include_server_tags, line.status().ToString().c_str(),
                   failure.ShortDebugString().c_str());
  }
}

void CheckFailureAt(const PollFailure& failure) {
  // A fixed clock (2026-11-30) checks the time window; a clock just after
  // the failure's own time lets everything else be accepted.
  CheckOne(failure, absl::FromUnixSeconds(1795996800));
  if (failure.has_occurred_at() && failure.occurred_at().seconds() > 0 &&
      failure.occurred_at().seconds() < (int64_t{1} << 40)) {
    CheckOne(failure,
             absl::FromUnixSeconds(failure.occurred_at().seconds() + 1));
  }
}

void CheckRequest(const uint8_t* data, size_t size, size_t max_failures) {
  grpc::Slice slice(data, size);
  const grpc::ByteBuffer bytes(&slice, 1);
  ReportFailuresRequest ours;
  const absl::Status status =
      qfp::tracker::ParseReportFailuresRequest(bytes, max_failures, &ours);

  ReportFailuresRequest reference;
  const bool parsed = reference.ParseFromArray(data, static_cast<int>(size));
  const bool within =
      parsed && static_cast<size_t>(reference.failures_size()) <= max_failures;
  QFP_FUZZ_CHECK(status.ok() == within,
                 "ParseReportFailuresRequest: %s; protobuf: %s, %d failures "
                 "(max %zu)",
                 status.ToString().c_str(), parsed ? "parsed" : "refused",
                 reference.failures_size(), max_failures);
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    // More failure fields than allowed were seen before any was built;
    // protobuf, when it can parse the bytes at all, counts the same.
    QFP_FUZZ_CHECK(!parsed || static_cast<size_t>(reference.failures_size()) >
                                  max_failures,
                   "ResourceExhausted for %d failures (max %zu)",
                   reference.failures_size(), max_failures);
  }
  if (!status.ok()) return;
  QFP_FUZZ_CHECK(
      google::protobuf::util::MessageDifferencer::Equals(ours, reference),
      "a different message than protobuf's");
  for (const PollFailure& failure : ours.failures()) CheckFailureAt(failure);
}

}  // namespace

// protobuf logs every string that is not UTF-8 it refuses; that is the
// expected answer to random bytes, and the log would drown the fuzzer's.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  PollFailure failure;
  if (failure.ParseFromArray(data, static_cast<int>(size))) {
    CheckFailureAt(failure);
  }
  CheckRequest(data, size, 3);
  CheckRequest(data, size, 10000);  // TrackerService::kMaxFailuresPerRequest
  return 0;
}
