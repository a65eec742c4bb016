// HttpTransport over libcurl's multi interface: every request of a poller runs
// concurrently on the one thread that calls Run(), so a black-holed server
// delays nobody but itself.
#ifndef QFP_POLLER_CURL_TRANSPORT_H_
#define QFP_POLLER_CURL_TRANSPORT_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "poller-service/client_credentials.h"
#include "poller-service/http_transport.h"

namespace qfp::poller {

// Most bytes of one response's head (status line and headers) the transport
// reads: Qlik Sense's heads are well under 2 KiB; a longer one is refused
// (RequestOutcome::body_problem says so, error kBodyRejected) rather than
// kept. libcurl's own limit (100 KiB per header) is above it.
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;

// Size of libcurl's receive buffer of each request (CURLOPT_BUFFERSIZE;
// libcurl's default is 16 KiB, its minimum 1 KiB): memory every request in
// flight holds, a black-holed server's too. Bodies of any size still arrive
// whole (in more pieces).
inline constexpr size_t kReceiveBufferBytes = 4 * 1024;

// Calls curl_global_init once for the process and returns its result (0 is
// CURLE_OK); later calls return the first result. Safe from any thread: a
// function-local static, and Debian's libcurl 7.88 reports
// CURL_VERSION_THREADSAFE (its global init is itself thread-safe, and
// OpenSSL 3 initialises itself). The CurlTransport constructor calls it;
// calling it early in main() makes an init failure show at start.
int EnsureCurlGlobalInit();

// How this transport reports libcurl's result `curl_code` (a CURLcode) in
// RequestOutcome::error: CURLE_OK kNone; ABORTED_BY_CALLBACK kCancelled;
// OPERATION_TIMEDOUT kTimeout; COULDNT_RESOLVE_HOST kResolve; COULDNT_CONNECT
// kConnect; SEND_ERROR kSend; RECV_ERROR kReceive; GOT_NOTHING kEmptyReply;
// SSL_CONNECT_ERROR kTlsHandshake; PEER_FAILED_VERIFICATION kTlsVerify;
// SSL_CERTPROBLEM, SSL_CACERT_BADFILE, SSL_CIPHER, SSL_ISSUER_ERROR,
// SSL_PINNEDPUBKEYNOTMATCH, SSL_INVALIDCERTSTATUS and SSL_CLIENTCERT
// kTlsSetup; URL_MALFORMAT kBadUrl; TOO_MANY_REDIRECTS kTooManyRedirects;
// WRITE_ERROR kBodyTooLarge when `body_too_large` (the body cap stopped the
// transfer), kBodyRejected when `body_rejected` (the request's BodyCheck
// refused the body or the head was over kMaxHeaderBytes), kRedirectRefused
// when `redirect_refused` (a redirect to another origin), else kOther;
// PARTIAL_FILE kBodyCutShort; BAD_CONTENT_ENCODING kBadEncoding; anything else
// kOther. Thread-safe.
TransportError CurlCodeToTransportError(int curl_code, bool body_too_large,
                                        bool body_rejected = false,
                                        bool redirect_refused = false);

// The enum name of a libcurl result ("CURLE_SEND_ERROR"), "CURLE_<n>" for a
// code without a name here, "" for CURLE_OK: RequestOutcome::error_name.
// Thread-safe.
std::string CurlCodeName(int curl_code);

// Bounds of CurlTransport's admission (see the class comment).
struct CurlTransportLimits {
  // Started requests still connecting or handshaking within their grace
  // (maxConcurrentPolls). 0 is taken as 1.
  size_t max_handshakes = 64;
  // How long a started request may hold a handshake slot: after this it is
  // taken to be waiting on the network. Above a TLS handshake's round trips
  // on any sane link, short enough that even all-black-holed servers start
  // at max_handshakes per grace (256/s by default).
  absl::Duration handshake_grace = absl::Milliseconds(250);
  // Requests handed to libcurl at once (each holds a socket and ~70 KB); 0:
  // half the process's soft RLIMIT_NOFILE, at most 4096, at least 16.
  size_t max_open = 0;
  // How long TLS sessions with one server (host and port) are resumed after
  // its last full handshake; then its next request makes a full handshake
  // again, verifying its certificate (an expired or replaced one is
  // reported then). Zero (the default): every request makes a full
  // handshake. See "TLS sessions" in the class comment for why it is off.
  absl::Duration session_lifetime = absl::ZeroDuration();
  // This thread's CPU per request assumed until measured (see "CPU budget"
  // in the class comment); about a full RSA handshake with margin.
  absl::Duration initial_cpu_per_request = absl::Milliseconds(5);
};

// Each request is a fresh TCP and TLS connection (no reuse between polls), so
// every poll is a real attempt to reach the server, like Butler SOS's. HTTP/1.1
// only, https only (redirects too), and a redirect is followed only within
// the polled server's origin (scheme, host, port): one to another origin ends
// the request with error kOther, error_name ERR_REDIRECT_TO_OTHER_ORIGIN and
// the 3xx status, because another server's answer says nothing about this
// one's health and our client certificate is for this one. A head over
// kMaxHeaderBytes is refused. Every encoding libcurl knows is advertised
// (Accept-Encoding) and decoded; the body is never kept: it is counted
// (decoded) against HttpRequest::max_body_bytes and fed to the request's
// BodyCheck as it arrives, so memory stays bounded whatever its size.
// RequestOutcome::phase comes from libcurl's callbacks: the socket opened
// (connect), the SSL context made once TCP is up (TLS), the pre-request
// callback (send), the first header or body byte (receive).
//
// Credentials: the client certificate, key and CA file of each TlsSettings
// are parsed once (ClientCredentials, client_credentials.h) and handed to
// each connection's SSL_CTX as refcounted objects; a request sees files
// changed on disk from its own start on (each activation stat()s them), and
// a bad replacement keeps the last good ones. libcurl is never given the file
// names, so it reads nothing per request. Without any good version of a file
// a request fails as libcurl's own loading would: CURLE_SSL_CERTPROBLEM for
// the certificate or key, CURLE_SSL_CACERT_BADFILE for the CA file (only when
// verifying the server, as libcurl ignores an unusable CA file otherwise),
// after TCP connected (phase kTls), with our reason in error_text.
//
// Admission (why, issue 10): the CPU of a poll is almost all the TLS
// handshake (about 3 ms with RSA-2048 keys), spent on this one thread, while
// waiting on a silent or slow server costs nothing but a socket. Bounding every
// transfer let a black-holed server hold a slot for its whole timeout while
// healthy polls queued behind it; starting everything at once made thousands of
// handshakes compete for the thread until healthy servers missed their
// timeouts: a false failure. So what is bounded is the handshakes that may
// cost CPU now: a queued request starts once fewer than
// CurlTransportLimits::max_handshakes started requests are "handshaking",
// i.e. still connecting or in the TLS handshake AND started less than
// handshake_grace ago. A request leaves that set when its TLS is up (the
// pre-request callback), when it ends, or when its grace passes: by then it
// is waiting on the network (a black hole, a slow link), and its slot goes to
// the next request. The CPU that handshakes can queue ahead of any one is
// thus about max_handshakes x 3 ms (0.2 s at 64) plus what late answers
// bring, at most max_handshakes of them per grace, far inside any timeout.
// CPU budget: fewer slots still when this thread is slow. The transport
// measures its thread's CPU (CLOCK_THREAD_CPUTIME_ID) over its Run() calls
// per request ended (a moving average over 32 requests), and a request
// starts only while the handshaking requests ahead of it need at most a
// quarter of its timeout: handshaking < timeout / 4 / cpu_per_request (at
// least 1). With 3 ms and a 5 s timeout that is 416, above the default 64;
// it matters when maxConcurrentPolls is set high or the CPU is starved.
// Waiting requests (handshake done or grace passed) are bounded only by
// max_open (file descriptors and memory, about 70 KB each). A redirect's new
// connection is not admitted again. Admission is FIFO.
//
// A request's timeout never runs while it waits in OUR queue: libcurl starts
// a transfer's CURLOPT_TIMEOUT_MS clock when the transfer is added, so we
// queue here rather than with CURLMOPT_MAX_TOTAL_CONNECTIONS (which would turn
// our congestion into timeouts blamed on a server). A queued request's
// timeout and `elapsed` start when it leaves the queue.
//
// TLS sessions (off by default; CurlTransportLimits::session_lifetime): a
// full handshake costs the client about 3.2 ms of CPU with the RSA-2048
// certificates Qlik Sense exports and a resumed one about 1.3 ms
// (tests/bench/poll_tls_bench; figures in tests/bench/README.md). They are
// not resumed by default because a resumed handshake (1) skips verifying the
// server's certificate, so an expired or replaced one would be reported up
// to a lifetime late, and (2) fails outright against an OpenSSL server that
// requires a client certificate but set no session id context (it answers
// the offered session with an internal_error alert, as this project's own
// test server does): a false failure, the worst output a poller can give.
// With admission bounding handshakes, a full handshake per poll fits the CPU
// (5000 health checks every 30 s: about half of one core). When on: each server
// (host:port, credentials, verify_server) has its own libcurl share handle
// caching its sessions (libcurl 7.88 keeps at most 8 sessions per share
// handle, so one handle for all servers would resume nothing at scale). A
// share handle is dropped, and the server's next request makes a full
// handshake, once it is `session_lifetime` old or when our credentials
// changed on disk (a new CA must verify every server anew). A request that
// finds its server's share handle due while another request still uses it
// makes a full handshake, cached nowhere.
//
// Server verification (TlsSettings::verify_server) behaves like Node.js's,
// so that failures carry the codes Butler SOS reports: complete chains to a
// root in the CA file only (no partial chains), and the verify result is
// the last error OpenSSL found in the chain (an unknown CA's leaf gives
// UNABLE_TO_VERIFY_LEAF_SIGNATURE), reported before a host-name mismatch.
// A server that fails verification never receives a request.
//
// The outcome's remote_address/remote_port are the connected peer, or for a
// failed connect the address and port last dialled. libcurl's result is
// reported in neutral terms (CurlCodeToTransportError), with its name in
// error_name and "curl <code> (<libcurl's text>): <details>" in error_text.
// tls_verify_result is meaningful with kTlsVerify (0 there means only the
// host name was wrong). A cancelled request (destructor) has error kCancelled
// (CURLE_ABORTED_BY_CALLBACK) and cancelled set.
//
// Callbacks run on the Run() thread, outside any libcurl call, so they may
// call Start() (the new request runs from the next Run(); from a callback run
// by the destructor it is cancelled at once). They must not call Run() or
// destroy the transport. Wakeup() may be called from any thread, but not
// concurrently with the destructor.
class CurlTransport final : public HttpTransport {
 public:
  // Limits with max_handshakes = `max_handshakes` (0 is taken as 1; it is
  // the poller's maxConcurrentPolls) and the other defaults.
  explicit CurlTransport(size_t max_handshakes = 64);
  explicit CurlTransport(const CurlTransportLimits& limits);
  ~CurlTransport() override;

  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  void Start(const HttpRequest& request, DoneCallback done) override;
  void Run(absl::Duration max_wait) override;
  void Wakeup() override;
  size_t in_flight() const override;

  // Transfers handed to libcurl right now (at most max_open).
  size_t active() const { return active_.size(); }
  // Of those, the ones holding a handshake slot (at most max_handshakes; see
  // Admission above). As of the last Start() or Run().
  size_t handshaking() const { return handshaking_.size(); }
  // The CPU per request the CPU budget assumes now (see above).
  absl::Duration cpu_per_request() const { return cpu_per_request_; }

  // One request's state; defined in the .cc, named here only so that the C
  // callbacks there can refer to it.
  struct Transfer;

 private:
  using TransferPtr = std::unique_ptr<Transfer>;

  // Creates the easy handle and adds it to the multi handle; on failure the
  // transfer ends at once (delivered by the next Run()).
  void Activate(TransferPtr transfer);
  // Frees the handshake slots of transfers whose TLS is up or whose grace
  // passed.
  void ReleaseSlots();
  // Whether a queued transfer may start now (after ReleaseSlots()).
  bool HasRoom(absl::Duration timeout) const;
  // Moves queued transfers to libcurl while there is room.
  void ActivateQueued();
  // The ClientCredentials of `tls`, made on first use; null when `tls` names
  // no file.
  ClientCredentials* CredentialsFor(const TlsSettings* tls);
  // Takes finished transfers out of libcurl into finished_.
  void CollectFinished();
  // Run() without the CPU measure.
  void RunLoop(absl::Duration max_wait);
  // Runs the callbacks of finished_; returns how many ran.
  size_t DeliverFinished();

  const size_t max_handshakes_;
  const absl::Duration handshake_grace_;
  const size_t max_open_;
  // The CPU budget's measure: this thread's CPU in Run() and the requests
  // ended since the last sample.
  absl::Duration cpu_per_request_;
  absl::Duration cpu_since_sample_;
  size_t ended_since_sample_ = 0;
  void* multi_;  // CURLM*, kept opaque so that users need no curl headers
  // Keyed by the CURL* easy handle.
  absl::flat_hash_map<void*, TransferPtr> active_;
  // The active transfers holding a handshake slot, in activation order (so
  // the first one's grace ends first); owned by active_.
  std::vector<Transfer*> handshaking_;
  // One server's TLS session cache (see TLS sessions above).
  struct SessionShare;
  // The share handle for `transfer`'s server, counted as used by it; null
  // when sessions are off or the handle is due but still in use.
  void* AcquireShare(Transfer& transfer);
  // Drops `transfer`'s use of its share handle (after its easy handle is
  // gone).
  void ReleaseShare(Transfer& transfer);

  // Keyed by "host:port|verify|credentials".
  absl::flat_hash_map<std::string, std::unique_ptr<SessionShare>> shares_;
  std::chrono::steady_clock::time_point last_share_sweep_;
  const absl::Duration session_lifetime_;
  // Keyed by the TlsSettings' file names and passphrase.
  absl::flat_hash_map<std::string, std::unique_ptr<ClientCredentials>>
      credentials_;
  std::deque<TransferPtr> queued_;
  std::vector<TransferPtr> finished_;  // outcome ready, callback not yet run
  std::atomic<bool> woken_{false};
  bool destroying_ = false;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_CURL_TRANSPORT_H_
