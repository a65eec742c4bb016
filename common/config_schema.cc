#include "common/config_schema.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/failure_names.h"
#include "common/grpc_tls.h"

namespace qfp {

const std::vector<absl::string_view>& PollerKeys() {
  // "cluster" is a map: its keys are PollerClusterKeys(); "tls" one of
  // GrpcTlsKeys(kClient) (common/grpc_tls.h).
  // clang-format off
  static const auto* keys = new std::vector<absl::string_view>{
      "trackerAddress",      "pollerId",           "requestTimeout",
      "maxConcurrentPolls",  "maxPendingFailures", "maxSpoolBytes",
      "spoolDirectory",      "metricsListen",      "healthCheckTimeout",
      "userSessionsTimeout", "appNamesTimeout",    "maxResponseBytes",
      "cluster",             "tls"};
  // clang-format on
  return *keys;
}

const std::vector<absl::string_view>& PollerClusterKeys() {
  static const auto* keys = new std::vector<absl::string_view>{
      "peersDns", "self", "peersRefreshInterval", "shardCount", "shardIndex"};
  return *keys;
}

const std::vector<absl::string_view>& TrackerKeys() {
  static const auto* keys =
      new std::vector<absl::string_view>{"listen",
                                         "tags",
                                         "includeServerTags",
                                         "flushIntervalMs",
                                         "maxBufferedPoints",
                                         "dedupeWindow",
                                         "walDirectory",
                                         "walMaxBytes",
                                         "metricsListen",
                                         "missedHeartbeats",
                                         "pollAttempts",
                                         "coverage",
                                         "tls"};
  return *keys;
}

void CheckFailedPollsKeys(const ConfigNode& sos) {
  ConfigNode section = sos["failedPolls"];
  section.CheckKeys({"poller", "tracker"});
  section["poller"].CheckKeys(PollerKeys());
  section["poller"]["cluster"].CheckKeys(PollerClusterKeys());
  section["tracker"].CheckKeys(TrackerKeys());
  section["tracker"]["pollAttempts"].CheckKeys({"enable", "measurementName"});
  section["tracker"]["coverage"].CheckKeys({"enable"});
  section["poller"]["tls"].CheckKeys(GrpcTlsKeys(GrpcTlsSide::kClient));
  section["tracker"]["tls"].CheckKeys(GrpcTlsKeys(GrpcTlsSide::kServer));
}

std::string ReadLogLevel(const ConfigNode& sos, absl::string_view fallback) {
  // InitLogging (common/logging.cc) takes these.
  static constexpr absl::string_view kLevels[] = {
      "silly", "trace", "debug", "verbose", "info", "warn", "warning", "error"};
  ConfigNode node = sos["logLevel"];
  const size_t errors_before = node.errors()->errors().size();
  std::string level = node.String(fallback);
  if (node.errors()->errors().size() != errors_before) return level;
  if (std::find(std::begin(kLevels), std::end(kLevels), level) ==
      std::end(kLevels)) {
    node.Error(absl::StrCat("expected one of ", absl::StrJoin(kLevels, ", "),
                            ", got \"", level, "\""));
  }
  return level;
}

std::vector<std::string> ReadServerTagsDefinition(const ConfigNode& sos) {
  std::vector<std::string> keys;
  // Cleaned key -> the key that first cleaned to it.
  absl::flat_hash_map<std::string, std::string> written;
  for (const ConfigNode& item :
       sos["serversToMonitor"]["serverTagsDefinition"].Items()) {
    std::string key = item.String();
    if (absl::Status checked = CheckTagKey(key); !checked.ok()) {
      item.Error(absl::StrCat("tag \"", key, "\" ", checked.message()));
    } else if (auto [it, inserted] =
                   written.emplace(CleanLineProtocolName(key), key);
               !inserted && it->second != key) {
      item.Error(absl::StrCat("tag \"", key, "\" and tag \"", it->second,
                              "\" would be written as the one tag key \"",
                              it->first,
                              "\" (line protocol drops trailing backslashes)"));
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

void CheckStaticTagKeys(const ConfigNode& tags,
                        const std::map<std::string, std::string>& static_tags,
                        const std::vector<std::string>* server_tag_keys) {
  absl::flat_hash_map<std::string, std::string> written;
  if (server_tag_keys != nullptr) {
    for (const std::string& key : *server_tag_keys) {
      written.emplace(CleanLineProtocolName(key), key);
    }
  }
  for (const auto& [key, value] : static_tags) {
    if (key.empty()) {
      tags.Error("a tag name must not be empty");
      continue;
    }
    if (absl::Status checked = CheckTagKey(key); !checked.ok()) {
      tags[key].Error(absl::StrCat("tag \"", key, "\" ", checked.message()));
      continue;
    }
    if (IsOwnTag(key)) {
      tags[key].Error(absl::StrCat("tag \"", key, "\" is the tag ", key,
                                   " the tracker writes itself, which a "
                                   "static tag never replaces"));
      continue;
    }
    auto [it, inserted] = written.emplace(CleanLineProtocolName(key), key);
    // The same key as a server tag is fine: the server's value wins.
    if (!inserted && it->second != key) {
      tags[key].Error(
          absl::StrCat("tag \"", key, "\" and tag \"", it->second,
                       "\" would be written as the one tag key \"", it->first,
                       "\" (line protocol drops trailing backslashes)"));
    }
  }
}

}  // namespace qfp
