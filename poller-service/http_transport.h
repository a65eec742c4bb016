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

// How a request ended, in terms of HTTP rather than of any transport
// library: a transport maps its own result (libcurl's CURLcode for the curl
// transport, with the errno and TLS verify result it saw) to one of these. The
// set is what the failure classifier tells apart; a transport's finer detail
// stays in RequestOutcome::error_name and error_text.
enum class TransportError {
  kNone,       // an HTTP exchange completed; http_status says how it went
  kCancelled,  // the transport ended the request itself (see cancelled)
  kTimeout,    // HttpRequest::timeout passed, in whatever phase
  kResolve,    // the host name did not resolve
  kConnect,  // no connection: os_errno says why (ECONNREFUSED, ETIMEDOUT, ...)
  kSend,     // sending failed on an established connection (os_errno)
  kReceive,  // receiving failed on an established connection (os_errno)
  kEmptyReply,    // the server closed the connection without answering
  kTlsHandshake,  // the TLS handshake did not complete (os_errno, error_text)
  kTlsVerify,     // the server's certificate or host name did not verify
                  // (tls_verify_result)
  // Any other TLS or certificate problem: our own client certificate, key or
  // CA file unusable, no common cipher, a pinned key or certificate status
  // that did not match, a client certificate the server refused.
  kTlsSetup,
  kBadUrl,            // HttpRequest::url is malformed
  kTooManyRedirects,  // more than HttpRequest::max_redirects
  // The transport stopped reading at HttpRequest::max_body_bytes
  // (body_too_large is set; body holds what was kept).
  kBodyTooLarge,
  kBodyCutShort,  // the connection ended before the body's announced end
  kOther,         // anything else (a redirect to plain http, a setup failure)
};

// Everything a failure classifier needs to know about one finished request,
// free of transport objects and of transport libraries' codes, so that tests
// can write outcomes by hand.
struct RequestOutcome {
  // True when the transport itself ended the request before it finished (it
  // was shut down with the request still running or queued). Such an outcome
  // says nothing about the server and is not a failed poll. The curl
  // transport also sets error to kCancelled then.
  bool cancelled = false;
  TransportError error = TransportError::kNone;
  // The transport's own name for how the request ended, reported as the
  // error code when nothing more specific is known: libcurl's code name
  // ("CURLE_SEND_ERROR", "CURLE_<n>" for one without a name) for the curl
  // transport. Empty when error is kNone.
  std::string error_name;
  // The transport's own words, for logs; empty when error is kNone. The curl
  // transport gives its code and libcurl's message: "curl 7 (Couldn't connect
  // to server): Failed to connect to 10.0.0.5 port 4747 after 0 ms: ...".
  std::string error_text;
  // errno of the failed system call, when the transport saw one (0 if not).
  int os_errno = 0;
  // OpenSSL's X509 verify result (X509_V_OK = 0) of the server certificate;
  // meaningful with kTlsVerify, where 0 means only the host name was wrong.
  long tls_verify_result = 0;  // NOLINT(runtime/int): OpenSSL's type
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
