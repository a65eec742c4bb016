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

bool RejectsLines(const HttpResponse& response) {
  const nlohmann::json json =
      nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    // 3.x lists the rejected lines in `data` (an array, or one object).
    auto data = json.find("data");
    if (data != json.end() &&
        ((data->is_array() && !data->empty()) || data->is_object())) {
      return true;
    }
  }
  const std::string text = absl::AsciiStrToLower(InfluxErrorText(response));
  for (absl::string_view marker :
       {"partial write", "unable to parse", "parsing failed", "parsing error",
        "failed to parse", "field type conflict", "beyond retention",
        "invalid column type", "no fields were provided"}) {
    if (absl::StrContains(text, marker)) return true;
  }
  return false;
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
      result.kind =
          RejectsLines(*answer) ? Kind::kBadPoints : Kind::kRequestRejected;
      break;
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

void TellOnce::operator()(spdlog::level::level_enum level,
                          const std::string& text) {
  spdlog::log(told_.exchange(true) ? spdlog::level::debug : level, "{}", text);
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
