#include "tracker-service/tracker_config.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/config_node.h"

namespace qfp {
namespace {
// Replaces influxdbConfig.v1Config.auth.password when set.
constexpr char kV1PasswordEnv[] = "QFP_INFLUXDB_PASSWORD";
}  // namespace

absl::StatusOr<TrackerConfig> ParseTrackerConfig(const YAML::Node& root,
                                                 absl::string_view source) {
  ConfigErrors errors;
  ConfigNode top(root, "", &errors);
  ConfigNode sos = top["Butler-SOS"];
  if (!sos.present()) {
    sos.Error("missing (the file's root key must be Butler-SOS)");
    return errors.ToStatus(source);
  }
  TrackerConfig config;
  config.log_level = sos["logLevel"].String("info");

  ConfigNode tracking = sos["errorTracking"];
  config.tracking_enabled = tracking["enable"].Bool(false);
  config.log_summary = tracking["logSummary"]["enable"].Bool(false);
  config.influx_points_enabled = tracking["influxdb"]["enable"].Bool(false);
  config.schema.measurement =
      tracking["influxdb"]["measurementName"].String("butler_sos_errors");
  if (config.schema.measurement.empty()) {
    tracking["influxdb"]["measurementName"].Error("must not be empty");
  }

  ConfigNode influx = sos["influxdbConfig"];
  config.influxdb_enabled = influx["enable"].Bool(false);
  if (config.writes_points()) {
    config.influxdb_version = static_cast<int>(influx["version"].Int(1, 3));
    config.max_batch_size =
        static_cast<int>(influx["maxBatchSize"].Int(1000, 1, 10000));
    config.v1.host = influx["host"].String();
    config.v1.port = static_cast<int>(influx["port"].Int(1, 65535));
    if (config.influxdb_version == 1) {
      ConfigNode v1 = influx["v1Config"];
      config.v1.database = v1["dbName"].String();
      if (config.v1.database.empty() && v1["dbName"].present()) {
        v1["dbName"].Error("must not be empty");
      }
      config.v1.auth_enable = v1["auth"]["enable"].Bool(false);
      if (config.v1.auth_enable) {
        config.v1.username = v1["auth"]["username"].String();
        if (const char* env = std::getenv(kV1PasswordEnv); env != nullptr) {
          config.v1.password = env;
        } else {
          config.v1.password = v1["auth"]["password"].String();
        }
      }
      config.v1.retention_policy_name =
          v1["retentionPolicy"]["name"].String("");
      if (!config.v1.retention_policy_name.empty()) {
        config.v1.retention_policy_duration =
            v1["retentionPolicy"]["duration"].String();
      }
    } else if (config.influxdb_version != 0) {
      influx["version"].Error(absl::StrCat(
          "InfluxDB ", config.influxdb_version,
          ".x is not supported by this build yet (supported: 1)"));
    }
  }

  ConfigNode own = sos["failedPolls"]["tracker"];
  config.listen = own["listen"].String(config.listen);
  config.schema.static_tags = own["tags"].StringMap();
  config.schema.include_server_tags = own["includeServerTags"].Bool(false);
  config.flush_interval = absl::Milliseconds(own["flushIntervalMs"].Int(
      absl::ToInt64Milliseconds(config.flush_interval), 10, 600000));
  config.max_buffered_points = static_cast<size_t>(own["maxBufferedPoints"].Int(
      static_cast<int64_t>(config.max_buffered_points), 1000, 100000000));
  config.dedupe_window = static_cast<size_t>(own["dedupeWindow"].Int(
      static_cast<int64_t>(config.dedupe_window), 0, 100000000));

  if (!errors.empty()) return errors.ToStatus(source);
  return config;
}

absl::StatusOr<TrackerConfig> LoadTrackerConfig(const std::string& path) {
  absl::StatusOr<YAML::Node> root = ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParseTrackerConfig(*root, path);
}

}  // namespace qfp
