#include "poller-service/curl_transport.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

namespace {

using SteadyClock = std::chrono::steady_clock;

CURLM* AsMulti(void* multi) { return static_cast<CURLM*>(multi); }

// libcurl takes milliseconds as long; 0 would mean "no timeout", so a request
// always gets at least 1 ms.
long TimeoutMillis(absl::Duration timeout) {  // NOLINT(runtime/int)
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1)));
  if (ms < 1) return 1;
  if (ms > LONG_MAX) return LONG_MAX;
  return static_cast<long>(ms);  // NOLINT(runtime/int)
}

// Rounded up so that a sub-millisecond remainder waits instead of spinning.
int PollMillis(absl::Duration wait) {
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1)));
  if (ms < 0) return 0;
  if (ms > INT_MAX) return INT_MAX;
  return static_cast<int>(ms);
}

}  // namespace

int EnsureCurlGlobalInit() {
  // C++11 guarantees one initialisation even with concurrent first calls.
  static const int result = curl_global_init(CURL_GLOBAL_DEFAULT);
  return result;
}

struct CurlTransport::SessionShare {
  CURLSH* handle = nullptr;
  // The credentials the sessions were made with.
  std::shared_ptr<const CredentialSnapshot> credentials;
  SteadyClock::time_point created;
  size_t users = 0;  // requests whose easy handle uses `handle`
};

struct CurlTransport::Transfer {
  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    curl_slist_free_all(header_list);
  }

  HttpRequest request;
  DoneCallback done;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};
  // The last address libcurl opened a socket for (see OpenSocket).
  std::string dialled_address;
  int dialled_port = 0;
  // The last chain verification error OpenSSL reported (see KeepVerifying).
  long chain_error = 0;  // NOLINT(runtime/int): OpenSSL's type
  bool verifies_server = false;
  // The parsed client certificate, key and CA store this request uses,
  // taken when it starts (null: libcurl's defaults, no file configured).
  std::shared_ptr<const CredentialSnapshot> credentials;
  // Why applying `credentials` failed (PrepareSslContext), for error_text:
  // libcurl itself only says "error signaled by ssl ctx callback".
  std::string credentials_error;
  // The share handle caching this request's server's TLS sessions, while
  // the request uses it (see CurlTransport::AcquireShare).
  CurlTransport::SessionShare* share = nullptr;
  // The request's BodyCheck refused the body (WriteBody stopped the read).
  bool body_rejected = false;
  // Header bytes of the current response (SeeHeader; reset at each status
  // line, so per response of a redirect chain).
  size_t header_bytes = 0;
  int header_status = 0;  // the current response's status, from its line
  // Why SeeHeader stopped the transfer: the head over kMaxHeaderBytes, or a
  // redirect to another origin (the Location, resolved), "" otherwise.
  std::string headers_refused;
  std::string redirect_refused;
  SteadyClock::time_point started;
  RequestOutcome outcome;
};

namespace {

using Transfer = CurlTransport::Transfer;  // for the C callbacks below

// CURLOPT_WRITEFUNCTION: counts the decoded body against the request's cap,
// keeps its head for logs and feeds it to the request's BodyCheck. Past the
// cap, or once the check has refused the body, it ends the transfer
// (returning less than was given makes libcurl fail with CURLE_WRITE_ERROR),
// so that a runaway or hopeless answer costs neither memory nor time.
size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t given = size * count;
  RequestOutcome& out = transfer->outcome;
  out.phase = RequestPhase::kReceive;
  if (out.body_head.size() < RequestOutcome::kBodyHeadBytes) {
    out.body_head.append(data, std::min(given, RequestOutcome::kBodyHeadBytes -
                                                   out.body_head.size()));
  }
  out.body_bytes += given;
  if (out.body_bytes > transfer->request.max_body_bytes) {
    out.body_too_large = true;
    return 0;
  }
  BodyCheck* check = transfer->request.body_check.get();
  if (check != nullptr && !check->Feed(absl::string_view(data, given))) {
    transfer->body_rejected = true;
    return 0;
  }
  return given;
}

// scheme://host:port of `url` resolved against `base` (empty: `url` is
// absolute), with the scheme's default port filled in; "" when libcurl's URL
// parser refuses either.
std::string OriginOf(const std::string& url, const std::string& base = "") {
  CURLU* parsed = curl_url();
  if (parsed == nullptr) return "";
  std::string origin;
  if ((base.empty() ||
       curl_url_set(parsed, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK) &&
      curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(parsed, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
            CURLUE_OK) {
      origin = absl::StrCat(absl::AsciiStrToLower(scheme), "://",
                            absl::AsciiStrToLower(host), ":", port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(parsed);
  return origin;
}

// CURLOPT_HEADERFUNCTION: the answer started arriving; libcurl hands over
// each header line of each response (a redirect chain's too). Two answers
// end the transfer here (returning less than was given makes libcurl fail
// with CURLE_WRITE_ERROR; FillOutcome reports why):
// - a head over kMaxHeaderBytes: a runaway head costs no memory, and is an
//   answer the API never gives;
// - a redirect to another origin (host or port): the health of the server
//   polled is not what another server answers, and our client certificate
//   and headers are for the server polled. A redirect to another scheme is
//   refused by CURLOPT_REDIR_PROTOCOLS_STR instead.
size_t SeeHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t given = size * count;
  t->outcome.phase = RequestPhase::kReceive;
  const absl::string_view line(data, given);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response
    t->header_bytes = 0;
    t->header_status = 0;
    const std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::MaxSplits(' ', 2));
    if (parts.size() >= 2) {
      (void)absl::SimpleAtoi(parts[1], &t->header_status);
    }
  }
  t->header_bytes += given;
  if (t->header_bytes > kMaxHeaderBytes) {
    t->headers_refused = absl::StrCat("the response headers are larger than ",
                                      kMaxHeaderBytes, " bytes");
    t->body_rejected = true;
    return 0;
  }
  if (t->header_status >= 300 && t->header_status < 400 &&
      absl::StartsWithIgnoreCase(line, "location:")) {
    const std::string location(absl::StripAsciiWhitespace(line.substr(9)));
    char* current = nullptr;
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &current);
    const std::string base = current != nullptr ? current : t->request.url;
    const std::string target = OriginOf(location, base);
    if (absl::StartsWith(target, "https://") &&
        target != OriginOf(t->request.url)) {
      t->redirect_refused = target;
      return 0;
    }
  }
  return given;
}

// CURLOPT_PREREQFUNCTION: connected (TLS included), the request goes out.
int BeforeRequest(void* user, char* /*primary_ip*/, char* /*local_ip*/,
                  int /*primary_port*/, int /*local_port*/) {
  static_cast<Transfer*>(user)->outcome.phase = RequestPhase::kSend;
  return CURL_PREREQFUNC_OK;
}

// CURLOPT_OPENSOCKETFUNCTION: remembers the address and port being dialled.
// libcurl 7.88 leaves CURLINFO_PRIMARY_IP empty when no connect succeeded, and
// Butler SOS reports the dialled address for a refused connect.
curl_socket_t OpenSocket(void* user, curlsocktype purpose,
                         curl_sockaddr* address) {
  auto* transfer = static_cast<Transfer*>(user);
  transfer->outcome.phase = RequestPhase::kConnect;  // again on a redirect
  if (purpose == CURLSOCKTYPE_IPCXN) {
    sockaddr_storage storage{};
    std::memcpy(
        &storage, &address->addr,
        std::min(sizeof(storage), static_cast<size_t>(address->addrlen)));
    char text[INET6_ADDRSTRLEN] = {};
    if (address->family == AF_INET) {
      sockaddr_in in4{};
      std::memcpy(&in4, &storage, sizeof(in4));
      if (inet_ntop(AF_INET, &in4.sin_addr, text, sizeof(text)) != nullptr) {
        transfer->dialled_address = text;
        transfer->dialled_port = ntohs(in4.sin_port);
      }
    } else if (address->family == AF_INET6) {
      sockaddr_in6 in6{};
      std::memcpy(&in6, &storage, sizeof(in6));
      if (inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text)) != nullptr) {
        transfer->dialled_address = text;
        transfer->dialled_port = ntohs(in6.sin6_port);
      }
    }
  }
  // Close-on-exec, which libcurl's own socket() call does not ask for.
  const int fd = socket(address->family, address->socktype | SOCK_CLOEXEC,
                        address->protocol);
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

// Where an SSL_CTX keeps its Transfer*, for KeepVerifying.
int TransferIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL verify callback that records each chain error and lets
// verification go on, as Node.js does. OpenSSL then reports the LAST error of
// the chain, which is what Butler SOS sees: a leaf from an unknown CA gives
// UNABLE_TO_VERIFY_LEAF_SIGNATURE (21), where stopping at the first error, as
// libcurl does by default, gives UNABLE_TO_GET_ISSUER_CERT_LOCALLY (20).
// The handshake then completes, but libcurl 7.88 still fails the transfer
// with CURLE_PEER_FAILED_VERIFICATION before sending anything, because it
// checks SSL_get_verify_result() after the handshake when VERIFYPEER is on
// (the transport tests pin that every bad chain still fails).
int KeepVerifying(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok == 0) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(
        store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (ssl != nullptr) {
      auto* transfer = static_cast<Transfer*>(
          SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), TransferIndex()));
      if (transfer != nullptr) {
        transfer->chain_error = X509_STORE_CTX_get_error(store);
      }
    }
  }
  return 1;
}

// CURLOPT_SSL_CTX_FUNCTION: libcurl 7.88 makes one SSL_CTX per connection,
// once TCP is connected, and calls this after its own setup (VERIFYPEER
// already applied).
//
// It also gives the SSL_CTX the request's parsed credentials (see
// ClientCredentials): references, not copies, so nothing is read or parsed
// per connection. libcurl makes the SSL object from this SSL_CTX right
// after this callback, so the certificate, key and store apply to it.
CURLcode PrepareSslContext(CURL* /*easy*/, void* ssl_ctx, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  transfer->outcome.phase = RequestPhase::kTls;
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  if (transfer->credentials != nullptr) {
    ApplyResult applied = ApplyTo(*transfer->credentials, ctx,
                                  /*with_trust=*/transfer->verifies_server);
    if (applied.curl_code != CURLE_OK) {
      transfer->credentials_error = std::move(applied.error);
      return static_cast<CURLcode>(applied.curl_code);
    }
  }
  // OpenSSL frees a connection's record buffers (about 17 KB each way)
  // whenever they are empty rather than keeping them for the connection's
  // life: a poll waiting on a silent server holds none while it waits.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!transfer->verifies_server) return CURLE_OK;
  if (SSL_CTX_set_ex_data(ctx, TransferIndex(), user) != 1) {
    return CURLE_SSL_CONNECT_ERROR;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, KeepVerifying);
  return CURLE_OK;
}

// Sets every option of one request; returns the first failure.
CURLcode Configure(Transfer& t) {
  CURL* easy = t.easy;
  CURLcode first_error = CURLE_OK;
  auto check = [&first_error](CURLcode rc) {
    if (first_error == CURLE_OK) first_error = rc;
  };
  for (const std::string& header : t.request.headers) {
    curl_slist* appended = curl_slist_append(t.header_list, header.c_str());
    if (appended == nullptr) return CURLE_OUT_OF_MEMORY;
    t.header_list = appended;
  }

  check(curl_easy_setopt(easy, CURLOPT_PRIVATE, &t));
  check(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error_buffer));
  check(curl_easy_setopt(easy, CURLOPT_URL, t.request.url.c_str()));
  check(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https"));
  check(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L));
  check(curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                         static_cast<long>(CURL_HTTP_VERSION_1_1)));  // NOLINT
  check(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.header_list));
  check(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                         TimeoutMillis(t.request.timeout)));
  // Timeouts without SIGALRM: the poller is multi-threaded.
  check(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
  check(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L));
  check(
      curl_easy_setopt(easy, CURLOPT_MAXREDIRS,
                       static_cast<long>(t.request.max_redirects)));  // NOLINT
  check(curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "https"));

  // Each poll is a real attempt: a new connection, a TLS handshake (full,
  // unless sessions are on and Activate gives it its server's session
  // cache: see "TLS sessions" in the header) and a fresh name lookup (the
  // multi handle otherwise shares a 60 s DNS cache), like Butler SOS's
  // requests.
  check(curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L));
  check(curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L));
  check(curl_easy_setopt(easy, CURLOPT_SSL_SESSIONID_CACHE, 0L));
  check(curl_easy_setopt(easy, CURLOPT_DNS_CACHE_TIMEOUT, 0L));
  // Without a CA file of ours libcurl loads its default bundle; one replaced
  // on disk then counts from the next poll, not a day later. (Our own CA
  // file is reloaded when it changes: ClientCredentials.)
  check(curl_easy_setopt(easy, CURLOPT_CA_CACHE_TIMEOUT, 0L));

  // Advertise and decode every encoding this libcurl was built with
  // (scripts/build-curl.sh: deflate, gzip, br), as Butler SOS's client does; a
  // proxy may compress even unasked, and libcurl decodes what it knows
  // whenever this is set. WriteBody sees the decoded bytes.
  check(curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, ""));
  // libcurl allocates this receive buffer for every transfer when it
  // connects, a silent server's included (16 KiB by default). Qlik Sense's
  // answers are mostly under 1 KiB; a larger body only takes more calls of
  // WriteBody, each counted and checked as before.
  check(curl_easy_setopt(easy, CURLOPT_BUFFERSIZE,
                         static_cast<long>(kReceiveBufferBytes)));  // NOLINT
  check(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, WriteBody));
  check(curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t));
  check(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, SeeHeader));
  check(curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t));
  check(curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, BeforeRequest));
  check(curl_easy_setopt(easy, CURLOPT_PREREQDATA, &t));
  check(curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, OpenSocket));
  check(curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &t));

  const TlsSettings* tls = t.request.tls;
  if (tls != nullptr && !tls->ca_file.empty()) {
    // The CA store comes parsed from PrepareSslContext; libcurl must not
    // load its default bundle (Debian's ~140 roots) for every connection
    // only for it to be replaced.
    check(curl_easy_setopt(easy, CURLOPT_CAINFO, nullptr));
    check(curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr));
  }
  const bool verify = tls == nullptr || tls->verify_server;
  t.verifies_server = verify;
  // Always: it also marks the TLS phase (see PrepareSslContext).
  check(curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, PrepareSslContext));
  check(curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, &t));
  check(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L));
  check(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L));
  if (verify) {
    // Node.js trusts only complete chains up to a root in the CA file, and
    // reports verification errors as described at KeepVerifying.
    check(curl_easy_setopt(
        easy, CURLOPT_SSL_OPTIONS,
        static_cast<long>(CURLSSLOPT_NO_PARTIALCHAIN)));  // NOLINT
  }
  return first_error;
}

}  // namespace

std::string CurlCodeName(int curl_code) {
  switch (curl_code) {
    case CURLE_OK:
      return "";
    case CURLE_UNSUPPORTED_PROTOCOL:
      return "CURLE_UNSUPPORTED_PROTOCOL";
    case CURLE_FAILED_INIT:
      return "CURLE_FAILED_INIT";
    case CURLE_URL_MALFORMAT:
      return "CURLE_URL_MALFORMAT";
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "CURLE_COULDNT_RESOLVE_PROXY";
    case CURLE_COULDNT_CONNECT:
      return "CURLE_COULDNT_CONNECT";
    case CURLE_WEIRD_SERVER_REPLY:
      return "CURLE_WEIRD_SERVER_REPLY";
    case CURLE_HTTP2:
      return "CURLE_HTTP2";
    case CURLE_PARTIAL_FILE:
      return "CURLE_PARTIAL_FILE";
    case CURLE_WRITE_ERROR:
      return "CURLE_WRITE_ERROR";
    case CURLE_OUT_OF_MEMORY:
      return "CURLE_OUT_OF_MEMORY";
    case CURLE_RANGE_ERROR:
      return "CURLE_RANGE_ERROR";
    case CURLE_SSL_CONNECT_ERROR:
      return "CURLE_SSL_CONNECT_ERROR";
    case CURLE_BAD_DOWNLOAD_RESUME:
      return "CURLE_BAD_DOWNLOAD_RESUME";
    case CURLE_FUNCTION_NOT_FOUND:
      return "CURLE_FUNCTION_NOT_FOUND";
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return "CURLE_BAD_FUNCTION_ARGUMENT";
    case CURLE_INTERFACE_FAILED:
      return "CURLE_INTERFACE_FAILED";
    case CURLE_UNKNOWN_OPTION:
      return "CURLE_UNKNOWN_OPTION";
    case CURLE_SEND_ERROR:
      return "CURLE_SEND_ERROR";
    case CURLE_RECV_ERROR:
      return "CURLE_RECV_ERROR";
    case CURLE_SSL_ENGINE_NOTFOUND:
      return "CURLE_SSL_ENGINE_NOTFOUND";
    case CURLE_SSL_ENGINE_SETFAILED:
      return "CURLE_SSL_ENGINE_SETFAILED";
    case CURLE_SSL_CERTPROBLEM:
      return "CURLE_SSL_CERTPROBLEM";
    case CURLE_SSL_CIPHER:
      return "CURLE_SSL_CIPHER";
    case CURLE_BAD_CONTENT_ENCODING:
      return "CURLE_BAD_CONTENT_ENCODING";
    case CURLE_SSL_ENGINE_INITFAILED:
      return "CURLE_SSL_ENGINE_INITFAILED";
    case CURLE_SSL_CACERT_BADFILE:
      return "CURLE_SSL_CACERT_BADFILE";
    case CURLE_SSL_SHUTDOWN_FAILED:
      return "CURLE_SSL_SHUTDOWN_FAILED";
    case CURLE_AGAIN:
      return "CURLE_AGAIN";
    case CURLE_SSL_CRL_BADFILE:
      return "CURLE_SSL_CRL_BADFILE";
    case CURLE_SSL_ISSUER_ERROR:
      return "CURLE_SSL_ISSUER_ERROR";
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return "CURLE_SSL_PINNEDPUBKEYNOTMATCH";
    case CURLE_SSL_INVALIDCERTSTATUS:
      return "CURLE_SSL_INVALIDCERTSTATUS";
    case CURLE_HTTP2_STREAM:
      return "CURLE_HTTP2_STREAM";
    case CURLE_RECURSIVE_API_CALL:
      return "CURLE_RECURSIVE_API_CALL";
    case CURLE_SSL_CLIENTCERT:
      return "CURLE_SSL_CLIENTCERT";
    case CURLE_UNRECOVERABLE_POLL:
      return "CURLE_UNRECOVERABLE_POLL";
    // These have a TransportError of their own, so their names only show in
    // logs. A code not named here is reported as CURLE_<n>, as it always was:
    // the name is a failure's error code when nothing better is known.
    case CURLE_COULDNT_RESOLVE_HOST:
      return "CURLE_COULDNT_RESOLVE_HOST";
    case CURLE_OPERATION_TIMEDOUT:
      return "CURLE_OPERATION_TIMEDOUT";
    case CURLE_ABORTED_BY_CALLBACK:
      return "CURLE_ABORTED_BY_CALLBACK";
    case CURLE_TOO_MANY_REDIRECTS:
      return "CURLE_TOO_MANY_REDIRECTS";
    case CURLE_GOT_NOTHING:
      return "CURLE_GOT_NOTHING";
    case CURLE_PEER_FAILED_VERIFICATION:
      return "CURLE_PEER_FAILED_VERIFICATION";
    default:
      return absl::StrCat("CURLE_", curl_code);
  }
}

TransportError CurlCodeToTransportError(int curl_code, bool body_too_large,
                                        bool body_rejected,
                                        bool redirect_refused) {
  switch (curl_code) {
    case CURLE_OK:
      return TransportError::kNone;
    case CURLE_ABORTED_BY_CALLBACK:
      return TransportError::kCancelled;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
      return TransportError::kResolve;
    case CURLE_COULDNT_CONNECT:
      return TransportError::kConnect;
    case CURLE_SEND_ERROR:
      return TransportError::kSend;
    case CURLE_RECV_ERROR:
      return TransportError::kReceive;
    case CURLE_GOT_NOTHING:
      return TransportError::kEmptyReply;
    case CURLE_SSL_CONNECT_ERROR:
      return TransportError::kTlsHandshake;
    case CURLE_PEER_FAILED_VERIFICATION:
      return TransportError::kTlsVerify;
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return TransportError::kTlsSetup;
    case CURLE_URL_MALFORMAT:
      return TransportError::kBadUrl;
    case CURLE_TOO_MANY_REDIRECTS:
      return TransportError::kTooManyRedirects;
    case CURLE_WRITE_ERROR:
      // WriteBody refusing more than the cap or a body its check refused,
      // and SeeHeader refusing a head or a redirect, are the only ways this
      // transport makes libcurl fail a write.
      if (body_too_large) return TransportError::kBodyTooLarge;
      if (body_rejected) return TransportError::kBodyRejected;
      if (redirect_refused) return TransportError::kRedirectRefused;
      return TransportError::kOther;
    case CURLE_PARTIAL_FILE:
      return TransportError::kBodyCutShort;
    case CURLE_BAD_CONTENT_ENCODING:
      return TransportError::kBadEncoding;
    default:
      return TransportError::kOther;
  }
}

namespace {

// "curl 7 (Couldn't connect to server): <details>", the error_text of a
// failed request.
std::string CurlSays(CURLcode code, const std::string& details) {
  std::string text = absl::StrCat("curl ", static_cast<int>(code), " (",
                                  curl_easy_strerror(code), ")");
  if (!details.empty()) absl::StrAppend(&text, ": ", details);
  return text;
}

// Reports libcurl's result `code` in `out` in neutral terms (after
// body_too_large is known).
void SetResult(RequestOutcome& out, CURLcode code, const std::string& details,
               bool body_rejected = false, bool redirect_refused = false) {
  out.error = CurlCodeToTransportError(code, out.body_too_large, body_rejected,
                                       redirect_refused);
  if (code == CURLE_OK) return;
  out.error_name = CurlCodeName(code);
  out.error_text = CurlSays(code, details);
}

// Ends `t` without libcurl having run it (setup failure or cancellation).
void EndWithoutTransfer(Transfer& t, CURLcode code, const std::string& why) {
  t.outcome = RequestOutcome{};
  SetResult(t.outcome, code, why);
  if (t.started != SteadyClock::time_point{}) {
    t.outcome.elapsed = absl::FromChrono(SteadyClock::now() - t.started);
  }
}

void EndCancelled(Transfer& t) {
  EndWithoutTransfer(t, CURLE_ABORTED_BY_CALLBACK,
                     "cancelled: the transport was shut down");
  t.outcome.cancelled = true;
}

// Reads what libcurl learned about a finished transfer into its outcome.
void FillOutcome(Transfer& t, CURLcode result) {
  RequestOutcome& out = t.outcome;
  std::string details = !t.credentials_error.empty() ? t.credentials_error
                        : t.error_buffer[0] != '\0'
                            ? std::string(t.error_buffer)
                            : std::string(curl_easy_strerror(result));
  SetResult(out, result,
            t.redirect_refused.empty()
                ? details
                : absl::StrCat("a redirect to another origin (",
                               t.redirect_refused, ") was not followed"),
            t.body_rejected, !t.redirect_refused.empty());
  // A refused head is judged like a body the check refused: the status
  // decides (a 2xx is invalid_response, a 500 stays http_5xx).
  if (!t.headers_refused.empty()) out.body_problem = t.headers_refused;
  if (BodyCheck* check = t.request.body_check.get();
      check != nullptr && t.headers_refused.empty()) {
    // The check judges only a body read to its end, or one it refused.
    if (result == CURLE_OK) check->Finish();
    if (result == CURLE_OK || t.body_rejected) {
      out.body_problem = check->Problem();
    }
  }
  long value = 0;  // NOLINT(runtime/int): libcurl's type
  if (curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &value) == CURLE_OK) {
    out.os_errno = static_cast<int>(value);
  }
  value = 0;
  if (curl_easy_getinfo(t.easy, CURLINFO_SSL_VERIFYRESULT, &value) ==
      CURLE_OK) {
    out.tls_verify_result = value;
  }
  if (result == CURLE_PEER_FAILED_VERIFICATION && t.verifies_server) {
    // libcurl checks the host name before the chain's result and, when the
    // name fails, leaves its "not verified" placeholder (1) here. What
    // KeepVerifying saw is the truth: 0 when only the name was wrong, and
    // the chain's error first when both were, as Node.js reports them.
    out.tls_verify_result = t.chain_error;
  }
  value = 0;
  if (curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &value) == CURLE_OK) {
    out.http_status = static_cast<int>(value);
  }
  // The connected peer when there is one, else the address last dialled.
  char* primary_ip = nullptr;
  if (curl_easy_getinfo(t.easy, CURLINFO_PRIMARY_IP, &primary_ip) == CURLE_OK &&
      primary_ip != nullptr && primary_ip[0] != '\0') {
    out.remote_address = primary_ip;
    value = 0;
    curl_easy_getinfo(t.easy, CURLINFO_PRIMARY_PORT, &value);
    out.remote_port = static_cast<int>(value);
  } else {
    out.remote_address = t.dialled_address;
    out.remote_port = t.dialled_port;
  }
  out.elapsed = absl::FromChrono(SteadyClock::now() - t.started);
}

}  // namespace

namespace {

size_t DefaultMaxOpen() {
  rlimit limit{};
  size_t open = 4096;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur != RLIM_INFINITY) {
    open = std::min<size_t>(open, static_cast<size_t>(limit.rlim_cur) / 2);
  }
  return std::max<size_t>(open, 16);
}

CurlTransportLimits WithHandshakes(size_t max_handshakes) {
  CurlTransportLimits limits;
  limits.max_handshakes = max_handshakes;
  return limits;
}

}  // namespace

CurlTransport::CurlTransport(size_t max_handshakes)
    : CurlTransport(WithHandshakes(max_handshakes)) {}

CurlTransport::CurlTransport(const CurlTransportLimits& limits)
    : max_handshakes_(limits.max_handshakes == 0 ? 1 : limits.max_handshakes),
      handshake_grace_(std::max(limits.handshake_grace, absl::ZeroDuration())),
      max_open_(limits.max_open == 0 ? DefaultMaxOpen() : limits.max_open),
      cpu_per_request_(
          std::max(limits.initial_cpu_per_request, absl::Microseconds(1))),
      multi_(nullptr),
      session_lifetime_(
          std::max(limits.session_lifetime, absl::ZeroDuration())) {
  const int init = EnsureCurlGlobalInit();
  if (init != CURLE_OK) {
    spdlog::error("curl_global_init failed: {}",
                  curl_easy_strerror(static_cast<CURLcode>(init)));
  }
  multi_ = curl_multi_init();
  if (multi_ == nullptr) {
    // Requests then end with CURLE_FAILED_INIT; see Activate.
    spdlog::error("curl_multi_init failed");
  }
}

CurlTransport::~CurlTransport() {
  destroying_ = true;
  std::vector<TransferPtr> ending = std::move(finished_);
  finished_.clear();
  for (auto& [easy, transfer] : active_) {
    curl_multi_remove_handle(AsMulti(multi_), easy);
    EndCancelled(*transfer);
    ending.push_back(std::move(transfer));
  }
  active_.clear();
  handshaking_.clear();
  for (TransferPtr& transfer : queued_) {
    EndCancelled(*transfer);
    ending.push_back(std::move(transfer));
  }
  queued_.clear();
  if (multi_ != nullptr) curl_multi_cleanup(AsMulti(multi_));
  multi_ = nullptr;
  // Callbacks last, with libcurl already gone: a Start() from one of them
  // ends at once as cancelled (see Start).
  for (TransferPtr& transfer : ending) {
    DoneCallback done = std::move(transfer->done);
    RequestOutcome outcome = std::move(transfer->outcome);
    transfer.reset();
    if (done) done(std::move(outcome));
  }
  // Last: every easy handle that used a share handle is gone.
  for (auto& [key, share] : shares_) {
    if (share->handle != nullptr) curl_share_cleanup(share->handle);
  }
  shares_.clear();
}

void CurlTransport::Start(const HttpRequest& request, DoneCallback done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->request = request;
  transfer->done = std::move(done);
  if (destroying_) {
    // Only reachable from a callback run by the destructor; the contract
    // still wants exactly one callback, and there is no later Run().
    EndCancelled(*transfer);
    if (transfer->done) transfer->done(std::move(transfer->outcome));
    return;
  }
  ReleaseSlots();
  if (queued_.empty() && HasRoom(transfer->request.timeout)) {
    Activate(std::move(transfer));
  } else {
    queued_.push_back(std::move(transfer));
  }
}

ClientCredentials* CurlTransport::CredentialsFor(const TlsSettings* tls) {
  if (tls == nullptr ||
      (tls->client_cert_file.empty() && tls->ca_file.empty())) {
    return nullptr;
  }
  // '\0' cannot occur in a path, so the key is unambiguous.
  std::string key =
      absl::StrCat(tls->client_cert_file, std::string(1, '\0'),
                   tls->client_key_file, std::string(1, '\0'),
                   tls->key_passphrase, std::string(1, '\0'), tls->ca_file);
  auto it = credentials_.find(key);
  if (it == credentials_.end()) {
    it = credentials_
             .emplace(std::move(key), std::make_unique<ClientCredentials>(*tls))
             .first;
  }
  return it->second.get();
}

void* CurlTransport::AcquireShare(Transfer& t) {
  if (session_lifetime_ <= absl::ZeroDuration()) return nullptr;
  const SteadyClock::time_point now = SteadyClock::now();
  const auto lifetime = absl::ToChronoNanoseconds(session_lifetime_);
  // Forget servers no longer polled, at most once per lifetime.
  if (now - last_share_sweep_ >= lifetime) {
    last_share_sweep_ = now;
    absl::erase_if(shares_, [&](const auto& entry) {
      const SessionShare& share = *entry.second;
      if (share.users > 0 || now - share.created < lifetime) return false;
      if (share.handle != nullptr) curl_share_cleanup(share.handle);
      return true;
    });
  }
  // The server: host and port as libcurl reads them.
  CURLU* url = curl_url();
  if (url == nullptr) return nullptr;
  char* host = nullptr;
  char* port = nullptr;
  std::string key;
  if (curl_url_set(url, CURLUPART_URL, t.request.url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(url, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
          CURLUE_OK) {
    key = absl::StrCat(
        host, ":", port, "|", t.verifies_server ? 1 : 0, "|",
        reinterpret_cast<uintptr_t>(CredentialsFor(t.request.tls)));
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(url);
  if (key.empty()) return nullptr;  // a bad URL: libcurl reports it

  std::unique_ptr<SessionShare>& share = shares_[key];
  if (share == nullptr) share = std::make_unique<SessionShare>();
  const bool due = share->handle == nullptr ||
                   now - share->created >= lifetime ||
                   share->credentials != t.credentials;
  if (due) {
    // In use: libcurl cannot drop a share handle an easy handle still
    // holds. This request then makes a full handshake, cached nowhere.
    if (share->users > 0) return nullptr;
    if (share->handle != nullptr) curl_share_cleanup(share->handle);
    share->handle = curl_share_init();
    if (share->handle == nullptr ||
        curl_share_setopt(share->handle, CURLSHOPT_SHARE,
                          CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
      if (share->handle != nullptr) curl_share_cleanup(share->handle);
      share->handle = nullptr;
      return nullptr;
    }
    share->created = now;
    share->credentials = t.credentials;
  }
  ++share->users;
  t.share = share.get();
  return share->handle;
}

void CurlTransport::ReleaseShare(Transfer& t) {
  if (t.share == nullptr) return;
  --t.share->users;
  t.share = nullptr;
}

void CurlTransport::ReleaseSlots() {
  if (handshaking_.empty()) return;
  const SteadyClock::time_point now = SteadyClock::now();
  const auto grace = absl::ToChronoNanoseconds(handshake_grace_);
  handshaking_.erase(
      std::remove_if(handshaking_.begin(), handshaking_.end(),
                     [&](const Transfer* t) {
                       return t->outcome.phase == RequestPhase::kSend ||
                              t->outcome.phase == RequestPhase::kReceive ||
                              now - t->started >= grace;
                     }),
      handshaking_.end());
}

bool CurlTransport::HasRoom(absl::Duration timeout) const {
  // The CPU budget: what the handshakes ahead may cost stays within a
  // quarter of this request's timeout.
  const double affordable = absl::FDivDuration(
      std::max(timeout, absl::ZeroDuration()) / 4, cpu_per_request_);
  size_t limit = max_handshakes_;
  if (affordable < static_cast<double>(limit)) {
    limit = std::max<size_t>(1, static_cast<size_t>(affordable));
  }
  return handshaking_.size() < limit && active_.size() < max_open_;
}

void CurlTransport::Activate(TransferPtr transfer) {
  transfer->started = SteadyClock::now();
  if (ClientCredentials* credentials = CredentialsFor(transfer->request.tls)) {
    transfer->credentials = credentials->Current();
  }
  if (multi_ == nullptr) {
    EndWithoutTransfer(*transfer, CURLE_FAILED_INIT, "curl_multi_init failed");
    finished_.push_back(std::move(transfer));
    return;
  }
  transfer->easy = curl_easy_init();
  if (transfer->easy == nullptr) {
    EndWithoutTransfer(*transfer, CURLE_FAILED_INIT, "curl_easy_init failed");
    finished_.push_back(std::move(transfer));
    return;
  }
  const CURLcode configured = Configure(*transfer);
  if (configured != CURLE_OK) {
    EndWithoutTransfer(*transfer, configured,
                       std::string("setting up the request: ") +
                           curl_easy_strerror(configured));
    finished_.push_back(std::move(transfer));
    return;
  }
  if (void* share = AcquireShare(*transfer); share != nullptr) {
    if (curl_easy_setopt(transfer->easy, CURLOPT_SHARE, share) != CURLE_OK ||
        curl_easy_setopt(transfer->easy, CURLOPT_SSL_SESSIONID_CACHE, 1L) !=
            CURLE_OK) {
      curl_easy_setopt(transfer->easy, CURLOPT_SHARE, nullptr);
      ReleaseShare(*transfer);
    }
  }
  const CURLMcode added =
      curl_multi_add_handle(AsMulti(multi_), transfer->easy);
  if (added != CURLM_OK) {
    curl_easy_cleanup(transfer->easy);
    transfer->easy = nullptr;
    ReleaseShare(*transfer);
    EndWithoutTransfer(
        *transfer, CURLE_FAILED_INIT,
        std::string("curl_multi_add_handle: ") + curl_multi_strerror(added));
    finished_.push_back(std::move(transfer));
    return;
  }
  void* key = transfer->easy;
  handshaking_.push_back(transfer.get());
  active_.emplace(key, std::move(transfer));
}

void CurlTransport::ActivateQueued() {
  ReleaseSlots();
  while (!queued_.empty() && HasRoom(queued_.front()->request.timeout)) {
    TransferPtr next = std::move(queued_.front());
    queued_.pop_front();
    Activate(std::move(next));
  }
}

void CurlTransport::CollectFinished() {
  if (multi_ == nullptr) return;
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(AsMulti(multi_), &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    // The message belongs to the easy handle: read it before removing that.
    CURL* easy = message->easy_handle;
    const CURLcode result = message->data.result;
    auto it = active_.find(static_cast<void*>(easy));
    if (it == active_.end()) continue;  // not ours; cannot happen
    TransferPtr transfer = std::move(it->second);
    active_.erase(it);
    handshaking_.erase(
        std::remove(handshaking_.begin(), handshaking_.end(), transfer.get()),
        handshaking_.end());
    FillOutcome(*transfer, result);
    curl_multi_remove_handle(AsMulti(multi_), easy);
    curl_easy_cleanup(easy);
    transfer->easy = nullptr;
    ReleaseShare(*transfer);
    ++ended_since_sample_;
    finished_.push_back(std::move(transfer));
  }
}

size_t CurlTransport::DeliverFinished() {
  // Swapped out first: a callback may Start() a request whose setup fails,
  // which appends to finished_ for the next Run().
  std::vector<TransferPtr> ready;
  ready.swap(finished_);
  for (TransferPtr& transfer : ready) {
    DoneCallback done = std::move(transfer->done);
    RequestOutcome outcome = std::move(transfer->outcome);
    transfer.reset();
    if (done) done(std::move(outcome));
  }
  return ready.size();
}

namespace {

absl::Duration ThreadCpu() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return absl::DurationFromTimespec(now);
}

}  // namespace

void CurlTransport::Run(absl::Duration max_wait) {
  const absl::Duration cpu_begin = ThreadCpu();
  RunLoop(max_wait);
  cpu_since_sample_ += ThreadCpu() - cpu_begin;
  constexpr size_t kSample = 32;
  if (ended_since_sample_ >= kSample) {
    const absl::Duration sample =
        cpu_since_sample_ / static_cast<int64_t>(ended_since_sample_);
    // Half old, half new: a slower CPU shows within a few samples.
    cpu_per_request_ =
        std::max((cpu_per_request_ + sample) / 2, absl::Microseconds(1));
    cpu_since_sample_ = absl::ZeroDuration();
    ended_since_sample_ = 0;
  }
}

void CurlTransport::RunLoop(absl::Duration max_wait) {
  const SteadyClock::time_point begin = SteadyClock::now();
  for (;;) {
    if (multi_ != nullptr) {
      int running = 0;
      const CURLMcode performed = curl_multi_perform(AsMulti(multi_), &running);
      if (performed != CURLM_OK) {
        spdlog::error("curl_multi_perform: {}", curl_multi_strerror(performed));
      }
    }
    CollectFinished();
    ActivateQueued();
    if (DeliverFinished() > 0) return;
    if (woken_.exchange(false)) return;
    const SteadyClock::time_point now = SteadyClock::now();
    const absl::Duration waited = absl::FromChrono(now - begin);
    if (waited >= max_wait || multi_ == nullptr) return;
    absl::Duration wait = max_wait - waited;
    if (!queued_.empty() && !handshaking_.empty()) {
      // Wake when the oldest slot's grace ends, to start the next request.
      const absl::Duration grace_left =
          handshake_grace_ -
          absl::FromChrono(now - handshaking_.front()->started);
      wait = std::min(wait, std::max(grace_left, absl::ZeroDuration()));
    }
    // curl_multi_poll also returns when one of libcurl's own timers (such as
    // a request's timeout) is due, and when Wakeup() is called.
    const CURLMcode polled =
        curl_multi_poll(AsMulti(multi_), nullptr, 0, PollMillis(wait), nullptr);
    if (polled != CURLM_OK) {
      spdlog::error("curl_multi_poll: {}", curl_multi_strerror(polled));
      return;  // rather than spin; the caller's loop calls Run() again
    }
  }
}

void CurlTransport::Wakeup() {
  woken_.store(true);
  // Documented as callable from any thread, unlike the rest of libcurl.
  if (multi_ != nullptr) curl_multi_wakeup(AsMulti(multi_));
}

size_t CurlTransport::in_flight() const {
  return active_.size() + queued_.size() + finished_.size();
}

}  // namespace qfp::poller
