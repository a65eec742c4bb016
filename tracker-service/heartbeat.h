// What the tracker makes of a producer's Heartbeat (failed_polls.proto):
// the check that a heartbeat may be used, the poll attempts points it
// becomes, and the error points the tracker writes on its own (a silent
// poller, a target nobody polls). docs/compatibility.md "Our additions"
// states the schemas; the dashboards are built on them.
//
// Pure and thread-safe.
#ifndef QFP_TRACKER_HEARTBEAT_H_
#define QFP_TRACKER_HEARTBEAT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "failedpolls/v1/failed_polls.pb.h"
#include "tracker-service/failure_check.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {

// Bounds of Heartbeat.interval_ms the tracker accepts.
inline constexpr absl::Duration kMinHeartbeatInterval = absl::Milliseconds(100);
inline constexpr absl::Duration kMaxHeartbeatInterval = absl::Hours(24);
// Most targets in one heartbeat (our poller sends one per plan target).
inline constexpr int kMaxHeartbeatTargets = 100000;

// Why a heartbeat cannot be used, without its bytes (they may be hostile);
// nullopt when it can. Rules: poller_id set; poller_id and instance_id
// within limits.max_id_bytes, names within limits.max_name_bytes, no control
// character anywhere (the same rules as a PollFailure's strings, for the
// same reasons: failure_check.h); interval_ms within the bounds above;
// sent_at a valid timestamp at most limits.max_future_skew after `now`; at
// most kMaxHeartbeatTargets targets, each with a known source, a
// server_name, failed <= attempted and attempted <= INT64_MAX (written as
// an InfluxDB integer). A heartbeat is used whole or not at all.
std::optional<std::string> CheckHeartbeat(
    const failedpolls::v1::Heartbeat& heartbeat, const FailureLimits& limits,
    absl::Time now);

// The poll attempts measurement (failedPolls.tracker.pollAttempts).
struct AttemptsSchema {
  std::string measurement = "butler_sos_poll_attempts";
  // The tracker's static tags (failedPolls.tracker.tags), as on failure
  // points; never replacing the tags below.
  std::map<std::string, std::string> static_tags;
};

// One point per target of a checked `heartbeat`, in its order:
//   <measurement>,error_type=<source>,host=<host>,poller_id=<poller_id>,
//     server_name=<server_name>[,virtual_proxy=<vp>] attempted=<n>i,failed=<n>i
//     <sent_at ns>
// virtual_proxy only for PROXY_API (and not empty); the fields are always
// integers, whatever the InfluxDB version (they are counts, and a new
// measurement has no float history to match). Escaped by EncodeLine.
std::vector<Point> HeartbeatToAttemptsPoints(
    const failedpolls::v1::Heartbeat& heartbeat, const AttemptsSchema& schema);

// What a tracker-made error point is about.
struct ErrorPointSubject {
  std::string error_type;  // "POLLER", or a PollSource name
  std::string server_name;
  std::string host;
  std::string virtual_proxy;  // PROXY_API only
};

// The errors-measurement point the tracker writes on its own: the same
// measurement, tags and field types as a failure point (FailureToPoint,
// including the schema's static tags), with error_category `category`
// ("silent", "not_polled"), error_count 1, no other field, at `at`.
Point TrackerErrorPoint(const ErrorPointSubject& subject,
                        absl::string_view category, absl::Time at,
                        const PointSchema& schema);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_HEARTBEAT_H_
