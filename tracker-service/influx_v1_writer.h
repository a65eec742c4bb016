// The InfluxDB 1.x destination: /query to prepare, /write to write.
#ifndef QFP_TRACKER_INFLUX_V1_WRITER_H_
#define QFP_TRACKER_INFLUX_V1_WRITER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tracker-service/influx_writer.h"

namespace qfp::tracker {

// From Butler SOS's influxdbConfig (host, port) and influxdbConfig.v1Config.
struct InfluxV1Settings {
  std::string host;  // name or IP address (an IPv6 one with or without [])
  int port = 8086;
  std::string database;
  // Sent as HTTP basic auth, which InfluxDB 1.x accepts like u/p parameters
  // but which never puts the password into a URL (or a log line).
  bool auth_enable = false;
  std::string username, password;
  // Created as the database's default policy when missing; empty: none.
  std::string retention_policy_name, retention_policy_duration;
  absl::Duration timeout = absl::Seconds(10);  // per HTTP request
  bool gzip = true;                            // compress write bodies
};

// Prepare(): CREATE DATABASE (idempotent in 1.x), then, when a retention
// policy is named and SHOW RETENTION POLICIES lacks it, CREATE RETENTION
// POLICY ... REPLICATION 1 DEFAULT. An existing policy is left as it is, even
// with another duration. When the user may not create databases (no admin
// privilege), an existing database is accepted; when it may not list
// retention policies (1.x wants READ), the policy is assumed to exist, with a
// warning (a write into a missing one answers kNotFound).
// Write(): POST /write?db=&rp=&precision=ns; answers map to WriteResult
// kinds (see influx_writer.h); an answer it does not understand is
// kRetryable, never a reason to drop points.
// Settings are checked only when used: Prepare() returns InvalidArgument for
// an empty database, a bad identifier (line break) or a malformed duration.
std::unique_ptr<InfluxWriter> MakeInfluxV1Writer(InfluxV1Settings settings);

// Exposed for tests. `"name"` with `\` and `"` escaped: an InfluxQL quoted
// identifier. InvalidArgument for a name containing a line break, which
// InfluxQL cannot quote.
absl::StatusOr<std::string> QuoteInfluxQlIdentifier(absl::string_view name);

// Whether `duration` is an InfluxQL duration literal: INF, or one or more
// <digits><unit> with unit ns, u, µ, ms, s, m, h, d, w ("30d", "1h30m").
bool IsInfluxQlDuration(absl::string_view duration);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_V1_WRITER_H_
