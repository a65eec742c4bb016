#include "tracker-service/line_protocol.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace qfp::tracker {
namespace {

// Characters the line protocol reference requires a backslash before, per
// element. Backslash itself is not among them: InfluxDB 1.x stores `\\` in a
// tag as two backslashes, so escaping it would change the value.
constexpr absl::string_view kMeasurementSpecials = ", ";
constexpr absl::string_view kKeySpecials =
    ",= ";  // tag keys/values, field keys
constexpr absl::string_view kStringFieldSpecials = "\"\\";

// Whether a backslash in `name` comes right before a character InfluxDB
// 1.x unescapes in a measurement or field key (pkg/escape: `,`, `"`, space,
// `=`); `name` is cleaned, so a line break is already a space.
bool BackslashBeforeUnescaped(absl::string_view name) {
  for (size_t i = 1; i < name.size(); ++i) {
    if (name[i - 1] == '\\' &&
        absl::string_view(",\" =").find(name[i]) != absl::string_view::npos) {
      return true;
    }
  }
  return false;
}

void AppendEscaped(absl::string_view in, absl::string_view specials,
                   std::string* out) {
  for (char c : in) {
    if (c == '\n' || c == '\r') c = ' ';
    if (specials.find(c) != absl::string_view::npos) out->push_back('\\');
    out->push_back(c);
  }
}

// Shortest text that parses back to exactly `value`; InfluxDB reads numbers
// without `i` as floats, so `1` is the float 1.
void AppendFloat(double value, std::string* out) {
  std::array<char, 32> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  if (ec == std::errc()) {
    out->append(buf.data(), end);
  } else {
    // Unreachable: any double's shortest form has at most 24 characters.
    absl::StrAppend(out, value);
  }
}

struct FieldAppender {
  std::string* out;
  void operator()(double v) const { AppendFloat(v, out); }
  void operator()(int64_t v) const { absl::StrAppend(out, v, "i"); }
  void operator()(const std::string& v) const {
    out->push_back('"');
    AppendEscaped(v, kStringFieldSpecials, out);
    out->push_back('"');
  }
  void operator()(bool v) const { out->append(v ? "true" : "false"); }
};

}  // namespace

absl::Status CheckMeasurementName(absl::string_view name) {
  const std::string measurement = CleanLineProtocolName(name);
  if (measurement.empty()) {
    return absl::InvalidArgumentError("line protocol: empty measurement name");
  }
  // InfluxDB skips a line starting with `#` as a comment: the point would
  // vanish without an error.
  if (measurement.front() == '#') {
    return absl::InvalidArgumentError(
        absl::StrCat("line protocol: measurement \"", measurement,
                     "\" starts with '#' and would be read as a comment"));
  }
  if (BackslashBeforeUnescaped(measurement)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line protocol: measurement \"", measurement,
        "\" has a backslash before ',', '=', ' ' or '\"', which InfluxDB does "
        "not store as written"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeLine(const Point& point) {
  if (absl::Status checked = CheckMeasurementName(point.measurement);
      !checked.ok()) {
    return checked;
  }
  const std::string measurement = CleanLineProtocolName(point.measurement);
  if (point.fields.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("line protocol: point of measurement \"", measurement,
                     "\" has no fields"));
  }

  std::vector<std::pair<std::string, std::string>> tags;
  tags.reserve(point.tags.size());
  for (const auto& [raw_key, raw_value] : point.tags) {
    std::string key = CleanLineProtocolName(raw_key);
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line protocol: empty tag key (value \"", raw_value,
                       "\") in measurement \"", measurement, "\""));
    }
    std::string value = CleanLineProtocolName(raw_value);
    if (value.empty()) continue;  // InfluxDB rejects empty tag values
    tags.emplace_back(std::move(key), std::move(value));
  }
  // Sorted by key as bytes, which is the order InfluxDB keeps series keys in
  // (it saves the server a sort).
  std::stable_sort(tags.begin(), tags.end(), [](const auto& a, const auto& b) {
    return a.first < b.first;
  });
  for (size_t i = 1; i < tags.size(); ++i) {
    if (tags[i].first == tags[i - 1].first) {
      return absl::InvalidArgumentError(
          absl::StrCat("line protocol: duplicate tag key \"", tags[i].first,
                       "\" in measurement \"", measurement, "\""));
    }
  }

  std::string line;
  line.reserve(128);
  AppendEscaped(measurement, kMeasurementSpecials, &line);
  for (const auto& [key, value] : tags) {
    line.push_back(',');
    AppendEscaped(key, kKeySpecials, &line);
    line.push_back('=');
    AppendEscaped(value, kKeySpecials, &line);
  }

  char separator = ' ';
  std::vector<std::string> field_keys;
  field_keys.reserve(point.fields.size());
  for (const auto& [raw_key, value] : point.fields) {
    std::string key = CleanLineProtocolName(raw_key);
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line protocol: empty field key in measurement \"",
                       measurement, "\""));
    }
    if (BackslashBeforeUnescaped(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line protocol: field key \"", key, "\" in measurement \"",
          measurement,
          "\" has a backslash before ',', '=', ' ' or '\"', which InfluxDB "
          "does not store as written"));
    }
    // InfluxDB 1.x keeps the last of two equal keys silently; a duplicate is
    // a bug in the caller, so say so instead of guessing. Points have a
    // handful of fields: a linear scan is the cheapest check.
    if (std::find(field_keys.begin(), field_keys.end(), key) !=
        field_keys.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line protocol: duplicate field key \"", key,
                       "\" in measurement \"", measurement, "\""));
    }
    field_keys.push_back(key);
    if (const double* d = std::get_if<double>(&value);
        d != nullptr && !std::isfinite(*d)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line protocol: field \"", key, "\" in measurement \"",
                       measurement, "\" is not a finite number (", *d, ")"));
    }
    line.push_back(separator);
    separator = ',';
    AppendEscaped(key, kKeySpecials, &line);
    line.push_back('=');
    std::visit(FieldAppender{&line}, value);
  }

  absl::StrAppend(&line, " ", point.timestamp_ns);
  return line;
}

}  // namespace qfp::tracker
