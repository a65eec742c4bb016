// HttpTransport over libcurl's multi interface: every request of a poller runs
// concurrently on the one thread that calls Run(), so a black-holed server
// delays nobody but itself.
#ifndef QFP_POLLER_CURL_TRANSPORT_H_
#define QFP_POLLER_CURL_TRANSPORT_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "poller-service/http_transport.h"

namespace qfp::poller {

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
// refused the body), else kOther; PARTIAL_FILE kBodyCutShort;
// BAD_CONTENT_ENCODING kBadEncoding; anything else kOther. Thread-safe.
TransportError CurlCodeToTransportError(int curl_code, bool body_too_large,
                                        bool body_rejected = false);

// The enum name of a libcurl result ("CURLE_SEND_ERROR"), "CURLE_<n>" for a
// code without a name here, "" for CURLE_OK: RequestOutcome::error_name.
// Thread-safe.
std::string CurlCodeName(int curl_code);

// Each request is a fresh TCP and TLS connection (no reuse between polls), so
// every poll is a real attempt to reach the server, like Butler SOS's. HTTP/1.1
// only, https only (redirects too). Every encoding libcurl knows is advertised
// (Accept-Encoding) and decoded; the body is never kept: it is counted
// (decoded) against HttpRequest::max_body_bytes and fed to the request's
// BodyCheck as it arrives, so memory stays bounded whatever its size.
// RequestOutcome::phase comes from libcurl's callbacks: the socket opened
// (connect), the SSL context made once TCP is up (TLS), the pre-request
// callback (send), the first header or body byte (receive).
//
// Concurrency bound: at most `max_concurrent` transfers are handed to libcurl
// at once; later ones wait in a FIFO queue of this class. Queueing here rather
// than with CURLMOPT_MAX_TOTAL_CONNECTIONS matters because libcurl starts a
// transfer's CURLOPT_TIMEOUT_MS clock when the transfer is added, so its own
// queue would turn our congestion into timeouts blamed on a server. A queued
// request's timeout and `elapsed` start when it leaves the queue.
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
  // `max_concurrent` 0 is taken as 1.
  explicit CurlTransport(size_t max_concurrent = 64);
  ~CurlTransport() override;

  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  void Start(const HttpRequest& request, DoneCallback done) override;
  void Run(absl::Duration max_wait) override;
  void Wakeup() override;
  size_t in_flight() const override;

  // Transfers handed to libcurl right now (at most max_concurrent).
  size_t active() const { return active_.size(); }

  // One request's state; defined in the .cc, named here only so that the C
  // callbacks there can refer to it.
  struct Transfer;

 private:
  using TransferPtr = std::unique_ptr<Transfer>;

  // Creates the easy handle and adds it to the multi handle; on failure the
  // transfer ends at once (delivered by the next Run()).
  void Activate(TransferPtr transfer);
  // Moves queued transfers to libcurl while there is room.
  void ActivateQueued();
  // Takes finished transfers out of libcurl into finished_.
  void CollectFinished();
  // Runs the callbacks of finished_; returns how many ran.
  size_t DeliverFinished();

  const size_t max_concurrent_;
  void* multi_;  // CURLM*, kept opaque so that users need no curl headers
  // Keyed by the CURL* easy handle.
  absl::flat_hash_map<void*, TransferPtr> active_;
  std::deque<TransferPtr> queued_;
  std::vector<TransferPtr> finished_;  // outcome ready, callback not yet run
  std::atomic<bool> woken_{false};
  bool destroying_ = false;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_CURL_TRANSPORT_H_
