// The InfluxDB 3.x destination (Core, Enterprise): /api/v3/configure/database
// to prepare, /api/v3/write_lp to write.
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
  // Sent as `Authorization: Bearer ...`; empty sends no Authorization header
  // (a server started without authentication).
  std::string token;
  // Kept for logs: InfluxDB 3's database API has no description.
  std::string description;
  // Sent as the new database's retention_period ("10d"); empty or "0": none
  // (data kept forever).
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
// "iox::database" or "db"); an answer in none of them leads to the create
// request, whose 409 then tells. Errors as for the 2.x writer.
// Write(): POST /api/v3/write_lp?db=&precision=nanosecond (the spelling the
// 3.x reference documents for that endpoint) with `Authorization: Bearer`,
// gzip-compressed; answers map as in influx_api.h. For a 400/422 that lists
// the rejected lines (`data[]`), the message names their line numbers and
// errors.
// integer_numbers() is true: Butler SOS writes integers to 3.x.
std::unique_ptr<InfluxWriter> MakeInfluxV3Writer(InfluxV3Settings settings);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_V3_WRITER_H_
