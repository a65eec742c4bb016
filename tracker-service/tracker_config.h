// The tracker's view of a Butler SOS config file: error-tracking switches,
// the InfluxDB destination, the point schema, and where to listen.
#ifndef QFP_TRACKER_TRACKER_CONFIG_H_
#define QFP_TRACKER_TRACKER_CONFIG_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tracker-service/coverage.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/influx_v2_writer.h"
#include "tracker-service/influx_v3_writer.h"
#include "yaml-cpp/yaml.h"

namespace qfp::tracker {

// The initialisers are the defaults of keys left out (the parser reads
// nothing else as a default).
struct TrackerConfig {
  // errorTracking.enable: false = no counting, no summary, no points.
  bool tracking_enabled = false;
  bool log_summary = false;            // errorTracking.logSummary.enable
  bool influx_points_enabled = false;  // errorTracking.influxdb.enable
  bool influxdb_enabled = false;       // influxdbConfig.enable
  int influxdb_version = 1;            // influxdbConfig.version
  int max_batch_size = 1000;           // influxdbConfig.maxBatchSize
  // influxdbConfig.host/port and the block of `influxdb_version`
  // (v1Config, v2Config or v3Config); only that version's settings are read.
  InfluxV1Settings v1;
  InfluxV2Settings v2;
  InfluxV3Settings v3;

  // measurementName; Butler-SOS.failedPolls.tracker.tags and
  // .includeServerTags.
  PointSchema schema;

  // Butler-SOS.failedPolls.tracker.*
  std::string listen = "0.0.0.0:50051";              // listen
  absl::Duration flush_interval = absl::Seconds(1);  // flushIntervalMs
  size_t max_buffered_points = 1000000;              // maxBufferedPoints
  size_t dedupe_window = 1000000;                    // dedupeWindow
  // The queue's directory (docs/storage.md): failures are acknowledged only
  // once committed to the SQLite database here.
  // Empty: acknowledged once queued in memory.
  std::string wal_directory;                   // walDirectory
  uint64_t wal_max_bytes = uint64_t{1} << 30;  // walMaxBytes
  // Prometheus /metrics and /healthz; empty: off.
  std::string metrics_listen;  // metricsListen
  // Heartbeats (our addition, docs/compatibility.md): a poller that sent
  // heartbeats and then misses this many in a row gets one error point
  // (error_type POLLER, error_category silent). 0: not watched.
  int missed_heartbeats = 3;  // missedHeartbeats
  // Poll attempts points from heartbeats, in their own measurement.
  bool poll_attempts_enabled = false;  // pollAttempts.enable
  std::string poll_attempts_measurement =
      "butler_sos_poll_attempts";  // pollAttempts.measurementName
  // Targets of this file no poller attempted within 2 of their intervals
  // get an error point (error_category not_polled).
  bool coverage_enabled = false;  // coverage.enable
  // With coverage_enabled: the poll plan's targets, read from the keys the
  // poller reads (coverage.h).
  std::vector<ConfiguredTarget> coverage_targets;

  std::string log_level = "info";  // Butler-SOS.logLevel

  // Points are written only when all three switches are on.
  bool writes_points() const {
    return tracking_enabled && influx_points_enabled && influxdb_enabled;
  }
};

// Reads the tracker's keys from a parsed Butler SOS document (parse it with
// ConfigNode::Parse or LoadFile, which refuse duplicate keys and resolve
// merge keys); every problem is reported at once with its key path: wrong
// types and ranges, host keys that are not a host, and keys under
// Butler-SOS.failedPolls that neither service knows (common/config_schema.h).
// Butler SOS's other keys are ignored. Changes nothing on disk: safe for
// --check-config.
absl::StatusOr<TrackerConfig> ParseTrackerConfig(const YAML::Node& root,
                                                 absl::string_view source);

absl::StatusOr<TrackerConfig> LoadTrackerConfig(const std::string& path);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_TRACKER_CONFIG_H_
