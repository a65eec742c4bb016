// Chooses the InfluxDB writer for influxdbConfig.version and checks that
// version's settings before building it.
#ifndef QFP_TRACKER_WRITER_FACTORY_H_
#define QFP_TRACKER_WRITER_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "tracker-service/influx_writer.h"
#include "tracker-service/tracker_config.h"

namespace qfp::tracker {

// The writer for `config.influxdb_version` (1, 2 or 3) with that version's
// settings. InvalidArgument, naming the config key, for another version or
// for settings the writer could never use (an empty bucket, a v2 token left
// empty, a retention duration that is not one); nothing is contacted here.
// Thread-safe (reads `config` only).
absl::StatusOr<std::unique_ptr<InfluxWriter>> MakeInfluxWriter(
    const TrackerConfig& config);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_WRITER_FACTORY_H_
