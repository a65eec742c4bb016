// What every InfluxDB writer (1.x, 2.x, 3.x) shares about InfluxDB's HTTP
// API, on top of the bytes-only client in http_client.h: the server's base
// URL, its retention-duration syntax, how its answers read (error text, write
// result, management status) and InfluxApi for the 2.x and 3.x APIs.
#ifndef QFP_TRACKER_INFLUX_API_H_
#define QFP_TRACKER_INFLUX_API_H_

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "tracker-service/http_client.h"
#include "tracker-service/influx_writer.h"

namespace qfp::tracker {

// "http://host:port"; an IPv6 literal gets the brackets a URL needs.
// Thread-safe.
std::string InfluxBaseUrl(absl::string_view host, int port);

// The error text of an InfluxDB answer: the JSON `error` (1.x, 3.x) or
// `message` (2.x) member, else the X-Influxdb-Error header, else the start of
// the body, else "HTTP <status>". Thread-safe.
std::string InfluxErrorText(const HttpResponse& response);

// Whether a 400 answer to a write rejects lines of the batch (true) or the
// request itself (false: bad database name, bad encoding, missing
// parameter). Lines are named by:
// - 1.x: `partial write: ...` (also for field type conflicts and points
//   beyond the retention policy) or `unable to parse '...'` (influxdb 1.x
//   services/httpd/handler.go serveWrite; checked on influxd 1.6.7);
// - 2.x: `{"code":"invalid","message":"unable to parse ..."}` or
//   `partial write ...` (docs.influxdata.com/influxdb/v2/write-data/
//   troubleshoot: "The response body contains the first malformed line");
// - 3.x Core/Enterprise: `{"error":"partial write of line protocol
//   occurred" | "parsing failed for write_lp endpoint", "data": ...}` with
//   the rejected lines in `data` (influxdb3 server http.rs; docs
//   influxdb3/core/write-data/troubleshoot); Cloud Serverless/Dedicated:
//   `{"message": "parsing failed ..."}` or "partial write ..." (influxdb3
//   client libraries' error tests).
// Thread-safe.
bool RejectsLines(const HttpResponse& response);

// Maps the answer to a write request, shared by the writers of every InfluxDB
// version: 2xx kOk; 422, and 400 when RejectsLines, kBadPoints; any other 400
// kRequestRejected; 401 and 403 kAuth; 404 kNotFound;
// 413 kTooLarge; 429 and 503 kThrottled (with Retry-After); anything else,
// including a transport failure, kRetryable, so that an answer nobody
// expected never drops points. Thread-safe.
WriteResult ClassifyWriteAnswer(const absl::StatusOr<HttpResponse>& answer);

// The status a refused management request (bucket, database or retention
// policy lookup or creation, a 1.x /query) stands for: 401 Unauthenticated,
// 403 PermissionDenied, 404 NotFound, 400/422 InvalidArgument, 5xx
// Unavailable, else Unknown. Thread-safe.
absl::Status HttpAnswerStatus(int http_status, std::string message);

// Says where points go, or what could not be checked, once: Prepare() runs
// again after a write answered "not found", and repeating the same line at
// info or warn level would bury the log. Later calls log at debug.
// Thread-safe.
class TellOnce {
 public:
  void operator()(spdlog::level::level_enum level, const std::string& text);

 private:
  std::atomic<bool> told_{false};
};

// One InfluxDB server as the 2.x and 3.x writers talk to it: every request
// carries the same Authorization and Accept headers and timeout, and their
// errors name the server the same way. Immutable, so thread-safe.
class InfluxApi {
 public:
  // `label` starts every error message ("InfluxDB v2"). `base_url` is
  // "http://host:port" (InfluxBaseUrl). `authorization` is the whole
  // Authorization value ("Token x", "Bearer x"); empty sends none.
  // `timeout` bounds each request. `auth_hint` is appended to the message of
  // a 401 or 403 answer to say what the token must be allowed to do.
  InfluxApi(std::string label, std::string base_url, std::string authorization,
            absl::Duration timeout, std::string auth_hint);

  const std::string& base_url() const { return base_url_; }

  // A request to base_url + `path_and_query` with the common headers.
  HttpRequest NewRequest(absl::string_view method,
                         absl::string_view path_and_query) const;

  // One management request, with `json_body` (if not empty) sent as
  // application/json. A transport failure comes back as its status with the
  // request named and the label in front; any HTTP answer is returned as is.
  absl::StatusOr<HttpResponse> Call(absl::string_view method,
                                    absl::string_view path_and_query,
                                    absl::string_view json_body = "") const;

  // The error for an `answer` the writer did not expect to `method` `path`:
  // the label, the request, the HTTP status and InfluxErrorText, with the
  // status code of HttpAnswerStatus.
  absl::Status Refused(absl::string_view method, absl::string_view path,
                       const HttpResponse& answer) const;

 private:
  const std::string label_;
  const std::string base_url_;
  const std::string authorization_;
  const absl::Duration timeout_;
  const std::string auth_hint_;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_API_H_
