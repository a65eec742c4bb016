// The InfluxDB 3.x destination (Core, Enterprise, Cloud Serverless, Cloud
// Dedicated, Clustered): /api/v3/configure/database to prepare where the
// product has it (Core, Enterprise), /api/v2/write to write.
#ifndef QFP_TRACKER_INFLUX_V3_WRITER_H_
#define QFP_TRACKER_INFLUX_V3_WRITER_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "tracker-service/influx_writer.h"

namespace qfp::tracker {

// From Butler SOS's influxdbConfig (host, port) and influxdbConfig.v3Config.
struct InfluxV3Settings {
  std::string host;  // name or IP address (an IPv6 one with or without [])
  int port = 8181;
  std::string database;
  // Sent as `Authorization: Token ...` on writes and `Bearer ...` on /api/v3
  // management calls; empty sends no Authorization header (a server started
  // without authentication).
  std::string token;
  // Kept for logs: InfluxDB 3's database API has no description.
  std::string description;
  // Any form ParseRetentionDuration (retention_duration.h) reads; sent, in
  // InfluxQL form ("30d", "8760h"), as the retention_period of a database the
  // tracker creates; empty, "0" or INF: none (data kept forever). Never
  // applied to an existing database.
  std::string retention_duration;
  // v3Config.writeTimeout: the timeout of every HTTP request.
  absl::Duration write_timeout = absl::Seconds(10);
  bool gzip = true;  // compress write bodies
};

// Prepare(): GET /api/v3/configure/database?format=json; when the database
// is not listed, POST /api/v3/configure/database {"db", "retention_period"}.
// A create answered 409 (it exists) counts as success; an existing database
// is left as it is. The list is read in each shape InfluxData documents for
// it ({"databases": [names]}, or an array of objects naming the database in
// "iox::database" or "db"). Database creation is optional: the /api/v3
// management endpoints exist only on Core and Enterprise, and a token may be
// allowed only to write; a 4xx answer (404 included) is logged once and
// Prepare() succeeds, the write decides. Errors: InvalidArgument naming the
// key path for unusable settings; Unavailable/DeadlineExceeded for a server
// or transport failure (retried).
// Write(): POST /api/v2/write?bucket=<database>&precision=ns, the
// v2-compatible endpoint that every InfluxDB 3 product serves (Core and
// Enterprise: docs.influxdata.com/influxdb3/core/write-data/http-api/
// compatibility-apis, "POST /api/v2/write?bucket=mydb&precision=ns"; Cloud
// Serverless, Dedicated and Clustered have no /api/v3/write_lp), and the one
// Butler SOS writes through; `Authorization: Token` (the scheme every 3.x
// product takes on that endpoint; management calls send Bearer),
// gzip-compressed;
// answers map as in influx_api.h. For a 400 that lists the rejected lines
// (`data`), the message names their line numbers and errors.
// integer_numbers() is true: Butler SOS writes integers to 3.x.
std::unique_ptr<InfluxWriter> MakeInfluxV3Writer(InfluxV3Settings settings);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_V3_WRITER_H_
