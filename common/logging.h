// Process-wide logging setup (spdlog), shared by both services.
#ifndef QFP_COMMON_LOGGING_H_
#define QFP_COMMON_LOGGING_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace qfp {

// Logs to stderr as `2026-11-24T10:00:00.123Z info  [qs-poller] message`,
// UTC. `level` is one of trace, debug, info, warn, error (Butler SOS's
// "verbose" and "silly" are accepted as debug and trace).
absl::Status InitLogging(absl::string_view service, absl::string_view level);

}  // namespace qfp

#endif  // QFP_COMMON_LOGGING_H_
