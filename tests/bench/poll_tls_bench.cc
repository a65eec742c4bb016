// CPU per poll of the poller's HTTPS requests, and whether resuming TLS
// sessions would be worth it (issue 10).
//
//   build-bench/tests/bench/poll_tls_bench [--polls=300] [--runs=3]
//       [--key_type=rsa|ec] [--encrypted_key=true]
//
// A TLS 1.3 server that requires a client certificate (as Qlik Sense's
// proxy and repository do) runs in a child process on 127.0.0.1, so that
// only the client's CPU is counted: getrusage(RUSAGE_SELF) user + system of
// the benchmark process around --polls sequential polls (GET, 200 "{}"), each
// on a new connection. The same polls are made four ways, in turn within
// each run:
//
//   files      libcurl given the file names, as CurlTransport did before
//              (CURLOPT_SSLCERT/SSLKEY/KEYPASSWD/CAINFO, CA cache off): every
//              poll reads and parses the key, certificate and CA file
//   parsed     libcurl given the objects ClientCredentials parsed once
//              (CURLOPT_SSL_CTX_FUNCTION + ApplyTo), full handshake each poll
//   resumed    as parsed, plus a share handle caching TLS sessions
//              (CURL_LOCK_DATA_SSL_SESSION): resumed handshakes
//   transport  CurlTransport itself (which does what `parsed` does)
//
// and the cost of ClientCredentials::Current() when nothing changed (the
// stat calls every request makes). Prints min / median / max over --runs of
// milliseconds of CPU per poll, and each median's ratio to `files`.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "poller-service/client_credentials.h"
#include "poller-service/curl_transport.h"
#include "spdlog/spdlog.h"
#include "tests/bench/spread.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(int, polls, 300, "polls per way and run");
ABSL_FLAG(int, runs, 3, "runs (min/median/max)");
ABSL_FLAG(std::string, key_type, "rsa",
          "rsa (2048 bits, as Qlik Sense's exported certificates) or ec "
          "(P-256)");
ABSL_FLAG(bool, encrypted_key, true,
          "client key encrypted with a passphrase (Butler SOS's "
          "clientCertPassphrase)");

namespace qfp::poller {
namespace {

void Die(const std::string& what) {
  std::fprintf(stderr, "poll_tls_bench: %s\n", what.c_str());
  std::exit(1);
}

// ---- A PKI like a Qlik Sense site's -----------------------------------------

struct Pki {
  std::string ca, server_cert, server_key, client_cert, client_key, passphrase;
};

EVP_PKEY* NewKey(const std::string& type) {
  EVP_PKEY* key =
      type == "ec" ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);  // NOLINT
  if (key == nullptr) Die("key generation failed");
  return key;
}

X509* NewCert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* signer,
              bool ca, const char* san) {
  static long serial = 1;  // NOLINT(runtime/int)
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 30);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1,
                             0);
  X509* parent = issuer != nullptr ? issuer : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(parent));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, parent, cert, nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) Die(absl::StrCat("extension ", value));
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ca) add(NID_key_usage, "critical,keyCertSign,cRLSign");
  if (san != nullptr) add(NID_subject_alt_name, san);
  if (X509_sign(cert, signer != nullptr ? signer : key, EVP_sha256()) <= 0) {
    Die("X509_sign");
  }
  return cert;
}

std::string Write(const testing::TempDir& dir, const std::string& name,
                  const std::function<int(BIO*)>& write) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (write(bio) != 1) Die(absl::StrCat("PEM of ", name));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);  // NOLINT(runtime/int)
  const std::string path =
      dir.Write(name, std::string(data, static_cast<size_t>(n)));
  BIO_free(bio);
  return path;
}

Pki MakePki(const testing::TempDir& dir, const std::string& type,
            bool encrypted) {
  EVP_PKEY* ca_key = NewKey(type);
  EVP_PKEY* server_key = NewKey(type);
  EVP_PKEY* client_key = NewKey(type);
  X509* ca = NewCert(ca_key, "Bench Qlik CA", nullptr, nullptr, true, nullptr);
  X509* server = NewCert(server_key, "sense1", ca, ca_key, false,
                         "DNS:localhost,IP:127.0.0.1");
  X509* client = NewCert(client_key, "QlikClient", ca, ca_key, false, nullptr);
  Pki pki;
  pki.passphrase = encrypted ? "bench pass phrase" : "";
  pki.ca =
      Write(dir, "root.pem", [&](BIO* b) { return PEM_write_bio_X509(b, ca); });
  pki.server_cert = Write(
      dir, "server.pem", [&](BIO* b) { return PEM_write_bio_X509(b, server); });
  pki.server_key = Write(dir, "server_key.pem", [&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, server_key, nullptr, nullptr, 0, nullptr,
                                    nullptr);
  });
  pki.client_cert = Write(
      dir, "client.pem", [&](BIO* b) { return PEM_write_bio_X509(b, client); });
  pki.client_key = Write(dir, "client_key.pem", [&](BIO* b) {
    // PKCS#8, as Qlik Sense and Node.js write encrypted keys.
    return encrypted
               ? PEM_write_bio_PKCS8PrivateKey(
                     b, client_key, EVP_aes_256_cbc(), pki.passphrase.data(),
                     static_cast<int>(pki.passphrase.size()), nullptr, nullptr)
               : PEM_write_bio_PrivateKey(b, client_key, nullptr, nullptr, 0,
                                          nullptr, nullptr);
  });
  X509_free(ca);
  X509_free(server);
  X509_free(client);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(server_key);
  EVP_PKEY_free(client_key);
  return pki;
}

// ---- The server, in a child process -----------------------------------------

// Serves one connection at a time until the parent dies: TLS (client
// certificate required), one request, 200 "{}", close.
pid_t StartServer(const Pki& pki, int* port) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 64) != 0) {
    Die("listen");
  }
  socklen_t len = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid > 0) {
    close(listener);
    return pid;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(ctx, pki.server_cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, pki.server_key.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx, pki.ca.c_str(), nullptr) != 1) {
    _exit(3);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  const unsigned char id[] = "qfp-bench";
  SSL_CTX_set_session_id_context(ctx, id, sizeof(id) - 1);
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      std::string head;
      char buffer[4096];
      while (!absl::StrContains(head, "\r\n\r\n")) {
        const int n = SSL_read(ssl, buffer, sizeof(buffer));
        if (n <= 0) break;
        head.append(buffer, static_cast<size_t>(n));
      }
      SSL_write(ssl, response.data(), static_cast<int>(response.size()));
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
  }
}

// ---- The client ways
// ----------------------------------------------------------

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) /
             1e6;
}

size_t Sink(char*, size_t size, size_t count, void*) { return size * count; }

struct PollState {
  CURL* easy = nullptr;
  ClientCredentials* credentials = nullptr;
  bool resumed = false;
};

CURLcode ApplyCredentials(CURL*, void* ssl_ctx, void* user) {
  auto* state = static_cast<PollState*>(user);
  const ApplyResult applied =
      ApplyTo(*state->credentials->Current(), static_cast<SSL_CTX*>(ssl_ctx));
  return static_cast<CURLcode>(applied.curl_code);
}

// TLS is up: whether this handshake resumed a session.
int SeeHandshake(void* user, char*, char*, int, int) {
  auto* state = static_cast<PollState*>(user);
  curl_tlssessioninfo* info = nullptr;
  if (curl_easy_getinfo(state->easy, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK &&
      info != nullptr && info->backend == CURLSSLBACKEND_OPENSSL &&
      info->internals != nullptr) {
    state->resumed = SSL_session_reused(static_cast<SSL*>(info->internals));
  }
  return CURL_PREREQFUNC_OK;
}

enum class Way { kFiles, kParsed, kResumed, kTransport };

struct RunResult {
  double cpu_ms_per_poll = 0;
  int resumed = 0;
  double estimate_ms = 0;  // CurlTransport::cpu_per_request() at the end
};

RunResult RunRaw(Way way, const Pki& pki, const std::string& url, int polls) {
  TlsSettings tls;
  tls.client_cert_file = pki.client_cert;
  tls.client_key_file = pki.client_key;
  tls.key_passphrase = pki.passphrase;
  tls.ca_file = pki.ca;
  std::unique_ptr<ClientCredentials> credentials;
  if (way != Way::kFiles)
    credentials = std::make_unique<ClientCredentials>(tls);
  CURLSH* share = nullptr;
  if (way == Way::kResumed) {
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  RunResult result;
  const double before = ProcessCpuSeconds();
  for (int i = 0; i < polls; ++i) {
    PollState state;
    state.easy = curl_easy_init();
    state.credentials = credentials.get();
    CURL* e = state.easy;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     static_cast<long>(CURL_HTTP_VERSION_1_1));  // NOLINT
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, Sink);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSL_OPTIONS,
                     static_cast<long>(CURLSSLOPT_NO_PARTIALCHAIN));  // NOLINT
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, SeeHandshake);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, &state);
    if (way == Way::kFiles) {
      curl_easy_setopt(e, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
      curl_easy_setopt(e, CURLOPT_SSLKEY, tls.client_key_file.c_str());
      if (!tls.key_passphrase.empty()) {
        curl_easy_setopt(e, CURLOPT_KEYPASSWD, tls.key_passphrase.c_str());
      }
      curl_easy_setopt(e, CURLOPT_CAINFO, tls.ca_file.c_str());
      curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    } else {
      curl_easy_setopt(e, CURLOPT_CAINFO, nullptr);
      curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
      curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ApplyCredentials);
      curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, &state);
      if (way == Way::kResumed) {
        curl_easy_setopt(e, CURLOPT_SHARE, share);
        curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 1L);
      } else {
        curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
      }
    }
    const CURLcode code = curl_easy_perform(e);
    long status = 0;  // NOLINT(runtime/int)
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK || status != 200) {
      Die(absl::StrCat("poll failed: ", curl_easy_strerror(code), " status ",
                       status));
    }
    if (state.resumed) ++result.resumed;
    curl_easy_cleanup(e);
  }
  result.cpu_ms_per_poll = (ProcessCpuSeconds() - before) * 1000.0 / polls;
  if (share != nullptr) curl_share_cleanup(share);
  return result;
}

RunResult RunTransport(const Pki& pki, const std::string& url, int polls) {
  TlsSettings tls;
  tls.client_cert_file = pki.client_cert;
  tls.client_key_file = pki.client_key;
  tls.key_passphrase = pki.passphrase;
  tls.ca_file = pki.ca;
  CurlTransport transport;
  HttpRequest request;
  request.url = url;
  request.headers = {"Accept: application/json, text/plain, */*"};
  request.tls = &tls;
  const double before = ProcessCpuSeconds();
  for (int i = 0; i < polls; ++i) {
    bool done = false;
    RequestOutcome outcome;
    transport.Start(request, [&](RequestOutcome o) {
      outcome = std::move(o);
      done = true;
    });
    while (!done) transport.Run(absl::Seconds(1));
    if (outcome.error != TransportError::kNone || outcome.http_status != 200) {
      Die(absl::StrCat("poll failed: ", outcome.error_text));
    }
  }
  RunResult result;
  result.cpu_ms_per_poll = (ProcessCpuSeconds() - before) * 1000.0 / polls;
  result.estimate_ms = absl::ToDoubleMilliseconds(transport.cpu_per_request());
  return result;
}

int Main() {
  const int polls = std::max(1, absl::GetFlag(FLAGS_polls));
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  const std::string key_type = absl::GetFlag(FLAGS_key_type);
  spdlog::set_level(spdlog::level::warn);
  testing::TempDir dir;
  const Pki pki = MakePki(dir, key_type, absl::GetFlag(FLAGS_encrypted_key));
  int port = 0;
  const pid_t server = StartServer(pki, &port);  // before any thread
  EnsureCurlGlobalInit();
  const std::string url =
      absl::StrCat("https://127.0.0.1:", port, "/qrs/about");

  const std::vector<std::pair<Way, const char*>> ways = {
      {Way::kFiles, "files (before)"},
      {Way::kParsed, "parsed once"},
      {Way::kResumed, "parsed + resumed"},
      {Way::kTransport, "CurlTransport"}};
  std::map<Way, std::vector<double>> cpu;
  std::map<Way, int> resumed;
  std::vector<double> estimates;
  // Warm-up: page in libraries, let the server settle.
  RunRaw(Way::kFiles, pki, url, 10);
  for (int run = 0; run < runs; ++run) {
    for (const auto& [way, name] : ways) {
      const RunResult r = way == Way::kTransport ? RunTransport(pki, url, polls)
                                                 : RunRaw(way, pki, url, polls);
      cpu[way].push_back(r.cpu_ms_per_poll);
      resumed[way] += r.resumed;
      if (way == Way::kTransport) estimates.push_back(r.estimate_ms);
    }
  }

  // What every request pays to notice changed files: Current() unchanged.
  TlsSettings tls;
  tls.client_cert_file = pki.client_cert;
  tls.client_key_file = pki.client_key;
  tls.key_passphrase = pki.passphrase;
  tls.ca_file = pki.ca;
  ClientCredentials credentials(tls);
  sleep(1);  // past the racy window: the stamps alone are trusted
  credentials.Current();
  constexpr int kChecks = 100000;
  const double check_before = ProcessCpuSeconds();
  for (int i = 0; i < kChecks; ++i) credentials.Current();
  const double check_us = (ProcessCpuSeconds() - check_before) * 1e6 / kChecks;

  std::printf(
      "TLS poll CPU (client process only), %s keys, client key %s, %d polls "
      "x %d runs, TLS 1.3, server on 127.0.0.1 requiring a client "
      "certificate\n\n",
      key_type.c_str(),
      absl::GetFlag(FLAGS_encrypted_key) ? "encrypted" : "in clear", polls,
      runs);
  std::printf(
      "| way | CPU ms per poll (min / median / max) | x files |"
      " resumed handshakes |\n|---|---|---|---|\n");
  const double files_median = qfp::bench::SpreadOf(cpu[Way::kFiles]).median;
  for (const auto& [way, name] : ways) {
    const auto spread = qfp::bench::SpreadOf(cpu[way]);
    std::printf("| %s | %.3f / %.3f / %.3f | %.2f | %d of %d |\n", name,
                spread.min, spread.median, spread.max,
                spread.median / files_median,
                way == Way::kTransport ? 0 : resumed[way], polls * runs);
  }
  const double parsed = qfp::bench::SpreadOf(cpu[Way::kParsed]).median;
  const double resumed_ms = qfp::bench::SpreadOf(cpu[Way::kResumed]).median;
  std::printf(
      "\nresumed / full handshake (medians): %.2f (saves %.3f ms per poll)\n"
      "ClientCredentials::Current() with nothing changed (3 stat calls): "
      "%.2f us\n"
      "CurlTransport's own CPU-per-request estimate (its CPU budget), ms: "
      "%s\n",
      resumed_ms / parsed, parsed - resumed_ms, check_us,
      qfp::bench::SpreadOf(estimates).ToString().c_str());
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  return 0;
}

}  // namespace
}  // namespace qfp::poller

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return qfp::poller::Main();
}
