#include "common/failure_names.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace qfp {

using failedpolls::v1::ErrorCategory;
using failedpolls::v1::PollSource;

absl::string_view SourceName(PollSource source) {
  switch (source) {
    case failedpolls::v1::HEALTH_API:
      return "HEALTH_API";
    case failedpolls::v1::PROXY_API:
      return "PROXY_API";
    case failedpolls::v1::APP_NAMES_EXTRACT:
      return "APP_NAMES_EXTRACT";
    default:
      return "UNSPECIFIED";
  }
}

absl::string_view CategoryName(ErrorCategory category) {
  switch (category) {
    case failedpolls::v1::ERROR_CATEGORY_TIMEOUT:
      return "timeout";
    case failedpolls::v1::ERROR_CATEGORY_CONNECTION_REFUSED:
      return "connection_refused";
    case failedpolls::v1::ERROR_CATEGORY_HOST_NOT_FOUND:
      return "host_not_found";
    case failedpolls::v1::ERROR_CATEGORY_CONNECTION_RESET:
      return "connection_reset";
    case failedpolls::v1::ERROR_CATEGORY_AUTH_ERROR:
      return "auth_error";
    case failedpolls::v1::ERROR_CATEGORY_NOT_FOUND:
      return "not_found";
    case failedpolls::v1::ERROR_CATEGORY_RATE_LIMITED:
      return "rate_limited";
    case failedpolls::v1::ERROR_CATEGORY_HTTP_4XX:
      return "http_4xx";
    case failedpolls::v1::ERROR_CATEGORY_HTTP_5XX:
      return "http_5xx";
    case failedpolls::v1::ERROR_CATEGORY_CERTIFICATE_ERROR:
      return "certificate_error";
    case failedpolls::v1::ERROR_CATEGORY_INVALID_RESPONSE:
      return "invalid_response";
    default:
      return "unknown";
  }
}

std::string DescribeFailure(const failedpolls::v1::PollFailure& failure) {
  std::string line =
      absl::StrCat(SourceName(failure.source()),
                   " server=", failure.server_name(), " host=", failure.host());
  if (!failure.virtual_proxy().empty()) {
    absl::StrAppend(&line, " virtual_proxy=", failure.virtual_proxy());
  }
  absl::StrAppend(&line, " category=", CategoryName(failure.error_category()));
  if (!failure.error_code().empty()) {
    absl::StrAppend(&line, " code=", failure.error_code());
  }
  if (failure.has_http_status()) {
    absl::StrAppend(&line, " status=", failure.http_status());
  }
  if (!failure.request_url().empty()) {
    absl::StrAppend(&line, " url=", failure.request_url());
  }
  if (!failure.message().empty())
    absl::StrAppend(&line, ": ", failure.message());
  return line;
}

bool HasControlCharacter(absl::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// A line break would end the point, so it becomes a space. A trailing
// backslash cannot be written at all (it escapes the delimiter that follows
// it, and InfluxDB 1.6 rejects the line with "invalid tag format" whether or
// not it is doubled), so it is dropped: losing one character beats losing the
// point.
std::string CleanLineProtocolName(absl::string_view in) {
  std::string out(in);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; },
      ' ');
  while (!out.empty() && out.back() == '\\') out.pop_back();
  return out;
}

bool IsFailureTag(absl::string_view key) {
  return key == "error_type" || key == "server_name" || key == "host" ||
         key == "virtual_proxy";
}

bool IsOwnTag(absl::string_view key) {
  return IsFailureTag(key) || key == "poller_id";
}

absl::Status CheckTagKey(absl::string_view key) {
  const std::string written = CleanLineProtocolName(key);
  if (key.empty()) return absl::InvalidArgumentError("is empty");
  if (written.empty()) {
    return absl::InvalidArgumentError(
        "is only backslashes, which line protocol cannot carry");
  }
  // InfluxDB 1.x and 2.x refuse a point with a tag key `time` ("invalid tag
  // key: input tag \"time\" is invalid"): the whole point is lost.
  if (written == "time") {
    return absl::InvalidArgumentError(
        written.size() == key.size()
            ? "is \"time\", which InfluxDB refuses as a tag key"
            : "ends in a backslash and would be written as \"time\", which "
              "InfluxDB refuses as a tag key");
  }
  if (!IsOwnTag(written)) return absl::OkStatus();
  if (written.size() != key.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ends in a backslash and would be written as the tag ", written));
  }
  // Butler SOS lets a server tag replace these two on its own points: kept
  // for its files' sake (failure_names.h).
  if (key == "host" || key == "server_name") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("is the tag ", key,
                   " the tracker writes itself, which a server or static tag "
                   "never replaces"));
}

}  // namespace qfp
