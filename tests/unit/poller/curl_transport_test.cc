// CurlTransport against real sockets on 127.0.0.1: refused and black-holed
// ports, a plain-HTTP peer, and an in-process OpenSSL server for what only a
// TLS peer can show (statuses, bodies, redirects, certificate failures).
// Every wait is bounded; no assertion depends on how fast anything runs.
#include "poller-service/curl_transport.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "poller-service/failure_classifier.h"
#include "poller-service/json_shape_check.h"
#include "tests/testing/temp_dir.h"

namespace qfp::poller {
namespace {

namespace v1 = failedpolls::v1;
using SteadyClock = std::chrono::steady_clock;

// The bound on any wait in this file; generous, it only stops a hang.
constexpr auto kHangGuard = std::chrono::seconds(20);

// ---- Sockets ----------------------------------------------------------------

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// A TCP socket bound to 127.0.0.1 on a port the kernel picked.
Fd BoundSocket(int* port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (fd.get() < 0 ||
      bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "bind: " << std::strerror(errno);
    return Fd();
  }
  socklen_t len = sizeof(addr);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A port nothing listens on: bound, never listened, kept open so that no
// other test picks it meanwhile. Connecting to it is refused.
struct ClosedPort {
  ClosedPort() : fd(BoundSocket(&port)) {}
  int port = 0;
  Fd fd;
};

// Listens but never accepts: the kernel completes the TCP handshake, then
// nothing ever answers the TLS ClientHello.
struct BlackHole {
  BlackHole() : fd(BoundSocket(&port)) { listen(fd.get(), 16); }
  // The same on another loopback address ("127.0.0.7"), as a dead server.
  explicit BlackHole(const std::string& on) : address(on) {
    fd = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, on.c_str(), &addr.sin_addr);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ADD_FAILURE() << "bind " << on << ": " << std::strerror(errno);
      return;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    listen(fd.get(), 16);
  }
  std::string Url() const {
    return absl::StrCat("https://", address, ":", port, "/");
  }
  std::string address = "127.0.0.1";
  int port = 0;
  Fd fd;
};

void SetTimeouts(int fd, int seconds) {
  timeval tv{};
  tv.tv_sec = seconds;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Ends a connection without a reset: stop sending, read what the peer still
// sends until it closes (bounded by the socket's timeout), then close.
void CloseGently(int fd) {
  shutdown(fd, SHUT_WR);
  char sink[4096];
  while (recv(fd, sink, sizeof(sink), 0) > 0) {
  }
}

// Accepts connections on a thread until destroyed, handing each to `serve`.
class Server {
 public:
  explicit Server(std::function<void(int)> serve)
      : serve_(std::move(serve)), listener_(BoundSocket(&port_)) {
    signal(SIGPIPE, SIG_IGN);  // a peer that hung up must not kill the test
    listen(listener_.get(), 16);
    thread_ = std::thread([this] { Loop(); });
  }
  ~Server() { Stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  // Stops accepting and waits for the connection being served.
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    while (!stop_.load()) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      Fd conn(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.get() < 0) continue;
      SetTimeouts(conn.get(), 5);
      serve_(conn.get());
    }
  }

  std::function<void(int)> serve_;
  int port_ = 0;
  Fd listener_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- A test PKI -------------------------------------------------------------

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertDeleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using CertPtr = std::unique_ptr<X509, CertDeleter>;

struct CertSpec {
  std::string common_name;
  std::string subject_alt_names;  // "DNS:a,IP:1.2.3.4"; "" for none
  bool is_ca = false;
  long valid_from_s = -3600;            // NOLINT(runtime/int): from now
  long valid_until_s = 30 * 24 * 3600;  // NOLINT(runtime/int)
};

void AddExtension(X509* cert, X509V3_CTX* ctx, int nid,
                  const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Signed by `issuer` (with `issuer_key`), or self-signed when it is null.
CertPtr MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                 EVP_PKEY* issuer_key) {
  static long serial = 1;  // NOLINT(runtime/int)
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.valid_from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.valid_until_s);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1,
      0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
  AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (spec.is_ca) {
    AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), &ctx, NID_key_usage,
                 "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), &ctx, NID_basic_constraints, "CA:FALSE");
  }
  if (!spec.subject_alt_names.empty()) {
    AddExtension(cert.get(), &ctx, NID_subject_alt_name,
                 spec.subject_alt_names);
  }
  EXPECT_GT(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key,
                      EVP_sha256()),
            0);
  return cert;
}

std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);  // NOLINT(runtime/int)
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string ToPem(EVP_PKEY* key, const char* passphrase = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  const std::string pass = passphrase != nullptr ? passphrase : "";
  PEM_write_bio_PrivateKey(bio, key,
                           passphrase != nullptr ? EVP_aes_256_cbc() : nullptr,
                           reinterpret_cast<const unsigned char*>(pass.data()),
                           static_cast<int>(pass.size()), nullptr, nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);  // NOLINT(runtime/int)
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

// Files for every certificate situation the tests need, in one directory.
struct Pki {
  testing::TempDir dir;
  std::string ca;                  // the CA the poller trusts
  std::string server_key;          // one key for every server certificate
  std::string good;                // 127.0.0.1 and localhost, signed by ca
  std::string wrong_name;          // other.example, signed by ca
  std::string expired;             // 127.0.0.1, signed by ca, expired
  std::string self_signed;         // 127.0.0.1, its own issuer
  std::string unknown_leaf;        // 127.0.0.1, signed by another CA
  std::string unknown_chain;       // the same plus that CA (leaf + root)
  std::string unknown_wrong_name;  // other.example, signed by another CA
  std::string client_cert;         // signed by ca
  std::string client_key;          // clear
  std::string client_key_encrypted;
  std::string passphrase = "pass word";
};

void FillPki(Pki& pki) {
  KeyPtr ca_key(EVP_EC_gen("P-256"));
  KeyPtr other_key(EVP_EC_gen("P-256"));
  KeyPtr server_key(EVP_EC_gen("P-256"));
  KeyPtr client_key(EVP_EC_gen("P-256"));
  const std::string here = "DNS:localhost,IP:127.0.0.1";

  CertPtr ca =
      MakeCert({"Test Root CA", "", true}, ca_key.get(), nullptr, nullptr);
  CertPtr other =
      MakeCert({"Other Root CA", "", true}, other_key.get(), nullptr, nullptr);
  auto leaf = [&](const std::string& san, X509* issuer, EVP_PKEY* issuer_key,
                  long from, long until) {  // NOLINT(runtime/int)
    return ToPem(MakeCert({"sense1", san, false, from, until}, server_key.get(),
                          issuer, issuer_key)
                     .get());
  };
  const long kMonth = 30L * 24 * 3600;  // NOLINT(runtime/int)
  const long kDay = 24L * 3600;         // NOLINT(runtime/int)
  pki.ca = pki.dir.Write("root.pem", ToPem(ca.get()));
  pki.server_key = pki.dir.Write("server_key.pem", ToPem(server_key.get()));
  pki.good = pki.dir.Write("good.pem",
                           leaf(here, ca.get(), ca_key.get(), -3600, kMonth));
  pki.wrong_name = pki.dir.Write(
      "wrong_name.pem",
      leaf("DNS:other.example", ca.get(), ca_key.get(), -3600, kMonth));
  pki.expired = pki.dir.Write(
      "expired.pem", leaf(here, ca.get(), ca_key.get(), -2 * kDay, -kDay));
  pki.self_signed = pki.dir.Write("self_signed.pem",
                                  leaf(here, nullptr, nullptr, -3600, kMonth));
  const std::string unknown_leaf =
      leaf(here, other.get(), other_key.get(), -3600, kMonth);
  pki.unknown_leaf = pki.dir.Write("unknown_leaf.pem", unknown_leaf);
  pki.unknown_chain =
      pki.dir.Write("unknown_chain.pem", unknown_leaf + ToPem(other.get()));
  pki.unknown_wrong_name = pki.dir.Write(
      "unknown_wrong_name.pem",
      leaf("DNS:other.example", other.get(), other_key.get(), -3600, kMonth));
  pki.client_cert = pki.dir.Write(
      "client.pem", ToPem(MakeCert({"QlikClient", "", false}, client_key.get(),
                                   ca.get(), ca_key.get())
                              .get()));
  pki.client_key = pki.dir.Write("client_key.pem", ToPem(client_key.get()));
  pki.client_key_encrypted =
      pki.dir.Write("client_key_encrypted.pem",
                    ToPem(client_key.get(), pki.passphrase.c_str()));
}

// ---- An HTTPS server
// ----------------------------------------------------------

struct TlsServerOptions {
  std::string cert_chain;  // PEM file: leaf first, then any chain
  std::string key;
  std::string client_ca;    // non-empty: a client certificate is required
  int max_tls_version = 0;  // 0: OpenSSL's highest
};

// Serves HTTP/1.1 over TLS, one connection at a time; `respond` maps the
// request head ("GET /path HTTP/1.1\r\n...") to the whole response.
class TlsServer {
 public:
  using Respond = std::function<std::string(const std::string& head)>;

  TlsServer(const TlsServerOptions& options, Respond respond)
      : respond_(std::move(respond)) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    EXPECT_EQ(
        SSL_CTX_use_certificate_chain_file(ctx_, options.cert_chain.c_str()),
        1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, options.key.c_str(),
                                          SSL_FILETYPE_PEM),
              1);
    if (!options.client_ca.empty()) {
      EXPECT_EQ(SSL_CTX_load_verify_locations(ctx_, options.client_ca.c_str(),
                                              nullptr),
                1);
      SSL_CTX_set_verify(
          ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    if (options.max_tls_version != 0) {
      SSL_CTX_set_max_proto_version(ctx_, options.max_tls_version);
    }
    server_ = std::make_unique<Server>([this](int fd) { Serve(fd); });
  }
  ~TlsServer() {
    server_.reset();
    SSL_CTX_free(ctx_);
  }

  int port() const { return server_->port(); }
  std::string Url(const std::string& path) const {
    return absl::StrCat("https://127.0.0.1:", port(), path);
  }
  // The request heads served so far; Stop() first for a final answer.
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }
  void Stop() { server_->Stop(); }
  // Handshakes that resumed a session.
  int resumed() const { return resumed_.load(); }

 private:
  void Serve(int fd) {
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      if (SSL_session_reused(ssl) == 1) resumed_.fetch_add(1);
      std::string head;
      char buffer[4096];
      while (!absl::StrContains(head, "\r\n\r\n") && head.size() < 65536) {
        const int n = SSL_read(ssl, buffer, sizeof(buffer));
        if (n <= 0) break;
        head.append(buffer, static_cast<size_t>(n));
      }
      if (absl::StrContains(head, "\r\n\r\n")) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          heads_.push_back(head);
        }
        const std::string response = respond_(head);
        size_t sent = 0;
        while (sent < response.size()) {
          const int n = SSL_write(ssl, response.data() + sent,
                                  static_cast<int>(response.size() - sent));
          if (n <= 0) break;
          sent += static_cast<size_t>(n);
        }
        SSL_shutdown(ssl);
      }
    }
    ERR_clear_error();
    SSL_free(ssl);
    CloseGently(fd);
  }

  Respond respond_;
  SSL_CTX* ctx_ = nullptr;
  std::mutex mu_;
  std::vector<std::string> heads_;
  std::atomic<int> resumed_{0};
  std::unique_ptr<Server> server_;  // last: its thread uses the rest
};

std::string HttpResponse(int status, const std::string& body,
                         const std::string& extra_headers = "") {
  return absl::StrCat("HTTP/1.1 ", status,
                      " Whatever\r\nContent-Type: "
                      "application/json\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n", extra_headers,
                      "\r\n", body);
}

// ---- Driving the transport
// ------------------------------------------------------

struct Done {
  std::vector<std::string> order;  // tags, in callback order
  std::vector<RequestOutcome> outcomes;
};

HttpTransport::DoneCallback Record(Done* done, std::string tag) {
  return [done, tag = std::move(tag)](RequestOutcome outcome) {
    done->order.push_back(tag);
    done->outcomes.push_back(std::move(outcome));
  };
}

HttpRequest Request(const std::string& url, const TlsSettings* tls = nullptr,
                    absl::Duration timeout = absl::Seconds(10)) {
  HttpRequest request;
  request.url = url;
  request.headers = {"Accept: application/json, text/plain, */*",
                     "Content-Type: application/json",
                     "Cache-Control: no-cache"};
  request.timeout = timeout;
  request.tls = tls;
  return request;
}

// Runs until `n` callbacks have run; fails the test rather than hang.
void RunUntil(CurlTransport& transport, const Done& done, size_t n) {
  const auto deadline = SteadyClock::now() + kHangGuard;
  while (done.outcomes.size() < n && SteadyClock::now() < deadline) {
    transport.Run(absl::Milliseconds(200));
  }
  ASSERT_EQ(done.outcomes.size(), n) << "callbacks did not all run in time";
}

std::string Describe(const RequestOutcome& o) {
  return absl::StrCat(
      "error=", static_cast<int>(o.error), " phase=", static_cast<int>(o.phase),
      " name=", o.error_name, " errno=", o.os_errno,
      " verify=", o.tls_verify_result, " status=", o.http_status,
      " remote=", o.remote_address, ":", o.remote_port, " text=", o.error_text);
}

// One request on a fresh transport.
RequestOutcome Fetch(const HttpRequest& request) {
  CurlTransport transport;
  Done done;
  transport.Start(request, Record(&done, "only"));
  RunUntil(transport, done, 1);
  if (done.outcomes.empty()) return RequestOutcome{};
  EXPECT_EQ(transport.in_flight(), 0u);
  return done.outcomes[0];
}

// ---- libcurl's results in neutral terms -----------------------------------

TEST(CurlResultTest, EveryCodeTheClassifierTellsApartHasItsOwnError) {
  struct Case {
    int code;  // an int: 999 is no CURLcode (UBSan checks enum loads)
    bool body_too_large;
    TransportError error;
  };
  const Case kCases[] = {
      {CURLE_OK, false, TransportError::kNone},
      {CURLE_ABORTED_BY_CALLBACK, false, TransportError::kCancelled},
      {CURLE_OPERATION_TIMEDOUT, false, TransportError::kTimeout},
      {CURLE_COULDNT_RESOLVE_HOST, false, TransportError::kResolve},
      {CURLE_COULDNT_CONNECT, false, TransportError::kConnect},
      {CURLE_SEND_ERROR, false, TransportError::kSend},
      {CURLE_RECV_ERROR, false, TransportError::kReceive},
      {CURLE_GOT_NOTHING, false, TransportError::kEmptyReply},
      {CURLE_SSL_CONNECT_ERROR, false, TransportError::kTlsHandshake},
      {CURLE_PEER_FAILED_VERIFICATION, false, TransportError::kTlsVerify},
      {CURLE_SSL_CERTPROBLEM, false, TransportError::kTlsSetup},
      {CURLE_SSL_CACERT_BADFILE, false, TransportError::kTlsSetup},
      {CURLE_SSL_CIPHER, false, TransportError::kTlsSetup},
      {CURLE_SSL_ISSUER_ERROR, false, TransportError::kTlsSetup},
      {CURLE_SSL_PINNEDPUBKEYNOTMATCH, false, TransportError::kTlsSetup},
      {CURLE_SSL_INVALIDCERTSTATUS, false, TransportError::kTlsSetup},
      {CURLE_SSL_CLIENTCERT, false, TransportError::kTlsSetup},
      {CURLE_URL_MALFORMAT, false, TransportError::kBadUrl},
      {CURLE_TOO_MANY_REDIRECTS, false, TransportError::kTooManyRedirects},
      {CURLE_WRITE_ERROR, true, TransportError::kBodyTooLarge},
      {CURLE_WRITE_ERROR, false, TransportError::kOther},
      {CURLE_BAD_CONTENT_ENCODING, false, TransportError::kBadEncoding},
      {CURLE_PARTIAL_FILE, false, TransportError::kBodyCutShort},
      {CURLE_PARTIAL_FILE, true, TransportError::kBodyCutShort},
      {CURLE_UNSUPPORTED_PROTOCOL, false, TransportError::kOther},
      {CURLE_FAILED_INIT, false, TransportError::kOther},
      {CURLE_OUT_OF_MEMORY, false, TransportError::kOther},
      {999, false, TransportError::kOther},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(CurlCodeToTransportError(c.code, c.body_too_large), c.error)
        << CurlCodeName(c.code) << " body_too_large=" << c.body_too_large;
  }
  // The body check refusing the body stops the read the same way.
  EXPECT_EQ(CurlCodeToTransportError(CURLE_WRITE_ERROR, false, true),
            TransportError::kBodyRejected);
  EXPECT_EQ(CurlCodeToTransportError(CURLE_WRITE_ERROR, true, true),
            TransportError::kBodyTooLarge);
}

TEST(CurlResultTest, CodeNames) {
  EXPECT_EQ(CurlCodeName(CURLE_OK), "");
  EXPECT_EQ(CurlCodeName(CURLE_COULDNT_CONNECT), "CURLE_COULDNT_CONNECT");
  EXPECT_EQ(CurlCodeName(CURLE_SEND_ERROR), "CURLE_SEND_ERROR");
  EXPECT_EQ(CurlCodeName(CURLE_SSL_CACERT_BADFILE), "CURLE_SSL_CACERT_BADFILE");
  EXPECT_EQ(CurlCodeName(CURLE_UNSUPPORTED_PROTOCOL),
            "CURLE_UNSUPPORTED_PROTOCOL");
  EXPECT_EQ(CurlCodeName(CURLE_PEER_FAILED_VERIFICATION),
            "CURLE_PEER_FAILED_VERIFICATION");
  EXPECT_EQ(CurlCodeName(999), "CURLE_999");
}

// ---- Plain sockets: no TLS peer needed
// ---------------------------------------

TEST(CurlTransportTest, RefusedConnectReportsTheDialledAddress) {
  ClosedPort closed;
  const RequestOutcome o = Fetch(Request(
      absl::StrCat("https://127.0.0.1:", closed.port, "/engine/healthcheck")));
  EXPECT_EQ(o.error, TransportError::kConnect) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_COULDNT_CONNECT");
  // libcurl's code and words, for logs.
  EXPECT_TRUE(
      absl::StartsWith(o.error_text, "curl 7 (Couldn't connect to server): "))
      << Describe(o);
  EXPECT_EQ(o.os_errno, ECONNREFUSED) << Describe(o);
  EXPECT_EQ(o.remote_address, "127.0.0.1");
  EXPECT_EQ(o.remote_port, closed.port);
  EXPECT_EQ(o.http_status, 0);

  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CONNECTION_REFUSED);
  EXPECT_EQ(c->error_code, "ECONNREFUSED");
  EXPECT_EQ(c->syscall, "connect");
  EXPECT_EQ(c->remote_address, "127.0.0.1");
  EXPECT_EQ(c->remote_port, static_cast<uint32_t>(closed.port));
}

TEST(CurlTransportTest, RefusedConnectOverIpv6) {
  Fd probe(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (probe.get() < 0 || bind(probe.get(), reinterpret_cast<sockaddr*>(&addr),
                              sizeof(addr)) != 0) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  socklen_t len = sizeof(addr);
  getsockname(probe.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin6_port);
  const RequestOutcome o =
      Fetch(Request(absl::StrCat("https://[::1]:", port, "/")));
  EXPECT_EQ(o.error, TransportError::kConnect) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_COULDNT_CONNECT");
  EXPECT_EQ(o.os_errno, ECONNREFUSED);
  EXPECT_EQ(o.remote_address, "::1");
  EXPECT_EQ(o.remote_port, port);
}

TEST(CurlTransportTest, SilentServerTimesOutWhileARefusedRequestEndsFirst) {
  BlackHole hole;
  ClosedPort closed;
  CurlTransport transport;
  Done done;
  transport.Start(Request(absl::StrCat("https://127.0.0.1:", hole.port, "/"),
                          nullptr, absl::Milliseconds(300)),
                  Record(&done, "silent"));
  transport.Start(Request(absl::StrCat("https://127.0.0.1:", closed.port, "/")),
                  Record(&done, "refused"));
  EXPECT_EQ(transport.in_flight(), 2u);
  RunUntil(transport, done, 2);
  ASSERT_EQ(done.order, (std::vector<std::string>{"refused", "silent"}));
  EXPECT_EQ(done.outcomes[0].error, TransportError::kConnect);
  EXPECT_EQ(done.outcomes[0].error_name, "CURLE_COULDNT_CONNECT");
  const RequestOutcome& silent = done.outcomes[1];
  EXPECT_EQ(silent.error, TransportError::kTimeout) << Describe(silent);
  EXPECT_EQ(silent.error_name, "CURLE_OPERATION_TIMEDOUT");
  EXPECT_EQ(silent.remote_address, "127.0.0.1");
  EXPECT_EQ(silent.remote_port, hole.port);
  EXPECT_GE(silent.elapsed, absl::Milliseconds(300));
  EXPECT_EQ(transport.in_flight(), 0u);

  const auto c = ClassifyOutcome(silent);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_TIMEOUT);
  EXPECT_EQ(c->error_code, "ECONNABORTED");
}

TEST(CurlTransportTest, HandshakeSlotsAdmitInOrder) {
  BlackHole hole;
  ClosedPort closed;
  // A grace longer than the test: the silent request holds the one slot
  // until it times out.
  CurlTransportLimits limits;
  limits.max_handshakes = 1;
  limits.handshake_grace = absl::Seconds(60);
  Done done;  // before the transport, whose destructor may call back
  CurlTransport transport(limits);
  transport.Start(Request(absl::StrCat("https://127.0.0.1:", hole.port, "/"),
                          nullptr, absl::Milliseconds(300)),
                  Record(&done, "silent"));
  transport.Start(Request(absl::StrCat("https://127.0.0.1:", closed.port, "/")),
                  Record(&done, "refused"));
  EXPECT_EQ(transport.active(), 1u);
  EXPECT_EQ(transport.handshaking(), 1u);
  EXPECT_EQ(transport.in_flight(), 2u);
  const auto deadline = SteadyClock::now() + kHangGuard;
  while (done.outcomes.size() < 2 && SteadyClock::now() < deadline) {
    transport.Run(absl::Milliseconds(100));
    EXPECT_LE(transport.active(), 1u);
  }
  ASSERT_EQ(done.order, (std::vector<std::string>{"silent", "refused"}));
  EXPECT_EQ(done.outcomes[0].error, TransportError::kTimeout);
  EXPECT_EQ(done.outcomes[0].error_name, "CURLE_OPERATION_TIMEDOUT");
  EXPECT_EQ(done.outcomes[1].error, TransportError::kConnect);
  EXPECT_EQ(done.outcomes[1].error_name, "CURLE_COULDNT_CONNECT");
}

TEST(CurlTransportTest, ASilentServerPastItsGraceGivesUpItsSlot) {
  BlackHole hole;
  ClosedPort closed;
  CurlTransportLimits limits;
  limits.max_handshakes = 1;
  limits.handshake_grace = absl::Seconds(1);
  Done done;  // before the transport, whose destructor may call back
  CurlTransport transport(limits);
  transport.Start(Request(absl::StrCat("https://127.0.0.1:", hole.port, "/"),
                          nullptr, absl::Seconds(20)),
                  Record(&done, "silent"));
  transport.Start(Request(absl::StrCat("https://127.0.0.1:", closed.port, "/")),
                  Record(&done, "refused"));
  EXPECT_EQ(transport.active(), 1u);
  RunUntil(transport, done, 1);
  // The refused request started once the silent one's grace passed, and
  // ended while the silent one still waits for its 20 s timeout.
  ASSERT_EQ(done.order, (std::vector<std::string>{"refused"}));
  EXPECT_EQ(done.outcomes[0].error, TransportError::kConnect);
  EXPECT_EQ(transport.in_flight(), 1u);
  EXPECT_EQ(transport.active(), 1u);
  EXPECT_EQ(transport.handshaking(), 0u);
}

// Never more handshakes in flight than the thread's CPU can finish within a
// quarter of the timeout: with 100 ms assumed per request, a 2 s timeout
// affords 5, a 400 ms one 1, whatever max_handshakes says.
TEST(CurlTransportTest, CpuBudgetBoundsHandshakesByTheTimeout) {
  BlackHole hole;
  const std::string url = absl::StrCat("https://127.0.0.1:", hole.port, "/");
  CurlTransportLimits limits;
  limits.max_handshakes = 64;
  limits.handshake_grace = absl::Seconds(60);
  limits.initial_cpu_per_request = absl::Milliseconds(100);
  Done done;  // before the transport, whose destructor may call back
  {
    CurlTransport transport(limits);
    EXPECT_EQ(transport.cpu_per_request(), absl::Milliseconds(100));
    for (int i = 0; i < 8; ++i) {
      transport.Start(Request(url, nullptr, absl::Seconds(2)),
                      Record(&done, "two"));
    }
    EXPECT_EQ(transport.handshaking(), 5u);
    EXPECT_EQ(transport.active(), 5u);
    EXPECT_EQ(transport.in_flight(), 8u);
  }
  {
    CurlTransport transport(limits);
    for (int i = 0; i < 3; ++i) {
      transport.Start(Request(url, nullptr, absl::Milliseconds(400)),
                      Record(&done, "short"));
    }
    EXPECT_EQ(transport.handshaking(), 1u);
    EXPECT_EQ(transport.active(), 1u);
  }
  EXPECT_EQ(done.outcomes.size(), 11u);  // all cancelled by the destructors
}

TEST(CurlTransportTest, PlainHttpPeerOnAnHttpsUrl) {
  Server plain([](int fd) {
    char buffer[4096];
    recv(fd, buffer, sizeof(buffer), 0);  // the ClientHello
    const std::string reply =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: "
        "close\r\n\r\n";
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    CloseGently(fd);
  });
  const RequestOutcome o =
      Fetch(Request(absl::StrCat("https://127.0.0.1:", plain.port(), "/")));
  EXPECT_EQ(o.error, TransportError::kTlsHandshake) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CONNECT_ERROR");
  EXPECT_TRUE(absl::StrContains(o.error_text, "wrong version number"))
      << o.error_text;
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CERTIFICATE_ERROR);
  EXPECT_EQ(c->error_code, "EPROTO");
  EXPECT_EQ(c->syscall, "write");
  EXPECT_TRUE(c->remote_address.empty());
}

TEST(CurlTransportTest, PeerClosingDuringTheHandshakeIsAReset) {
  Server closer([](int fd) {
    char buffer[4096];
    recv(fd, buffer, sizeof(buffer), 0);
    CloseGently(fd);
  });
  const RequestOutcome o =
      Fetch(Request(absl::StrCat("https://127.0.0.1:", closer.port(), "/")));
  EXPECT_EQ(o.error, TransportError::kTlsHandshake) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CONNECT_ERROR");
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CONNECTION_RESET) << c->message;
  EXPECT_EQ(c->error_code, "ECONNRESET");
}

// Issue 9 §4: a server that accepts TCP and resets at once, before any TLS.
TEST(CurlTransportTest, PeerResettingRightAfterAcceptIsAReset) {
  Server resetter([](int fd) {
    linger hard{1, 0};  // close() now sends RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  });
  for (int i = 0; i < 5; ++i) {  // the race with the ClientHello varies
    const RequestOutcome o = Fetch(
        Request(absl::StrCat("https://127.0.0.1:", resetter.port(), "/")));
    const auto c = ClassifyOutcome(o);
    ASSERT_TRUE(c.has_value()) << Describe(o);
    EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CONNECTION_RESET)
        << Describe(o) << " " << c->message;
    EXPECT_EQ(c->error_code, "ECONNRESET") << Describe(o);
    // As Butler SOS reports a reset: syscall read, no address.
    EXPECT_EQ(c->syscall, "read") << Describe(o);
    EXPECT_EQ(c->remote_address, "");
    EXPECT_EQ(c->http_status, std::nullopt);
    EXPECT_NE(o.phase, RequestPhase::kReceive) << Describe(o);
  }
}

TEST(CurlTransportTest, PeerResettingDuringTheHandshake) {
  Server resetter([](int fd) {
    char buffer[4096];
    recv(fd, buffer, sizeof(buffer), 0);
    linger hard{1, 0};  // close() now sends RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  });
  const RequestOutcome o =
      Fetch(Request(absl::StrCat("https://127.0.0.1:", resetter.port(), "/")));
  EXPECT_EQ(o.error, TransportError::kTlsHandshake) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CONNECT_ERROR");
  EXPECT_EQ(o.os_errno, ECONNRESET) << Describe(o);
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CONNECTION_RESET);
  EXPECT_EQ(c->error_code, "ECONNRESET");
  EXPECT_EQ(c->syscall, "read");
}

TEST(CurlTransportTest, DestructorCancelsRunningAndQueuedRequests) {
  BlackHole hole;
  Done done;
  {
    // One slot, held for longer than the test: the second stays queued.
    CurlTransportLimits limits;
    limits.max_handshakes = 1;
    limits.handshake_grace = absl::Seconds(60);
    CurlTransport transport(limits);
    const std::string url = absl::StrCat("https://127.0.0.1:", hole.port, "/");
    transport.Start(Request(url, nullptr, absl::Seconds(60)),
                    Record(&done, "running"));
    transport.Start(Request(url, nullptr, absl::Seconds(60)),
                    Record(&done, "queued"));
    transport.Run(absl::Milliseconds(50));  // gets the first one connecting
    EXPECT_TRUE(done.outcomes.empty());
    EXPECT_EQ(transport.in_flight(), 2u);
  }
  ASSERT_EQ(done.order, (std::vector<std::string>{"running", "queued"}));
  for (const RequestOutcome& o : done.outcomes) {
    EXPECT_EQ(o.error, TransportError::kCancelled);
    EXPECT_EQ(o.error_name, "CURLE_ABORTED_BY_CALLBACK");
    const auto c = ClassifyOutcome(o);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->category, v1::ERROR_CATEGORY_UNKNOWN);
    EXPECT_EQ(c->error_code, "ERR_CANCELED");
  }
}

TEST(CurlTransportTest, StartFromADestructorCallbackStillGetsItsCallback) {
  BlackHole hole;
  Done done;
  const std::string url = absl::StrCat("https://127.0.0.1:", hole.port, "/");
  {
    CurlTransport transport;
    transport.Start(Request(url), [&](RequestOutcome outcome) {
      done.outcomes.push_back(std::move(outcome));
      transport.Start(Request(url), Record(&done, "restarted"));
    });
  }
  ASSERT_EQ(done.outcomes.size(), 2u);
  EXPECT_EQ(done.outcomes[1].error, TransportError::kCancelled);
  EXPECT_EQ(done.outcomes[1].error_name, "CURLE_ABORTED_BY_CALLBACK");
}

TEST(CurlTransportTest, CallbackMayStartTheNextRequest) {
  ClosedPort closed;
  const std::string url = absl::StrCat("https://127.0.0.1:", closed.port, "/");
  CurlTransport transport;
  Done done;
  transport.Start(Request(url), [&](RequestOutcome outcome) {
    done.order.push_back("first");
    done.outcomes.push_back(std::move(outcome));
    transport.Start(Request(url), Record(&done, "second"));
  });
  RunUntil(transport, done, 2);
  EXPECT_EQ(done.order, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(done.outcomes[1].error, TransportError::kConnect);
  EXPECT_EQ(done.outcomes[1].error_name, "CURLE_COULDNT_CONNECT");
}

TEST(CurlTransportTest, WakeupFromAnotherThreadEndsRun) {
  CurlTransport transport;
  std::thread waker([&] { transport.Wakeup(); });
  const auto start = SteadyClock::now();
  transport.Run(absl::Seconds(60));  // returns at the wakeup, whenever it came
  waker.join();
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(30));
}

TEST(CurlTransportTest, RunWithNothingToDoWaitsAtMostMaxWait) {
  CurlTransport transport;
  transport.Run(absl::ZeroDuration());
  transport.Run(absl::Milliseconds(10));
  EXPECT_EQ(transport.in_flight(), 0u);
}

TEST(CurlTransportTest, OnlyHttpsIsSpoken) {
  ClosedPort closed;
  const RequestOutcome o =
      Fetch(Request(absl::StrCat("http://127.0.0.1:", closed.port, "/")));
  EXPECT_EQ(o.error, TransportError::kOther) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_UNSUPPORTED_PROTOCOL");
}

TEST(CurlTransportTest, MalformedUrl) {
  const RequestOutcome o = Fetch(Request("https://[not-an-address/"));
  EXPECT_EQ(o.error, TransportError::kBadUrl) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_URL_MALFORMAT");
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->error_code, "ERR_INVALID_URL");
}

// ---- Over TLS
// ---------------------------------------------------------------------

// Replaces `path` the way an operator or Kubernetes does: written aside,
// then renamed over it (a new inode).
void Replace(const testing::TempDir& dir, const std::string& path,
             const std::string& contents) {
  const std::string aside = dir.Write("replacement.tmp", contents);
  ASSERT_EQ(std::rename(aside.c_str(), path.c_str()), 0)
      << std::strerror(errno);
}

std::string ReadAll(const std::string& path) {
  std::string data;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return data;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0)
    data.append(buffer, n);
  std::fclose(f);
  return data;
}

// One request on `transport`.
RequestOutcome FetchOn(CurlTransport& transport, const HttpRequest& request) {
  Done done;
  transport.Start(request, Record(&done, "only"));
  RunUntil(transport, done, 1);
  return done.outcomes.empty() ? RequestOutcome{} : done.outcomes[0];
}

class CurlTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new Pki;
    FillPki(*pki_);
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  const Pki& pki() const { return *pki_; }

  TlsSettings Trusting() const {
    TlsSettings tls;
    tls.client_cert_file = pki().client_cert;
    tls.client_key_file = pki().client_key;
    tls.ca_file = pki().ca;
    return tls;
  }

  static Pki* pki_;
};

Pki* CurlTlsTest::pki_ = nullptr;

TEST_F(CurlTlsTest, HealthyAnswerWithTheHeadersAsGiven) {
  TlsServer server({pki().good, pki().server_key, pki().ca},
                   [](const std::string&) {
                     return HttpResponse(200, R"({"version":"12.1"})");
                   });
  TlsSettings tls = Trusting();
  tls.client_key_file = pki().client_key_encrypted;
  tls.key_passphrase = pki().passphrase;
  HttpRequest request = Request(server.Url("/qps/session?Xrfkey=abc"), &tls);
  request.headers.push_back("X-Qlik-Xrfkey: abc");
  request.headers.push_back("XVirtualProxy: /");
  const RequestOutcome o = Fetch(request);
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.http_status, 200);
  EXPECT_EQ(o.body_head, R"({"version":"12.1"})");
  EXPECT_EQ(o.body_bytes, 18u);
  EXPECT_EQ(o.phase, RequestPhase::kReceive);
  EXPECT_EQ(o.tls_verify_result, 0);
  EXPECT_EQ(o.remote_address, "127.0.0.1");
  EXPECT_EQ(o.remote_port, server.port());
  EXPECT_FALSE(ClassifyOutcome(o).has_value());

  server.Stop();
  const auto heads = server.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_TRUE(
      absl::StartsWith(heads[0], "GET /qps/session?Xrfkey=abc HTTP/1.1\r\n"))
      << heads[0];
  for (const char* line :
       {"\r\nAccept: application/json, text/plain, */*\r\n",
        "\r\nContent-Type: application/json\r\n",
        "\r\nCache-Control: no-cache\r\n", "\r\nX-Qlik-Xrfkey: abc\r\n",
        "\r\nXVirtualProxy: /\r\n"}) {
    EXPECT_TRUE(absl::StrContains(heads[0], line)) << line << heads[0];
  }
}

TEST_F(CurlTlsTest, EachRequestIsANewConnection) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "[]"); });
  const TlsSettings tls = Trusting();
  CurlTransport transport;
  Done done;
  for (int i = 0; i < 3; ++i) {
    transport.Start(Request(server.Url("/"), &tls), Record(&done, "r"));
    RunUntil(transport, done, static_cast<size_t>(i) + 1);
  }
  for (const RequestOutcome& o : done.outcomes) {
    EXPECT_EQ(o.http_status, 200) << Describe(o);
  }
  server.Stop();
  // The server serves one request per connection and closes it, so three
  // answers prove three connections.
  EXPECT_EQ(server.heads().size(), 3u);
}

TEST_F(CurlTlsTest, SessionsAreResumedUntilTheirLifetimeEnds) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "[]"); });
  const TlsSettings tls = Trusting();
  CurlTransportLimits limits;
  limits.session_lifetime = absl::Milliseconds(700);
  CurlTransport transport(limits);
  Done done;
  auto poll = [&] {
    transport.Start(Request(server.Url("/"), &tls), Record(&done, "r"));
    RunUntil(transport, done, done.outcomes.size() + 1);
    ASSERT_FALSE(done.outcomes.empty());
    EXPECT_EQ(done.outcomes.back().http_status, 200)
        << Describe(done.outcomes.back());
  };
  poll();  // full
  poll();  // resumed
  poll();  // resumed
  EXPECT_EQ(server.resumed(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  poll();  // the lifetime is over: full, the certificate verified again
  poll();  // resumed
  server.Stop();
  EXPECT_EQ(server.heads().size(), 5u);
  EXPECT_EQ(server.resumed(), 3);
}

// New credentials end the sessions: a replaced CA file must verify the
// server anew, not ride on a session verified under the old one.
TEST_F(CurlTlsTest, ChangedCredentialsEndTheSessions) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "[]"); });
  testing::TempDir dir;
  TlsSettings tls = Trusting();
  tls.ca_file = dir.Write("ca.pem", ReadAll(pki().ca));
  CurlTransportLimits limits;
  limits.session_lifetime = absl::Minutes(10);
  CurlTransport transport(limits);
  RequestOutcome o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.http_status, 200) << Describe(o);
  o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.http_status, 200) << Describe(o);
  EXPECT_EQ(server.resumed(), 1);
  // The CA that did not sign the server's certificate.
  Replace(
      dir, tls.ca_file,
      ReadAll(pki().unknown_chain).substr(ReadAll(pki().unknown_leaf).size()));
  o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsVerify) << Describe(o);
  EXPECT_EQ(server.resumed(), 1);
}

TEST_F(CurlTlsTest, NoSessionIsResumedByDefault) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "[]"); });
  const TlsSettings tls = Trusting();
  CurlTransport transport;
  Done done;
  for (int i = 0; i < 3; ++i) {
    transport.Start(Request(server.Url("/"), &tls), Record(&done, "r"));
    RunUntil(transport, done, static_cast<size_t>(i) + 1);
  }
  server.Stop();
  EXPECT_EQ(server.heads().size(), 3u);
  EXPECT_EQ(server.resumed(), 0);
}

TEST_F(CurlTlsTest, StatusesComeBackWithTheirBodies) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string& head) {
                     if (absl::StartsWith(head, "GET /missing ")) {
                       return HttpResponse(404, "nope");
                     }
                     return HttpResponse(503, "down");
                   });
  const TlsSettings tls = Trusting();
  const RequestOutcome missing = Fetch(Request(server.Url("/missing"), &tls));
  EXPECT_EQ(missing.error, TransportError::kNone);
  EXPECT_EQ(missing.http_status, 404);
  EXPECT_EQ(missing.body_head, "nope");
  const auto c404 = ClassifyOutcome(missing);
  ASSERT_TRUE(c404.has_value());
  EXPECT_EQ(c404->category, v1::ERROR_CATEGORY_NOT_FOUND);

  const RequestOutcome down = Fetch(Request(server.Url("/x"), &tls));
  EXPECT_EQ(down.http_status, 503);
  const auto c503 = ClassifyOutcome(down);
  ASSERT_TRUE(c503.has_value());
  EXPECT_EQ(c503->category, v1::ERROR_CATEGORY_HTTP_5XX);
  EXPECT_EQ(c503->http_status, 503u);
}

TEST_F(CurlTlsTest, BodyOverTheCapEndsTheTransfer) {
  const std::string big = "[" + std::string(20000, ' ') + "]";
  TlsServer server({pki().good, pki().server_key, ""},
                   [&](const std::string&) { return HttpResponse(200, big); });
  const TlsSettings tls = Trusting();
  HttpRequest request = Request(server.Url("/qrs/app"), &tls);
  request.max_body_bytes = 1000;
  const RequestOutcome o = Fetch(request);
  EXPECT_EQ(o.error, TransportError::kBodyTooLarge) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_WRITE_ERROR");
  EXPECT_TRUE(o.body_too_large);
  EXPECT_GT(o.body_bytes, 1000u);
  EXPECT_EQ(o.body_head.size(), RequestOutcome::kBodyHeadBytes);
  EXPECT_EQ(o.http_status, 200);
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  EXPECT_EQ(c->http_status, 200u);

  request.max_body_bytes = big.size();  // exactly fits
  const RequestOutcome fits = Fetch(request);
  EXPECT_EQ(fits.error, TransportError::kNone) << Describe(fits);
  EXPECT_FALSE(fits.body_too_large);
  EXPECT_EQ(fits.body_bytes, big.size());
}

TEST_F(CurlTlsTest, Redirects) {
  int port = 0;
  TlsServer server(
      {pki().good, pki().server_key, ""}, [&port](const std::string& head) {
        if (absl::StartsWith(head, "GET /moved ")) {
          return HttpResponse(
              302, "",
              absl::StrCat("Location: https://127.0.0.1:", port, "/here\r\n"));
        }
        if (absl::StartsWith(head, "GET /loop ")) {
          return HttpResponse(302, "", "Location: /loop\r\n");
        }
        if (absl::StartsWith(head, "GET /to-http ")) {
          return HttpResponse(301, "", "Location: http://127.0.0.1:1/\r\n");
        }
        return HttpResponse(200, "{}");
      });
  port = server.port();
  const TlsSettings tls = Trusting();

  const RequestOutcome moved = Fetch(Request(server.Url("/moved"), &tls));
  EXPECT_EQ(moved.error, TransportError::kNone) << Describe(moved);
  EXPECT_EQ(moved.http_status, 200);

  HttpRequest loop = Request(server.Url("/loop"), &tls);
  loop.max_redirects = 2;
  const RequestOutcome looped = Fetch(loop);
  EXPECT_EQ(looped.error, TransportError::kTooManyRedirects)
      << Describe(looped);
  EXPECT_EQ(looped.error_name, "CURLE_TOO_MANY_REDIRECTS");
  EXPECT_EQ(looped.http_status, 302);
  const auto c = ClassifyOutcome(looped);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->error_code, "ERR_FR_TOO_MANY_REDIRECTS");
  // Butler SOS's client gives up before handing over any response.
  EXPECT_EQ(c->http_status, std::nullopt);

  const RequestOutcome to_http = Fetch(Request(server.Url("/to-http"), &tls));
  EXPECT_EQ(to_http.error, TransportError::kOther) << Describe(to_http);
  EXPECT_EQ(to_http.error_name, "CURLE_UNSUPPORTED_PROTOCOL");
  EXPECT_EQ(to_http.http_status, 301);
}

// gzip (RFC 1952) of `data`, as a compressing proxy sends it.
std::string Gzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

HttpRequest Checked(HttpRequest request, ExpectedBody expected) {
  request.body_check = std::make_shared<JsonShapeCheck>(expected);
  return request;
}

TEST_F(CurlTlsTest, GzippedAnswerIsDecodedAndChecked) {
  const std::string json = R"({"version":"12.1","started":"x","mem":{}})";
  TlsServer server({pki().good, pki().server_key, ""}, [&](const std::string&) {
    return HttpResponse(200, Gzip(json), "Content-Encoding: gzip\r\n");
  });
  const TlsSettings tls = Trusting();
  const RequestOutcome o =
      Fetch(Checked(Request(server.Url("/engine/healthcheck"), &tls),
                    ExpectedBody::kJsonObject));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.body_head, json);
  EXPECT_EQ(o.body_bytes, json.size());
  EXPECT_EQ(o.body_problem, "");
  EXPECT_FALSE(ClassifyOutcome(o).has_value());
  server.Stop();
  ASSERT_EQ(server.heads().size(), 1u);
  // Every encoding this libcurl decodes is advertised (scripts/build-curl.sh:
  // deflate, gzip, br; Debian's libcurl.so adds zstd), gzip always among them.
  const std::string head = server.heads()[0];
  const size_t at = head.find("\r\nAccept-Encoding: ");
  ASSERT_NE(at, std::string::npos) << head;
  const std::string line = head.substr(at + 2, head.find("\r\n", at + 2) - at);
  EXPECT_TRUE(absl::StrContains(line, "gzip")) << line;
  EXPECT_TRUE(absl::StrContains(line, "deflate")) << line;
}

TEST_F(CurlTlsTest, GzipBombEndsAtTheDecodedCapNotInMemory) {
  // 64 MiB of a valid JSON array, about 64 KiB compressed.
  std::string decoded = "[0";
  decoded.reserve(64u << 20);
  while (decoded.size() < (64u << 20)) decoded += ",0";
  decoded += "]";
  const std::string bomb = Gzip(decoded);
  ASSERT_LT(bomb.size(), 1u << 20);
  decoded.clear();
  decoded.shrink_to_fit();
  TlsServer server({pki().good, pki().server_key, ""}, [&](const std::string&) {
    return HttpResponse(200, bomb, "Content-Encoding: gzip\r\n");
  });
  const TlsSettings tls = Trusting();
  HttpRequest request =
      Checked(Request(server.Url("/qrs/app"), &tls), ExpectedBody::kJsonArray);
  request.max_body_bytes = 4u << 20;
  const RequestOutcome o = Fetch(request);
  EXPECT_EQ(o.error, TransportError::kBodyTooLarge) << Describe(o);
  EXPECT_TRUE(o.body_too_large);
  // Counted decoded: past the cap, by at most one decoded chunk.
  EXPECT_GT(o.body_bytes, 4u << 20);
  EXPECT_LT(o.body_bytes, (4u << 20) + (1u << 20));
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  EXPECT_EQ(c->http_status, 200u);
}

TEST_F(CurlTlsTest, CorruptGzipIsAnInvalidResponse) {
  TlsServer server({pki().good, pki().server_key, ""}, [](const std::string&) {
    return HttpResponse(200, "\x1f\x8b not gzip at all",
                        "Content-Encoding: gzip\r\n");
  });
  const TlsSettings tls = Trusting();
  const RequestOutcome o =
      Fetch(Checked(Request(server.Url("/engine/healthcheck"), &tls),
                    ExpectedBody::kJsonObject));
  EXPECT_EQ(o.error, TransportError::kBadEncoding) << Describe(o);
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_INVALID_RESPONSE) << c->message;
  EXPECT_EQ(c->error_code, "ERR_INVALID_RESPONSE");
  EXPECT_EQ(c->http_status, 200u);
}

TEST_F(CurlTlsTest, TheCheckStopsAWrongAnswerAtItsFirstBytes) {
  // A login page far larger than what the check needs to see.
  const std::string page = "<!doctype html>" + std::string(4u << 20, 'x');
  TlsServer server({pki().good, pki().server_key, ""},
                   [&](const std::string&) { return HttpResponse(200, page); });
  const TlsSettings tls = Trusting();
  const RequestOutcome o =
      Fetch(Checked(Request(server.Url("/engine/healthcheck"), &tls),
                    ExpectedBody::kJsonObject));
  EXPECT_EQ(o.error, TransportError::kBodyRejected) << Describe(o);
  EXPECT_LT(o.body_bytes, page.size());
  EXPECT_TRUE(absl::StrContains(o.body_problem, "not JSON")) << o.body_problem;
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  EXPECT_TRUE(absl::StrContains(c->message, "<!doctype html>")) << c->message;
}

TEST_F(CurlTlsTest, ALargeValidAnswerPassesWithoutBeingKept) {
  std::string apps = "[";
  for (int i = 0; i < 20000; ++i) {
    absl::StrAppend(&apps, i == 0 ? "" : ",", R"({"id":")", i,
                    R"(","name":"App \u00e9 )", i, R"(","stream":null})");
  }
  apps += "]";
  TlsServer server({pki().good, pki().server_key, ""},
                   [&](const std::string&) { return HttpResponse(200, apps); });
  const TlsSettings tls = Trusting();
  const RequestOutcome o = Fetch(
      Checked(Request(server.Url("/qrs/app"), &tls), ExpectedBody::kJsonArray));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.body_bytes, apps.size());
  EXPECT_EQ(o.body_head.size(), RequestOutcome::kBodyHeadBytes);
  EXPECT_EQ(o.body_problem, "");
  EXPECT_FALSE(ClassifyOutcome(o).has_value());
}

TEST_F(CurlTlsTest, MissingClientCertificateTls13) {
  TlsServer server({pki().good, pki().server_key, pki().ca},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  TlsSettings tls = Trusting();
  tls.client_cert_file.clear();
  tls.client_key_file.clear();
  const RequestOutcome o = Fetch(Request(server.Url("/"), &tls));
  // TLS 1.3 lets the client finish first; the alert comes on the next read.
  EXPECT_EQ(o.error, TransportError::kReceive) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_RECV_ERROR");
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CERTIFICATE_ERROR) << c->message;
  EXPECT_EQ(c->error_code, "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED");
}

TEST_F(CurlTlsTest, MissingClientCertificateTls12) {
  TlsServer server({pki().good, pki().server_key, pki().ca, TLS1_2_VERSION},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  TlsSettings tls = Trusting();
  tls.client_cert_file.clear();
  tls.client_key_file.clear();
  const RequestOutcome o = Fetch(Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsHandshake) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CONNECT_ERROR");
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CERTIFICATE_ERROR) << c->message;
  EXPECT_EQ(c->error_code, "EPROTO");
}

TEST_F(CurlTlsTest, WrongKeyPassphraseIsOurCertificateProblem) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  TlsSettings tls = Trusting();
  tls.client_key_file = pki().client_key_encrypted;
  tls.key_passphrase = "wrong";
  const RequestOutcome o = Fetch(Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsSetup) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CERTPROBLEM");
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CERTIFICATE_ERROR);
}

// What Butler SOS (Node.js) reports for each bad server certificate, and
// that no request ever reaches such a server.
struct BadCertCase {
  const char* name;
  std::string Pki::*cert;
  long verify_result;  // NOLINT(runtime/int)
  const char* code;
};

class CurlBadCertTest : public CurlTlsTest,
                        public ::testing::WithParamInterface<BadCertCase> {};

TEST_P(CurlBadCertTest, FailsVerificationLikeNode) {
  const BadCertCase& param = GetParam();
  TlsServer server({pki().*(param.cert), pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  const TlsSettings tls = Trusting();
  const RequestOutcome o =
      Fetch(Request(server.Url("/engine/healthcheck"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsVerify) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_PEER_FAILED_VERIFICATION");
  EXPECT_EQ(o.tls_verify_result, param.verify_result) << Describe(o);
  EXPECT_EQ(o.http_status, 0);
  const auto c = ClassifyOutcome(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->category, v1::ERROR_CATEGORY_CERTIFICATE_ERROR);
  EXPECT_EQ(c->error_code, param.code) << c->message;
  EXPECT_TRUE(c->remote_address.empty());
  EXPECT_FALSE(c->remote_port.has_value());
  EXPECT_TRUE(c->syscall.empty());

  server.Stop();
  EXPECT_TRUE(server.heads().empty())
      << "a request reached an unverified server";
}

TEST_P(CurlBadCertTest, AcceptedWhenVerificationIsOff) {
  const BadCertCase& param = GetParam();
  TlsServer server({pki().*(param.cert), pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  TlsSettings tls = Trusting();
  tls.verify_server = false;
  const RequestOutcome o = Fetch(Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.http_status, 200);
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, CurlBadCertTest,
    ::testing::Values(
        // libcurl alone would say UNABLE_TO_GET_ISSUER_CERT_LOCALLY (20).
        BadCertCase{"unknown_ca_leaf_only", &Pki::unknown_leaf,
                    X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
                    "UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
        BadCertCase{"unknown_ca_sent_along", &Pki::unknown_chain,
                    X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
                    "SELF_SIGNED_CERT_IN_CHAIN"},
        BadCertCase{"self_signed", &Pki::self_signed,
                    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
                    "DEPTH_ZERO_SELF_SIGNED_CERT"},
        BadCertCase{"expired", &Pki::expired, X509_V_ERR_CERT_HAS_EXPIRED,
                    "CERT_HAS_EXPIRED"},
        // libcurl's own host check fails; the chain is fine.
        BadCertCase{"wrong_name", &Pki::wrong_name, X509_V_OK,
                    "ERR_TLS_CERT_ALTNAME_INVALID"},
        // Both wrong: Node reports the chain first, and so do we.
        BadCertCase{"wrong_name_and_unknown_ca", &Pki::unknown_wrong_name,
                    X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
                    "UNABLE_TO_VERIFY_LEAF_SIGNATURE"}),
    [](const ::testing::TestParamInfo<BadCertCase>& param_info) {
      return std::string(param_info.param.name);
    });

// ---- Admission under load: black holes and our own queue -------------------

// Many dead servers ahead of a healthy one in the queue: each holds a
// handshake slot for its grace only, so the healthy request starts within
// a few graces, not after the dead ones' timeouts (which a bound on every
// transfer would make it wait for), and succeeds.
TEST_F(CurlTlsTest, BlackHolesDoNotDelayAHealthyRequest) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  std::vector<std::unique_ptr<BlackHole>> holes;
  for (int i = 2; i < 18; ++i) {
    holes.push_back(std::make_unique<BlackHole>(absl::StrCat("127.0.0.", i)));
  }
  CurlTransportLimits limits;
  limits.max_handshakes = 4;  // default grace: 16 holes hold 4 graces, 1 s
  Done done;  // before the transport, whose destructor may call back
  CurlTransport transport(limits);
  const TlsSettings tls = Trusting();
  for (const auto& hole : holes) {
    transport.Start(Request(hole->Url(), &tls, absl::Seconds(6)),
                    Record(&done, "dead"));
  }
  const auto start = SteadyClock::now();
  transport.Start(Request(server.Url("/"), &tls, absl::Seconds(5)),
                  Record(&done, "healthy"));
  RunUntil(transport, done, 1);
  const auto healthy_after = SteadyClock::now() - start;
  ASSERT_EQ(done.order, (std::vector<std::string>{"healthy"}))
      << "the healthy request waited behind the dead ones";
  EXPECT_EQ(done.outcomes[0].error, TransportError::kNone)
      << Describe(done.outcomes[0]);
  EXPECT_EQ(done.outcomes[0].http_status, 200);
  // Well before the dead ones' 6 s timeouts (which it would have waited
  // for, 4 times over, with every transfer bounded).
  EXPECT_LT(healthy_after, std::chrono::seconds(6));
  EXPECT_LE(transport.handshaking(), 4u);
  EXPECT_EQ(transport.active(), holes.size());  // every dead one still waits
  RunUntil(transport, done, holes.size() + 1);
  for (size_t i = 1; i < done.outcomes.size(); ++i) {
    EXPECT_EQ(done.outcomes[i].error, TransportError::kTimeout)
        << Describe(done.outcomes[i]);
  }
}

// A request that waited in our queue longer than its own timeout still gets
// its whole timeout once started: queueing is our congestion, not the
// server's slowness.
TEST_F(CurlTlsTest, QueueWaitIsNotCountedInTheTimeout) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  BlackHole hole("127.0.0.2");
  CurlTransportLimits limits;
  limits.max_handshakes = 1;
  limits.handshake_grace = absl::Milliseconds(1500);
  Done done;  // before the transport, whose destructor may call back
  CurlTransport transport(limits);
  const TlsSettings tls = Trusting();
  transport.Start(Request(hole.Url(), &tls, absl::Seconds(10)),
                  Record(&done, "dead"));
  const auto start = SteadyClock::now();
  transport.Start(Request(server.Url("/"), &tls, absl::Milliseconds(1000)),
                  Record(&done, "healthy"));
  EXPECT_EQ(transport.active(), 1u);  // the healthy one is queued
  RunUntil(transport, done, 1);
  const auto waited = SteadyClock::now() - start;
  ASSERT_EQ(done.order, (std::vector<std::string>{"healthy"}));
  const RequestOutcome& o = done.outcomes[0];
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.http_status, 200);
  // It spent most of the dead one's grace (1.5 s) in the queue, more than
  // its own 1 s timeout, and `elapsed` counts only its own run.
  EXPECT_GT(waited, std::chrono::milliseconds(1000));
  EXPECT_LT(o.elapsed, absl::FromChrono(waited));
}

// ---- Credentials changed on disk -------------------------------------------

TEST_F(CurlTlsTest, ReplacedCaFileCountsFromTheNextRequest) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  testing::TempDir dir;
  // First the wrong CA (the one that signed unknown_chain's leaf).
  const std::string other_ca_pem =
      ReadAll(pki().unknown_chain).substr(ReadAll(pki().unknown_leaf).size());
  ASSERT_NE(other_ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  TlsSettings tls = Trusting();
  tls.ca_file = dir.Write("ca.pem", other_ca_pem);
  CurlTransport transport;
  RequestOutcome o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsVerify) << Describe(o);
  EXPECT_EQ(o.tls_verify_result, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE);

  Replace(dir, tls.ca_file, ReadAll(pki().ca));
  o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.http_status, 200);

  // Back to the wrong one: verification fails again, without a restart.
  Replace(dir, tls.ca_file, other_ca_pem);
  o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsVerify) << Describe(o);
}

TEST_F(CurlTlsTest, ReplacedClientCertificateCountsFromTheNextRequest) {
  // The server trusts client certificates from the poller's CA only.
  TlsServer server({pki().good, pki().server_key, pki().ca},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  testing::TempDir dir;
  // A client certificate the server does not trust: the same key, signed
  // by another CA.
  KeyPtr other_ca_key(EVP_EC_gen("P-256"));
  CertPtr other_ca =
      MakeCert({"Stranger CA", "", true}, other_ca_key.get(), nullptr, nullptr);
  const std::string key_pem = ReadAll(pki().client_key);
  BIO* key_bio =
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  KeyPtr client_key(
      PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr));
  BIO_free(key_bio);
  ASSERT_NE(client_key, nullptr);
  const std::string stranger_pem =
      ToPem(MakeCert({"QlikClient", "", false}, client_key.get(),
                     other_ca.get(), other_ca_key.get())
                .get());

  TlsSettings tls = Trusting();
  tls.client_cert_file = dir.Write("client.pem", stranger_pem);
  CurlTransport transport;
  RequestOutcome o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_NE(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.http_status, 0);

  Replace(dir, tls.client_cert_file, ReadAll(pki().client_cert));
  o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
  EXPECT_EQ(o.http_status, 200);
  server.Stop();
  EXPECT_EQ(server.heads().size(), 1u);
}

TEST_F(CurlTlsTest, CorruptReplacementsKeepTheLastGoodCredentials) {
  TlsServer server({pki().good, pki().server_key, pki().ca},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  testing::TempDir dir;
  TlsSettings tls = Trusting();
  tls.client_cert_file = dir.Write("client.pem", ReadAll(pki().client_cert));
  tls.client_key_file =
      dir.Write("client_key.pem", ReadAll(pki().client_key_encrypted));
  tls.key_passphrase = pki().passphrase;
  tls.ca_file = dir.Write("ca.pem", ReadAll(pki().ca));
  CurlTransport transport;
  RequestOutcome o = FetchOn(transport, Request(server.Url("/"), &tls));
  ASSERT_EQ(o.error, TransportError::kNone) << Describe(o);

  // Half-written files, as seen mid-copy: each alone would fail the request
  // (kTlsSetup) if it were loaded.
  const std::string cert = ReadAll(tls.client_cert_file);
  const std::string key = ReadAll(tls.client_key_file);
  const std::string ca = ReadAll(tls.ca_file);
  Replace(dir, tls.client_cert_file, cert.substr(0, cert.size() / 2));
  Replace(dir, tls.client_key_file, key.substr(0, key.size() / 2));
  Replace(dir, tls.ca_file, ca.substr(0, ca.size() / 2));
  for (int i = 0; i < 2; ++i) {
    o = FetchOn(transport, Request(server.Url("/"), &tls));
    EXPECT_EQ(o.error, TransportError::kNone) << i << " " << Describe(o);
    EXPECT_EQ(o.http_status, 200);
  }
  // A fresh transport has no good version to keep: the same files fail as
  // libcurl reading them would.
  o = Fetch(Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsSetup) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CERTPROBLEM");
  EXPECT_TRUE(absl::StrContains(o.error_text, tls.client_cert_file))
      << o.error_text;

  // The complete files again: loaded, and still good.
  Replace(dir, tls.client_cert_file, cert);
  Replace(dir, tls.client_key_file, key);
  Replace(dir, tls.ca_file, ca);
  o = FetchOn(transport, Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
}

TEST_F(CurlTlsTest, UnusableCaFileAtFirstUseIsOurCertificateProblem) {
  TlsServer server({pki().good, pki().server_key, ""},
                   [](const std::string&) { return HttpResponse(200, "{}"); });
  testing::TempDir dir;
  TlsSettings tls = Trusting();
  tls.ca_file = dir.Write("ca.pem", "not a certificate\n");
  RequestOutcome o = Fetch(Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kTlsSetup) << Describe(o);
  EXPECT_EQ(o.error_name, "CURLE_SSL_CACERT_BADFILE");
  EXPECT_EQ(o.phase, RequestPhase::kTls);
  EXPECT_TRUE(absl::StrContains(o.error_text, tls.ca_file)) << o.error_text;
  // libcurl ignores the CA file when not verifying, and so do we.
  tls.verify_server = false;
  o = Fetch(Request(server.Url("/"), &tls));
  EXPECT_EQ(o.error, TransportError::kNone) << Describe(o);
}

}  // namespace
}  // namespace qfp::poller
