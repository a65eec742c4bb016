#include "tracker-service/influx_api.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace qfp::tracker {

std::string InfluxBaseUrl(absl::string_view host, int port) {
  if (absl::StrContains(host, ':') && !absl::StartsWith(host, "[")) {
    return absl::StrCat("http://[", host, "]:", port);
  }
  return absl::StrCat("http://", host, ":", port);
}

absl::StatusOr<absl::Duration> ParseRetentionDuration(
    absl::string_view duration) {
  const absl::string_view text = absl::StripAsciiWhitespace(duration);
  if (text.empty() || text == "0") return absl::ZeroDuration();
  auto bad = [&duration](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", duration, "\" is not a retention duration (", why,
                     "; e.g. 10d, 1h30m, or 0 to keep data forever)"));
  };
  // Longest units first: "ms" is milliseconds, not minutes then seconds.
  struct Unit {
    absl::string_view name;
    absl::Duration size;
  };
  const Unit kUnits[] = {
      {"ns", absl::Nanoseconds(1)},
      {"us", absl::Microseconds(1)},
      {"\xC2\xB5s", absl::Microseconds(1)},  // µs
      {"ms", absl::Milliseconds(1)},
      {"s", absl::Seconds(1)},
      {"m", absl::Minutes(1)},
      {"h", absl::Hours(1)},
      {"d", absl::Hours(24)},
      {"w", absl::Hours(24 * 7)},
  };
  absl::Duration total;
  size_t i = 0;
  while (i < text.size()) {
    const size_t digits_start = i;
    while (i < text.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    if (i == digits_start) return bad("expected a number");
    int64_t count = 0;
    if (!absl::SimpleAtoi(text.substr(digits_start, i - digits_start),
                          &count)) {
      return bad("number too large");
    }
    const absl::string_view rest = text.substr(i);
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (absl::StartsWith(rest, candidate.name)) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return bad("unit must be ns, us, ms, s, m, h, d or w");
    i += unit->name.size();
    total += count * unit->size;
    // Durations saturate instead of overflowing.
    if (total == absl::InfiniteDuration()) return bad("too long");
  }
  return total;
}

std::string InfluxErrorText(const HttpResponse& response) {
  const nlohmann::json json =
      nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    for (const char* key : {"error", "message"}) {
      auto it = json.find(key);
      if (it != json.end() && it->is_string() &&
          !it->get_ref<const std::string&>().empty()) {
        return it->get<std::string>();
      }
    }
  }
  if (auto it = response.headers.find("x-influxdb-error");
      it != response.headers.end() && !it->second.empty()) {
    return it->second;
  }
  // Some proxy's HTML page, say: enough of it to recognise, on one line.
  constexpr size_t kMaxBody = 300;
  std::string text(
      absl::StripAsciiWhitespace(response.body).substr(0, kMaxBody));
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (!text.empty()) return text;
  return absl::StrCat("HTTP ", response.status);
}

WriteResult ClassifyWriteAnswer(const absl::StatusOr<HttpResponse>& answer) {
  using Kind = WriteResult::Kind;
  WriteResult result;
  if (!answer.ok()) {
    result.kind = Kind::kRetryable;
    result.message = std::string(answer.status().message());
    return result;
  }
  const int status = answer->status;
  result.http_status = status;
  if (status >= 200 && status < 300) return result;  // kOk
  result.message = InfluxErrorText(*answer);
  switch (status) {
    case 400:
    case 422:
      result.kind = Kind::kBadPoints;
      break;
    case 401:
    case 403:
      result.kind = Kind::kAuth;
      break;
    case 404:
      result.kind = Kind::kNotFound;
      break;
    case 413:
      result.kind = Kind::kTooLarge;
      break;
    case 429:
    case 503: {
      result.kind = Kind::kThrottled;
      auto it = answer->headers.find("retry-after");
      if (it != answer->headers.end()) {
        result.retry_after =
            ParseRetryAfter(it->second).value_or(absl::ZeroDuration());
      }
      break;
    }
    default:
      result.kind = Kind::kRetryable;
      break;
  }
  return result;
}

absl::Status HttpAnswerStatus(int http_status, std::string message) {
  switch (http_status) {
    case 400:
    case 422:
      return absl::InvalidArgumentError(std::move(message));
    case 401:
      return absl::UnauthenticatedError(std::move(message));
    case 403:
      return absl::PermissionDeniedError(std::move(message));
    case 404:
      return absl::NotFoundError(std::move(message));
    default:
      if (http_status >= 500) return absl::UnavailableError(std::move(message));
      return absl::UnknownError(std::move(message));
  }
}

InfluxApi::InfluxApi(std::string label, std::string base_url,
                     std::string authorization, absl::Duration timeout,
                     std::string auth_hint)
    : label_(std::move(label)),
      base_url_(std::move(base_url)),
      authorization_(std::move(authorization)),
      timeout_(timeout),
      auth_hint_(std::move(auth_hint)) {}

HttpRequest InfluxApi::NewRequest(absl::string_view method,
                                  absl::string_view path_and_query) const {
  HttpRequest request;
  request.method = std::string(method);
  request.url = absl::StrCat(base_url_, path_and_query);
  request.timeout = timeout_;
  if (!authorization_.empty()) {
    request.headers.emplace_back("Authorization", authorization_);
  }
  request.headers.emplace_back("Accept", "application/json");
  return request;
}

absl::StatusOr<HttpResponse> InfluxApi::Call(
    absl::string_view method, absl::string_view path_and_query,
    absl::string_view json_body) const {
  HttpRequest request = NewRequest(method, path_and_query);
  if (!json_body.empty()) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = std::string(json_body);
  }
  absl::StatusOr<HttpResponse> answer = HttpCall(request);
  if (!answer.ok()) {
    return absl::Status(answer.status().code(),
                        absl::StrCat(label_, ": ", answer.status().message()));
  }
  return answer;
}

absl::Status InfluxApi::Refused(absl::string_view method,
                                absl::string_view path,
                                const HttpResponse& answer) const {
  std::string message =
      absl::StrCat(label_, " ", method, " ", base_url_, path, ": HTTP ",
                   answer.status, ": ", InfluxErrorText(answer));
  if ((answer.status == 401 || answer.status == 403) && !auth_hint_.empty()) {
    absl::StrAppend(&message, " (", auth_hint_, ")");
  }
  return HttpAnswerStatus(answer.status, std::move(message));
}

}  // namespace qfp::tracker
