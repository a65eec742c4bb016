#include "tracker-service/failure_point.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;

// Tags come out sorted by key. InfluxDB does not care about tag order (it
// sorts them into the series key itself), so a sorted line stores exactly
// what Butler SOS's line does.

PollFailure Stamped(int64_t seconds, int32_t nanos) {
  PollFailure failure;
  failure.mutable_occurred_at()->set_seconds(seconds);
  failure.mutable_occurred_at()->set_nanos(nanos);
  return failure;
}

// The three examples of section 3, in the golden file's order.
PollFailure HealthRefused() {
  PollFailure f = Stamped(1764000000, 123456789);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("sense1");
  f.set_host("10.0.0.5:4747");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_CONNECTION_REFUSED);
  f.set_error_code("ECONNREFUSED");
  f.set_request_url("https://10.0.0.5:4747/engine/healthcheck");
  f.set_request_timeout_ms(5000);
  f.set_remote_address("10.0.0.5");
  f.set_remote_port(4747);
  f.set_syscall("connect");
  f.set_message("connect ECONNREFUSED 10.0.0.5:4747");  // never written
  return f;
}

PollFailure HealthTimeout() {
  PollFailure f = Stamped(1764000001, 0);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("sense1");
  f.set_host("10.0.0.5:4747");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_TIMEOUT);
  f.set_error_code("ECONNABORTED");
  f.set_request_url("https://10.0.0.5:4747/engine/healthcheck");
  f.set_request_timeout_ms(5000);
  return f;
}

PollFailure ProxyHttp500() {
  PollFailure f = Stamped(1764000002, 1);
  f.set_source(failedpolls::v1::PROXY_API);
  f.set_server_name("sense2");
  f.set_host("10.0.0.6:4243");
  f.set_virtual_proxy("/sales");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_HTTP_5XX);
  f.set_error_code("ERR_BAD_RESPONSE");
  f.set_http_status(500);
  f.set_request_url("https://10.0.0.6:4243/qps/sales/session");
  f.set_request_timeout_ms(5000);
  return f;
}

PointSchema V1() { return PointSchema{}; }

PointSchema V2() {
  PointSchema schema;
  schema.integer_numbers = true;
  return schema;
}

std::string Line(const PollFailure& failure, const PointSchema& schema) {
  absl::StatusOr<std::string> line =
      EncodeLine(FailureToPoint(failure, schema));
  EXPECT_TRUE(line.ok()) << line.status();
  return line.ok() ? *line : std::string();
}

std::vector<std::string> ReadGolden(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.is_open()) << "cannot open " << path;
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    lines.push_back(line);
  }
  return lines;
}

const char kGoldenV1[] = QFP_SOURCE_DIR "/tests/golden/failure_points_v1.txt";

TEST(FailurePointGoldenTest, ButlerSosExamplesOnInfluxV1) {
  const std::vector<std::string> golden = ReadGolden(kGoldenV1);
  const std::vector<PollFailure> examples = {HealthRefused(), HealthTimeout(),
                                             ProxyHttp500()};
  ASSERT_EQ(golden.size(), examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    EXPECT_EQ(Line(examples[i], V1()), golden[i]) << "example " << i + 1;
  }
}

// Butler SOS's lines as the reference quotes them, with the tags sorted and
// our timestamp appended, are the golden lines: the golden file says what
// Butler SOS says. (These lines have no escaped characters, so plain splits
// are enough.)
std::string SortTagsAndStamp(absl::string_view butler_line,
                             absl::string_view timestamp) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(butler_line, absl::MaxSplits(' ', 1));
  std::vector<absl::string_view> key = absl::StrSplit(parts[0], ',');
  std::sort(key.begin() + 1, key.end());
  return absl::StrCat(absl::StrJoin(key, ","), " ", parts[1], " ", timestamp);
}

TEST(FailurePointGoldenTest, GoldenFileMatchesButlerSosText) {
  const char* const kButler[] = {
      R"(butler_sos_errors,error_type=HEALTH_API,server_name=sense1,host=10.0.0.5:4747 error_category="connection_refused",error_code="ECONNREFUSED",error_count=1,remote_address="10.0.0.5",remote_port=4747,request_timeout_ms=5000,request_url="https://10.0.0.5:4747/engine/healthcheck",syscall="connect")",
      R"(butler_sos_errors,error_type=HEALTH_API,server_name=sense1,host=10.0.0.5:4747 error_category="timeout",error_code="ECONNABORTED",error_count=1,request_timeout_ms=5000,request_url="https://10.0.0.5:4747/engine/healthcheck")",
      R"(butler_sos_errors,error_type=PROXY_API,server_name=sense2,host=10.0.0.6:4243,virtual_proxy=/sales error_category="http_5xx",error_code="ERR_BAD_RESPONSE",error_count=1,http_status=500,request_timeout_ms=5000,request_url="https://10.0.0.6:4243/qps/sales/session")",
  };
  const char* const kTimestamps[] = {
      "1764000000123456789", "1764000001000000000", "1764000002000000001"};
  const std::vector<std::string> golden = ReadGolden(kGoldenV1);
  ASSERT_EQ(golden.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(SortTagsAndStamp(kButler[i], kTimestamps[i]), golden[i]);
  }
}

TEST(FailurePointTest, IntegerNumbersForInfluxV2AndV3) {
  EXPECT_EQ(
      Line(HealthRefused(), V2()),
      R"(butler_sos_errors,error_type=HEALTH_API,host=10.0.0.5:4747,server_name=sense1 error_category="connection_refused",error_code="ECONNREFUSED",error_count=1i,remote_address="10.0.0.5",remote_port=4747i,request_timeout_ms=5000i,request_url="https://10.0.0.5:4747/engine/healthcheck",syscall="connect" 1764000000123456789)");
  EXPECT_EQ(
      Line(ProxyHttp500(), V2()),
      R"(butler_sos_errors,error_type=PROXY_API,host=10.0.0.6:4243,server_name=sense2,virtual_proxy=/sales error_category="http_5xx",error_code="ERR_BAD_RESPONSE",error_count=1i,http_status=500i,request_timeout_ms=5000i,request_url="https://10.0.0.6:4243/qps/sales/session" 1764000002000000001)");
}

TEST(FailurePointTest, FieldTypesFollowSchema) {
  Point v1 = FailureToPoint(ProxyHttp500(), V1());
  Point v2 = FailureToPoint(ProxyHttp500(), V2());
  for (const auto& [key, value] : v1.fields) {
    if (key == "error_count" || key == "http_status" ||
        key == "request_timeout_ms") {
      EXPECT_TRUE(std::holds_alternative<double>(value)) << key;
    } else {
      EXPECT_TRUE(std::holds_alternative<std::string>(value)) << key;
    }
  }
  for (const auto& [key, value] : v2.fields) {
    if (key == "error_count" || key == "http_status" ||
        key == "request_timeout_ms") {
      EXPECT_TRUE(std::holds_alternative<int64_t>(value)) << key;
    }
  }
}

TEST(FailurePointTest, ServerNameWithSpacesIsEscaped) {
  PollFailure f = HealthTimeout();
  f.set_server_name("sense http404 east");
  EXPECT_EQ(
      Line(f, V1()),
      R"(butler_sos_errors,error_type=HEALTH_API,host=10.0.0.5:4747,server_name=sense\ http404\ east error_category="timeout",error_code="ECONNABORTED",error_count=1,request_timeout_ms=5000,request_url="https://10.0.0.5:4747/engine/healthcheck" 1764000001000000000)");
}

TEST(FailurePointTest, OptionalFieldsAbsent) {
  PollFailure f = Stamped(1764000003, 0);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("sense1");
  f.set_host("sense1:4747");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_UNKNOWN);
  EXPECT_EQ(
      Line(f, V1()),
      R"(butler_sos_errors,error_type=HEALTH_API,host=sense1:4747,server_name=sense1 error_category="unknown",error_count=1 1764000003000000000)");
}

TEST(FailurePointTest, UnspecifiedCategoryIsWrittenUnknown) {
  PollFailure f = Stamped(1, 0);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("s");
  f.set_host("h");
  EXPECT_EQ(
      Line(f, V1()),
      R"(butler_sos_errors,error_type=HEALTH_API,host=h,server_name=s error_category="unknown",error_count=1 1000000000)");
}

TEST(FailurePointTest, ExplicitZeroNumbersAreWritten) {
  PollFailure f = Stamped(1, 0);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("s");
  f.set_host("h");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_UNKNOWN);
  f.set_http_status(0);
  f.set_remote_port(0);
  f.set_request_timeout_ms(0);
  EXPECT_EQ(
      Line(f, V2()),
      R"(butler_sos_errors,error_type=HEALTH_API,host=h,server_name=s error_category="unknown",error_count=1i,http_status=0i,remote_port=0i,request_timeout_ms=0i 1000000000)");
}

TEST(FailurePointTest, CertificateErrorCarriesNoSocketFields) {
  PollFailure f = Stamped(1764000004, 0);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("sense1");
  f.set_host("sense1.example.com:4747");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_CERTIFICATE_ERROR);
  f.set_error_code("CERT_HAS_EXPIRED");
  f.set_request_url("https://sense1.example.com:4747/engine/healthcheck");
  f.set_request_timeout_ms(5000);
  EXPECT_EQ(
      Line(f, V1()),
      R"(butler_sos_errors,error_type=HEALTH_API,host=sense1.example.com:4747,server_name=sense1 error_category="certificate_error",error_code="CERT_HAS_EXPIRED",error_count=1,request_timeout_ms=5000,request_url="https://sense1.example.com:4747/engine/healthcheck" 1764000004000000000)");
}

TEST(FailurePointTest, AppNamesExtract) {
  PollFailure f = Stamped(1764000005, 0);
  f.set_source(failedpolls::v1::APP_NAMES_EXTRACT);
  f.set_server_name("10.0.0.7");
  f.set_host("10.0.0.7");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_HOST_NOT_FOUND);
  f.set_error_code("ENOTFOUND");
  f.set_request_url("https://10.0.0.7:4242/qrs/app");
  f.set_request_timeout_ms(5000);
  f.set_syscall("getaddrinfo");
  EXPECT_EQ(
      Line(f, V1()),
      R"(butler_sos_errors,error_type=APP_NAMES_EXTRACT,host=10.0.0.7,server_name=10.0.0.7 error_category="host_not_found",error_code="ENOTFOUND",error_count=1,request_timeout_ms=5000,request_url="https://10.0.0.7:4242/qrs/app",syscall="getaddrinfo" 1764000005000000000)");
}

TEST(FailurePointTest, VirtualProxyOnlyForProxyApiAndNonEmpty) {
  PollFailure root = ProxyHttp500();
  root.set_virtual_proxy("/");
  EXPECT_EQ(FailureToPoint(root, V1()).tags,
            (std::vector<std::pair<std::string, std::string>>{
                {"error_type", "PROXY_API"},
                {"host", "10.0.0.6:4243"},
                {"server_name", "sense2"},
                {"virtual_proxy", "/"}}));

  PollFailure none = ProxyHttp500();
  none.clear_virtual_proxy();
  EXPECT_EQ(FailureToPoint(none, V1()).tags.size(), 3u);

  PollFailure health = HealthTimeout();
  health.set_virtual_proxy("/sales");  // a producer's mistake: not written
  EXPECT_EQ(Line(health, V1()), Line(HealthTimeout(), V1()));
}

TEST(FailurePointTest, StaticTagsAddedButNeverReplaceFailureTags) {
  PointSchema schema = V1();
  schema.static_tags = {{"env", "prod"},
                        {"site", "Göteborg east"},
                        {"server_name", "hijack"},
                        {"virtual_proxy", "/hijack"},
                        {"empty", ""}};
  EXPECT_EQ(
      Line(HealthTimeout(), schema),
      R"(butler_sos_errors,env=prod,error_type=HEALTH_API,host=10.0.0.5:4747,server_name=sense1,site=Göteborg\ east error_category="timeout",error_code="ECONNABORTED",error_count=1,request_timeout_ms=5000,request_url="https://10.0.0.5:4747/engine/healthcheck" 1764000001000000000)");
}

TEST(FailurePointTest, ServerTagsOnlyWhenAskedAndTheyBeatStaticTags) {
  PollFailure f = HealthTimeout();
  (*f.mutable_server_tags())["env"] = "test";
  (*f.mutable_server_tags())["dc"] = "east";
  (*f.mutable_server_tags())["host"] = "hijack";
  (*f.mutable_server_tags())["blank"] = "";
  PointSchema schema = V1();
  schema.static_tags = {{"env", "prod"}, {"blank", "static"}};

  const std::string fields =
      R"( error_category="timeout",error_code="ECONNABORTED",error_count=1,request_timeout_ms=5000,request_url="https://10.0.0.5:4747/engine/healthcheck" 1764000001000000000)";
  schema.include_server_tags = false;  // Butler SOS's behaviour
  EXPECT_EQ(Line(f, schema),
            absl::StrCat("butler_sos_errors,blank=static,env=prod,error_type="
                         "HEALTH_API,host=10.0.0.5:4747,server_name=sense1",
                         fields));
  schema.include_server_tags = true;
  EXPECT_EQ(Line(f, schema),
            absl::StrCat("butler_sos_errors,blank=static,dc=east,env=test,"
                         "error_type=HEALTH_API,host=10.0.0.5:4747,server_name="
                         "sense1",
                         fields));
}

TEST(FailurePointTest, CustomMeasurementAndEscapedValues) {
  PointSchema schema = V1();
  schema.measurement = "qlik errors";
  PollFailure f = ProxyHttp500();
  f.set_server_name("sense,2");
  f.set_virtual_proxy("/a=b");
  f.set_request_url("https://10.0.0.6:4243/qps/\"quoted\"\\path");
  f.set_error_code("line1\nline2");
  EXPECT_EQ(
      Line(f, schema),
      R"(qlik\ errors,error_type=PROXY_API,host=10.0.0.6:4243,server_name=sense\,2,virtual_proxy=/a\=b error_category="http_5xx",error_code="line1 line2",error_count=1,http_status=500,request_timeout_ms=5000,request_url="https://10.0.0.6:4243/qps/\"quoted\"\\path" 1764000002000000001)");
}

TEST(FailurePointTest, EmptyServerNameTagLeftOut) {
  PollFailure f = HealthTimeout();
  f.clear_server_name();
  PointSchema schema = V1();
  schema.static_tags = {{"server_name", "fallback"}};
  EXPECT_EQ(
      Line(f, schema),
      R"(butler_sos_errors,error_type=HEALTH_API,host=10.0.0.5:4747 error_category="timeout",error_code="ECONNABORTED",error_count=1,request_timeout_ms=5000,request_url="https://10.0.0.5:4747/engine/healthcheck" 1764000001000000000)");
}

TEST(FailurePointTest, TimestampFromOccurredAt) {
  EXPECT_EQ(FailureToPoint(Stamped(1764000000, 123456789), V1()).timestamp_ns,
            1764000000123456789);
  EXPECT_EQ(FailureToPoint(Stamped(-1, 500000000), V1()).timestamp_ns,
            -500000000);
  // Beyond what int64 nanoseconds hold (year 2262): clamped, no overflow.
  EXPECT_EQ(FailureToPoint(Stamped(253402300799, 999999999), V1()).timestamp_ns,
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(FailureToPoint(Stamped(-62135596800, 0), V1()).timestamp_ns,
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(FailureToPoint(Stamped(9223372036, 854775807), V1()).timestamp_ns,
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(FailureToPoint(Stamped(9223372036, 854775806), V1()).timestamp_ns,
            std::numeric_limits<int64_t>::max() - 1);
}

}  // namespace
}  // namespace qfp::tracker
