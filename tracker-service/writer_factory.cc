#include "tracker-service/writer_factory.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/influx_v2_writer.h"
#include "tracker-service/influx_v3_writer.h"
#include "tracker-service/retention_duration.h"

namespace qfp::tracker {
namespace {

// 2.x and 3.x raise a bucket's retention under one hour to it; 1.x
// refuses it (retention_duration.h).
absl::Status CheckRetention(absl::string_view key, absl::string_view value,
                            BelowMinimum below_minimum = BelowMinimum::kRaise) {
  return ValidateRetentionDuration(key, value, below_minimum).status();
}

absl::Status CheckV2(const InfluxV2Settings& v2) {
  constexpr char kKey[] = "influxdbConfig.v2Config.";
  if (v2.org.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kKey, "org is empty"));
  }
  if (v2.bucket.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kKey, "bucket is empty"));
  }
  // 2.x authenticates every request: without a token nothing would work.
  if (v2.token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKey, "token is empty (set it, or QFP_INFLUXDB_TOKEN)"));
  }
  return CheckRetention(absl::StrCat(kKey, "retentionDuration"),
                        v2.retention_duration);
}

absl::Status CheckV3(const InfluxV3Settings& v3) {
  constexpr char kKey[] = "influxdbConfig.v3Config.";
  if (v3.database.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kKey, "database is empty"));
  }
  if (v3.write_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKey, "writeTimeout must be positive"));
  }
  return CheckRetention(absl::StrCat(kKey, "retentionDuration"),
                        v3.retention_duration);
}

}  // namespace

absl::StatusOr<std::unique_ptr<InfluxWriter>> MakeInfluxWriter(
    const TrackerConfig& config) {
  switch (config.influxdb_version) {
    case 1:
      if (!config.v1.retention_policy_name.empty()) {
        if (absl::Status status = CheckRetention(
                "influxdbConfig.v1Config.retentionPolicy.duration",
                config.v1.retention_policy_duration, BelowMinimum::kRefuse);
            !status.ok()) {
          return status;
        }
      }
      return MakeInfluxV1Writer(config.v1);
    case 2:
      if (absl::Status status = CheckV2(config.v2); !status.ok()) {
        return status;
      }
      return MakeInfluxV2Writer(config.v2);
    case 3:
      if (absl::Status status = CheckV3(config.v3); !status.ok()) {
        return status;
      }
      return MakeInfluxV3Writer(config.v3);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "influxdbConfig.version: InfluxDB ", config.influxdb_version,
          " is not supported (1, 2 or 3)"));
  }
}

}  // namespace qfp::tracker
