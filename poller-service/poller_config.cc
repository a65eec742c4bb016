#include "poller-service/poller_config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config_node.h"
#include "common/config_schema.h"
#include "common/failure_names.h"
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

// An HTTP header name is a token (RFC 9110, 5.1 and 5.6.2).
bool IsHeaderName(absl::string_view name) {
  static constexpr absl::string_view kSeparators = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::StrContains(kSeparators, c);
  });
}

// A header value must not end the header line early: no CR, LF or NUL
// (what would otherwise inject a header of its own).
bool IsHeaderValue(absl::string_view value) {
  return value.find_first_of(absl::string_view("\r\n\0", 3)) ==
         absl::string_view::npos;
}

std::vector<std::pair<std::string, std::string>> ReadHeaders(
    const ConfigNode& node) {
  std::vector<std::pair<std::string, std::string>> headers = node.StringPairs();
  for (const auto& [name, value] : headers) {
    if (!IsHeaderName(name)) {
      node[name].Error(
          "not an HTTP header name (letters, digits and "
          "!#$%&'*+-.^_`|~ only)");
    } else if (!IsHeaderValue(value)) {
      node[name].Error("a header value must not hold a line break or NUL");
    }
  }
  return headers;
}

absl::Duration Interval(const ConfigNode& node) {
  return absl::Milliseconds(node.Int(100, kMaxIntervalMs));
}

absl::Duration Interval(const ConfigNode& node, int64_t fallback_ms) {
  return absl::Milliseconds(node.Int(fallback_ms, 100, kMaxIntervalMs));
}

// A name that travels in every PollFailure of a server: the tracker refuses
// control characters and more than kMaxFailureNameBytes, so such a value
// would turn every failure of that server into a dropped one.
void CheckFailureName(const ConfigNode& node, const std::string& value) {
  if (HasControlCharacter(value)) {
    node.Error(
        "holds a control character (tab, line break, ...), which the "
        "tracker refuses in a failure");
  } else if (value.size() > kMaxFailureNameBytes) {
    node.Error(absl::StrCat("is ", value.size(),
                            " bytes; the tracker takes at "
                            "most ",
                            kMaxFailureNameBytes));
  }
}

MonitoredServer ParseServer(const ConfigNode& node,
                            const std::vector<std::string>& tag_names,
                            bool sessions_globally_enabled) {
  MonitoredServer server;
  server.host = node["host"].Host(PortRule::kOptional);
  server.server_name = node["serverName"].String();
  server.description = node["serverDescription"].String("");
  if (server.server_name.empty() && node["serverName"].present()) {
    node["serverName"].Error("must not be empty");
  }
  CheckFailureName(node["serverName"], server.server_name);

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
    CheckFailureName(tags[name], name);
    CheckFailureName(tags[name], value);
    if (std::find(tag_names.begin(), tag_names.end(), name) ==
        tag_names.end()) {
      tags.Error(absl::StrCat(
          "tag \"", name,
          "\" is not listed in serversToMonitor.serverTagsDefinition"));
    }
  }

  server.headers = ReadHeaders(node["headers"]);

  ConfigNode sessions = node["userSessions"];
  server.sessions_enabled =
      sessions.present() && sessions["enable"].Bool(server.sessions_enabled);
  if (server.sessions_enabled && sessions_globally_enabled) {
    server.sessions_host = sessions["host"].Host(PortRule::kOptional);
    // A list left empty (null) is an empty list, as in Butler SOS.
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
      CheckFailureName(vp, value);
      if (!value.empty()) server.virtual_proxies.push_back(value);
    }
    if (!sessions["virtualProxies"].defined()) {
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

// An IPv4 or IPv6 address in inet_ntop's form ("fd00::5", never
// "fd00:0::5"), so that it compares equal to the addresses getaddrinfo
// returns for cluster.peersDns; nullopt when `text` is no address.
std::optional<std::string> NormalizedAddress(const std::string& text) {
  unsigned char bytes[sizeof(struct in6_addr)];
  char out[INET6_ADDRSTRLEN];
  for (const int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, text.c_str(), bytes) == 1 &&
        inet_ntop(family, bytes, out, sizeof(out)) != nullptr) {
      return std::string(out);
    }
  }
  return std::nullopt;
}

// The StatefulSet ordinal at the end of a pod name ("qfp-poller-2": 2).
std::optional<int> PodOrdinal(const std::string& name) {
  const size_t dash = name.rfind('-');
  if (dash == std::string::npos || dash + 1 == name.size() ||
      name.size() - dash - 1 > 6) {
    return std::nullopt;
  }
  int ordinal = 0;
  for (size_t i = dash + 1; i < name.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(name[i]))) {
      return std::nullopt;
    }
    ordinal = ordinal * 10 + (name[i] - '0');
  }
  return ordinal;
}

// Butler-SOS.failedPolls.poller.cluster (ClusterConfig). The pod's own
// values come from the environment ($QFP_POD_IP, $QFP_POLLER_ID or the host
// name), so one file serves every replica.
void ParseCluster(const ConfigNode& node, ClusterConfig& cluster) {
  constexpr int kMaxShards = 10000;
  cluster.peers_dns = node["peersDns"].String("");
  if (node["peersDns"].present()) {
    if (cluster.peers_dns.empty()) {
      node["peersDns"].Error("must not be empty (leave it out to not share)");
    } else {
      // A host name, or an address literal (then only that one member).
      node["peersDns"].Host(PortRule::kNone);
    }
  }
  cluster.peers_refresh = absl::Milliseconds(node["peersRefreshInterval"].Int(
      absl::ToInt64Milliseconds(cluster.peers_refresh), 100, 3600 * 1000));
  cluster.shard_count = static_cast<int>(
      node["shardCount"].Int(cluster.shard_count, 1, kMaxShards));

  if (!cluster.peers_dns.empty() && node["shardCount"].present()) {
    node["shardCount"].Error(
        "set together with cluster.peersDns: use one way of sharing "
        "(peersDns for members found by DNS, shardCount for fixed shards)");
    // Which way's own keys (self, shardIndex) are wrong depends on which
    // way is kept: checking both would report problems of the one dropped.
    return;
  }
  if (node["self"].present() && cluster.peers_dns.empty()) {
    node["self"].Error("set without cluster.peersDns, which it belongs to");
  }
  if (node["shardIndex"].present() && !node["shardCount"].present()) {
    node["shardIndex"].Error("set without cluster.shardCount");
  }

  if (!cluster.peers_dns.empty()) {
    std::string self = node["self"].String("");
    std::string from = "";
    if (!node["self"].present()) {
      const char* env = std::getenv("QFP_POD_IP");
      if (env == nullptr || *env == '\0') {
        node["self"].Error(
            "missing, and $QFP_POD_IP is not set: this poller's own address "
            "among the records of cluster.peersDns is needed");
        return;
      }
      self = env;
      from = " (from $QFP_POD_IP)";
    }
    if (std::optional<std::string> address = NormalizedAddress(self)) {
      cluster.self = *address;
    } else {
      node["self"].Error(absl::StrCat("\"", self, "\"", from,
                                      " is not an IPv4 or IPv6 address"));
    }
  }

  if (node["shardCount"].present() && cluster.shard_count > 0) {
    if (node["shardIndex"].present()) {
      cluster.shard_index =
          static_cast<int>(node["shardIndex"].Int(0, 0, kMaxShards - 1));
    } else {
      const char* env = std::getenv("QFP_POLLER_ID");
      const std::string name =
          env != nullptr && *env != '\0' ? std::string(env) : HostName();
      std::optional<int> ordinal = PodOrdinal(name);
      if (!ordinal) {
        node["shardIndex"].Error(absl::StrCat(
            "missing, and the pod name \"", name,
            "\" ($QFP_POLLER_ID or the host name) ends in no ordinal "
            "(\"-N\")"));
        return;
      }
      cluster.shard_index = *ordinal;
    }
    if (cluster.shard_index >= cluster.shard_count) {
      node["shardIndex"].Error(absl::StrCat(
          "is ", cluster.shard_index,
          node["shardIndex"].present() ? "" : " (the pod name's ordinal)",
          ", not below cluster.shardCount (", cluster.shard_count, ")"));
    }
  }
}

}  // namespace

absl::StatusOr<PollerConfig> ParsePollerConfig(const YAML::Node& root,
                                               absl::string_view source) {
  ConfigErrors errors;
  std::optional<ConfigNode> root_section = ConfigNode::ButlerSos(root, &errors);
  if (!root_section) return errors.ToStatus(source);
  const ConfigNode& sos = *root_section;
  // Every default is an initialiser of PollerConfig (or of the structs it
  // holds); the reads below fall back to it.
  PollerConfig config;
  config.log_level = ReadLogLevel(sos, config.log_level);
  CheckFailedPollsKeys(sos);

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
  config.tls.verify_server =
      monitor["rejectUnauthorized"].Bool(config.tls.verify_server);

  ConfigNode sessions = sos["userSessions"];
  config.sessions_enabled =
      sessions["enableSessionExtract"].Bool(config.sessions_enabled);
  if (config.sessions_enabled) {
    config.sessions_interval = Interval(sessions["pollingInterval"]);
  }

  ConfigNode apps = sos["appNames"];
  config.app_names_enabled =
      apps["enableAppNameExtract"].Bool(config.app_names_enabled);
  if (config.app_names_enabled) {
    config.app_names_interval = Interval(apps["extractInterval"]);
    config.app_names_host = apps["hostIP"].Host(PortRule::kOptional);
  }

  std::vector<std::string> tag_names = ReadServerTagsDefinition(sos);
  // `servers:` with nothing under it is an empty list (Butler SOS's reading;
  // a site may use it for app names only); a missing key is a mistake.
  std::vector<ConfigNode> servers = monitor["servers"].Items();
  if (!monitor["servers"].defined()) {
    monitor["servers"].Error("missing (expected a list of servers)");
  }
  for (const ConfigNode& node : servers) {
    config.servers.push_back(
        ParseServer(node, tag_names, config.sessions_enabled));
  }

  ConfigNode poller = sos["failedPolls"]["poller"];
  config.tracker_address = poller["trackerAddress"].Host(
      PortRule::kRequired, config.tracker_address);
  config.poller_id = poller["pollerId"].String("");
  if (config.poller_id.empty() && poller["pollerId"].present()) {
    poller["pollerId"].Error(
        "must not be empty (leave it out to use "
        "$QFP_POLLER_ID or the host name)");
  }
  if (const char* env = std::getenv("QFP_POLLER_ID");
      config.poller_id.empty() && env != nullptr) {
    config.poller_id = env;
  }
  if (config.poller_id.empty()) config.poller_id = HostName();
  config.metrics_listen = poller["metricsListen"].Host(PortRule::kListen, "");
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
  config.spool_directory = poller["spoolDirectory"].WritableDirectory(
      "keep failures in memory only");
  ParseCluster(poller["cluster"], config.cluster);
  config.tracker_tls = ReadGrpcTls(poller["tls"], GrpcTlsSide::kClient);

  if (!errors.empty()) return errors.ToStatus(source);
  return config;
}

absl::StatusOr<PollerConfig> LoadPollerConfig(const std::string& path) {
  absl::StatusOr<YAML::Node> root = ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParsePollerConfig(*root, path);
}

}  // namespace qfp::poller
