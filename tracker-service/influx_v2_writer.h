// The InfluxDB 2.x destination: /api/v2/buckets and /api/v2/orgs to prepare,
// /api/v2/write to write.
#ifndef QFP_TRACKER_INFLUX_V2_WRITER_H_
#define QFP_TRACKER_INFLUX_V2_WRITER_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "tracker-service/influx_writer.h"

namespace qfp::tracker {

// From Butler SOS's influxdbConfig (host, port) and influxdbConfig.v2Config.
struct InfluxV2Settings {
  std::string host;  // name or IP address (an IPv6 one with or without [])
  int port = 8086;
  std::string org;     // organization name
  std::string bucket;  // bucket name
  std::string token;   // API token, sent as `Authorization: Token ...`
  // Used only when the bucket is created.
  std::string description;
  // Any form ParseRetentionDuration (retention_duration.h) reads: "10d",
  // "1h30m", "30days", "1y"; empty, "0" or INF: keep data forever. At least
  // 1h otherwise (InfluxDB 2.x's minimum retention period).
  std::string retention_duration;
  absl::Duration timeout = absl::Seconds(10);  // per HTTP request
  bool gzip = true;                            // compress write bodies
};

// Prepare(): GET /api/v2/buckets?name=&org=; when the bucket is not listed,
// GET /api/v2/orgs?org= for the organization's ID and POST /api/v2/buckets
// {orgID, name, description, retentionRules} (an expire rule of
// retentionDuration's seconds; none when infinite). A bucket that exists is
// left as it is (its retention is never changed). A create answered
// "already exists" (another tracker won the race) counts as success. Every
// management call is optional: an empty list, 401/403/404 or another 4xx
// (a token allowed only to write its bucket) is logged once and Prepare()
// succeeds; the write decides. Errors: InvalidArgument naming the key path
// for unusable settings (empty org/bucket, a retention that is not a
// duration or under 1 h), Unavailable/DeadlineExceeded for a server or
// transport failure (retried).
// Write(): POST /api/v2/write?org=&bucket=&precision=ns with
// `Authorization: Token`, the body gzip-compressed; answers map to
// WriteResult kinds as in influx_api.h (ClassifyWriteAnswer).
// integer_numbers() is true: Butler SOS writes integers to 2.x.
std::unique_ptr<InfluxWriter> MakeInfluxV2Writer(InfluxV2Settings settings);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_V2_WRITER_H_
