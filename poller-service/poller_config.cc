#include "poller-service/poller_config.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config_node.h"
#include "openssl/err.h"
#include "openssl/pem.h"

namespace qfp::poller {
namespace {

constexpr int64_t kMaxIntervalMs = int64_t{7} * 24 * 3600 * 1000;  // a week

// Environment variable that, when set, replaces cert.clientCertPassphrase, so
// the secret need not sit in the file.
constexpr char kPassphraseEnv[] = "QFP_CERT_PASSPHRASE";

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
    return "qs-poller";
  }
  return name;
}

// A certificate file must exist and hold at least one PEM certificate.
void CheckCertificateFile(const ConfigNode& node, const std::string& path) {
  if (path.empty()) return;  // already reported as missing
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    node.Error(absl::StrCat("cannot read certificate file \"", path, "\""));
    return;
  }
  X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (cert == nullptr) {
    node.Error(absl::StrCat("\"", path, "\" holds no PEM certificate"));
  }
  X509_free(cert);
  ERR_clear_error();
}

// The private key must open, with the passphrase when it is encrypted.
void CheckKeyFile(const ConfigNode& node, const std::string& path,
                  const std::string& passphrase) {
  if (path.empty()) return;
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    node.Error(absl::StrCat("cannot read key file \"", path, "\""));
    return;
  }
  // A null passphrase makes OpenSSL fail on an encrypted key rather than
  // prompt on a terminal.
  std::string pass = passphrase;
  EVP_PKEY* key =
      PEM_read_PrivateKey(file, nullptr, nullptr,
                          const_cast<char*>(pass.empty() ? "" : pass.c_str()));
  std::fclose(file);
  if (key == nullptr) {
    node.Error(absl::StrCat(
        "cannot open the private key in \"", path, "\"",
        passphrase.empty()
            ? " (not a PEM key, or encrypted and no passphrase given in "
              "cert.clientCertPassphrase or $QFP_CERT_PASSPHRASE)"
            : " (not a PEM key, or the passphrase is wrong)"));
  }
  EVP_PKEY_free(key);
  ERR_clear_error();
}

constexpr int64_t kMinSpoolBytes = int64_t{1} << 20;  // 1 MiB
constexpr int64_t kMaxSpoolBytes = int64_t{1} << 40;  // 1 TiB

// The spool directory is created now (as the poller will at start) so that a
// path it could never use is reported with its key, not at the first failure.
std::string CheckSpoolDirectory(const ConfigNode& node) {
  if (!node.present()) return "";
  std::string path = node.String();
  if (path.empty()) {
    node.Error(
        "must not be empty (leave it out to keep failures in memory "
        "only)");
    return "";
  }
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) {
    node.Error(absl::StrCat("cannot create directory \"", path,
                            "\": ", error.message()));
    return "";
  }
  if (!std::filesystem::is_directory(path, error)) {
    node.Error(absl::StrCat("\"", path, "\" is not a directory"));
    return "";
  }
  if (access(path.c_str(), W_OK | X_OK) != 0) {
    node.Error(absl::StrCat(
        "directory \"", path, "\" is not writable: ",
        std::error_code(errno, std::generic_category()).message()));
    return "";
  }
  return path;
}

absl::Duration Interval(const ConfigNode& node) {
  return absl::Milliseconds(node.Int(100, kMaxIntervalMs));
}

absl::Duration Interval(const ConfigNode& node, int64_t fallback_ms) {
  return absl::Milliseconds(node.Int(fallback_ms, 100, kMaxIntervalMs));
}

MonitoredServer ParseServer(const ConfigNode& node,
                            const std::vector<std::string>& tag_names,
                            bool sessions_globally_enabled) {
  MonitoredServer server;
  server.host = node["host"].String();
  server.server_name = node["serverName"].String();
  server.description = node["serverDescription"].String("");
  if (server.host.empty() && node["host"].present()) {
    node["host"].Error("must not be empty");
  }
  if (server.server_name.empty() && node["serverName"].present()) {
    node["serverName"].Error("must not be empty");
  }

  ConfigNode tags = node["serverTags"];
  server.server_tags = tags.StringMap();
  for (const std::string& name : tag_names) {
    if (server.server_tags.count(name) == 0) {
      tags.Error(absl::StrCat("missing tag \"", name,
                              "\" required by serversToMonitor."
                              "serverTagsDefinition"));
    }
  }
  for (const auto& [name, value] : server.server_tags) {
    if (std::find(tag_names.begin(), tag_names.end(), name) ==
        tag_names.end()) {
      tags.Error(absl::StrCat(
          "tag \"", name,
          "\" is not listed in serversToMonitor.serverTagsDefinition"));
    }
  }

  server.headers = node["headers"].StringPairs();

  ConfigNode sessions = node["userSessions"];
  server.sessions_enabled =
      sessions.present() && sessions["enable"].Bool(false);
  if (server.sessions_enabled && sessions_globally_enabled) {
    server.sessions_host = sessions["host"].String();
    for (const ConfigNode& item : sessions["virtualProxies"].Items()) {
      ConfigNode vp = item["virtualProxy"];
      std::string value = vp.String();
      if (vp.present() && !absl::StartsWith(value, "/")) {
        vp.Error(
            absl::StrCat("expected a virtual proxy starting with \"/\", "
                         "got \"",
                         value, "\""));
        continue;
      }
      if (!value.empty()) server.virtual_proxies.push_back(value);
    }
    if (server.virtual_proxies.empty() &&
        !sessions["virtualProxies"].present()) {
      sessions["virtualProxies"].Error(
          "missing (expected a list of {virtualProxy: /prefix})");
    }
  }
  return server;
}

// Per-source request timeouts and the body cap, all under
// Butler-SOS.failedPolls.poller (ms, and bytes). Kept in one block: the
// defaults follow requestTimeout, read before.
void ParseRequestLimits(const ConfigNode& poller, PollerConfig& config) {
  const int64_t shared_ms = absl::ToInt64Milliseconds(config.request_timeout);
  config.health_timeout = Interval(poller["healthCheckTimeout"], shared_ms);
  config.sessions_timeout = Interval(poller["userSessionsTimeout"], shared_ms);
  config.app_names_timeout = Interval(
      poller["appNamesTimeout"],
      std::max(shared_ms, absl::ToInt64Milliseconds(kDefaultAppNamesTimeout)));
  // At least 1 MiB: a health check answer alone is a few KB.
  config.max_response_bytes =
      static_cast<uint64_t>(poller["maxResponseBytes"].Int(
          static_cast<int64_t>(config.max_response_bytes), int64_t{1} << 20,
          int64_t{1} << 40));
}

}  // namespace

absl::StatusOr<PollerConfig> ParsePollerConfig(const YAML::Node& root,
                                               absl::string_view source) {
  ConfigErrors errors;
  std::optional<ConfigNode> root_section = ConfigNode::ButlerSos(root, &errors);
  if (!root_section) return errors.ToStatus(source);
  const ConfigNode& sos = *root_section;
  PollerConfig config;
  config.log_level = sos["logLevel"].String("info");

  ConfigNode cert = sos["cert"];
  config.tls.client_cert_file = cert["clientCert"].String();
  config.tls.client_key_file = cert["clientCertKey"].String();
  config.tls.ca_file = cert["clientCertCA"].String();
  config.tls.key_passphrase = cert["clientCertPassphrase"].String("");
  if (const char* env = std::getenv(kPassphraseEnv); env != nullptr) {
    config.tls.key_passphrase = env;
  }
  CheckCertificateFile(cert["clientCert"], config.tls.client_cert_file);
  CheckCertificateFile(cert["clientCertCA"], config.tls.ca_file);
  CheckKeyFile(cert["clientCertKey"], config.tls.client_key_file,
               config.tls.key_passphrase);

  ConfigNode monitor = sos["serversToMonitor"];
  config.health_interval = Interval(monitor["pollingInterval"]);
  config.tls.verify_server = monitor["rejectUnauthorized"].Bool(true);

  ConfigNode sessions = sos["userSessions"];
  config.sessions_enabled = sessions["enableSessionExtract"].Bool(false);
  if (config.sessions_enabled) {
    config.sessions_interval = Interval(sessions["pollingInterval"]);
  }

  ConfigNode apps = sos["appNames"];
  config.app_names_enabled = apps["enableAppNameExtract"].Bool(false);
  if (config.app_names_enabled) {
    config.app_names_interval = Interval(apps["extractInterval"]);
    config.app_names_host = apps["hostIP"].String();
  }

  std::vector<std::string> tag_names =
      monitor["serverTagsDefinition"].StringList();
  std::vector<ConfigNode> servers = monitor["servers"].Items();
  if (!monitor["servers"].present()) {
    monitor["servers"].Error("missing (expected a list of servers)");
  }
  for (const ConfigNode& node : servers) {
    config.servers.push_back(
        ParseServer(node, tag_names, config.sessions_enabled));
  }

  ConfigNode poller = sos["failedPolls"]["poller"];
  config.tracker_address =
      poller["trackerAddress"].String(config.tracker_address);
  config.poller_id = poller["pollerId"].String("");
  if (const char* env = std::getenv("QFP_POLLER_ID");
      config.poller_id.empty() && env != nullptr) {
    config.poller_id = env;
  }
  if (config.poller_id.empty()) config.poller_id = HostName();
  config.metrics_listen = poller["metricsListen"].String("");
  config.max_concurrent_polls = static_cast<int>(
      poller["maxConcurrentPolls"].Int(config.max_concurrent_polls, 1, 10000));
  config.request_timeout =
      Interval(poller["requestTimeout"],
               absl::ToInt64Milliseconds(config.request_timeout));
  ParseRequestLimits(poller, config);
  config.max_pending_failures =
      static_cast<size_t>(poller["maxPendingFailures"].Int(
          static_cast<int64_t>(config.max_pending_failures), 100, 100000000));
  config.max_spool_bytes = static_cast<uint64_t>(
      poller["maxSpoolBytes"].Int(static_cast<int64_t>(config.max_spool_bytes),
                                  kMinSpoolBytes, kMaxSpoolBytes));
  config.spool_directory = CheckSpoolDirectory(poller["spoolDirectory"]);

  if (!errors.empty()) return errors.ToStatus(source);
  return config;
}

absl::StatusOr<PollerConfig> LoadPollerConfig(const std::string& path) {
  absl::StatusOr<YAML::Node> root = ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParsePollerConfig(*root, path);
}

}  // namespace qfp::poller
