// The spellings of the proto enums as they appear in InfluxDB and in logs.
// Both services use them: the poller to log, the tracker to write points.
#ifndef QFP_COMMON_FAILURE_NAMES_H_
#define QFP_COMMON_FAILURE_NAMES_H_

#include <string>

#include "absl/status/status.h"
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

// A measurement, tag key, tag value or field key as the tracker's line
// protocol encoder (tracker-service/line_protocol.h) carries it, before
// escaping: line breaks become spaces and trailing backslashes are dropped
// (line protocol cannot carry one). Two names that clean to the same text are
// one key in InfluxDB, and one that cleans to "" cannot be written. Here, not
// in the tracker, so that the poller's config can apply the same rule
// (CheckTagKey). Pure.
std::string CleanLineProtocolName(absl::string_view name);

// Whether `key` is one of the four tags Butler SOS writes from the failure
// itself (error_type, server_name, host, virtual_proxy), which no static or
// server tag replaces (tracker-service/failure_point.h).
bool IsFailureTag(absl::string_view key);

// Whether the tracker writes `key` as a tag of its own on some point: the
// failure tags (IsFailureTag) on error points, and those plus poller_id on
// poll attempts points (tracker-service/heartbeat.h). No static or server
// tag replaces one of them.
bool IsOwnTag(absl::string_view key);

// Whether the tracker can write `key` as an extra tag key (a server tag or a
// static tag) as the user meant it. InvalidArgument when the key
//   * is empty, or empty once cleaned (CleanLineProtocolName): no tag can
//     carry it;
//   * loses a trailing backslash and becomes one of our own tags
//     (IsOwnTag: `host\` -> `host`, `poller_id\` -> `poller_id`): it would
//     pose as that tag, or make the point unencodable;
//   * is exactly one of our own tags other than `host` and `server_name`
//     (error_type, virtual_proxy, poller_id): the tracker would leave it
//     off, without a word, every point that carries ours (a static tag
//     `poller_id` off every poll attempts point), and on the other points
//     one tag key would mean two things. `host` and `server_name` are accepted
//     and left off our points (the failure's own value wins) because Butler
//     SOS writes both on its own health points and lets a server tag of the
//     same name replace its value there (getServerTags, Butler SOS
//     src/lib/servertags.js): a Butler SOS file may define them for Butler
//     SOS's sake, and both services read that file unmodified;
//   * is `time` once cleaned: InfluxDB 1.x and 2.x refuse the whole point
//     ("invalid tag key: input tag \"time\" is invalid"; `time` is the
//     timestamp's column in InfluxQL, influxdb issue 1834).
// The message is a predicate ("ends in a backslash and would be written as
// the tag host"): the caller puts the key, or its key path, before it.
// Two keys that clean to the same key are the caller's to find (compare
// CleanLineProtocolName of each). The tracker refuses a failure whose server
// tag key fails this (failure_check.h) and both services' configs refuse such
// a key at load (common/config_schema.h), so one rule decides both. Pure.
absl::Status CheckTagKey(absl::string_view key);

}  // namespace qfp

#endif  // QFP_COMMON_FAILURE_NAMES_H_
