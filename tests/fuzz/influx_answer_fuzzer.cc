// Fuzzes how the tracker reads InfluxDB's answers (tracker-service/
// influx_api.h, http_client.h ParseRetryAfter): an HttpResponse built from
// the input (status, headers including Retry-After and X-Influxdb-Error,
// then the rest as the body, often JSON). Properties:
//  - ClassifyWriteAnswer maps the status as documented (2xx kOk, 400 by
//    RejectsLines, 422 kBadPoints, 401/403 kAuth, 404 kNotFound, 413
//    kTooLarge, 429/503 kThrottled with the Retry-After delay, else
//    kRetryable), keeps the status, and says why (InfluxErrorText) when not
//    kOk; a transport error is kRetryable with its message;
//  - InfluxErrorText is never empty and holds no line break when it comes
//    from the body's start;
//  - ParseRetryAfter gives a delay exactly for 1 or more ASCII digits (with
//    surrounding whitespace) that fit in int64 seconds, and that delay is
//    their decimal value; nothing else parses.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "tests/fuzz/fuzz_support.h"
#include "tracker-service/http_client.h"
#include "tracker-service/influx_api.h"
#include "tracker-service/influx_writer.h"

namespace {

using qfp::tracker::HttpResponse;
using Kind = qfp::tracker::WriteResult::Kind;

// Retry-After's delta-seconds (RFC 9110 §10.2.3), read digit by digit.
std::optional<int64_t> DeltaSeconds(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  int64_t seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    if (seconds > (INT64_MAX - (c - '0')) / 10) return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return seconds;
}

Kind ExpectedKind(int status) {
  if (status >= 200 && status < 300) return Kind::kOk;
  switch (status) {
    case 422:
      return Kind::kBadPoints;
    case 401:
    case 403:
      return Kind::kAuth;
    case 404:
      return Kind::kNotFound;
    case 413:
      return Kind::kTooLarge;
    case 429:
    case 503:
      return Kind::kThrottled;
    default:
      return Kind::kRetryable;
  }
}

constexpr int kStatuses[] = {200, 204, 400, 401, 403, 404, 413,
                             422, 429, 500, 502, 503, 504};
constexpr const char* kHeaderNames[] = {"retry-after", "x-influxdb-error",
                                        "content-type", "x-influxdb-version"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  HttpResponse response;
  response.status = in.ConsumeBool() ? in.PickValueInArray(kStatuses)
                                     : in.ConsumeIntegralInRange(0, 999);
  const int headers = in.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < headers; ++i) {
    std::string name = in.ConsumeBool() ? in.PickValueInArray(kHeaderNames)
                                        : in.ConsumeRandomLengthString(16);
    response.headers[name] = in.ConsumeRandomLengthString(64);
  }
  const bool transport_error = in.ConsumeIntegral<uint8_t>() == 0;
  response.body = in.ConsumeRemainingBytesAsString();

  // ParseRetryAfter on every header value given, Retry-After or not.
  for (const auto& [name, value] : response.headers) {
    const std::optional<absl::Duration> delay =
        qfp::tracker::ParseRetryAfter(value);
    const std::optional<int64_t> seconds = DeltaSeconds(value);
    QFP_FUZZ_CHECK(delay.has_value() == seconds.has_value(),
                   "ParseRetryAfter([%s]) %s", value.c_str(),
                   delay ? "gave a delay" : "gave none");
    if (delay) {
      QFP_FUZZ_CHECK(*delay == absl::Seconds(*seconds),
                     "ParseRetryAfter([%s]) gave the wrong delay",
                     value.c_str());
    }
  }

  const std::string text = qfp::tracker::InfluxErrorText(response);
  QFP_FUZZ_CHECK(!text.empty(), "empty error text for status %d",
                 response.status);
  const bool rejects = qfp::tracker::RejectsLines(response);

  const qfp::tracker::WriteResult result =
      qfp::tracker::ClassifyWriteAnswer(response);
  Kind expected = ExpectedKind(response.status);
  if (response.status == 400) {
    expected = rejects ? Kind::kBadPoints : Kind::kRequestRejected;
  }
  QFP_FUZZ_CHECK(result.kind == expected, "status %d: kind %d, expected %d",
                 response.status, static_cast<int>(result.kind),
                 static_cast<int>(expected));
  QFP_FUZZ_CHECK(result.http_status == response.status, "status not kept");
  if (expected != Kind::kOk) {
    QFP_FUZZ_CHECK(result.message == text, "message [%s] is not [%s]",
                   result.message.c_str(), text.c_str());
  }
  absl::Duration retry_after = absl::ZeroDuration();
  if (expected == Kind::kThrottled) {
    if (auto it = response.headers.find("retry-after");
        it != response.headers.end()) {
      if (auto seconds = DeltaSeconds(it->second)) {
        retry_after = absl::Seconds(*seconds);
      }
    }
  }
  QFP_FUZZ_CHECK(result.retry_after == retry_after, "retry_after %s, not %s",
                 absl::FormatDuration(result.retry_after).c_str(),
                 absl::FormatDuration(retry_after).c_str());

  if (transport_error) {
    const qfp::tracker::WriteResult failed = qfp::tracker::ClassifyWriteAnswer(
        absl::UnavailableError(response.body));
    QFP_FUZZ_CHECK(failed.kind == Kind::kRetryable && failed.http_status == 0 &&
                       failed.message == response.body,
                   "a transport error is not kRetryable with its message");
  }
  return 0;
}
