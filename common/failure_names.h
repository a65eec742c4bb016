// The spellings of the proto enums as they appear in InfluxDB and in logs.
// Both services use them: the poller to log, the tracker to write points.
#ifndef QFP_COMMON_FAILURE_NAMES_H_
#define QFP_COMMON_FAILURE_NAMES_H_

#include <string>

#include "absl/strings/string_view.h"
#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp {

// "HEALTH_API", "PROXY_API", "APP_NAMES_EXTRACT"; "UNSPECIFIED" otherwise.
absl::string_view SourceName(failedpolls::v1::PollSource source);

// "timeout", "http_5xx", ... (the §4 vocabulary); "unknown" for values this
// build does not know, so a newer producer never makes us write garbage.
absl::string_view CategoryName(failedpolls::v1::ErrorCategory category);

// A one-line description of a failure for logs, e.g.
// `HEALTH_API server=sense1 host=sense1:4747 category=timeout code=ECONNABORTED
//  url=https://sense1:4747/engine/healthcheck: <message>`.
std::string DescribeFailure(const failedpolls::v1::PollFailure& failure);

// The most bytes of a name the tracker accepts in a PollFailure (server_name,
// host, virtual_proxy, each server tag key and value): the tracker refuses
// longer ones (tracker-service/failure_check.h), so the poller's config
// refuses them at load.
inline constexpr size_t kMaxFailureNameBytes = 1024;

// Whether `text` holds a control character (U+0000..U+001F, U+007F), which
// the tracker refuses in every string of a PollFailure.
bool HasControlCharacter(absl::string_view text);

}  // namespace qfp

#endif  // QFP_COMMON_FAILURE_NAMES_H_
