// InfluxDB line protocol: one point to one line.
// https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/
#ifndef QFP_TRACKER_LINE_PROTOCOL_H_
#define QFP_TRACKER_LINE_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/failure_names.h"

namespace qfp::tracker {

// A field value: a float (`1`, `0.5`), an integer (`1i`), a string or a bool.
using FieldValue = std::variant<double, int64_t, std::string, bool>;

struct Point {
  std::string measurement;
  std::vector<std::pair<std::string, std::string>> tags;
  std::vector<std::pair<std::string, FieldValue>> fields;
  int64_t timestamp_ns = 0;  // nanoseconds since the Unix epoch
};

// Encodes `point` as one line without a trailing newline, for precision=ns.
//  - Tags with an empty value are left out (InfluxDB rejects them); tags are
//    written sorted by key (bytewise), as InfluxDB recommends. Fields are
//    written in the order given.
//  - Measurement: `,` and space escaped. Tag keys, tag values and field keys:
//    `,`, `=` and space escaped. String field values: `"` and `\` escaped.
//    Nothing else is escaped or changed: UTF-8 passes through as is.
//  - A newline or carriage return can never be carried by line protocol: it
//    is replaced by a space everywhere, so one point is always one line.
//  - A backslash at the end of a measurement, tag key, tag value or field key
//    cannot be written (it would escape the delimiter after it; InfluxDB
//    rejects the line): trailing backslashes are dropped from those.
//  - Any other backslash is written as it is, never escaped, and reads back
//    as written in tag keys, tag values and string field values (checked
//    against InfluxDB 1.6: line_protocol_test's LineProtocolInfluxdTest). In
//    a tag, InfluxDB 1.x takes a `,` `=` or space right after a backslash as
//    escaped and then drops only the backslash just before it, so `a\,b`
//    written as `a\\,b` reads back as `a\,b`; in a string field it reads
//    `\\` and `\"` as `\` and `"`.
//  - Floats use the shortest form that reads back exactly (`1`, `0.1`,
//    `1e+21`); integers get the `i` suffix; bools are `true`/`false`.
//  - The timestamp is always written, even 0.
// Errors (InvalidArgument): empty measurement, a measurement starting with
// `#` (InfluxDB would skip the line as a comment), a measurement or field key
// with a backslash right before `,`, `=`, a space or `"` (after the cleaning
// above; see CheckMeasurementName), no fields, an empty tag or field key, a
// duplicate tag or field key, a non-finite float.
absl::StatusOr<std::string> EncodeLine(const Point& point);

// Whether InfluxDB stores `name`, as a measurement, as EncodeLine writes it:
// InvalidArgument when it is empty once cleaned (CleanLineProtocolName),
// starts with `#`, or holds a backslash right before `,`, `=`, a space or
// `"`. InfluxDB 1.x (checked against 1.6) unescapes `\,` `\ ` `\=` `\"` in
// measurements and field keys but never `\\`, so no escaping carries such a
// backslash: it rejects the line, stores another name (`m\=x` as `m=x`), or,
// for a measurement, stores a series no query finds. Field keys follow the
// same rule (ours are fixed names). For a config check of a measurement name.
absl::Status CheckMeasurementName(absl::string_view name);

// A measurement, tag key, tag value or field key as EncodeLine carries it,
// before escaping: line breaks become spaces and trailing backslashes are
// dropped (see above). Lives in common/failure_names.h so that the poller's
// config applies the same rule (CheckTagKey); failure_check.h uses it to
// refuse server tag keys that clash once cleaned. Pure.
using ::qfp::CleanLineProtocolName;

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_LINE_PROTOCOL_H_
