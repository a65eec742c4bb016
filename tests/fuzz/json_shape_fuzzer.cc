// Fuzzes the poller's check of Qlik's answers (poller-service/
// json_shape_check.h). The input is the body; the expected shape and the
// seed of the chunk sizes come from its last bytes (FuzzedDataProvider reads
// numbers from the end), so seeds are real answers with 5 bytes appended.
// Properties, for both shapes:
//  - fed in fuzz-chosen chunks, stopping when Feed says the body can no longer
//    pass (as the transport does), the verdict equals CheckJsonShape on the
//    whole body: where a body is cut never changes whether it passes;
//  - a body passes only if nlohmann::json (another strict RFC 8259 parser)
//    accepts it with the expected top-level type, and (nesting below
//    kMaxJsonDepth) every body nlohmann accepts with that type passes (but
//    for numbers beyond double's range, which only nlohmann refuses, and
//    exponents beyond int's, which only Boost.JSON refuses);
//  - Problem() is "" exactly when the body passes.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>

#include "nlohmann/json.hpp"
#include "poller-service/json_shape_check.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using qfp::poller::ExpectedBody;

enum class Verdict { kAccepts, kRefuses, kNoOpinion };

// The shape nlohmann::json reads, independently of Boost.JSON. nlohmann
// refuses a number beyond double's range (1E400), which RFC 8259 §6 leaves to
// the implementation and JsonShapeCheck accepts: no opinion then.
Verdict OtherParser(const std::string& body, ExpectedBody expected) {
  // nlohmann's lexer reads a NUL byte as the end of its input (so it takes
  // "[]\0junk"); JSON has no place for one, not even in a string.
  if (body.find('\0') != std::string::npos) return Verdict::kRefuses;
  try {
    const nlohmann::json json = nlohmann::json::parse(body);
    const bool shape = expected == ExpectedBody::kJsonObject ? json.is_object()
                                                             : json.is_array();
    return shape ? Verdict::kAccepts : Verdict::kRefuses;
  } catch (const nlohmann::json::parse_error&) {
    return Verdict::kRefuses;
  } catch (const nlohmann::json::out_of_range& e) {
    QFP_FUZZ_CHECK(e.id == 406, "nlohmann::json: %s", e.what());
    return Verdict::kNoOpinion;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const ExpectedBody expected =
      in.ConsumeBool() ? ExpectedBody::kJsonArray : ExpectedBody::kJsonObject;
  const uint32_t chunk_seed = in.ConsumeIntegral<uint32_t>();
  const std::string body = in.ConsumeRemainingBytesAsString();

  const std::string whole = qfp::poller::CheckJsonShape(body, expected);

  // Chunks of 1 to max_chunk bytes, max_chunk itself chosen by the seed so
  // that both byte-by-byte feeding and large pieces are covered.
  std::minstd_rand chunks(chunk_seed);
  const size_t max_chunk = size_t{1} << (chunk_seed % 12);
  qfp::poller::JsonShapeCheck check(expected);
  bool open = true;
  for (size_t at = 0; at < body.size() && open;) {
    const size_t n = std::min(body.size() - at, 1 + chunks() % max_chunk);
    open = check.Feed(absl::string_view(body).substr(at, n));
    QFP_FUZZ_CHECK(open == check.Problem().empty(),
                   "Feed returned %d with problem [%s]", open,
                   check.Problem().c_str());
    at += n;
  }
  if (open) check.Finish();
  const std::string chunked = check.Problem();
  QFP_FUZZ_CHECK(chunked.empty() == whole.empty(),
                 "chunked (max %zu) says [%s], whole body says [%s]", max_chunk,
                 chunked.c_str(), whole.c_str());

  const Verdict other = OtherParser(body, expected);
  if (other == Verdict::kNoOpinion) return 0;
  // Boost.JSON refuses a number whose exponent does not fit in an int
  // ("-0.0e99843735678901234567890"), where nlohmann reads 0: a limit RFC
  // 8259 §9 allows, and no Qlik answer comes near it.
  if (whole.find("exponent overflow") != std::string::npos) return 0;
  if (whole.empty()) {
    QFP_FUZZ_CHECK(other == Verdict::kAccepts,
                   "passed, but nlohmann::json refuses it");
  } else if (body.size() < qfp::poller::kMaxJsonDepth) {
    // Shorter than the depth limit, so it cannot nest deeper than it.
    QFP_FUZZ_CHECK(other == Verdict::kRefuses,
                   "refused ([%s]), but nlohmann::json accepts it",
                   whole.c_str());
  }
  return 0;
}
