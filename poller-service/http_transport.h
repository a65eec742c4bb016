// The HTTP seam of the poller: what a poll asks for, what came back, and the
// interface that carries requests concurrently on one event-loop thread.
#ifndef QFP_POLLER_HTTP_TRANSPORT_H_
#define QFP_POLLER_HTTP_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
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

// Looks at a response body as it streams in, so that a body of any size is
// judged without being kept. The transport feeds it the final response's
// body, decoded (after Content-Encoding), in order; not thread-safe (one
// transfer's, on the transport's thread).
class BodyCheck {
 public:
  virtual ~BodyCheck() = default;
  // The next bytes of the body. false: the body can no longer pass
  // (Problem() says why); the transport then stops reading it.
  virtual bool Feed(absl::string_view bytes) = 0;
  // The body ended where the server said it ends; called at most once, only
  // when every Feed returned true.
  virtual void Finish() = 0;
  // Why the body fails; "" while it can still pass (or after Finish, when it
  // passed).
  virtual std::string Problem() const = 0;
};

// Default of HttpRequest::max_body_bytes: far above any real answer (a QRS
// app list of 10,000 apps is about 50 MB), low enough that a compression
// bomb ends as a failure after seconds of decoding rather than minutes.
inline constexpr uint64_t kDefaultMaxBodyBytes = uint64_t{1} << 30;  // 1 GiB

struct HttpRequest {
  std::string url;  // https://host:port/path?query
  // In order, each "Name: value". Sent exactly as given.
  std::vector<std::string> headers;
  absl::Duration timeout = absl::Milliseconds(5000);  // the whole request
  const TlsSettings* tls = nullptr;  // not owned; must outlive the request
  // Most body bytes read, counted after decoding (Content-Encoding), so a
  // compression bomb is cut here; a longer body ends the transfer
  // (kBodyTooLarge). Nothing is kept but RequestOutcome::body_head.
  uint64_t max_body_bytes = kDefaultMaxBodyBytes;
  // Judges the body as it arrives; null: the body is read and dropped.
  std::shared_ptr<BodyCheck> body_check;
  int max_redirects = 5;  // followed only to https
};

// How far a request got when it ended, for the classification table
// (docs/compatibility.md §4) and logs. The category of a failure never
// depends on it: a reset is a reset in every phase.
enum class RequestPhase {
  kConnect,  // no TCP connection yet (name resolution included)
  kTls,      // TCP connected, TLS handshake not complete
  kSend,     // TLS up, no byte of the answer yet
  kReceive,  // the answer started arriving
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
  // A redirect to another origin (host or port) was not followed: the 3xx
  // is the answer (http_status), error_text names where it pointed.
  kRedirectRefused,
  // The transport stopped reading at HttpRequest::max_body_bytes
  // (body_too_large is set).
  kBodyTooLarge,
  // The request's BodyCheck refused the body; the transport stopped reading
  // (body_problem says why).
  kBodyRejected,
  kBodyCutShort,  // the connection ended before the body's announced end
  // The body's Content-Encoding could not be decoded (corrupt gzip, an
  // encoding the transport does not know).
  kBadEncoding,
  kOther,  // anything else (a redirect to plain http, a setup failure)
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
  // Body bytes read (decoded), and the first kBodyHeadBytes of them, for
  // logs and tests; the rest is never kept.
  uint64_t body_bytes = 0;
  std::string body_head;
  static constexpr size_t kBodyHeadBytes = 1024;
  // True when the body exceeded HttpRequest::max_body_bytes and was cut.
  bool body_too_large = false;
  // The request's BodyCheck verdict, set when the body was read to its end
  // or the check refused it (kBodyRejected): why the body fails, or "" when
  // it passed. "" too when there was no check or the transfer ended
  // otherwise (the error says how).
  std::string body_problem;
  // How far the request got (see RequestPhase).
  RequestPhase phase = RequestPhase::kConnect;
  // The address and port last dialled ("" and 0 when none was).
  std::string remote_address;
  int remote_port = 0;
  // How long the request took, measured on a monotonic clock (a wall-clock
  // step does not change it), from when the transport began it: a wait in
  // the transport's own queue is not part of it (the scheduler reports that
  // wait as the time from Start to completion less `elapsed`).
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
