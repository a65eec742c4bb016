// The poller's view of a Butler SOS config file: which servers to poll, how
// often, with which credentials, and where the tracker is.
#ifndef QFP_POLLER_POLLER_CONFIG_H_
#define QFP_POLLER_POLLER_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "poller-service/http_transport.h"
#include "yaml-cpp/yaml.h"

namespace qfp::poller {

// One entry of `serversToMonitor.servers`.
struct MonitoredServer {
  std::string host;         // "sense1.example.com:4747", as configured
  std::string server_name;  // serverName
  std::string description;  // serverDescription
  std::map<std::string, std::string> server_tags;
  // Extra health-check headers, in file order (sent in that order).
  std::vector<std::pair<std::string, std::string>> headers;
  bool sessions_enabled = false;             // userSessions.enable
  std::string sessions_host;                 // userSessions.host
  std::vector<std::string> virtual_proxies;  // "/", "/sales", ...
};

// Default of failedPolls.poller.appNamesTimeout: Butler SOS has no QRS
// timeout at all; two minutes lets a repository with thousands of apps
// answer (it serialises the whole list first) and still reports one that
// hangs.
inline constexpr absl::Duration kDefaultAppNamesTimeout = absl::Seconds(120);

// Butler-SOS.failedPolls.poller.cluster: how pollers that read the same
// config share its targets (poller-service/rendezvous_ownership.h). At most
// one of peersDns and shardCount; neither: this poller polls every target.
struct ClusterConfig {
  // peersDns: a DNS name whose A/AAAA records are the live pollers (a
  // Kubernetes headless Service lists only ready pods). Empty: not used.
  std::string peers_dns;
  // self: this poller's address among those records, in inet_ntop's form
  // (the parser normalises it). Default $QFP_POD_IP. Set when peers_dns is.
  std::string self;
  // peersRefreshInterval (ms): how often peersDns is resolved again.
  absl::Duration peers_refresh = absl::Seconds(5);
  // shardCount: fixed shards; 0: none.
  int shard_count = 0;
  // shardIndex, 0 <= index < shard_count; default the StatefulSet ordinal at
  // the end of $QFP_POLLER_ID or the host name ("qfp-poller-2": 2).
  int shard_index = 0;
};

struct PollerConfig {
  TlsSettings tls;  // cert.* and serversToMonitor.rejectUnauthorized

  absl::Duration health_interval;  // serversToMonitor.pollingInterval
  std::vector<MonitoredServer> servers;

  bool sessions_enabled = false;     // userSessions.enableSessionExtract
  absl::Duration sessions_interval;  // userSessions.pollingInterval

  bool app_names_enabled = false;     // appNames.enableAppNameExtract
  absl::Duration app_names_interval;  // appNames.extractInterval
  std::string app_names_host;         // appNames.hostIP

  // Butler-SOS.failedPolls.poller.*
  std::string tracker_address = "127.0.0.1:50051";  // trackerAddress
  // pollerId; else $QFP_POLLER_ID (a pod name); else this host's name.
  std::string poller_id;
  // maxConcurrentPolls: requests connecting or in their TLS handshake at
  // once (CurlTransportLimits::max_handshakes); waiting ones are not counted.
  int max_concurrent_polls = 64;
  absl::Duration request_timeout = absl::Milliseconds(5000);  // requestTimeout

  // Per-source request timeouts and the body cap (see ParseRequestLimits in
  // poller_config.cc and README.md "Configuration"). Each failure's
  // request_timeout_ms is its own source's timeout.
  // healthCheckTimeout (HEALTH_API); default requestTimeout.
  absl::Duration health_timeout = absl::Milliseconds(5000);
  // userSessionsTimeout (PROXY_API); default requestTimeout.
  absl::Duration sessions_timeout = absl::Milliseconds(5000);
  // appNamesTimeout (APP_NAMES_EXTRACT); default kDefaultAppNamesTimeout or
  // requestTimeout, whichever is longer: the QRS builds its whole app list
  // (tens of MB on a site with thousands of apps) before the first byte.
  absl::Duration app_names_timeout = kDefaultAppNamesTimeout;
  // maxResponseBytes: most body bytes read per poll, counted decoded.
  uint64_t max_response_bytes = kDefaultMaxBodyBytes;
  // Most failures kept waiting for the tracker's acknowledgement.
  size_t max_pending_failures = 100000;  // maxPendingFailures
  // Most bytes of failures (serialized) kept waiting.
  uint64_t max_spool_bytes = uint64_t{256} << 20;  // maxSpoolBytes
  // spoolDirectory: where waiting failures are also kept on disk, so a
  // restart resends them. Empty: memory only. When set, it is a writable
  // directory or can be created (the spool creates it at start; parsing
  // changes nothing on disk).
  std::string spool_directory;
  // metricsListen: HOST:PORT for Prometheus /metrics and /healthz; empty: off.
  std::string metrics_listen;
  ClusterConfig cluster;  // cluster.*

  std::string log_level = "info";  // Butler-SOS.logLevel
};

// Reads the poller's keys from a parsed Butler SOS document (parse it with
// ConfigNode::Parse or LoadFile, which refuse duplicate keys and resolve
// merge keys). Every problem is reported at once, each with its key path:
// wrong types and ranges, host keys that are not a host (name or address,
// port where the key takes one), and keys under Butler-SOS.failedPolls that
// neither service knows (common/config_schema.h); Butler SOS's other keys
// are not ours to judge and are ignored. A list left empty (`servers:`) is
// an empty list, as in Butler SOS. Checks that certificate files are
// readable and that the key opens with the passphrase. Reads files, never
// writes: safe for --check-config. Defaults are PollerConfig's initialisers.
absl::StatusOr<PollerConfig> ParsePollerConfig(const YAML::Node& root,
                                               absl::string_view source);

// Loads and parses `path`.
absl::StatusOr<PollerConfig> LoadPollerConfig(const std::string& path);

}  // namespace qfp::poller

#endif  // QFP_POLLER_POLLER_CONFIG_H_
