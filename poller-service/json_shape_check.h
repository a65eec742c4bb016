// Checks that a response body is one complete JSON document of the expected
// top-level shape (object or array) while it streams in, keeping none of it:
// a QRS app list of tens of MB costs the same memory as an empty one.
#ifndef QFP_POLLER_JSON_SHAPE_CHECK_H_
#define QFP_POLLER_JSON_SHAPE_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "poller-service/http_transport.h"

namespace qfp::poller {

// What a healthy answer's body is.
enum class ExpectedBody {
  kJsonObject,  // the engine health check
  kJsonArray,   // proxy sessions, QRS apps
};

// Deepest nesting accepted. Qlik's answers nest a few levels; the limit
// bounds the parser's stack (a body of '[' only would otherwise grow it with
// the body).
inline constexpr size_t kMaxJsonDepth = 10000;

// A BodyCheck over Boost.JSON's incremental (push) parser, strict RFC 8259:
// no comments, no trailing commas, UTF-8 validated, whitespace only after
// the document. Memory: the parser's state and a stack of at most
// kMaxJsonDepth levels, whatever the body's size (strings and numbers are
// seen in parts, never assembled). Not thread-safe (one transfer's).
class JsonShapeCheck final : public BodyCheck {
 public:
  explicit JsonShapeCheck(ExpectedBody expected);
  ~JsonShapeCheck() override;

  bool Feed(absl::string_view bytes) override;
  void Finish() override;
  std::string Problem() const override;

 private:
  struct Parser;  // Boost.JSON's parser, kept out of this header
  std::unique_ptr<Parser> parser_;
  const ExpectedBody expected_;
  uint64_t fed_ = 0;
  std::string problem_;  // "" while the body can still pass
};

// Runs `body` through a JsonShapeCheck in one piece: "" when it is a JSON
// document of the expected shape, else why not. For tests and tools.
std::string CheckJsonShape(absl::string_view body, ExpectedBody expected);

}  // namespace qfp::poller

#endif  // QFP_POLLER_JSON_SHAPE_CHECK_H_
