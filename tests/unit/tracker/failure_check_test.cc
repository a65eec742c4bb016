#include "tracker-service/failure_check.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;

const absl::Time kNow = absl::FromUnixSeconds(1796000000);

PollFailure Good() {
  PollFailure f;
  f.mutable_id()->set_poller_id("poller-1");
  f.mutable_id()->set_instance_id("4f2a");
  f.mutable_id()->set_sequence(9);
  f.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow) - 30);
  f.set_source(failedpolls::v1::PROXY_API);
  f.set_server_name("sense1");
  f.set_host("sense1.example.com:4243");
  f.set_virtual_proxy("/sales");
  (*f.mutable_server_tags())["site"] = "Stockholm";
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_TIMEOUT);
  f.set_error_code("ECONNABORTED");
  f.set_request_url("https://sense1.example.com:4243/qps/sales/session");
  f.set_message("timeout of 5000ms exceeded");
  return f;
}

struct Case {
  const char* name;
  std::function<void(PollFailure&)> change;
  const char* reason;  // nullptr: accepted
  const char* why;     // expected text (when a reason is expected)
};

class CheckFailureTable : public ::testing::TestWithParam<Case> {};

TEST_P(CheckFailureTable, RefusesWithReasonOrAccepts) {
  const Case& c = GetParam();
  PollFailure failure = Good();
  c.change(failure);
  FailureLimits limits;
  limits.max_age = absl::Hours(24 * 30);
  const std::optional<FailureProblem> problem =
      CheckFailure(failure, limits, kNow);
  if (c.reason == nullptr) {
    EXPECT_FALSE(problem.has_value()) << problem->why;
    return;
  }
  ASSERT_TRUE(problem.has_value());
  EXPECT_STREQ(problem->reason, c.reason);
  EXPECT_EQ(problem->why, c.why);
}

INSTANTIATE_TEST_SUITE_P(
    Table, CheckFailureTable,
    ::testing::Values(
        Case{"Good", [](PollFailure&) {}, nullptr, ""},
        Case{"UnspecifiedCategoryIsWrittenAsUnknown",
             [](PollFailure& f) {
               f.set_error_category(
                   failedpolls::v1::ERROR_CATEGORY_UNSPECIFIED);
             },
             nullptr, ""},
        Case{"NoPollerId",
             [](PollFailure& f) { f.mutable_id()->clear_poller_id(); },
             "missing_id",
             "missing id (poller_id and a sequence > 0 are required)"},
        Case{"SequenceZero",
             [](PollFailure& f) { f.mutable_id()->set_sequence(0); },
             "missing_id",
             "missing id (poller_id and a sequence > 0 are required)"},
        Case{"NoServerName", [](PollFailure& f) { f.clear_server_name(); },
             "missing_id", "missing server_name"},
        Case{"UnspecifiedSource",
             [](PollFailure& f) {
               f.set_source(failedpolls::v1::POLL_SOURCE_UNSPECIFIED);
             },
             "unknown_enum", "missing or unknown source"},
        Case{"SourceFromTheFuture",
             [](PollFailure& f) {
               f.set_source(static_cast<failedpolls::v1::PollSource>(4));
             },
             "unknown_enum", "missing or unknown source"},
        Case{"CategoryFromTheFuture",
             [](PollFailure& f) {
               f.set_error_category(
                   static_cast<failedpolls::v1::ErrorCategory>(-3));
             },
             "unknown_enum", "unknown error_category -3"},
        Case{"PollerIdAtTheLimit",
             [](PollFailure& f) {
               f.mutable_id()->set_poller_id(std::string(256, 'p'));
             },
             nullptr, ""},
        Case{"PollerIdOverTheLimit",
             [](PollFailure& f) {
               f.mutable_id()->set_poller_id(std::string(257, 'p'));
             },
             "too_long", "id.poller_id is 257 bytes, over the limit of 256"},
        Case{"ServerNameOverTheLimit",
             [](PollFailure& f) { f.set_server_name(std::string(1025, 's')); },
             "too_long", "server_name is 1025 bytes, over the limit of 1024"},
        Case{"UrlAtTheLimit",
             [](PollFailure& f) { f.set_request_url(std::string(8192, 'u')); },
             nullptr, ""},
        Case{"MessageOverTheLimit",
             [](PollFailure& f) { f.set_message(std::string(8193, 'm')); },
             "too_long", "message is 8193 bytes, over the limit of 8192"},
        Case{"LineBreakInAName",
             [](PollFailure& f) { f.set_server_name("sense1\nsense2"); },
             "bad_text", "server_name holds a control character"},
        Case{"NulInTheHost",
             [](PollFailure& f) { f.set_host(std::string("a\0b", 3)); },
             "bad_text", "host holds a control character"},
        Case{"EscapeSequenceInTheMessage",
             [](PollFailure& f) { f.set_message("\x1b[31mred"); }, "bad_text",
             "message holds a control character"},
        Case{"DeleteInTheUrl",
             [](PollFailure& f) { f.set_request_url("https://a\x7f"); },
             "bad_text", "request_url holds a control character"},
        Case{"Utf8NamesAreFine",
             [](PollFailure& f) { f.set_server_name("Qlik-Göteborg-東京"); },
             nullptr, ""},
        Case{"SixtyFourTags",
             [](PollFailure& f) {
               for (int i = 0; i < 63; ++i) {
                 (*f.mutable_server_tags())[absl::StrCat("t", i)] = "v";
               }
             },
             nullptr, ""},
        Case{"SixtyFiveTags",
             [](PollFailure& f) {
               for (int i = 0; i < 64; ++i) {
                 (*f.mutable_server_tags())[absl::StrCat("t", i)] = "v";
               }
             },
             "too_many_tags", "65 server_tags, over the limit of 64"},
        Case{"EmptyTagKey",
             [](PollFailure& f) { (*f.mutable_server_tags())[""] = "v"; },
             "bad_tag_key", "a server_tags key is empty"},
        Case{"TabInATagValue",
             [](PollFailure& f) { (*f.mutable_server_tags())["k"] = "a\tb"; },
             "bad_text", "a server_tags value holds a control character"},
        // Keys line protocol would change (it drops trailing backslashes,
        // line_protocol.h) into an empty key, one of the failure's own tags
        // or another server tag key.
        Case{"TagKeyOfBackslashesOnly",
             [](PollFailure& f) { (*f.mutable_server_tags())[R"(\\)"] = "v"; },
             "bad_tag_key",
             "a server_tags key is only backslashes, which line protocol "
             "cannot carry"},
        Case{"TagKeyThatWouldBeHost",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(host\)"] = "x";
             },
             "bad_tag_key",
             "a server_tags key ends in a backslash and would be written as "
             "the tag host"},
        Case{"TagKeyThatWouldBeVirtualProxy",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(virtual_proxy\\)"] = "/x";
             },
             "bad_tag_key",
             "a server_tags key ends in a backslash and would be written as "
             "the tag virtual_proxy"},
        Case{"TagKeysThatWouldBeOne",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(site\)"] = "Malmö";
             },
             "bad_tag_key",
             "two server_tags keys differ only in trailing backslashes, which "
             "line protocol cannot carry: they would be one tag"},
        Case{"TwoBackslashKeysThatWouldBeOne",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(dc\)"] = "a";
               (*f.mutable_server_tags())[R"(dc\\)"] = "b";
             },
             "bad_tag_key",
             "two server_tags keys differ only in trailing backslashes, which "
             "line protocol cannot carry: they would be one tag"},
        // InfluxDB 1.x and 2.x refuse a point with the tag key `time`.
        Case{"TagKeyTime",
             [](PollFailure& f) { (*f.mutable_server_tags())["time"] = "x"; },
             "bad_tag_key",
             "a server_tags key is \"time\", which InfluxDB refuses as a tag "
             "key"},
        Case{"TagKeyThatWouldBeTime",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(time\)"] = "x";
             },
             "bad_tag_key",
             "a server_tags key ends in a backslash and would be written as "
             "\"time\", which InfluxDB refuses as a tag key"},
        // Case matters to InfluxDB: `Time` is an ordinary key.
        Case{"TagKeyTimeInAnotherCase",
             [](PollFailure& f) { (*f.mutable_server_tags())["Time"] = "x"; },
             nullptr, ""},
        // Exactly one of our own tags: refused, but `host` and
        // `server_name`, which Butler SOS lets a server tag replace on its
        // own points; FailureToPoint keeps the failure's value of those.
        Case{"TagKeyHostIsLeftToFailureToPoint",
             [](PollFailure& f) { (*f.mutable_server_tags())["host"] = "x"; },
             nullptr, ""},
        Case{"TagKeyServerNameIsLeftToFailureToPoint",
             [](PollFailure& f) {
               (*f.mutable_server_tags())["server_name"] = "x";
             },
             nullptr, ""},
        Case{"TagKeyErrorType",
             [](PollFailure& f) {
               (*f.mutable_server_tags())["error_type"] = "x";
             },
             "bad_tag_key",
             "a server_tags key is the tag error_type the tracker writes "
             "itself, which a server or static tag never replaces"},
        Case{"TagKeyVirtualProxy",
             [](PollFailure& f) {
               (*f.mutable_server_tags())["virtual_proxy"] = "/x";
             },
             "bad_tag_key",
             "a server_tags key is the tag virtual_proxy the tracker writes "
             "itself, which a server or static tag never replaces"},
        // poller_id is a tag of the poll attempts points.
        Case{"TagKeyPollerId",
             [](PollFailure& f) {
               (*f.mutable_server_tags())["poller_id"] = "x";
             },
             "bad_tag_key",
             "a server_tags key is the tag poller_id the tracker writes "
             "itself, which a server or static tag never replaces"},
        Case{"TagKeyThatWouldBePollerId",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(poller_id\)"] = "x";
             },
             "bad_tag_key",
             "a server_tags key ends in a backslash and would be written as "
             "the tag poller_id"},
        // Loses its backslash and meets nothing: written as `dc`.
        Case{"TagKeyWithATrailingBackslashAlone",
             [](PollFailure& f) { (*f.mutable_server_tags())[R"(dc\)"] = "a"; },
             nullptr, ""},
        // Backslashes inside a key are carried as they are.
        Case{"TagKeysWithInnerBackslashes",
             [](PollFailure& f) {
               (*f.mutable_server_tags())[R"(s\ite)"] = "a";
               (*f.mutable_server_tags())[R"(host\,x)"] = "b";
             },
             nullptr, ""},
        Case{"NoTime", [](PollFailure& f) { f.clear_occurred_at(); },
             "bad_time", "missing or invalid occurred_at"},
        Case{"NanosOutOfRange",
             [](PollFailure& f) {
               f.mutable_occurred_at()->set_nanos(1000000000);
             },
             "bad_time", "missing or invalid occurred_at"},
        Case{"FiveMinutesAheadIsSkew",
             [](PollFailure& f) {
               f.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow) +
                                                    300);
             },
             nullptr, ""},
        Case{"AnHourAhead",
             [](PollFailure& f) {
               f.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow) +
                                                    3600);
             },
             "bad_time",
             "occurred_at is 1h after the tracker's clock (at most 5m)"},
        Case{"OlderThanTheRetention",
             [](PollFailure& f) {
               f.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow) -
                                                    31 * 86400);
             },
             "bad_time",
             "occurred_at is 744h old, older than the destination keeps "
             "points (720h)"}),
    [](const ::testing::TestParamInfo<Case>& param) {
      return param.param.name;
    });

}  // namespace
}  // namespace qfp::tracker
