#include "tracker-service/http_client.h"

#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "curl/curl.h"

#define ZLIB_CONST
#include "zlib.h"

namespace qfp::tracker {
namespace {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// One handle per thread, reset before each call: curl keeps its connection
// cache in the handle, so a writer's next batch reuses the TCP connection.
CURL* ThreadHandle() {
  static std::once_flag global_init;
  std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  thread_local std::unique_ptr<CURL, CurlEasyDeleter> handle(curl_easy_init());
  if (handle != nullptr) curl_easy_reset(handle.get());
  return handle.get();
}

struct Sink {
  HttpResponse* response;
  size_t max_body;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (sink->response->body.size() + n > sink->max_body) {
    sink->too_large = true;
    return 0;  // makes curl stop with CURLE_WRITE_ERROR
  }
  sink->response->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  absl::string_view line(data, n);
  // Each status line starts a new header block (after a 100 Continue only
  // the final one must remain).
  if (absl::StartsWith(line, "HTTP/")) {
    sink->response->headers.clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;  // blank line ending block
  std::string name =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
  absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  auto [it, inserted] =
      sink->response->headers.emplace(std::move(name), std::string(value));
  if (!inserted) absl::StrAppend(&it->second, ", ", value);
  return n;
}

bool IsToken(absl::string_view method) {
  if (method.empty()) return false;
  for (char c : method) {
    if (!absl::ascii_isupper(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool HasHeader(const HttpRequest& request, absl::string_view name) {
  for (const auto& [key, value] : request.headers) {
    if (absl::EqualsIgnoreCase(key, name)) return true;
  }
  return false;
}

// curl takes a long of milliseconds; 0 would mean "no timeout".
long TimeoutMs(absl::Duration timeout) {  // NOLINT(runtime/int): curl's type
  const int64_t ms = absl::ToInt64Milliseconds(timeout);
  if (ms < 1) return 1;
  if (ms > INT32_MAX) return INT32_MAX;
  return static_cast<long>(ms);  // NOLINT(runtime/int)
}

// The credentials `request` carries, as they may come back in an echo.
std::vector<std::string> CredentialsOf(const HttpRequest& request) {
  std::vector<std::string> secrets;
  if (request.basic_auth.has_value()) {
    const HttpBasicAuth& auth = *request.basic_auth;
    secrets.push_back(auth.password);
    secrets.push_back(UrlEncode(auth.password));
    secrets.push_back(
        absl::Base64Escape(absl::StrCat(auth.username, ":", auth.password)));
  }
  for (const auto& [name, value] : request.headers) {
    if (!absl::EqualsIgnoreCase(name, "Authorization")) continue;
    secrets.push_back(value);
    const size_t space = value.find(' ');
    if (space != std::string::npos) secrets.push_back(value.substr(space + 1));
  }
  const size_t query = request.url.find('?');
  if (query != std::string::npos) {
    for (absl::string_view pair : absl::StrSplit(
             absl::string_view(request.url).substr(query + 1), '&')) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(pair, absl::MaxSplits('=', 1));
      if (kv.first == "p" || kv.first == "password" || kv.first == "token") {
        secrets.emplace_back(kv.second);
      }
    }
  }
  return secrets;
}

}  // namespace

std::string RedactSecrets(absl::string_view text,
                          const std::vector<std::string>& secrets) {
  std::string out(text);
  for (const std::string& secret : secrets) {
    if (secret.size() < 3) continue;
    absl::StrReplaceAll({{secret, "********"}}, &out);
  }
  return out;
}

absl::StatusOr<HttpResponse> HttpCall(const HttpRequest& request) {
  const std::string what =
      absl::StrCat(request.method, " ", RedactUrl(request.url));
  if (!IsToken(request.method)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": HTTP method must be upper-case letters"));
  }
  CURL* curl = ThreadHandle();
  if (curl == nullptr) {
    return absl::InternalError(absl::StrCat(what, ": curl_easy_init failed"));
  }

  std::string compressed;
  const std::string* body = &request.body;
  if (request.gzip_body) {
    absl::StatusOr<std::string> gz = GzipCompress(request.body);
    if (!gz.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": ", gz.status().message()));
    }
    compressed = *std::move(gz);
    body = &compressed;
  }

  // Every curl_slist_append result is checked: a null means out of memory
  // and would otherwise silently drop headers (and the list built so far).
  std::unique_ptr<curl_slist, CurlSlistDeleter> headers;
  bool headers_ok = true;
  auto add_header = [&headers, &headers_ok](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (next == nullptr) {
      headers_ok = false;
      return;
    }
    headers.release();
    headers.reset(next);
  };
  for (const auto& [name, value] : request.headers) {
    // A line break would let a configured value (a token read from YAML,
    // say) smuggle in headers of its own.
    if (absl::StrContains(name, '\n') || absl::StrContains(name, '\r') ||
        absl::StrContains(value, '\n') || absl::StrContains(value, '\r')) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": header ", name, " contains a line break"));
    }
    add_header(absl::StrCat(name, ":", value.empty() ? "" : " ", value));
  }
  if (request.gzip_body) add_header("Content-Encoding: gzip");
  // curl would wait up to a second for `100 Continue` before large bodies;
  // the servers the tracker talks to never need that round trip.
  if (!HasHeader(request, "Expect")) add_header("Expect:");
  if (!headers_ok) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": out of memory building headers"));
  }

  HttpResponse response;
  Sink sink{&response, request.max_response_bytes};
  char error[CURL_ERROR_SIZE] = {};

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TimeoutMs(request.timeout));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "qs-error-tracker");
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // all curl decodes
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &sink);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "GET" && body->empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body->size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    if (request.method != "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  }
  if (request.basic_auth.has_value()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME,
                     request.basic_auth->username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD,
                     request.basic_auth->password.c_str());
  }

  const CURLcode code = curl_easy_perform(curl);
  // The handle outlives this call: drop every pointer into our locals.
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);

  if (sink.too_large) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, ": response body over ", request.max_response_bytes, " bytes"));
  }
  if (code != CURLE_OK) {
    std::string message = absl::StrCat(what, ": ", curl_easy_strerror(code));
    if (error[0] != '\0') absl::StrAppend(&message, ": ", error);
    if (code == CURLE_OPERATION_TIMEDOUT) {
      return absl::DeadlineExceededError(message);
    }
    return absl::UnavailableError(message);
  }
  long status = 0;  // NOLINT(runtime/int): curl's type
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  const std::vector<std::string> secrets = CredentialsOf(request);
  response.body = RedactSecrets(response.body, secrets);
  for (auto& [name, value] : response.headers) {
    value = RedactSecrets(value, secrets);
  }
  return response;
}

absl::StatusOr<std::string> GzipCompress(absl::string_view data) {
  if (data.size() > UINT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("gzip: ", data.size(), " bytes is over zlib's limit"));
  }
  z_stream stream{};
  // 15 window bits + 16 selects the gzip wrapper; level 6 is zlib's default
  // trade-off and costs a few ms per MB of line protocol.
  int rc = deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    return absl::InternalError(absl::StrCat("gzip: deflateInit2 failed: ", rc));
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
  stream.next_in = reinterpret_cast<const Bytef*>(data.data());
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  rc = deflate(&stream, Z_FINISH);
  const uLong written = stream.total_out;
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) {
    // deflateBound guarantees room for one-shot compression.
    return absl::InternalError(absl::StrCat("gzip: deflate failed: ", rc));
  }
  out.resize(written);
  return out;
}

std::string UrlEncode(absl::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

std::string RedactUrl(absl::string_view url) {
  const size_t query = url.find('?');
  if (query == absl::string_view::npos) return std::string(url);
  absl::string_view rest = url.substr(query + 1);
  absl::string_view fragment;
  if (const size_t hash = rest.find('#'); hash != absl::string_view::npos) {
    fragment = rest.substr(hash);
    rest = rest.substr(0, hash);
  }
  std::string out(url.substr(0, query + 1));
  bool first = true;
  for (absl::string_view param : absl::StrSplit(rest, '&')) {
    if (!first) out.push_back('&');
    first = false;
    const size_t eq = param.find('=');
    const absl::string_view name = param.substr(0, eq);
    if (eq != absl::string_view::npos &&
        (name == "p" || name == "password" || name == "token")) {
      absl::StrAppend(&out, name, "=***");
    } else {
      out.append(param.data(), param.size());
    }
  }
  out.append(fragment.data(), fragment.size());
  return out;
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  for (char c : value) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(value, &seconds)) return std::nullopt;  // overflow
  return absl::Seconds(seconds);
}

}  // namespace qfp::tracker
