#include "tracker-service/failure_check.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/failure_names.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;

// A problem with the string `field` named `name`, or nullopt.
std::optional<FailureProblem> CheckText(absl::string_view name,
                                        absl::string_view field,
                                        size_t max_bytes) {
  if (field.size() > max_bytes) {
    return FailureProblem{
        "too_long", absl::StrCat(name, " is ", field.size(),
                                 " bytes, over the limit of ", max_bytes)};
  }
  if (HasControlCharacter(field)) {
    return FailureProblem{"bad_text",
                          absl::StrCat(name, " holds a control character")};
  }
  return std::nullopt;
}

}  // namespace

std::optional<FailureProblem> CheckFailure(const PollFailure& failure,
                                           const FailureLimits& limits,
                                           absl::Time now) {
  if (failure.id().poller_id().empty() || failure.id().sequence() == 0) {
    return FailureProblem{
        "missing_id", "missing id (poller_id and a sequence > 0 are required)"};
  }
  if (failure.source() == failedpolls::v1::POLL_SOURCE_UNSPECIFIED ||
      !failedpolls::v1::PollSource_IsValid(failure.source())) {
    return FailureProblem{"unknown_enum", "missing or unknown source"};
  }
  if (!failedpolls::v1::ErrorCategory_IsValid(failure.error_category())) {
    return FailureProblem{
        "unknown_enum",
        absl::StrCat("unknown error_category ",
                     static_cast<int>(failure.error_category()))};
  }
  if (failure.server_name().empty()) {
    return FailureProblem{"missing_id", "missing server_name"};
  }
  const struct {
    absl::string_view name;
    const std::string& value;
    size_t max_bytes;
  } texts[] = {
      {"id.poller_id", failure.id().poller_id(), limits.max_id_bytes},
      {"id.instance_id", failure.id().instance_id(), limits.max_id_bytes},
      {"server_name", failure.server_name(), limits.max_name_bytes},
      {"host", failure.host(), limits.max_name_bytes},
      {"virtual_proxy", failure.virtual_proxy(), limits.max_name_bytes},
      {"error_code", failure.error_code(), limits.max_name_bytes},
      {"request_url", failure.request_url(), limits.max_url_bytes},
      {"remote_address", failure.remote_address(), limits.max_name_bytes},
      {"syscall", failure.syscall(), limits.max_name_bytes},
      {"message", failure.message(), limits.max_message_bytes},
  };
  for (const auto& text : texts) {
    if (auto problem = CheckText(text.name, text.value, text.max_bytes)) {
      return problem;
    }
  }
  if (static_cast<size_t>(failure.server_tags_size()) >
      limits.max_server_tags) {
    return FailureProblem{"too_many_tags",
                          absl::StrCat(failure.server_tags_size(),
                                       " server_tags, over the limit of ",
                                       limits.max_server_tags)};
  }
  for (const auto& [key, value] : failure.server_tags()) {
    if (key.empty()) {
      return FailureProblem{"bad_tag_key", "a server_tags key is empty"};
    }
    if (auto problem =
            CheckText("a server_tags key", key, limits.max_name_bytes)) {
      return problem;
    }
    if (auto problem =
            CheckText("a server_tags value", value, limits.max_name_bytes)) {
      return problem;
    }
  }
  // The rule on one key is CheckTagKey's, which both configs apply at load
  // (common/failure_names.h). Only trailing backslashes change a key here
  // (control characters were refused above), so a key that loses none meets
  // no other key once cleaned.
  absl::flat_hash_set<std::string> written_keys;
  for (const auto& [key, value] : failure.server_tags()) {
    if (absl::Status checked = CheckTagKey(key); !checked.ok()) {
      return FailureProblem{
          "bad_tag_key", absl::StrCat("a server_tags key ", checked.message())};
    }
    std::string written = CleanLineProtocolName(key);
    if (written.size() == key.size()) continue;
    if (failure.server_tags().count(written) > 0 ||
        !written_keys.insert(std::move(written)).second) {
      return FailureProblem{
          "bad_tag_key",
          "two server_tags keys differ only in trailing backslashes, which "
          "line protocol cannot carry: they would be one tag"};
    }
  }
  if (!failure.has_occurred_at() || failure.occurred_at().seconds() <= 0 ||
      failure.occurred_at().nanos() < 0 ||
      failure.occurred_at().nanos() > 999999999) {
    return FailureProblem{"bad_time", "missing or invalid occurred_at"};
  }
  const absl::Time occurred =
      absl::FromUnixSeconds(failure.occurred_at().seconds()) +
      absl::Nanoseconds(failure.occurred_at().nanos());
  if (occurred - now > limits.max_future_skew) {
    return FailureProblem{
        "bad_time",
        absl::StrCat("occurred_at is ", absl::FormatDuration(occurred - now),
                     " after the tracker's clock (at most ",
                     absl::FormatDuration(limits.max_future_skew), ")")};
  }
  if (now - occurred > limits.max_age) {
    return FailureProblem{
        "bad_time",
        absl::StrCat("occurred_at is ", absl::FormatDuration(now - occurred),
                     " old, older than the destination keeps points (",
                     absl::FormatDuration(limits.max_age), ")")};
  }
  return std::nullopt;
}

}  // namespace qfp::tracker
