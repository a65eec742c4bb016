// A small blocking HTTP client (libcurl easy) for the tracker. It only moves
// bytes: callers (the InfluxDB layer, influx_api.h) decide what a status
// means. http_client.cc is the only tracker file that includes curl.
#ifndef QFP_TRACKER_HTTP_CLIENT_H_
#define QFP_TRACKER_HTTP_CLIENT_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace qfp::tracker {

struct HttpBasicAuth {
  std::string username;
  std::string password;
};

// One request. Named HttpRequest (not HttpCall) so that the function below
// can be called HttpCall without hiding the type.
struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, DELETE, ...
  std::string url;             // http:// or https:// only
  // Sent as given, in order. A `Name:` with an empty value removes a header
  // curl would add by itself.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // For the whole exchange: connect, send, receive.
  absl::Duration timeout = absl::Seconds(10);
  // Compress `body` with gzip and send `Content-Encoding: gzip`.
  bool gzip_body = false;
  std::optional<HttpBasicAuth> basic_auth;
  // A longer answer (in bytes, as decoded) is a failure rather than
  // unbounded memory.
  size_t max_response_bytes = 8 << 20;
};

struct HttpResponse {
  int status = 0;    // the HTTP status code: 200, 404, ...
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
// curl's error. Every credential the request carried (the Basic password and
// its base64 form, the value of an Authorization header and its part after
// the scheme, the p, password and token query values) is replaced with
// `********` in the response's body and header values: a server or proxy
// that echoes requests in its error answers (seen in the wild) must not put
// them into our logs and errors. Redirects are not followed. Thread-safe: each
// thread keeps its own curl handle, so connections to a server are reused
// between calls.
absl::StatusOr<HttpResponse> HttpCall(const HttpRequest& request);

// gzip (RFC 1952) of `data`, as servers accept with Content-Encoding: gzip.
// InvalidArgument for data over zlib's 4 GiB limit, Internal when zlib
// fails. Thread-safe.
absl::StatusOr<std::string> GzipCompress(absl::string_view data);

// Percent-encodes everything but RFC 3986 unreserved characters, for query
// parameter values and form bodies. Thread-safe.
std::string UrlEncode(absl::string_view value);

// `url` with the values of the query parameters p, password and token
// replaced by `***`, for logs and error messages. Thread-safe.
std::string RedactUrl(absl::string_view url);

// `text` with every occurrence of each of `secrets` (those of 3 bytes or
// more: shorter ones would mangle ordinary text) replaced by `********`.
// Thread-safe.
std::string RedactSecrets(absl::string_view text,
                          const std::vector<std::string>& secrets);

// The delay of a `Retry-After` header in its delta-seconds form ("120").
// nullopt for an HTTP-date or anything malformed: the caller then uses its own
// back-off. Thread-safe.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_HTTP_CLIENT_H_
