// Retention durations as Butler SOS users write them
// (influxdbConfig.v1Config.retentionPolicy.duration,
// v2Config.retentionDuration, v3Config.retentionDuration), read once at config
// load and mapped to what each InfluxDB version accepts.
//
// Facts (checked, with their sources):
// - InfluxQL duration literals take the units ns, u/µ, ms, s, m, h, d, w, and
//   INF; there is no year unit (InfluxQL spec, "Durations",
//   docs.influxdata.com/influxdb/v1.8/query_language/spec/#durations).
// - InfluxDB 1.x refuses a retention policy shorter than one hour:
//   `MinRetentionPolicyDuration = time.Hour` in influxdb's services/meta
//   data.go, "retention policy duration must be at least 1h0m0s"; INF or 0 is
//   infinite. Also checked against influxd 1.6.7 (tests/integration/
//   test_influx_sites.py).
// - InfluxDB 2.x: "The minimum retention period is one hour" and "0 is
//   infinite" (docs.influxdata.com/influxdb/v2.7/reference/cli/influx/bucket/
//   create); the API takes `retentionRules: [{type: expire, everySeconds}]`,
//   no rule meaning never expire.
// - InfluxDB 3: buckets/databases have a retention period of at least one
//   hour too, infinite by default (docs.influxdata.com/influxdb3/
//   cloud-serverless/admin/buckets: "The minimum retention period for an
//   InfluxDB bucket is 1 hour").
#ifndef QFP_TRACKER_RETENTION_DURATION_H_
#define QFP_TRACKER_RETENTION_DURATION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace qfp::tracker {

// The shortest finite retention every InfluxDB version (1.x, 2.x, 3.x)
// accepts (see the facts above).
inline constexpr absl::Duration kMinRetention = absl::Hours(1);

// A parsed retention duration. Immutable value; thread-compatible.
struct RetentionDuration {
  // True for "keep forever": empty, "0", INF, "infinite", "inf", "forever",
  // "never".
  bool infinite = true;
  absl::Duration duration;  // > 0 when !infinite
  // The text asked for less than kMinRetention and `duration` was raised to
  // it (BelowMinimum::kRaise only).
  bool raised_to_minimum = false;

  // InfluxQL literal for CREATE DATABASE ... WITH DURATION: "INF", or the
  // duration in whole units ("30d", "8760h", "90m" style via h/m/s), as
  // InfluxQL has no year unit.
  std::string InfluxQl() const;
  // expire rule seconds for 2.x; 0 when infinite.
  int64_t Seconds() const;
  // For logs: "infinite" or absl's form ("720h").
  std::string ToString() const;
};

// Parses `text` as a Butler SOS user may have written a retention duration:
// - empty, "0", "INF", "inf", "infinite", "forever", "never" (any case):
//   infinite;
// - InfluxDB durations, one or more <number><unit> with unit ns, us, µs, u,
//   µ, ms, s, m, h, d, w ("30d", "1h30m");
// - unit words, singular or plural, with or without a space: second(s),
//   sec(s), minute(s), min(s), hour(s), hr(s), day(s), week(s), month(s) (30
//   days), year(s) (365 days), and y, mo ("30days", "1 year", "2w", "1y").
// InvalidArgument (message without a key path) for anything else, for a
// fraction, or for a value that overflows.
absl::StatusOr<RetentionDuration> ParseRetentionDuration(
    absl::string_view text);

// What to do with a finite value shorter than kMinRetention.
enum class BelowMinimum {
  // Refuse it. For 1.x's retentionPolicy.duration: Butler SOS sends it in
  // CREATE DATABASE, which InfluxDB refuses, so such a config never worked.
  kRefuse,
  // Raise it to kMinRetention (raised_to_minimum says so, for a log line).
  // For 2.x/3.x's retentionDuration: Butler SOS accepts any value there
  // because it never sends it, so a config that works with Butler SOS
  // ("30m") must start; the value only matters for a bucket or database
  // the tracker creates, and the server needs at least one hour.
  kRaise,
};

// ParseRetentionDuration plus the servers' minimum: InvalidArgument naming
// `key_path` (no prefix when empty) when `text` cannot be parsed, or is
// finite and shorter than kMinRetention under BelowMinimum::kRefuse.
absl::StatusOr<RetentionDuration> ValidateRetentionDuration(
    absl::string_view key_path, absl::string_view text,
    BelowMinimum below_minimum = BelowMinimum::kRefuse);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_RETENTION_DURATION_H_
