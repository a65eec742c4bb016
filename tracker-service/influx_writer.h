// The destination seam of the tracker: one implementation per InfluxDB write
// API (1.x, 2.x, 3.x). The write pipeline decides about batching and retries
// from the WriteResult; writers only speak HTTP.
#ifndef QFP_TRACKER_INFLUX_WRITER_H_
#define QFP_TRACKER_INFLUX_WRITER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace qfp::tracker {

struct WriteResult {
  enum class Kind {
    kOk,         // 2xx: every line stored
    kBadPoints,  // 400/422: some lines rejected (partial write possible)
    // 400 refusing the request itself (bad database name, encoding): no line
    // is at fault, so none is dropped; keep the batch and retry slowly.
    kRequestRejected,
    kTooLarge,   // 413: body too large; split and retry
    kThrottled,  // 429/503: retry after `retry_after`
    kAuth,       // 401/403: credentials wrong; keep points, retry slowly
    kNotFound,   // 404: database/bucket missing; Prepare() again
    kRetryable,  // network error or other 5xx: back off and retry
  };
  Kind kind = Kind::kOk;
  int http_status = 0;         // 0 when no response arrived
  std::string message;         // server's error text or transport error
  absl::Duration retry_after;  // from Retry-After, when given
};

class InfluxWriter {
 public:
  virtual ~InfluxWriter() = default;

  // Makes the destination ready: creates the database (and retention policy
  // or bucket) when missing, never altering one that exists. Management
  // calls are optional: when refused or answered empty it logs once what it
  // could not check and succeeds, since only the write decides. Errors:
  // InvalidArgument or FailedPrecondition for what no retry can fix (the
  // message names the key path; the tracker stops at start), any other code
  // (Unavailable, DeadlineExceeded, ...) while the server is unreachable:
  // retried. Idempotent; called at start and after kNotFound.
  virtual absl::Status Prepare() = 0;

  // Writes `lines` (newline-separated line protocol, precision ns). Blocks
  // for at most the writer's own timeout.
  virtual WriteResult Write(absl::string_view lines) = 0;

  // Whether numeric fields are integers (2.x, 3.x) or floats (1.x).
  virtual bool integer_numbers() const = 0;

  // "influxdb v1 http://127.0.0.1:8086 db=senseops", for logs.
  virtual std::string Describe() const = 0;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_INFLUX_WRITER_H_
