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
  // retentionPolicy.name and .duration: the default policy of a database
  // the tracker creates; ignored for an existing database. Empty name: the
  // server's own default policy (autogen). The duration in any form
  // ParseRetentionDuration (retention_duration.h) reads.
  std::string retention_policy_name, retention_policy_duration;
  absl::Duration timeout = absl::Seconds(10);  // per HTTP request
  bool gzip = true;                            // compress write bodies
};

// Prepare() behaves as Butler SOS does: SHOW DATABASES; only when the
// database is missing, `CREATE DATABASE "db" WITH DURATION <d> REPLICATION 1
// NAME "rp"` (or a plain CREATE DATABASE without a policy name), so that the
// named policy becomes the default of a database the tracker created. An
// existing database is never altered; one line at info level says where the
// points go (its default policy, named when this user may read it).
// Management is optional: a user that may not list or create databases (a
// write-only `GRANT WRITE` user) gets one warning and Prepare() succeeds; the
// write decides. Errors: InvalidArgument naming the key path for settings no
// retry can fix (empty dbName, a line break in a name, a retention duration
// that is not one or below InfluxDB's 1 h minimum; config load refuses those
// first); Unavailable/DeadlineExceeded/Unknown while the server cannot be
// reached or answers what is not InfluxDB (retry); FailedPrecondition when
// InfluxDB refused the CREATE statement for another reason.
// Write(): POST /write?db=&precision=ns, no `rp=` (Butler SOS writes into the
// default policy too); answers map to WriteResult kinds (influx_api.h).
std::unique_ptr<InfluxWriter> MakeInfluxV1Writer(InfluxV1Settings settings);

// Exposed for tests. `"name"` with `\` and `"` escaped: an InfluxQL quoted
// identifier. InvalidArgument for a name containing a line break, which
// InfluxQL cannot quote.
absl::StatusOr<std::string> QuoteInfluxQlIdentifier(absl::string_view name);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_V1_WRITER_H_
