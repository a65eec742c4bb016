// Chooses the InfluxDB writer for influxdbConfig.version, and the settings
// helpers the writers share (HTTP ones are in influx_http.h).
#ifndef QFP_TRACKER_INFLUX_WRITERS_H_
#define QFP_TRACKER_INFLUX_WRITERS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tracker-service/influx_writer.h"
#include "tracker-service/tracker_config.h"

namespace qfp::tracker {

// The writer for `config.influxdb_version` (1, 2 or 3) with that version's
// settings. InvalidArgument, naming the config key, for another version or
// for settings the writer could never use (an empty bucket, a v2 token left
// empty, a retention duration that is not one); nothing is contacted here.
absl::StatusOr<std::unique_ptr<InfluxWriter>> MakeInfluxWriter(
    const TrackerConfig& config);

// "http://host:port"; an IPv6 literal gets the brackets a URL needs.
std::string InfluxBaseUrl(absl::string_view host, int port);

// A retention duration as Butler SOS's v2Config/v3Config.retentionDuration
// and the influx CLI write it: one or more <digits><unit> with unit ns, us,
// µs, ms, s, m, h, d or w ("10d", "1h30m"). Empty and "0" mean infinite and
// give zero. InvalidArgument for anything else.
absl::StatusOr<absl::Duration> ParseRetentionDuration(
    absl::string_view duration);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_WRITERS_H_
