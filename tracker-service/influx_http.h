// A small blocking HTTP client (libcurl easy) for the tracker's InfluxDB
// writers. It only moves bytes: the writers decide what a status means.
#ifndef QFP_TRACKER_INFLUX_HTTP_H_
#define QFP_TRACKER_INFLUX_HTTP_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tracker-service/influx_writer.h"

namespace qfp::tracker {

struct HttpBasicAuth {
  std::string username;
  std::string password;
};

// One request. Named HttpRequest (not HttpCall) so that the function below
// can be called HttpCall without hiding the type.
struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, DELETE, ...
  std::string url;
  // Sent as given, in order. A `Name:` with an empty value removes a header
  // curl would add by itself.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // For the whole exchange: connect, send, receive.
  absl::Duration timeout = absl::Seconds(10);
  // Compress `body` with gzip and send `Content-Encoding: gzip`.
  bool gzip_body = false;
  std::optional<HttpBasicAuth> basic_auth;
  // A longer answer is a failure rather than unbounded memory.
  size_t max_response_bytes = 8 << 20;
};

struct HttpResponse {
  int status = 0;
  std::string body;  // decoded when the server sent it compressed
  // Names lower-cased; repeated headers joined with ", ".
  std::map<std::string, std::string> headers;
};

// Performs `request` and returns whatever status arrived (4xx and 5xx are
// responses, not errors). Errors: InvalidArgument for a request curl cannot
// make (bad method, a line break in a header, gzip failure), ResourceExhausted
// for an answer over `max_response_bytes`, DeadlineExceeded when `timeout`
// passed, Unavailable for any other transport failure; each message names the
// method, the URL (with `p`, `password` and `token` query values hidden) and
// curl's error. Redirects are not followed. Thread-safe: each thread keeps its
// own curl handle, so connections to InfluxDB are reused between calls.
absl::StatusOr<HttpResponse> HttpCall(const HttpRequest& request);

// gzip (RFC 1952) of `data`, as InfluxDB accepts with Content-Encoding: gzip.
absl::StatusOr<std::string> GzipCompress(absl::string_view data);

// Percent-encodes everything but RFC 3986 unreserved characters, for query
// parameter values and form bodies.
std::string UrlEncode(absl::string_view value);

// `url` with the values of the query parameters p, password and token
// replaced by `***`, for logs and error messages.
std::string RedactUrl(absl::string_view url);

// The delay of a `Retry-After` header in its delta-seconds form ("120").
// nullopt for an HTTP-date or anything malformed: the caller then uses its own
// back-off.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value);

// The error text of an InfluxDB answer: the JSON `error` (1.x, 3.x) or
// `message` (2.x) member, else the X-Influxdb-Error header, else the start of
// the body, else "HTTP <status>".
std::string InfluxErrorText(const HttpResponse& response);

// Maps the answer to a write request, shared by the writers of every InfluxDB
// version: 2xx kOk; 400 and 422 kBadPoints; 401 and 403 kAuth; 404 kNotFound;
// 413 kTooLarge; 429 and 503 kThrottled (with Retry-After); anything else,
// including a transport failure, kRetryable, so that an answer nobody
// expected never drops points.
WriteResult ClassifyWriteAnswer(const absl::StatusOr<HttpResponse>& answer);

// The status a refused management request (bucket, database or retention
// policy lookup or creation, a 1.x /query) stands for: 401 Unauthenticated,
// 403 PermissionDenied, 404 NotFound, 400/422 InvalidArgument, 5xx
// Unavailable, else Unknown.
absl::Status HttpAnswerStatus(int http_status, std::string message);

// One InfluxDB server as the 2.x and 3.x writers talk to it: every request
// carries the same Authorization and Accept headers and timeout, and their
// errors name the server the same way. Immutable, so thread-safe.
class InfluxApi {
 public:
  // `label` starts every error message ("InfluxDB v2"). `base_url` is
  // "http://host:port" (InfluxBaseUrl). `authorization` is the whole
  // Authorization value ("Token x", "Bearer x"); empty sends none.
  // `auth_hint` is appended to the message of a 401 or 403 answer to say
  // what the token must be allowed to do.
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

#endif  // QFP_TRACKER_INFLUX_HTTP_H_
