#include "poller-service/failure_classifier.h"

#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/failure_names.h"
#include "gtest/gtest.h"
#include "poller-service/curl_transport.h"
#include "poller-service/json_shape_check.h"

namespace qfp::poller {
namespace {

namespace v1 = failedpolls::v1;

// ---- Building outcomes by hand -------------------------------------------

// In these tests body_head holds the whole (small) body; Checked() judges it
// the way the curl transport has its BodyCheck judge a body as it streams.
RequestOutcome Response(int status, std::string body) {
  RequestOutcome o;
  o.http_status = status;
  o.body_bytes = body.size();
  o.body_head = std::move(body);
  o.remote_address = "10.0.0.5";  // the connected peer, as the transport sets
  o.remote_port = 4747;
  return o;
}

// The body cap stopped the transfer (the curl transport: CURLE_WRITE_ERROR).
RequestOutcome CutResponse(int status, std::string body) {
  RequestOutcome o = Response(status, std::move(body));
  o.error = TransportError::kBodyTooLarge;
  o.error_name = "CURLE_WRITE_ERROR";
  o.body_too_large = true;
  o.error_text = "Failure writing output to destination";
  return o;
}

// The connection ended before the announced end of the body (the curl
// transport: CURLE_PARTIAL_FILE).
RequestOutcome ShortResponse(int status, std::string body) {
  RequestOutcome o = Response(status, std::move(body));
  o.error = TransportError::kBodyCutShort;
  o.error_name = "CURLE_PARTIAL_FILE";
  return o;
}

// What the transport reports after its JsonShapeCheck saw the body: the
// verdict of a body read to its end.
RequestOutcome Checked(RequestOutcome o, ExpectedBody expected) {
  if (o.error == TransportError::kNone && o.http_status > 0) {
    o.body_problem = CheckJsonShape(o.body_head, expected);
  }
  return o;
}

// ---- The table ------------------------------------------------------------

struct Row {
  const char* name;
  RequestOutcome in;
  ExpectedBody expected;
  bool success;  // when true the remaining columns are not looked at
  v1::ErrorCategory category;
  const char* code;
  std::optional<uint32_t> status;
  const char* address;
  std::optional<uint32_t> port;
  const char* syscall;
};

constexpr auto kObject = ExpectedBody::kJsonObject;
constexpr auto kArray = ExpectedBody::kJsonArray;
constexpr std::optional<uint32_t> kNone = std::nullopt;

Row Ok(const char* name, RequestOutcome in, ExpectedBody expected) {
  return {name, std::move(in), expected, true,  v1::ERROR_CATEGORY_UNSPECIFIED,
          "",   kNone,         "",       kNone, ""};
}

Row Fails(const char* name, RequestOutcome in, ExpectedBody expected,
          v1::ErrorCategory category, const char* code,
          std::optional<uint32_t> status = kNone, const char* syscall = "",
          const char* address = "", std::optional<uint32_t> port = kNone) {
  return {name, std::move(in), expected, false, category,
          code, status,        address,  port,  syscall};
}

std::ostream& operator<<(std::ostream& os, const Row& row) {
  return os << row.name;
}

std::vector<Row> Rows() {
  const char* kHealth =
      R"({"version":"12.1","started":"20240101T000000.000Z","mem":{},)"
      R"("cpu":{},"session":{},"apps":{},"users":{},"cache":{},)"
      R"("saturated":false})";
  return {
      // -- Healthy answers.
      Ok("health_object", Response(200, kHealth), kObject),
      Ok("sessions_empty_array", Response(200, "[]"), kArray),
      Ok("sessions_array", Response(200, R"([{"UserId":"u","SessionId":"s"}])"),
         kArray),
      Ok("json_with_surrounding_whitespace", Response(200, " \r\n\t{}\n "),
         kObject),
      Ok("other_2xx_with_json", Response(203, "{}"), kObject),

      // -- 2xx that is not the expected JSON: invalid_response.
      Fails("html_login_page",
            Response(200, "<!doctype html><html><body>Login</body></html>"),
            kObject, v1::ERROR_CATEGORY_INVALID_RESPONSE,
            "ERR_INVALID_RESPONSE", 200),
      Fails("truncated_json", Response(200, R"({"version":"12.1","mem":{)"),
            kObject, v1::ERROR_CATEGORY_INVALID_RESPONSE,
            "ERR_INVALID_RESPONSE", 200),
      Fails("array_where_object_expected", Response(200, "[]"), kObject,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("object_where_array_expected", Response(200, kHealth), kArray,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("empty_body", Response(200, ""), kObject,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("whitespace_body", Response(200, " \n"), kArray,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("no_content_204", Response(204, ""), kObject,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 204),
      Fails("json_scalar", Response(200, "42"), kObject,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("json_string", Response(200, R"("ok")"), kArray,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("trailing_garbage", Response(200, "{} {}"), kObject,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("json_with_comment", Response(200, "/* hi */ {}"), kObject,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("body_too_large", CutResponse(200, std::string(64, '[')), kArray,
            v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE", 200),
      Fails("body_too_large_even_if_prefix_is_json", CutResponse(200, "[]"),
            kArray, v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE",
            200),
      Fails("body_shorter_than_content_length", ShortResponse(200, "{}"),
            kObject, v1::ERROR_CATEGORY_INVALID_RESPONSE,
            "ERR_INVALID_RESPONSE", 200),

  };
}

class ClassifyTableTest : public ::testing::TestWithParam<Row> {};

TEST_P(ClassifyTableTest, Classifies) {
  const Row& row = GetParam();
  const std::optional<Classification> got =
      ClassifyOutcome(Checked(row.in, row.expected));
  if (row.success) {
    EXPECT_FALSE(got.has_value()) << got->message;
    return;
  }
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->category, row.category)
      << v1::ErrorCategory_Name(got->category) << ": " << got->message;
  EXPECT_EQ(got->error_code, row.code) << got->message;
  EXPECT_EQ(got->http_status, row.status);
  EXPECT_EQ(got->remote_address, row.address);
  EXPECT_EQ(got->remote_port, row.port);
  EXPECT_EQ(got->syscall, row.syscall);
  EXPECT_FALSE(got->message.empty());
  if (!row.in.error_text.empty() && row.in.http_status == 0) {
    EXPECT_NE(got->message.find(row.in.error_text), std::string::npos)
        << "the message keeps the transport's words: " << got->message;
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, ClassifyTableTest, ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row>& param) {
                           return param.param.name;
                         });

// ---- Messages --------------------------------------------------------------

TEST(ClassifyMessageTest, InvalidBodyShowsASafePreview) {
  const auto got = ClassifyOutcome(Checked(
      Response(200,
               std::string("<!doctype html>\n\x01<p>") + std::string(100, 'x')),
      kObject));
  ASSERT_TRUE(got.has_value());
  EXPECT_NE(got->message.find("<!doctype html>?"
                              "?<p>"),
            std::string::npos)
      << got->message;
  EXPECT_EQ(got->message.find('\n'), std::string::npos);
  EXPECT_EQ(got->message.find('\x01'), std::string::npos);
}

TEST(ClassifyMessageTest, StatusMessageIsAxiosLike) {
  const auto got = ClassifyOutcome(Response(503, ""));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->message, "Request failed with status code 503");
}

// ---- Hostile bodies: classified, never a crash -----------------------------

std::optional<Classification> Classify200(std::string body,
                                          ExpectedBody expected) {
  return ClassifyOutcome(Checked(Response(200, std::move(body)), expected));
}

TEST(HostileBodyTest, VeryDeepUnterminatedNesting) {
  const auto got = Classify200(std::string(1'000'000, '['), kArray);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
}

TEST(HostileBodyTest, DeepNestingUpToTheLimitIsStillAnArray) {
  const std::string body =
      std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_FALSE(Classify200(body, kArray).has_value());
  const auto got = Classify200(body, kObject);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
}

TEST(HostileBodyTest, NestingPastTheLimitIsInvalidNotACrash) {
  // Bounds the parser's stack, whatever the body's size.
  const std::string body =
      std::string(500'000, '[') + std::string(500'000, ']');
  const auto got = Classify200(body, kArray);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  EXPECT_NE(got->message.find("not JSON"), std::string::npos) << got->message;
}

TEST(HostileBodyTest, DeepObjectNesting) {
  std::string body;
  for (size_t i = 0; i + 1 < kMaxJsonDepth; ++i) body += R"({"a":)";
  body += "1";
  body += std::string(kMaxJsonDepth - 1, '}');
  EXPECT_FALSE(Classify200(body, kObject).has_value());
}

TEST(HostileBodyTest, InvalidUtf8InAString) {
  for (const char* bad :
       {"\xff", "\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    const auto got =
        Classify200(std::string(R"({"name":")") + bad + R"("})", kObject);
    ASSERT_TRUE(got.has_value()) << "byte sequence accepted: " << bad;
    EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  }
}

TEST(HostileBodyTest, ValidUtf8IsFine) {
  EXPECT_FALSE(
      Classify200(R"([{"UserId":"J\u00f6rg","Name":"Jörg 日本 😀"}])", kArray)
          .has_value());
}

TEST(HostileBodyTest, NulBytesAnywhere) {
  // JSON never has a raw NUL (nlohmann's lexer took one for the end).
  using std::string_literals::operator""s;
  for (const std::string& body :
       {"\0"s, "{}\0"s, "\0{}"s, "{\"a\":\"x\0y\"}"s, "[1,\0 2]"s}) {
    const auto got = Classify200(body, kObject);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  }
}

TEST(HostileBodyTest, HugeNumbersAndStrings) {
  // Numbers that overflow a double; whatever the verdict, no crash.
  const auto numbers = Classify200(
      "[1e999999, -1e-999999, " + std::string(10000, '9') + "]", kArray);
  if (numbers.has_value()) {
    EXPECT_EQ(numbers->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  }
  EXPECT_FALSE(
      Classify200(R"({"k":")" + std::string(4 << 20, 'x') + R"("})", kObject)
          .has_value());
}

TEST(HostileBodyTest, RandomBytesNeverCrash) {
  std::mt19937 rng(20240601);  // fixed: a failure must be reproducible
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 300);
  std::string alphabet = "{}[]\":,0123456789.eE-+ truefalsn\\u";
  alphabet.push_back('\0');
  alphabet.push_back('\xff');
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 5000; ++i) {
    std::string body;
    const int n = length(rng);
    for (int j = 0; j < n; ++j) {
      body.push_back(i % 2 == 0 ? static_cast<char>(byte(rng))
                                : alphabet[pick(rng)]);
    }
    const auto got = Classify200(body, i % 3 == 0 ? kArray : kObject);
    if (got.has_value()) {
      EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
    }
  }
}

// ---- Any outcome gets a category
// ---------------------------------------------

TEST(ClassifyAnyOutcomeTest, RandomOutcomesAlwaysHaveACategory) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> error(
      0, static_cast<int>(TransportError::kOther));
  std::uniform_int_distribution<int> phase(
      0, static_cast<int>(RequestPhase::kReceive));
  std::uniform_int_distribution<int> os_errno(0, 140);
  std::uniform_int_distribution<int> status(0, 1000);
  std::uniform_int_distribution<long> verify(-5, 100);  // NOLINT(runtime/int)
  std::uniform_int_distribution<int> coin(0, 1);
  for (int i = 0; i < 20000; ++i) {
    RequestOutcome o;
    o.error = static_cast<TransportError>(error(rng));
    o.error_name = coin(rng) != 0 ? "CURLE_SOMETHING" : "";
    o.os_errno = os_errno(rng);
    o.http_status = coin(rng) != 0 ? status(rng) : 0;
    o.tls_verify_result = verify(rng);
    o.body_too_large = coin(rng) != 0;
    o.body_problem = coin(rng) != 0 ? "" : "the body is not JSON";
    o.phase = static_cast<RequestPhase>(phase(rng));
    o.error_text = coin(rng) != 0 ? "SSL routines::x" : "SSL routines:";
    o.remote_address = coin(rng) != 0 ? "127.0.0.1" : "";
    o.remote_port = coin(rng) != 0 ? 1 : 0;
    const auto got = ClassifyOutcome(o);
    if (!got.has_value()) {
      // Only a complete 2xx can be a success.
      EXPECT_EQ(o.error, TransportError::kNone);
      EXPECT_GE(o.http_status, 200);
      EXPECT_LT(o.http_status, 300);
      continue;
    }
    EXPECT_NE(got->category, v1::ERROR_CATEGORY_UNSPECIFIED);
    EXPECT_TRUE(v1::ErrorCategory_IsValid(got->category));
    EXPECT_FALSE(got->message.empty());
    if (got->category == v1::ERROR_CATEGORY_CERTIFICATE_ERROR) {
      EXPECT_TRUE(got->remote_address.empty());
      EXPECT_FALSE(got->remote_port.has_value());
    }
  }
}

// ---- The classification table of docs/compatibility.md §4 -----------------

// One row of the table, as written there.
struct DocRow {
  int line = 0;
  std::string text;  // the row as written, for messages
  std::string curl_result, errno_name, phase, details;
  std::string category, code, http_status, remote, syscall;
};

std::string Cell(absl::string_view cell) {
  std::string out(absl::StripAsciiWhitespace(cell));
  out.erase(std::remove(out.begin(), out.end(), '`'), out.end());
  return out == "–" ? "" : out;
}

// Reads the rows under the header "| curl result | errno | phase | ...".
std::vector<DocRow> ReadDocTable() {
  std::ifstream file(std::string(QFP_SOURCE_DIR) + "/docs/compatibility.md");
  std::vector<DocRow> rows;
  std::string line;
  int number = 0;
  bool in_table = false;
  while (std::getline(file, line)) {
    ++number;
    if (absl::StartsWith(line, "| curl result | errno | phase |")) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (!absl::StartsWith(line, "|")) break;
    if (absl::StartsWith(line, "|---")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    // "| a | b |" splits into "", a, b, "".
    if (cells.size() != 11) {
      ADD_FAILURE() << "docs/compatibility.md:" << number
                    << ": expected 9 cells: " << line;
      continue;
    }
    DocRow row;
    row.line = number;
    row.text = line;
    row.curl_result = Cell(cells[1]);
    row.errno_name = Cell(cells[2]);
    row.phase = Cell(cells[3]);
    row.details = Cell(cells[4]);
    row.category = Cell(cells[5]);
    row.code = Cell(cells[6]);
    row.http_status = Cell(cells[7]);
    row.remote = Cell(cells[8]);
    row.syscall = Cell(cells[9]);
    rows.push_back(row);
  }
  return rows;
}

int CurlCodeNamed(const std::string& name) {
  if (name == "CURLE_OK") return 0;
  for (int code = 1; code < 200; ++code) {
    if (CurlCodeName(code) == name) return code;
  }
  ADD_FAILURE() << "no libcurl code named " << name;
  return -1;
}

int ErrnoNamed(const std::string& name) {
  if (name.empty()) return 0;
  for (int value = 1; value < 200; ++value) {
    const char* known = strerrorname_np(value);
    if (known != nullptr && name == known) return value;
  }
  ADD_FAILURE() << "no errno named " << name;
  return 0;
}

long VerifyNamed(const std::string& name) {  // NOLINT(runtime/int)
  for (long code = 0; code < 200; ++code) {  // NOLINT(runtime/int)
    if (VerifyErrorName(code) == name) return code;
  }
  ADD_FAILURE() << "no verify result named " << name;
  return 0;
}

std::vector<RequestPhase> PhasesOf(const std::string& phase) {
  if (phase == "connect") return {RequestPhase::kConnect};
  if (phase == "tls") return {RequestPhase::kTls};
  if (phase == "send") return {RequestPhase::kSend};
  if (phase == "receive") return {RequestPhase::kReceive};
  EXPECT_EQ(phase, "any");
  return {RequestPhase::kConnect, RequestPhase::kTls, RequestPhase::kSend,
          RequestPhase::kReceive};
}

// The outcome the curl transport reports for the row's inputs: its
// CurlCodeToTransportError and CurlCodeName, the address it dialled.
RequestOutcome OutcomeOf(const DocRow& row, RequestPhase phase) {
  RequestOutcome o;
  const int code = CurlCodeNamed(row.curl_result);
  bool cap = false;
  bool check = false;
  bool redirect = false;
  for (absl::string_view item : absl::StrSplit(row.details, ';')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) continue;
    if (absl::ConsumePrefix(&item, "status ")) {
      EXPECT_TRUE(absl::SimpleAtoi(item, &o.http_status)) << row.text;
    } else if (absl::ConsumePrefix(&item, "verify ")) {
      o.tls_verify_result = VerifyNamed(std::string(item));
    } else if (absl::ConsumePrefix(&item, "text ")) {
      o.error_text =
          std::string(absl::StripSuffix(absl::StripPrefix(item, "\""), "\""));
    } else if (item == "problem") {
      o.body_problem = "the body is not JSON (syntax error at byte 0)";
    } else if (item == "cap") {
      cap = true;
    } else if (item == "check") {
      check = true;
    } else if (item == "redirect") {
      redirect = true;
    } else {
      ADD_FAILURE() << "docs/compatibility.md:" << row.line
                    << ": unknown detail " << item;
    }
  }
  o.body_too_large = cap;
  o.error = CurlCodeToTransportError(code, cap, check, redirect);
  o.error_name = CurlCodeName(code);
  if (code != 0 && o.error_text.empty()) {
    o.error_text = absl::StrCat("curl ", code, " (a failure)");
  }
  o.os_errno = ErrnoNamed(row.errno_name);
  o.phase = phase;
  o.remote_address = "10.0.0.5";  // the transport knows what it dialled
  o.remote_port = 4747;
  o.body_head = "<html>";
  o.body_bytes = 6;
  return o;
}

TEST(ClassificationTableTest, TheDocumentedTableIsWhatTheClassifierDoes) {
  const std::vector<DocRow> rows = ReadDocTable();
  ASSERT_GE(rows.size(), 60u) << "the table in docs/compatibility.md §4 was "
                                 "not found or lost rows";
  for (const DocRow& row : rows) {
    for (RequestPhase phase : PhasesOf(row.phase)) {
      SCOPED_TRACE(::testing::Message()
                   << "docs/compatibility.md:" << row.line << " phase "
                   << static_cast<int>(phase) << ": " << row.text);
      const RequestOutcome in = OutcomeOf(row, phase);
      const std::optional<Classification> got = ClassifyOutcome(in);
      if (row.category.empty()) {
        EXPECT_FALSE(got.has_value()) << got->message;
        continue;
      }
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(CategoryName(got->category), row.category) << got->message;
      EXPECT_EQ(got->error_code, row.code) << got->message;
      if (row.http_status == "yes") {
        EXPECT_EQ(got->http_status, std::optional<uint32_t>(
                                        static_cast<uint32_t>(in.http_status)));
      } else {
        EXPECT_EQ(row.http_status, "");
        EXPECT_EQ(got->http_status, std::nullopt);
      }
      if (row.remote == "yes") {
        EXPECT_EQ(got->remote_address, "10.0.0.5");
        EXPECT_EQ(got->remote_port, std::optional<uint32_t>(4747));
      } else {
        EXPECT_EQ(row.remote, "");
        EXPECT_EQ(got->remote_address, "");
        EXPECT_EQ(got->remote_port, std::nullopt);
      }
      EXPECT_EQ(got->syscall, row.syscall);
      EXPECT_FALSE(got->message.empty());
    }
  }
}

// The table covers every way the curl transport can end a request: each
// TransportError appears in at least one row.
TEST(ClassificationTableTest, EveryTransportErrorHasARow) {
  std::vector<bool> seen(static_cast<size_t>(TransportError::kOther) + 1);
  for (const DocRow& row : ReadDocTable()) {
    const RequestOutcome o = OutcomeOf(row, RequestPhase::kReceive);
    seen[static_cast<size_t>(o.error)] = true;
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_TRUE(seen[i]) << "no row for TransportError " << i;
  }
}

// ---- VerifyErrorName ------------------------------------------------------

TEST(VerifyErrorNameTest, NamesWithoutPrefix) {
  EXPECT_EQ(VerifyErrorName(X509_V_OK), "OK");
  EXPECT_EQ(VerifyErrorName(10), "CERT_HAS_EXPIRED");
  EXPECT_EQ(VerifyErrorName(18), "DEPTH_ZERO_SELF_SIGNED_CERT");
  EXPECT_EQ(VerifyErrorName(19), "SELF_SIGNED_CERT_IN_CHAIN");
  EXPECT_EQ(VerifyErrorName(20), "UNABLE_TO_GET_ISSUER_CERT_LOCALLY");
  EXPECT_EQ(VerifyErrorName(21), "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
  EXPECT_EQ(VerifyErrorName(62), "HOSTNAME_MISMATCH");
  EXPECT_EQ(VerifyErrorName(X509_V_ERR_EC_KEY_EXPLICIT_PARAMS),
            "EC_KEY_EXPLICIT_PARAMS");
}

TEST(VerifyErrorNameTest, UnknownCodes) {
  EXPECT_EQ(VerifyErrorName(9999), "UNKNOWN_VERIFY_ERROR_9999");
  EXPECT_EQ(VerifyErrorName(-1), "UNKNOWN_VERIFY_ERROR_-1");
}

TEST(VerifyErrorNameTest, EveryOpenSslCodeUpToTheLastHasAName) {
  for (long code = 0; code <= X509_V_ERR_EC_KEY_EXPLICIT_PARAMS;
       ++code) {  // NOLINT
    EXPECT_EQ(VerifyErrorName(code).rfind("UNKNOWN_VERIFY_ERROR_", 0),
              std::string::npos)
        << code;
  }
}

}  // namespace
}  // namespace qfp::poller
