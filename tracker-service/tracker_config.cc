#include "tracker-service/tracker_config.h"

#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/config_node.h"
#include "common/config_schema.h"
#include "tracker-service/influx_api.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/retention_duration.h"

namespace qfp::tracker {
namespace {
// Replaces influxdbConfig.v1Config.auth.password when set.
constexpr char kV1PasswordEnv[] = "QFP_INFLUXDB_PASSWORD";
// Replaces influxdbConfig.v2Config.token and v3Config.token when set, so a
// secret need not sit in the file (a Kubernetes secret as environment).
constexpr char kTokenEnv[] = "QFP_INFLUXDB_TOKEN";

// A string that must be set and not empty.
std::string NonEmptyString(const ConfigNode& node) {
  std::string value = node.String();
  if (value.empty() && node.present()) node.Error("must not be empty");
  return value;
}

// The token from the environment when set, else from `node`.
std::string Token(const ConfigNode& node) {
  if (const char* env = std::getenv(kTokenEnv); env != nullptr) return env;
  return node.String();
}

// A retention duration in any form retention_duration.h reads, at least
// the 1 h every InfluxDB version requires; checked here, once, at load.
std::string CheckedRetention(
    const ConfigNode& node,
    BelowMinimum below_minimum = BelowMinimum::kRefuse) {
  std::string value = node.String("");
  if (absl::Status status =
          ValidateRetentionDuration("", value, below_minimum).status();
      !status.ok()) {
    node.Error(status.message());
  }
  return value;
}

// Why `name` is no measurement name of ours, if it is not: empty, or
// holding anything but ASCII letters, digits, '_', '-' and '.', or starting
// with '_' (InfluxDB 2.x and 3.x reserve those). Line protocol would escape
// a space or a comma, but in a name we choose they are surely a mistake.
std::optional<std::string> MeasurementNameProblem(const std::string& name) {
  if (name.empty()) return "must not be empty";
  if (name.front() == '_') {
    return "must not start with '_' (reserved by InfluxDB)";
  }
  for (const char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-' && c != '.') {
      return absl::StrCat(
          "may hold only ASCII letters, digits, '_', '-' and '.' (found ",
          absl::ascii_isprint(static_cast<unsigned char>(c))
              ? absl::StrCat("'", std::string(1, c), "'")
              : absl::StrCat("byte 0x", absl::Hex(static_cast<unsigned char>(c),
                                                  absl::kZeroPad2)),
          ")");
    }
  }
  return std::nullopt;
}

// Why the line protocol encoder would not write `name` (Butler SOS's
// errorTracking.influxdb.measurementName, which may hold any text) as
// given, if it would not: a control character (a line break becomes a
// space, line_protocol.h) or a trailing backslash (dropped). The encoder
// cleans these in names from a producer; one in the config is the user's
// to fix, so it is refused at load rather than written as another name.
std::optional<std::string> MeasurementChangedByEncoder(
    const std::string& name) {
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::StrCat("holds the control character 0x",
                          absl::Hex(u, absl::kZeroPad2),
                          ", which line protocol cannot carry as written");
    }
  }
  if (!name.empty() && name.back() == '\\') {
    return absl::StrCat(
        "ends in a backslash, which line protocol cannot carry: it would be "
        "written as \"",
        CleanLineProtocolName(name), "\"");
  }
  return std::nullopt;
}

void ReadV1(const ConfigNode& v1, const std::string& host, int port,
            InfluxV1Settings* settings) {
  settings->host = host;
  settings->port = port;
  settings->database = v1["dbName"].String();
  if (settings->database.empty() && v1["dbName"].present()) {
    v1["dbName"].Error("must not be empty");
  }
  settings->auth_enable = v1["auth"]["enable"].Bool(settings->auth_enable);
  if (settings->auth_enable) {
    settings->username = NonEmptyString(v1["auth"]["username"]);
    if (const char* env = std::getenv(kV1PasswordEnv); env != nullptr) {
      settings->password = env;
    } else {
      settings->password = v1["auth"]["password"].String();
    }
  }
  settings->retention_policy_name = v1["retentionPolicy"]["name"].String("");
  if (!settings->retention_policy_name.empty()) {
    settings->retention_policy_duration =
        CheckedRetention(v1["retentionPolicy"]["duration"]);
  }
}

void ReadV2(const ConfigNode& v2, const std::string& host, int port,
            InfluxV2Settings* settings) {
  settings->host = host;
  settings->port = port;
  settings->org = NonEmptyString(v2["org"]);
  settings->bucket = NonEmptyString(v2["bucket"]);
  settings->token = Token(v2["token"]);
  // 2.x authenticates every request.
  if (settings->token.empty() && v2["token"].present()) {
    v2["token"].Error(
        absl::StrCat("must not be empty (or set ", kTokenEnv, ")"));
  }
  settings->description = v2["description"].String("");
  settings->retention_duration =
      CheckedRetention(v2["retentionDuration"], BelowMinimum::kRaise);
}

void ReadV3(const ConfigNode& v3, const std::string& host, int port,
            InfluxV3Settings* settings) {
  settings->host = host;
  settings->port = port;
  settings->database = NonEmptyString(v3["database"]);
  // May be empty: a 3.x server started without authentication.
  settings->token = Token(v3["token"]);
  settings->description = v3["description"].String("");
  settings->retention_duration =
      CheckedRetention(v3["retentionDuration"], BelowMinimum::kRaise);
  settings->write_timeout = absl::Milliseconds(v3["writeTimeout"].Int(
      absl::ToInt64Milliseconds(settings->write_timeout), 1, 3600000));
}

}  // namespace

absl::StatusOr<TrackerConfig> ParseTrackerConfig(const YAML::Node& root,
                                                 absl::string_view source) {
  ConfigErrors errors;
  std::optional<ConfigNode> root_section = ConfigNode::ButlerSos(root, &errors);
  if (!root_section) return errors.ToStatus(source);
  const ConfigNode& sos = *root_section;
  // Every default is an initialiser of TrackerConfig (or of the settings
  // and schema structs it holds); the reads below fall back to it.
  TrackerConfig config;
  config.log_level = ReadLogLevel(sos, config.log_level);
  CheckFailedPollsKeys(sos);

  ConfigNode tracking = sos["errorTracking"];
  config.tracking_enabled = tracking["enable"].Bool(config.tracking_enabled);
  config.log_summary =
      tracking["logSummary"]["enable"].Bool(config.log_summary);
  config.influx_points_enabled =
      tracking["influxdb"]["enable"].Bool(config.influx_points_enabled);
  config.schema.measurement =
      tracking["influxdb"]["measurementName"].String(config.schema.measurement);
  if (config.schema.measurement.empty()) {
    tracking["influxdb"]["measurementName"].Error("must not be empty");
  } else if (std::optional<std::string> changed =
                 MeasurementChangedByEncoder(config.schema.measurement)) {
    tracking["influxdb"]["measurementName"].Error(*changed);
  } else if (absl::Status writable =
                 CheckMeasurementName(config.schema.measurement);
             !writable.ok()) {
    // Else every failure would be refused as unencodable at the stream.
    tracking["influxdb"]["measurementName"].Error(writable.message());
  }

  ConfigNode influx = sos["influxdbConfig"];
  config.influxdb_enabled = influx["enable"].Bool(config.influxdb_enabled);
  if (config.writes_points()) {
    config.influxdb_version = static_cast<int>(influx["version"].Int(1, 3));
    config.max_batch_size = static_cast<int>(
        influx["maxBatchSize"].Int(config.max_batch_size, 1, 10000));
    // A host only: "http://influx" or "influx/" would be dialled as a name.
    const std::string host = influx["host"].Host(PortRule::kNone);
    const int port = static_cast<int>(influx["port"].Int(1, 65535));
    switch (config.influxdb_version) {
      case 1:
        ReadV1(influx["v1Config"], host, port, &config.v1);
        break;
      case 2:
        ReadV2(influx["v2Config"], host, port, &config.v2);
        break;
      case 3:
        ReadV3(influx["v3Config"], host, port, &config.v3);
        break;
      default:
        break;  // out of range: influx["version"] already reported it
    }
  }

  ConfigNode own = sos["failedPolls"]["tracker"];
  config.listen = own["listen"].Host(PortRule::kListen, config.listen);
  config.schema.static_tags = own["tags"].StringMap();
  config.schema.include_server_tags =
      own["includeServerTags"].Bool(config.schema.include_server_tags);
  // The tracker refuses a failure whose server tag key it cannot write
  // whatever includeServerTags says (failure_check.h), so a definition that
  // would make it refuse every failure is refused here too.
  const std::vector<std::string> server_tag_keys =
      ReadServerTagsDefinition(sos);
  CheckStaticTagKeys(
      own["tags"], config.schema.static_tags,
      config.schema.include_server_tags ? &server_tag_keys : nullptr);
  config.flush_interval = absl::Milliseconds(own["flushIntervalMs"].Int(
      absl::ToInt64Milliseconds(config.flush_interval), 10, 600000));
  config.max_buffered_points = static_cast<size_t>(own["maxBufferedPoints"].Int(
      static_cast<int64_t>(config.max_buffered_points), 1000, 100000000));
  config.dedupe_window = static_cast<size_t>(own["dedupeWindow"].Int(
      static_cast<int64_t>(config.dedupe_window), 0, 100000000));
  config.wal_directory = own["walDirectory"].WritableDirectory(
      "acknowledge failures once queued in memory");
  config.wal_max_bytes = static_cast<uint64_t>(
      own["walMaxBytes"].Int(static_cast<int64_t>(config.wal_max_bytes),
                             int64_t{1} << 20, int64_t{1} << 40));
  config.metrics_listen = own["metricsListen"].Host(PortRule::kListen, "");
  config.missed_heartbeats = static_cast<int>(
      own["missedHeartbeats"].Int(config.missed_heartbeats, 0, 1000));
  config.poll_attempts_enabled =
      own["pollAttempts"]["enable"].Bool(config.poll_attempts_enabled);
  config.poll_attempts_measurement =
      own["pollAttempts"]["measurementName"].String(
          config.poll_attempts_measurement);
  if (std::optional<std::string> why =
          MeasurementNameProblem(config.poll_attempts_measurement)) {
    own["pollAttempts"]["measurementName"].Error(*why);
  } else if (config.poll_attempts_enabled &&
             config.poll_attempts_measurement == config.schema.measurement) {
    // Attempts points have other fields and tags: in the errors measurement
    // they would mix with error points on every dashboard.
    own["pollAttempts"]["measurementName"].Error(absl::StrCat(
        "must differ from the errors measurement \"", config.schema.measurement,
        "\" (Butler-SOS.errorTracking.influxdb.measurementName)"));
  }
  config.coverage_enabled =
      own["coverage"]["enable"].Bool(config.coverage_enabled);
  if (config.coverage_enabled) {
    config.coverage_targets = ReadConfiguredTargets(sos);
  }
  config.tls = ReadGrpcTls(own["tls"], GrpcTlsSide::kServer);

  if (!errors.empty()) return errors.ToStatus(source);
  return config;
}

absl::StatusOr<TrackerConfig> LoadTrackerConfig(const std::string& path) {
  absl::StatusOr<YAML::Node> root = ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParseTrackerConfig(*root, path);
}

}  // namespace qfp::tracker
