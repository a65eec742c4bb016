#include "tests/fuzz/line_protocol_parser.h"

#include <charconv>
#include <cstdint>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qfp::fuzz {
namespace {

class Reader {
 public:
  explicit Reader(absl::string_view line) : line_(line) {}

  bool AtEnd() const { return pos_ >= line_.size(); }
  char Peek() const { return line_[pos_]; }
  size_t pos() const { return pos_; }
  void Skip() { ++pos_; }

  // Reads an unquoted element up to the first unescaped character of
  // `stops`. `\c` with c in `escapable` stands for c; any other backslash is
  // itself.
  std::string Element(absl::string_view escapable, absl::string_view stops) {
    std::string out;
    while (!AtEnd()) {
      const char c = Peek();
      if (c == '\\' && pos_ + 1 < line_.size() &&
          escapable.find(line_[pos_ + 1]) != absl::string_view::npos) {
        out.push_back(line_[pos_ + 1]);
        pos_ += 2;
        continue;
      }
      if (stops.find(c) != absl::string_view::npos) break;
      out.push_back(c);
      ++pos_;
    }
    return out;
  }

  // A double-quoted string field value; the opening quote is next.
  absl::StatusOr<std::string> Quoted() {
    ++pos_;  // "
    std::string out;
    while (!AtEnd()) {
      const char c = Peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\' && pos_ + 1 < line_.size() &&
          (line_[pos_ + 1] == '"' || line_[pos_ + 1] == '\\')) {
        out.push_back(line_[pos_ + 1]);
        pos_ += 2;
        continue;
      }
      out.push_back(c);
      ++pos_;
    }
    return absl::InvalidArgumentError("unterminated string field value");
  }

  // An unquoted field value: up to the next `,` or space.
  absl::string_view Token() {
    const size_t start = pos_;
    while (!AtEnd() && Peek() != ',' && Peek() != ' ') ++pos_;
    return line_.substr(start, pos_ - start);
  }

  absl::Status Expect(char c, absl::string_view what) {
    if (AtEnd() || Peek() != c) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected ", what, " at byte ", pos_));
    }
    ++pos_;
    return absl::OkStatus();
  }

 private:
  absl::string_view line_;
  size_t pos_ = 0;
};

absl::StatusOr<tracker::FieldValue> Number(absl::string_view token) {
  const char* begin = token.data();
  const char* end = token.data() + token.size();
  if (token.size() > 1 && token.back() == 'i') {
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(begin, end - 1, value);
    if (ec != std::errc() || ptr != end - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad integer field value '", token, "'"));
    }
    return tracker::FieldValue(value);
  }
  double value = 0;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (token.empty() || ec != std::errc() || ptr != end) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad float field value '", token, "'"));
  }
  return tracker::FieldValue(value);
}

}  // namespace

absl::StatusOr<tracker::Point> ParseLine(absl::string_view line) {
  if (line.find('\n') != absl::string_view::npos ||
      line.find('\r') != absl::string_view::npos) {
    return absl::InvalidArgumentError("a line break inside the line");
  }
  if (!line.empty() && line.front() == '#') {
    return absl::InvalidArgumentError("a comment line");
  }
  Reader in(line);
  tracker::Point point;
  point.measurement = in.Element(", ", ", ");
  if (point.measurement.empty()) {
    return absl::InvalidArgumentError("empty measurement");
  }
  while (!in.AtEnd() && in.Peek() == ',') {
    in.Skip();
    std::string key = in.Element(",= ", ",= ");
    if (absl::Status s = in.Expect('=', "'=' after a tag key"); !s.ok()) {
      return s;
    }
    std::string value = in.Element(",= ", ",= ");
    if (key.empty() || value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty tag key or value before byte ", in.pos()));
    }
    point.tags.emplace_back(std::move(key), std::move(value));
  }
  if (absl::Status s = in.Expect(' ', "a space before the fields"); !s.ok()) {
    return s;
  }
  while (true) {
    std::string key = in.Element(",= ", ",= ");
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty field key at byte ", in.pos()));
    }
    if (absl::Status s = in.Expect('=', "'=' after a field key"); !s.ok()) {
      return s;
    }
    if (in.AtEnd()) return absl::InvalidArgumentError("missing field value");
    if (in.Peek() == '"') {
      absl::StatusOr<std::string> text = in.Quoted();
      if (!text.ok()) return text.status();
      point.fields.emplace_back(std::move(key), std::move(*text));
    } else {
      const absl::string_view token = in.Token();
      if (token == "true" || token == "false") {
        point.fields.emplace_back(std::move(key), token == "true");
      } else {
        absl::StatusOr<tracker::FieldValue> number = Number(token);
        if (!number.ok()) return number.status();
        point.fields.emplace_back(std::move(key), std::move(*number));
      }
    }
    if (!in.AtEnd() && in.Peek() == ',') {
      in.Skip();
      continue;
    }
    break;
  }
  if (absl::Status s = in.Expect(' ', "a space before the timestamp");
      !s.ok()) {
    return s;
  }
  const absl::string_view rest = line.substr(in.pos());
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(),
                                   point.timestamp_ns);
  if (rest.empty() || ec != std::errc() || ptr != rest.data() + rest.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad timestamp '", rest, "'"));
  }
  return point;
}

}  // namespace qfp::fuzz
