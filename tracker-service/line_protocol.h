// InfluxDB line protocol: one point to one line.
// https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/
#ifndef QFP_TRACKER_LINE_PROTOCOL_H_
#define QFP_TRACKER_LINE_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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
//  - Floats use the shortest form that reads back exactly (`1`, `0.1`,
//    `1e+21`); integers get the `i` suffix; bools are `true`/`false`.
//  - The timestamp is always written, even 0.
// Errors (InvalidArgument): empty measurement, a measurement starting with
// `#` (InfluxDB would skip the line as a comment), no fields, an empty tag or
// field key, a duplicate tag or field key, a non-finite float.
absl::StatusOr<std::string> EncodeLine(const Point& point);

// A measurement, tag key, tag value or field key as EncodeLine carries it,
// before escaping: line breaks become spaces and trailing backslashes are
// dropped (see above). Two names that clean to the same text are one key in
// InfluxDB, and one that cleans to "" cannot be written; failure_check.h
// uses this to refuse such server tag keys on the item. Pure.
std::string CleanLineProtocolName(absl::string_view name);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_LINE_PROTOCOL_H_
