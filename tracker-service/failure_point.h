// Maps a PollFailure to the InfluxDB point Butler SOS writes for it (§3 of
// the compatibility reference).
#ifndef QFP_TRACKER_FAILURE_POINT_H_
#define QFP_TRACKER_FAILURE_POINT_H_

#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "common/failure_names.h"
#include "failedpolls/v1/failed_polls.pb.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {

// What the tracker's config decides about every point.
struct PointSchema {
  std::string measurement = "butler_sos_errors";
  // Added to every point; a failure's own tags win on a name clash.
  std::map<std::string, std::string> static_tags;
  // Write the failure's server_tags as tags (Butler SOS writes none).
  bool include_server_tags = false;
  // InfluxDB 1.x takes numeric fields as floats; 2.x and 3.x as integers.
  bool integer_numbers = false;
};

// Whether `key` is one of the four tags Butler SOS writes from the failure
// itself (error_type, server_name, host, virtual_proxy), which no static or
// server tag replaces. In common/failure_names.h so both configs check
// tag keys by it (CheckTagKey).
using ::qfp::IsFailureTag;

// Tags: error_type, server_name, host, virtual_proxy (PROXY_API, when not
// empty), then the schema's static tags and, when asked for, the failure's
// server_tags. On a clash the failure's server tags beat static tags, and the
// four tags above are never replaced by either. Empty values are left out.
// Fields: error_count=1, error_category, error_code, http_status,
// request_url, request_timeout_ms, remote_address, remote_port, syscall; each
// optional one only when set (strings: when not empty). Numbers are floats,
// or int64 when `schema.integer_numbers`.
// Timestamp: the failure's occurred_at in ns. The caller guarantees it is set
// (an unset one would give the epoch); values beyond int64 ns are clamped.
Point FailureToPoint(const failedpolls::v1::PollFailure& failure,
                     const PointSchema& schema);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_FAILURE_POINT_H_
