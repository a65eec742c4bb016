// Fuzzes EncodeLine (tracker-service/line_protocol.h), on points built
// directly and on points FailureToPoint (failure_point.h) makes of a
// PollFailure, and reads every line back with an independent parser
// (line_protocol_parser.h). Properties:
//  - EncodeLine refuses exactly the points its header says it refuses;
//  - an encoded line is one line and parses back to the point as the header
//    says it is written: line breaks become spaces, trailing backslashes of
//    names are dropped, tags with an empty value are left out, tags sorted by
//    key; every value (floats bit for bit) and the timestamp unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "tests/fuzz/fuzz_failure.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/line_protocol_parser.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/line_protocol.h"

namespace {

using qfp::tracker::FieldValue;
using qfp::tracker::Point;

// The header's rules, restated: line breaks to spaces, then trailing
// backslashes dropped.
std::string Clean(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  while (!s.empty() && s.back() == '\\') s.pop_back();
  return s;
}

// Whether a measurement or field key (cleaned) has a backslash right before
// a character InfluxDB 1.x unescapes there, which the header refuses.
bool BackslashBeforeUnescaped(const std::string& name) {
  for (size_t i = 0; i + 1 < name.size(); ++i) {
    if (name[i] == '\\' && (name[i + 1] == ',' || name[i + 1] == '=' ||
                            name[i + 1] == ' ' || name[i + 1] == '"')) {
      return true;
    }
  }
  return false;
}

// The point EncodeLine should write for `in`, or false when it must refuse.
bool Expected(const Point& in, Point* out) {
  out->measurement = Clean(in.measurement);
  if (out->measurement.empty() || out->measurement[0] == '#') return false;
  if (BackslashBeforeUnescaped(out->measurement)) return false;
  if (in.fields.empty()) return false;
  for (const auto& [key, value] : in.tags) {
    std::string k = Clean(key);
    if (k.empty()) return false;
    std::string v = Clean(value);
    if (!v.empty()) out->tags.emplace_back(std::move(k), std::move(v));
  }
  std::stable_sort(
      out->tags.begin(), out->tags.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < out->tags.size(); ++i) {
    if (out->tags[i].first == out->tags[i - 1].first) return false;
  }
  for (const auto& [key, value] : in.fields) {
    std::string k = Clean(key);
    if (k.empty() || BackslashBeforeUnescaped(k)) return false;
    for (const auto& [seen, unused] : out->fields) {
      if (seen == k) return false;
    }
    FieldValue v = value;
    if (const double* d = std::get_if<double>(&v); d && !std::isfinite(*d)) {
      return false;
    }
    if (std::string* s = std::get_if<std::string>(&v)) {
      std::replace(s->begin(), s->end(), '\n', ' ');
      std::replace(s->begin(), s->end(), '\r', ' ');
    }
    out->fields.emplace_back(std::move(k), std::move(v));
  }
  out->timestamp_ns = in.timestamp_ns;
  return true;
}

bool SameValue(const FieldValue& a, const FieldValue& b) {
  if (a.index() != b.index()) return false;
  if (const double* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    return std::memcmp(x, &y, sizeof y) == 0;  // -0 and 0 differ too
  }
  return a == b;
}

std::string Describe(const Point& p) {
  std::string s = absl::StrCat("measurement [", p.measurement, "] tags");
  for (const auto& [k, v] : p.tags) absl::StrAppend(&s, " [", k, "]=[", v, "]");
  absl::StrAppend(&s, " fields");
  for (const auto& [k, v] : p.fields) {
    absl::StrAppend(&s, " [", k, "]#", v.index());
  }
  absl::StrAppend(&s, " ts ", p.timestamp_ns);
  return s;
}

Point ConsumePoint(FuzzedDataProvider& in) {
  Point p;
  p.measurement = in.ConsumeRandomLengthString(48);
  const int tags = in.ConsumeIntegralInRange(0, 6);
  for (int i = 0; i < tags; ++i) {
    std::string key = in.ConsumeRandomLengthString(24);
    p.tags.emplace_back(std::move(key), in.ConsumeRandomLengthString(24));
  }
  const int fields = in.ConsumeIntegralInRange(0, 6);
  for (int i = 0; i < fields; ++i) {
    std::string key = in.ConsumeRandomLengthString(24);
    FieldValue value;
    switch (in.ConsumeIntegralInRange(0, 3)) {
      case 0: {  // any bit pattern: NaN, infinities, subnormals, -0
        const uint64_t bits = in.ConsumeIntegral<uint64_t>();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        value = d;
        break;
      }
      case 1:
        value = in.ConsumeIntegral<int64_t>();
        break;
      case 2:
        value = in.ConsumeRandomLengthString(64);
        break;
      default:
        value = in.ConsumeBool();
        break;
    }
    p.fields.emplace_back(std::move(key), std::move(value));
  }
  p.timestamp_ns = in.ConsumeIntegral<int64_t>();
  return p;
}

Point ConsumeFailurePoint(FuzzedDataProvider& in) {
  qfp::tracker::PointSchema schema;
  if (in.ConsumeBool()) schema.measurement = in.ConsumeRandomLengthString(32);
  const int statics = in.ConsumeIntegralInRange(0, 3);
  for (int i = 0; i < statics; ++i) {
    std::string key = in.ConsumeRandomLengthString(16);
    schema.static_tags[key] = in.ConsumeRandomLengthString(16);
  }
  schema.include_server_tags = in.ConsumeBool();
  schema.integer_numbers = in.ConsumeBool();
  return qfp::tracker::FailureToPoint(qfp::fuzz::ConsumeFailure(in), schema);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const Point point =
      in.ConsumeBool() ? ConsumeFailurePoint(in) : ConsumePoint(in);
  Point expected;
  const bool valid = Expected(point, &expected);
  const absl::StatusOr<std::string> line = qfp::tracker::EncodeLine(point);
  QFP_FUZZ_CHECK(line.ok() == valid, "EncodeLine: %s; expected %s for %s",
                 line.status().ToString().c_str(),
                 valid ? "a line" : "a refusal", Describe(point).c_str());
  if (!line.ok()) return 0;

  const absl::StatusOr<Point> parsed = qfp::fuzz::ParseLine(*line);
  QFP_FUZZ_CHECK(parsed.ok(), "line [%s] does not parse: %s", line->c_str(),
                 parsed.status().ToString().c_str());
  QFP_FUZZ_CHECK(parsed->measurement == expected.measurement,
                 "line [%s]: measurement [%s], expected [%s]", line->c_str(),
                 parsed->measurement.c_str(), expected.measurement.c_str());
  QFP_FUZZ_CHECK(parsed->tags == expected.tags, "line [%s]: tags differ: %s",
                 line->c_str(), Describe(expected).c_str());
  QFP_FUZZ_CHECK(parsed->fields.size() == expected.fields.size(),
                 "line [%s]: %zu fields, expected %zu", line->c_str(),
                 parsed->fields.size(), expected.fields.size());
  for (size_t i = 0; i < expected.fields.size(); ++i) {
    QFP_FUZZ_CHECK(
        parsed->fields[i].first == expected.fields[i].first &&
            SameValue(parsed->fields[i].second, expected.fields[i].second),
        "line [%s]: field %zu ([%s]) differs", line->c_str(), i,
        expected.fields[i].first.c_str());
  }
  QFP_FUZZ_CHECK(parsed->timestamp_ns == expected.timestamp_ns,
                 "line [%s]: timestamp differs", line->c_str());
  return 0;
}
