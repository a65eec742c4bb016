#include "poller-service/json_shape_check.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace qfp::poller {
namespace {

constexpr auto kObject = ExpectedBody::kJsonObject;
constexpr auto kArray = ExpectedBody::kJsonArray;

// Feeds `body` in pieces of `piece` bytes, as a transport hands it over.
std::string CheckInPieces(const std::string& body, size_t piece,
                          ExpectedBody expected) {
  JsonShapeCheck check(expected);
  bool going = true;
  for (size_t at = 0; going && at < body.size(); at += piece) {
    going = check.Feed(absl::string_view(body).substr(at, piece));
  }
  if (going) check.Finish();
  return check.Problem();
}

TEST(JsonShapeCheckTest, TheVerdictDoesNotDependOnHowTheBodyIsCut) {
  const std::vector<std::pair<std::string, ExpectedBody>> bodies = {
      {R"({"version":"12.1","mem":{"free":1.5e3},"apps":[1,2,3]})", kObject},
      {R"([{"UserId":"J\u00f6rg","n":-0.25,"ok":true,"x":null}])", kArray},
      {" \r\n[] \n", kArray},
      {"[1,2", kArray},
      {R"({"a":"x"} {})", kObject},
      {"<!doctype html>", kObject},
      {R"({"a":"\u12"})", kObject},
      {"[\"Jörg 日本 😀\"]", kArray},
      {"[\"\xc3\x28\"]", kArray},
      {"{}", kArray},
      {"", kObject},
  };
  for (const auto& [body, expected] : bodies) {
    const std::string whole = CheckJsonShape(body, expected);
    for (size_t piece = 1; piece <= body.size(); ++piece) {
      EXPECT_EQ(CheckInPieces(body, piece, expected).empty(), whole.empty())
          << body << " in pieces of " << piece;
    }
  }
  EXPECT_EQ(CheckJsonShape(bodies[0].first, kObject), "");
  EXPECT_EQ(CheckJsonShape(bodies[1].first, kArray), "");
  EXPECT_EQ(CheckJsonShape(bodies[2].first, kArray), "");
  EXPECT_EQ(CheckJsonShape(bodies[7].first, kArray), "");
}

TEST(JsonShapeCheckTest, ProblemsSayWhatWasWrong) {
  EXPECT_EQ(CheckJsonShape("{}", kArray),
            "the body is a JSON object, not a JSON array");
  EXPECT_EQ(CheckJsonShape("[]", kObject),
            "the body is a JSON array, not a JSON object");
  EXPECT_EQ(CheckJsonShape("\"ok\"", kObject),
            "the body is a JSON scalar, not a JSON object");
  EXPECT_EQ(CheckJsonShape(" \n", kArray), "an empty body, not a JSON array");
  EXPECT_TRUE(absl::StartsWith(CheckJsonShape("<html>", kObject),
                               "the body is not JSON ("));
  EXPECT_TRUE(absl::StrContains(CheckJsonShape("{} x", kObject),
                                "data after the document at byte 3"));
  EXPECT_TRUE(absl::StartsWith(CheckJsonShape("[1,", kArray),
                               "the body is not JSON ("));
}

TEST(JsonShapeCheckTest, AWrongShapeStopsAtTheFirstByte) {
  JsonShapeCheck check(kObject);
  EXPECT_FALSE(check.Feed("["));
  EXPECT_FALSE(check.Feed("]"));  // stays refused
  EXPECT_EQ(check.Problem(), "the body is a JSON array, not a JSON object");
}

TEST(JsonShapeCheckTest, ManyMegabytesInSmallPiecesPass) {
  JsonShapeCheck check(kArray);
  ASSERT_TRUE(check.Feed("["));
  const std::string app =
      R"({"id":"3f1d2a6c-8a43-4c54-9a8c-1f0b3c1d2e01","name":"Sales",)"
      R"("stream":{"name":"Everyone"},"tags":[],"fileSize":1048576},)";
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(check.Feed(app));
  ASSERT_TRUE(check.Feed("{}]"));
  check.Finish();
  EXPECT_EQ(check.Problem(), "");
}

}  // namespace
}  // namespace qfp::poller
