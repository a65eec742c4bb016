// The HTTP seam of the poller: what a poll asks for, what came back, and the
// interface that carries requests concurrently on one event-loop thread.
#ifndef QFP_POLLER_HTTP_TRANSPORT_H_
#define QFP_POLLER_HTTP_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace qfp::poller {

// TLS settings shared by every request of a poller (Butler SOS's `cert`).
struct TlsSettings {
  std::string client_cert_file;  // PEM
  std::string client_key_file;   // PEM, possibly encrypted
  std::string key_passphrase;    // empty when the key is not encrypted
  std::string ca_file;           // PEM root(s) the server must chain to
  // false: accept any server certificate (`rejectUnauthorized: false`).
  bool verify_server = true;
};

struct HttpRequest {
  std::string url;  // https://host:port/path?query
  // In order, each "Name: value". Sent exactly as given.
  std::vector<std::string> headers;
  absl::Duration timeout = absl::Milliseconds(5000);  // the whole request
  const TlsSettings* tls = nullptr;  // not owned; must outlive the request
  // Largest body kept; a longer body ends the transfer (body_too_large).
  size_t max_body_bytes = 8 * 1024 * 1024;
  int max_redirects = 5;  // followed only to https
};

// Everything a failure classifier needs to know about one finished request,
// free of transport objects so that tests can write outcomes by hand.
struct RequestOutcome {
  // True when the transport itself ended the request before it finished (it
  // was shut down with the request still running or queued). Such an outcome
  // says nothing about the server and is not a failed poll. The curl
  // transport also sets curl_code (CURLE_ABORTED_BY_CALLBACK) then.
  bool cancelled = false;
  // libcurl's result code (CURLcode value); 0 when the transfer completed.
  int curl_code = 0;
  // The transport's own words (libcurl's error buffer), for logs.
  std::string error_text;
  // errno of the failed system call, when the transport saw one (0 if not).
  int os_errno = 0;
  // OpenSSL's X509 verify result (X509_V_OK = 0) of the server certificate.
  long tls_verify_result = 0;  // NOLINT(runtime/int): libcurl's type
  // HTTP status of the last response; 0 when no status line arrived.
  int http_status = 0;
  std::string body;
  // True when the body exceeded HttpRequest::max_body_bytes and was cut.
  bool body_too_large = false;
  // The address and port last dialled ("" and 0 when none was).
  std::string remote_address;
  int remote_port = 0;
  // How long the request took, measured on a monotonic clock (a wall-clock
  // step does not change it).
  absl::Duration elapsed;
};

// Runs HTTP requests concurrently. Not thread-safe: Start and Run are called
// from one thread (the poller's event loop), and callbacks run on it.
class HttpTransport {
 public:
  using DoneCallback = std::function<void(RequestOutcome)>;

  virtual ~HttpTransport() = default;

  // Begins `request`; `done` runs exactly once, from a later Run() call (or
  // from the destructor, with a cancelled outcome, if the request is still
  // running then).
  virtual void Start(const HttpRequest& request, DoneCallback done) = 0;

  // Moves transfers forward for up to `max_wait`, returning earlier once at
  // least one callback has run or Wakeup() was called.
  virtual void Run(absl::Duration max_wait) = 0;

  // Makes a concurrent Run() return early. The only thread-safe method.
  virtual void Wakeup() = 0;

  // Requests started and not yet completed.
  virtual size_t in_flight() const = 0;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_HTTP_TRANSPORT_H_
