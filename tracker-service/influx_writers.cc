#include "tracker-service/influx_writers.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/influx_v2_writer.h"
#include "tracker-service/influx_v3_writer.h"

namespace qfp::tracker {
namespace {

// InfluxDB 2.x refuses shorter retention periods (influx bucket create).
constexpr absl::Duration kMinV2Retention = absl::Hours(1);

absl::Status CheckRetention(absl::string_view key, absl::string_view value,
                            absl::Duration minimum) {
  absl::StatusOr<absl::Duration> retention = ParseRetentionDuration(value);
  if (!retention.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": ", retention.status().message()));
  }
  if (*retention > absl::ZeroDuration() && *retention < minimum) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": \"", value, "\" is shorter than the minimum of ",
                     absl::FormatDuration(minimum), " (0 keeps data forever)"));
  }
  return absl::OkStatus();
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
                        v2.retention_duration, kMinV2Retention);
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
                        v3.retention_duration, absl::Nanoseconds(1));
}

}  // namespace

absl::StatusOr<std::unique_ptr<InfluxWriter>> MakeInfluxWriter(
    const TrackerConfig& config) {
  switch (config.influxdb_version) {
    case 1:
      // The 1.x writer checks its settings in Prepare(), as it always has.
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

std::string InfluxBaseUrl(absl::string_view host, int port) {
  if (absl::StrContains(host, ':') && !absl::StartsWith(host, "[")) {
    return absl::StrCat("http://[", host, "]:", port);
  }
  return absl::StrCat("http://", host, ":", port);
}

absl::StatusOr<absl::Duration> ParseRetentionDuration(
    absl::string_view duration) {
  const absl::string_view text = absl::StripAsciiWhitespace(duration);
  if (text.empty() || text == "0") return absl::ZeroDuration();
  auto bad = [&duration](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", duration, "\" is not a retention duration (", why,
                     "; e.g. 10d, 1h30m, or 0 to keep data forever)"));
  };
  // Longest units first: "ms" is milliseconds, not minutes then seconds.
  struct Unit {
    absl::string_view name;
    absl::Duration size;
  };
  const Unit kUnits[] = {
      {"ns", absl::Nanoseconds(1)},
      {"us", absl::Microseconds(1)},
      {"\xC2\xB5s", absl::Microseconds(1)},  // µs
      {"ms", absl::Milliseconds(1)},
      {"s", absl::Seconds(1)},
      {"m", absl::Minutes(1)},
      {"h", absl::Hours(1)},
      {"d", absl::Hours(24)},
      {"w", absl::Hours(24 * 7)},
  };
  absl::Duration total;
  size_t i = 0;
  while (i < text.size()) {
    const size_t digits_start = i;
    while (i < text.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    if (i == digits_start) return bad("expected a number");
    int64_t count = 0;
    if (!absl::SimpleAtoi(text.substr(digits_start, i - digits_start),
                          &count)) {
      return bad("number too large");
    }
    const absl::string_view rest = text.substr(i);
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (absl::StartsWith(rest, candidate.name)) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return bad("unit must be ns, us, ms, s, m, h, d or w");
    i += unit->name.size();
    total += count * unit->size;
    // Durations saturate instead of overflowing.
    if (total == absl::InfiniteDuration()) return bad("too long");
  }
  return total;
}

}  // namespace qfp::tracker
