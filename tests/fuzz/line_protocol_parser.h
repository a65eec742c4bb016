// An InfluxDB line protocol reader written for the fuzz tests only, from the
// documented syntax and escaping rules
// (docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/,
// "Special characters"), and deliberately sharing no code with the encoder
// it checks (tracker-service/line_protocol.cc):
//   measurement                  `,` and space are escaped;
//   tag keys, tag values,
//   field keys                   `,`, `=` and space are escaped;
//   string field values          `"` and `\` are escaped.
// A backslash before any other character is a literal backslash (the
// documentation: "you do not need to escape backslashes"). Strict: it accepts
// what the documentation's grammar allows for one line at precision=ns with a
// timestamp, and only the field value forms the encoder writes (floats,
// `<int>i`, `true`/`false`, quoted strings).
#ifndef QFP_TESTS_FUZZ_LINE_PROTOCOL_PARSER_H_
#define QFP_TESTS_FUZZ_LINE_PROTOCOL_PARSER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tracker-service/line_protocol.h"

namespace qfp::fuzz {

// The point `line` holds (tags in the order written), or InvalidArgument
// saying where the line breaks the grammar.
absl::StatusOr<tracker::Point> ParseLine(absl::string_view line);

}  // namespace qfp::fuzz

#endif  // QFP_TESTS_FUZZ_LINE_PROTOCOL_PARSER_H_
