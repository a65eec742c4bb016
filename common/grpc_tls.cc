#include "common/grpc_tls.h"

#include <arpa/inet.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/log_rate_limiter.h"
#include "grpc/support/log.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "openssl/err.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "spdlog/spdlog.h"

namespace qfp {
namespace {

using grpc::experimental::FileWatcherCertificateProvider;

// Reads the first PEM certificate of `path`; records a problem at `node`.
X509* ReadCertificate(const ConfigNode& node, const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    node.Error(absl::StrCat("cannot read certificate file \"", path, "\""));
    return nullptr;
  }
  X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  ERR_clear_error();
  if (cert == nullptr) {
    node.Error(absl::StrCat("\"", path, "\" holds no PEM certificate"));
  }
  return cert;
}

// Reads an unencrypted PEM private key; records a problem at `node`.
EVP_PKEY* ReadKey(const ConfigNode& node, const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    node.Error(absl::StrCat("cannot read key file \"", path, "\""));
    return nullptr;
  }
  // An empty passphrase makes OpenSSL fail on an encrypted key rather than
  // prompt on a terminal.
  char empty[] = "";
  EVP_PKEY* key = PEM_read_PrivateKey(file, nullptr, nullptr, empty);
  std::fclose(file);
  ERR_clear_error();
  if (key == nullptr) {
    node.Error(absl::StrCat("cannot open the private key in \"", path,
                            "\" (not a PEM key, or encrypted: gRPC takes "
                            "an unencrypted key only)"));
  }
  return key;
}

// A required file key: set and not empty.
std::string FileKey(const ConfigNode& node) {
  std::string value = node.String();
  if (value.empty() && node.present()) node.Error("must not be empty");
  return value;
}

// The host of HOST:PORT, [IPV6]:PORT or HOST.
absl::string_view HostOf(absl::string_view address) {
  if (absl::ConsumePrefix(&address, "[")) {
    return address.substr(0, address.find(']'));
  }
  const size_t colon = address.rfind(':');
  // More than one colon without brackets: a bare IPv6 address.
  if (colon != absl::string_view::npos && address.find(':') == colon) {
    return address.substr(0, colon);
  }
  return address;
}

// Rate limits per kind of gRPC log line: its source line and the start of
// its text (a refused handshake says why: "wrong version number" for a
// plaintext client, "peer did not return a certificate", "certificate verify
// failed"). At most kMaxKinds kinds; further ones share one limiter, so
// hostile peers cannot grow this map.
class GrpcLogLimiters {
 public:
  uint64_t Add(const char* file, int line, absl::string_view message) {
    static constexpr size_t kMaxKinds = 256;
    static constexpr size_t kKindPrefix = 120;
    std::string kind =
        absl::StrCat(file, ":", line, ":", message.substr(0, kKindPrefix));
    absl::MutexLock lock(&mu_);
    if (limiters_.size() >= kMaxKinds && limiters_.count(kind) == 0) {
      kind.clear();
    }
    std::unique_ptr<LogRateLimiter>& limiter = limiters_[kind];
    if (limiter == nullptr) {
      limiter = std::make_unique<LogRateLimiter>(absl::Seconds(10));
    }
    return limiter->Add();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<LogRateLimiter>> limiters_
      ABSL_GUARDED_BY(mu_);
};

// TLS handshakes refused, either side (RefusedTlsHandshakes).
std::atomic<uint64_t> refused_handshakes{0};

void LogToSpdlog(gpr_log_func_args* args) {
  // Never destroyed: gRPC may log while the process exits.
  static auto* limiters = new GrpcLogLimiters();
  const absl::string_view message =
      args->message != nullptr ? args->message : "";
  // gRPC 1.51's ssl_transport_security.cc logs every failed handshake so.
  if (absl::StartsWith(message, "Handshake failed")) {
    refused_handshakes.fetch_add(1, std::memory_order_relaxed);
  }
  const uint64_t count = limiters->Add(args->file, args->line, message);
  if (count == 0) return;
  spdlog::level::level_enum level = spdlog::level::err;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = spdlog::level::info;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = spdlog::level::debug;
  if (count == 1) {
    spdlog::log(level, "grpc: {}", std::string(message));
  } else {
    spdlog::log(level, "grpc: {} ({} times since the last such line)",
                std::string(message), count);
  }
}

std::string Text(grpc::string_ref text) {
  return std::string(text.data(), text.size());
}

std::string Join(const std::vector<grpc::string_ref>& texts) {
  return absl::StrJoin(texts, ", ",
                       [](std::string* out, const grpc::string_ref& text) {
                         out->append(text.data(), text.size());
                       });
}

// The tracker's name is checked by gRPC's own HostNameCertificateVerifier;
// this wrapper adds a log line when it fails, which gRPC reports only at
// debug level (a CA mismatch, in the handshake itself, gRPC logs as an
// error). One line at once, then at most one per 10 s with the count.
class LoggedHostNameVerifier final
    : public grpc::experimental::ExternalCertificateVerifier {
 public:
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> callback,
              grpc::Status* sync_status) override {
    auto report = [target = Text(request->target_name()),
                   names = Join(request->dns_names()),
                   ips =
                       Join(request->ip_names())](const grpc::Status& status) {
      if (status.ok()) return;
      refused_handshakes.fetch_add(1, std::memory_order_relaxed);
      static auto* limiter = new LogRateLimiter(absl::Seconds(10));
      if (const uint64_t count = limiter->Add(); count > 0) {
        spdlog::error(
            "tracker certificate refused: it does not name \"{}\" ({}; it "
            "names DNS [{}], IP [{}]): set "
            "Butler-SOS.failedPolls.poller.tls.serverName to a name it holds, "
            "or reissue it{}",
            target, status.error_message(), names, ips,
            count > 1 ? absl::StrCat(" (", count,
                                     " refusals since the last "
                                     "such line)")
                      : std::string());
      }
    };
    const bool sync = hostname_.Verify(
        request,
        [report, callback = std::move(callback)](grpc::Status status) {
          report(status);
          callback(status);
        },
        sync_status);
    if (sync) report(*sync_status);
    return sync;
  }

  void Cancel(
      grpc::experimental::TlsCustomVerificationCheckRequest* request) override {
    hostname_.Cancel(request);
  }

 private:
  grpc::experimental::HostNameCertificateVerifier hostname_;
};

}  // namespace

const std::vector<absl::string_view>& GrpcTlsKeys(GrpcTlsSide side) {
  static const auto* server = new std::vector<absl::string_view>{
      "enable", "certFile",       "keyFile",
      "caFile", "allowPlaintext", "refreshIntervalSeconds"};
  static const auto* client =
      new std::vector<absl::string_view>{"enable",
                                         "certFile",
                                         "keyFile",
                                         "caFile",
                                         "serverName",
                                         "allowPlaintext",
                                         "refreshIntervalSeconds"};
  return side == GrpcTlsSide::kServer ? *server : *client;
}

GrpcTlsConfig ReadGrpcTls(const ConfigNode& node, GrpcTlsSide side) {
  GrpcTlsConfig tls;
  if (node.defined() && !node.present()) return tls;  // `tls:` alone
  tls.enable = node["enable"].Bool(tls.enable);
  tls.allow_plaintext = node["allowPlaintext"].Bool(tls.allow_plaintext);
  tls.refresh_interval_seconds =
      static_cast<int>(node["refreshIntervalSeconds"].Int(
          tls.refresh_interval_seconds, 1, 3600));
  if (side == GrpcTlsSide::kClient) {
    tls.server_name = node["serverName"].Host(PortRule::kNone, "");
  }
  if (!tls.enable) return tls;
  tls.cert_file = FileKey(node["certFile"]);
  tls.key_file = FileKey(node["keyFile"]);
  tls.ca_file = FileKey(node["caFile"]);
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  if (!tls.cert_file.empty())
    cert = ReadCertificate(node["certFile"], tls.cert_file);
  if (!tls.key_file.empty()) key = ReadKey(node["keyFile"], tls.key_file);
  if (cert != nullptr && key != nullptr &&
      X509_check_private_key(cert, key) != 1) {
    node["keyFile"].Error(absl::StrCat("the key in \"", tls.key_file,
                                       "\" is not the key of the certificate "
                                       "in \"",
                                       tls.cert_file, "\""));
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (!tls.ca_file.empty())
    X509_free(ReadCertificate(node["caFile"], tls.ca_file));
  return tls;
}

bool IsLoopbackAddress(absl::string_view address) {
  const std::string host = std::string(HostOf(address));
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

std::optional<std::string> CheckPlaintextAllowed(const GrpcTlsConfig& tls,
                                                 absl::string_view address,
                                                 absl::string_view address_key,
                                                 absl::string_view tls_path) {
  if (tls.enable || tls.allow_plaintext || IsLoopbackAddress(address)) {
    return std::nullopt;
  }
  return absl::StrCat(
      address_key, ": \"", address,
      "\" is not a loopback address and the gRPC link would be plaintext "
      "(anyone who reaches it could ",
      address_key.find("tracker.") != absl::string_view::npos
          ? "write failures into InfluxDB"
          : "read the failures, or pose as the tracker and drop them",
      "): set ", tls_path,
      ".enable: true with certFile, keyFile and caFile, "
      "or ",
      tls_path, ".allowPlaintext: true to accept plaintext");
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const GrpcTlsConfig& tls) {
  if (!tls.enable) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file,
      static_cast<unsigned int>(tls.refresh_interval_seconds));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  options.watch_root_certs();
  options.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const GrpcTlsConfig& tls) {
  if (!tls.enable) return grpc::InsecureChannelCredentials();
  auto provider = std::make_shared<FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file,
      static_cast<unsigned int>(tls.refresh_interval_seconds));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_identity_key_cert_pairs();
  options.watch_root_certs();
  options.set_verify_server_certs(true);
  // Said rather than left to gRPC's default: the tracker's name is checked
  // (against the target host or serverName), not only its CA.
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<
          LoggedHostNameVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

void ApplyServerNameOverride(const GrpcTlsConfig& tls,
                             grpc::ChannelArguments* args) {
  if (tls.enable && !tls.server_name.empty()) {
    args->SetSslTargetNameOverride(tls.server_name);
  }
}

void ForwardGrpcLogsToSpdlog() { gpr_set_log_function(&LogToSpdlog); }

uint64_t RefusedTlsHandshakes() {
  return refused_handshakes.load(std::memory_order_relaxed);
}

}  // namespace qfp
