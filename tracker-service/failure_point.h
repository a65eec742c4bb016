// Maps a PollFailure to the InfluxDB point Butler SOS writes for it (§3 of
// the compatibility reference).
#ifndef QFP_TRACKER_FAILURE_POINT_H_
#define QFP_TRACKER_FAILURE_POINT_H_

#include <map>
#include <string>

#include "failedpolls/v1/failed_polls.pb.h"
#include "tracker-service/line_protocol.h"

namespace qfp {

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

// Tags: error_type, server_name, host, virtual_proxy (PROXY_API), then the
// schema's. Fields: error_count=1, error_category, error_code, http_status,
// request_url, request_timeout_ms, remote_address, remote_port, syscall; each
// optional one only when set. Timestamp: the failure's occurred_at.
Point FailureToPoint(const failedpolls::v1::PollFailure& failure,
                     const PointSchema& schema);

}  // namespace qfp

#endif  // QFP_TRACKER_FAILURE_POINT_H_
