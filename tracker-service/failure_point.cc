#include "tracker-service/failure_point.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "common/failure_names.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;

FieldValue Number(uint32_t value, bool integer_numbers) {
  if (integer_numbers) return FieldValue(static_cast<int64_t>(value));
  return FieldValue(static_cast<double>(value));
}

// occurred_at in ns since the epoch, clamped to what int64 ns can hold (about
// 1677 to 2262, InfluxDB's own range) so that a wild timestamp cannot
// overflow.
int64_t TimestampNs(const google::protobuf::Timestamp& ts) {
  constexpr int64_t kNanosPerSecond = 1000000000;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t seconds = ts.seconds();
  // A valid Timestamp has nanos in [0, 1e9); keeping it there makes both
  // bounds below overflow-free.
  const int64_t nanos = std::clamp<int64_t>(ts.nanos(), 0, kNanosPerSecond - 1);
  if (seconds > (kMax - nanos) / kNanosPerSecond) return kMax;
  if (seconds < kMin / kNanosPerSecond) return kMin;
  return seconds * kNanosPerSecond + nanos;
}

}  // namespace

Point FailureToPoint(const PollFailure& failure, const PointSchema& schema) {
  Point point;
  point.measurement = schema.measurement;

  // Later sources overwrite earlier ones: static tags (the same on every
  // point), then the failing server's tags (more specific), then the
  // failure's own. Empty values count as absent, so they never hide a value.
  std::map<std::string, std::string> tags;
  auto add_extra = [&tags](const std::string& key, const std::string& value) {
    if (!value.empty() && !IsFailureTag(key)) tags[key] = value;
  };
  for (const auto& [key, value] : schema.static_tags) add_extra(key, value);
  if (schema.include_server_tags) {
    for (const auto& [key, value] : failure.server_tags())
      add_extra(key, value);
  }
  tags["error_type"] = std::string(SourceName(failure.source()));
  tags["server_name"] = failure.server_name();
  tags["host"] = failure.host();
  if (failure.source() == failedpolls::v1::PROXY_API &&
      !failure.virtual_proxy().empty()) {
    tags["virtual_proxy"] = failure.virtual_proxy();
  }
  point.tags.reserve(tags.size());
  for (auto& [key, value] : tags) {
    // EncodeLine drops empty values (an empty server_name or host), as
    // Butler SOS never writes a tag empty.
    point.tags.emplace_back(key, std::move(value));
  }

  // Fields in key order, as Butler SOS's own lines show them.
  const bool ints = schema.integer_numbers;
  auto& fields = point.fields;
  fields.emplace_back("error_category",
                      std::string(CategoryName(failure.error_category())));
  if (!failure.error_code().empty()) {
    fields.emplace_back("error_code", failure.error_code());
  }
  fields.emplace_back("error_count", Number(1, ints));
  if (failure.has_http_status()) {
    fields.emplace_back("http_status", Number(failure.http_status(), ints));
  }
  if (!failure.remote_address().empty()) {
    fields.emplace_back("remote_address", failure.remote_address());
  }
  if (failure.has_remote_port()) {
    fields.emplace_back("remote_port", Number(failure.remote_port(), ints));
  }
  if (failure.has_request_timeout_ms()) {
    fields.emplace_back("request_timeout_ms",
                        Number(failure.request_timeout_ms(), ints));
  }
  if (!failure.request_url().empty()) {
    fields.emplace_back("request_url", failure.request_url());
  }
  if (!failure.syscall().empty()) {
    fields.emplace_back("syscall", failure.syscall());
  }

  point.timestamp_ns = TimestampNs(failure.occurred_at());
  return point;
}

}  // namespace qfp::tracker
