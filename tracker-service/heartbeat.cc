#include "tracker-service/heartbeat.h"

#include <cstdint>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/failure_names.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::Heartbeat;

std::optional<std::string> CheckText(absl::string_view name,
                                     absl::string_view value,
                                     size_t max_bytes) {
  if (value.size() > max_bytes) {
    return absl::StrCat(name, " is ", value.size(),
                        " bytes, over the limit of ", max_bytes);
  }
  if (HasControlCharacter(value)) {
    return absl::StrCat(name, " holds a control character");
  }
  return std::nullopt;
}

// Tags that say what a point is about: a static tag never replaces them,
// nor fills one in that is left out (as on failure points). poller_id is
// one only on attempts points.
bool IsReservedTag(absl::string_view key, bool attempts) {
  return key == "error_type" || key == "server_name" || key == "host" ||
         key == "virtual_proxy" || (attempts && key == "poller_id");
}

std::vector<std::pair<std::string, std::string>> Tags(
    const std::map<std::string, std::string>& static_tags,
    std::map<std::string, std::string> own, bool attempts) {
  for (const auto& [key, value] : static_tags) {
    if (!value.empty() && !IsReservedTag(key, attempts))
      own.emplace(key, value);
  }
  return {own.begin(), own.end()};
}

}  // namespace

std::optional<std::string> CheckHeartbeat(const Heartbeat& heartbeat,
                                          const FailureLimits& limits,
                                          absl::Time now) {
  if (heartbeat.poller_id().empty()) return "missing poller_id";
  if (auto bad =
          CheckText("poller_id", heartbeat.poller_id(), limits.max_id_bytes)) {
    return bad;
  }
  if (auto bad = CheckText("instance_id", heartbeat.instance_id(),
                           limits.max_id_bytes)) {
    return bad;
  }
  const absl::Duration interval = absl::Milliseconds(heartbeat.interval_ms());
  if (interval < kMinHeartbeatInterval || interval > kMaxHeartbeatInterval) {
    return absl::StrCat("interval_ms ", heartbeat.interval_ms(),
                        " is outside [",
                        absl::ToInt64Milliseconds(kMinHeartbeatInterval), ", ",
                        absl::ToInt64Milliseconds(kMaxHeartbeatInterval), "]");
  }
  // google.protobuf.Timestamp's valid range, 0001-01-01 to 9999-12-31.
  constexpr int64_t kMinSeconds = -62135596800;
  constexpr int64_t kMaxSeconds = 253402300799;
  const auto& sent = heartbeat.sent_at();
  if (!heartbeat.has_sent_at() || sent.seconds() < kMinSeconds ||
      sent.seconds() > kMaxSeconds || sent.nanos() < 0 ||
      sent.nanos() > 999999999) {
    return "missing or invalid sent_at";
  }
  if (absl::FromUnixSeconds(sent.seconds()) > now + limits.max_future_skew) {
    return "sent_at is in the future";
  }
  if (heartbeat.targets_size() > kMaxHeartbeatTargets) {
    return absl::StrCat(heartbeat.targets_size(),
                        " targets, over the limit of ", kMaxHeartbeatTargets);
  }
  for (int i = 0; i < heartbeat.targets_size(); ++i) {
    const failedpolls::v1::TargetAttempts& target = heartbeat.targets(i);
    const std::string where = absl::StrCat("targets[", i, "]");
    if (target.source() == failedpolls::v1::POLL_SOURCE_UNSPECIFIED ||
        !failedpolls::v1::PollSource_IsValid(target.source())) {
      return absl::StrCat(where, ": missing or unknown source");
    }
    if (target.server_name().empty()) {
      return absl::StrCat(where, ": missing server_name");
    }
    for (const auto& [name, value] :
         {std::pair<absl::string_view, const std::string&>{
              "server_name", target.server_name()},
          {"host", target.host()},
          {"virtual_proxy", target.virtual_proxy()}}) {
      if (auto bad = CheckText(absl::StrCat(where, ".", name), value,
                               limits.max_name_bytes)) {
        return bad;
      }
    }
    if (target.attempted() >
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::StrCat(where, ": attempted is too large");
    }
    if (target.failed() > target.attempted()) {
      return absl::StrCat(where, ": failed is more than attempted");
    }
  }
  return std::nullopt;
}

std::vector<Point> HeartbeatToAttemptsPoints(const Heartbeat& heartbeat,
                                             const AttemptsSchema& schema) {
  // CheckHeartbeat held sent_at to Timestamp's range: no overflow.
  const int64_t timestamp_ns =
      heartbeat.sent_at().seconds() * 1000000000 + heartbeat.sent_at().nanos();
  std::vector<Point> points;
  points.reserve(static_cast<size_t>(heartbeat.targets_size()));
  for (const failedpolls::v1::TargetAttempts& target : heartbeat.targets()) {
    std::map<std::string, std::string> own{
        {"error_type", std::string(SourceName(target.source()))},
        {"host", target.host()},
        {"poller_id", heartbeat.poller_id()},
        {"server_name", target.server_name()}};
    if (target.source() == failedpolls::v1::PROXY_API &&
        !target.virtual_proxy().empty()) {
      own.emplace("virtual_proxy", target.virtual_proxy());
    }
    Point& point = points.emplace_back();
    point.measurement = schema.measurement;
    point.tags = Tags(schema.static_tags, std::move(own), /*attempts=*/true);
    point.fields.emplace_back("attempted",
                              static_cast<int64_t>(target.attempted()));
    point.fields.emplace_back("failed", static_cast<int64_t>(target.failed()));
    point.timestamp_ns = timestamp_ns;
  }
  return points;
}

Point TrackerErrorPoint(const ErrorPointSubject& subject,
                        absl::string_view category, absl::Time at,
                        const PointSchema& schema) {
  std::map<std::string, std::string> own{{"error_type", subject.error_type},
                                         {"host", subject.host},
                                         {"server_name", subject.server_name}};
  if (subject.error_type == SourceName(failedpolls::v1::PROXY_API) &&
      !subject.virtual_proxy.empty()) {
    own.emplace("virtual_proxy", subject.virtual_proxy);
  }
  Point point;
  point.measurement = schema.measurement;
  point.tags = Tags(schema.static_tags, std::move(own), /*attempts=*/false);
  point.fields.emplace_back("error_category", std::string(category));
  if (schema.integer_numbers) {
    point.fields.emplace_back("error_count", int64_t{1});
  } else {
    point.fields.emplace_back("error_count", 1.0);
  }
  point.timestamp_ns = absl::ToUnixNanos(at);
  return point;
}

}  // namespace qfp::tracker
