#include "poller-service/json_shape_check.h"

#include <boost/json/basic_parser_impl.hpp>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qfp::poller {

namespace {

namespace bj = boost::json;

enum class Shape { kNone, kObject, kArray, kScalar };

const char* ShapeName(Shape shape) {
  switch (shape) {
    case Shape::kObject:
      return "a JSON object";
    case Shape::kArray:
      return "a JSON array";
    case Shape::kScalar:
      return "a JSON scalar";
    case Shape::kNone:
      break;
  }
  return "nothing";
}

// Boost.JSON's SAX handler: only the top-level shape matters; every value is
// looked at once and dropped. Returning false stops the parse (a wrong
// top-level shape is known from the first byte of the document).
struct ShapeHandler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  Shape want = Shape::kObject;
  Shape shape = Shape::kNone;
  size_t depth = 0;

  // A handler that stops the parse must say why in `ec`.
  bool Open(Shape opened, bj::error_code& ec) {
    if (depth++ == 0) shape = opened;
    if (depth > 1 || opened == want) return true;
    ec = bj::error::syntax;
    return false;
  }
  bool Scalar(bj::error_code& ec) {
    if (depth > 0) return true;
    shape = Shape::kScalar;
    ec = bj::error::syntax;
    return false;
  }

  bool on_document_begin(bj::error_code&) { return true; }
  bool on_document_end(bj::error_code&) { return true; }
  bool on_object_begin(bj::error_code& ec) { return Open(Shape::kObject, ec); }
  bool on_object_end(std::size_t, bj::error_code&) {
    --depth;
    return true;
  }
  bool on_array_begin(bj::error_code& ec) { return Open(Shape::kArray, ec); }
  bool on_array_end(std::size_t, bj::error_code&) {
    --depth;
    return true;
  }
  bool on_key_part(bj::string_view, std::size_t, bj::error_code&) {
    return true;
  }
  bool on_key(bj::string_view, std::size_t, bj::error_code&) { return true; }
  bool on_string_part(bj::string_view, std::size_t, bj::error_code&) {
    return true;
  }
  bool on_string(bj::string_view, std::size_t, bj::error_code& ec) {
    return Scalar(ec);
  }
  bool on_number_part(bj::string_view, bj::error_code&) { return true; }
  bool on_int64(std::int64_t, bj::string_view, bj::error_code& ec) {
    return Scalar(ec);
  }
  bool on_uint64(std::uint64_t, bj::string_view, bj::error_code& ec) {
    return Scalar(ec);
  }
  bool on_double(double, bj::string_view, bj::error_code& ec) {
    return Scalar(ec);
  }
  bool on_bool(bool, bj::error_code& ec) { return Scalar(ec); }
  bool on_null(bj::error_code& ec) { return Scalar(ec); }
  // Comments are refused by the options; these are never called.
  bool on_comment_part(bj::string_view, bj::error_code&) { return true; }
  bool on_comment(bj::string_view, bj::error_code&) { return true; }
};

bj::parse_options StrictOptions() {
  bj::parse_options options;
  options.max_depth = kMaxJsonDepth;
  options.allow_comments = false;
  options.allow_trailing_commas = false;
  options.allow_invalid_utf8 = false;
  return options;
}

bool IsJsonWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

struct JsonShapeCheck::Parser {
  explicit Parser(Shape want) : parser(StrictOptions()) {
    parser.handler().want = want;
  }
  bj::basic_parser<ShapeHandler> parser;
};

JsonShapeCheck::JsonShapeCheck(ExpectedBody expected)
    : parser_(std::make_unique<Parser>(expected == ExpectedBody::kJsonObject
                                           ? Shape::kObject
                                           : Shape::kArray)),
      expected_(expected) {}

JsonShapeCheck::~JsonShapeCheck() = default;

bool JsonShapeCheck::Feed(absl::string_view bytes) {
  if (!problem_.empty()) return false;
  auto& parser = parser_->parser;
  const ShapeHandler& handler = parser.handler();
  size_t used = 0;
  if (!parser.done()) {
    bj::error_code error;
    used = parser.write_some(true, bytes.data(), bytes.size(), error);
    if (error) {
      const Shape want = handler.want;
      if (handler.shape != Shape::kNone && handler.shape != want) {
        problem_ = absl::StrCat("the body is ", ShapeName(handler.shape),
                                ", not ", ShapeName(want));
      } else {
        problem_ = absl::StrCat("the body is not JSON (", error.message(),
                                " at byte ", fed_ + used, ")");
      }
      fed_ += bytes.size();
      return false;
    }
  }
  // Anything after the document other than whitespace is not one document.
  for (size_t i = used; i < bytes.size(); ++i) {
    if (!IsJsonWhitespace(bytes[i])) {
      problem_ =
          absl::StrCat("the body is not JSON (data after the document at byte ",
                       fed_ + i, ")");
      fed_ += bytes.size();
      return false;
    }
  }
  fed_ += bytes.size();
  return true;
}

void JsonShapeCheck::Finish() {
  if (!problem_.empty()) return;
  auto& parser = parser_->parser;
  const char* want =
      expected_ == ExpectedBody::kJsonObject ? "a JSON object" : "a JSON array";
  if (parser.handler().shape == Shape::kNone) {
    problem_ = absl::StrCat("an empty body, not ", want);
    return;
  }
  if (parser.done()) return;
  bj::error_code error;
  parser.write_some(false, nullptr, 0, error);
  if (error) {
    problem_ = absl::StrCat("the body is not JSON (", error.message(),
                            " at byte ", fed_, ")");
  }
}

std::string JsonShapeCheck::Problem() const { return problem_; }

std::string CheckJsonShape(absl::string_view body, ExpectedBody expected) {
  JsonShapeCheck check(expected);
  if (check.Feed(body)) check.Finish();
  return check.Problem();
}

}  // namespace qfp::poller
