// What the tracker accepts from a producer: every PollFailure is checked on
// its own before it is stored, so that one bad item is refused alone (with
// a reason and REFUSAL_CODE_INVALID_ARGUMENT) and the rest of its request,
// and the stream, go on. A producer is not trusted: it may be another
// program, buggy, or hostile (issue 11).
//
// Rules, and why:
//   * The id is present: poller_id non-empty, sequence > 0 (dedupe needs it).
//   * Enums are values this version knows: source must be one of the three
//     APIs (it becomes the `error_type` tag); error_category may be
//     UNSPECIFIED (written as "unknown") but not an unknown number.
//   * Every string is at most its limit in bytes (FailureLimits) and holds
//     no control character (U+0000..U+001F, U+007F). Refused, not escaped:
//     a tag or field with a line break would be changed on the way to
//     InfluxDB, and a log line could be forged with one. Our poller sends
//     none (its body previews replace them with '?').
//   * UTF-8 is not checked here because it cannot arrive: protobuf's parser
//     refuses a proto3 string that is not valid UTF-8, so the request is
//     refused while it is read (stream_messages.h) and the stream ends with
//     INVALID_ARGUMENT naming the failure. A producer must therefore never
//     send one (protobuf 3.21 serializes it with only a logged error; our
//     poller refuses a config file that is not UTF-8).
//   * At most max_server_tags server tags, each key and value within limits
//     (too_long, bad_text).
//   * No server tag key that is empty, or that line protocol would change
//     into a key that is empty, or one of our own tags (IsOwnTag: `host\`
//     would become `host`), or another server tag key (`site` and `site\`);
//     no key exactly one of our own tags but `host` and `server_name` (kept
//     for Butler SOS's files), and no key `time` (InfluxDB refuses the
//     point; CheckTagKey in common/failure_names.h, which both configs apply
//     at load): reason bad_tag_key. Line protocol cannot carry a trailing
//     backslash in a key, so EncodeLine drops it (line_protocol.h); such a
//     failure would otherwise be refused later as unencodable, or written with
//     the server tag posing as `host`. Checked whatever includeServerTags says,
//     so a failure's fate does not depend on the tracker's config. A key that
//     only loses its backslash and meets nothing (`site\` alone) is
//     accepted and written as `site`. The one clash left to the encoder is
//     with a static tag (failedPolls.tracker.tags), which this check does
//     not see: refused as unencodable at the stream (tracker_service.h).
//   * occurred_at is a valid timestamp, at most max_future_skew after the
//     tracker's clock and at most max_age before it. qs-error-tracker
//     leaves max_age infinite: it cannot know the retention of a database
//     it did not create, and InfluxDB's own refusal of a point older than
//     its retention is counted by the write pipeline as a dropped point.
//
// Pure and thread-safe.
#ifndef QFP_TRACKER_FAILURE_CHECK_H_
#define QFP_TRACKER_FAILURE_CHECK_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/failure_names.h"
#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp::tracker {

struct FailureLimits {
  size_t max_id_bytes = 256;  // poller_id, instance_id
  size_t max_name_bytes =
      kMaxFailureNameBytes;         // server_name, host,
                                    // virtual_proxy, error_code, syscall,
                                    // remote_address, each server tag key
                                    // and value
  size_t max_url_bytes = 8192;      // request_url
  size_t max_message_bytes = 8192;  // message
  size_t max_server_tags = 64;
  absl::Duration max_future_skew = absl::Minutes(5);
  absl::Duration max_age = absl::InfiniteDuration();
};

// Why a failure is refused.
struct FailureProblem {
  // The metrics label: missing_id, unknown_enum, too_long, bad_text,
  // too_many_tags, bad_tag_key, bad_time. A fixed set, so the label stays
  // bounded.
  const char* reason;
  // For the producer and the log: the field and what is wrong, without the
  // offending bytes (they may be huge or hostile).
  std::string why;
};

// nullopt when `failure` may be stored; `now` is the tracker's wall clock.
std::optional<FailureProblem> CheckFailure(
    const failedpolls::v1::PollFailure& failure, const FailureLimits& limits,
    absl::Time now);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_FAILURE_CHECK_H_
