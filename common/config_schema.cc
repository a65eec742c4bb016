#include "common/config_schema.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qfp {

const std::vector<absl::string_view>& PollerKeys() {
  // "cluster" is a map: its keys are PollerClusterKeys().
  // clang-format off
  static const auto* keys = new std::vector<absl::string_view>{
      "trackerAddress",      "pollerId",           "requestTimeout",
      "maxConcurrentPolls",  "maxPendingFailures", "maxSpoolBytes",
      "spoolDirectory",      "metricsListen",      "healthCheckTimeout",
      "userSessionsTimeout", "appNamesTimeout",    "maxResponseBytes",
      "cluster"};
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
                                         "coverage"};
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

}  // namespace qfp
