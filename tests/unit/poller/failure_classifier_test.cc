#include "poller-service/failure_classifier.h"

#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace qfp::poller {
namespace {

namespace v1 = failedpolls::v1;

// ---- Building outcomes by hand -------------------------------------------

RequestOutcome Response(int status, std::string body) {
  RequestOutcome o;
  o.http_status = status;
  o.body = std::move(body);
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

RequestOutcome Failed(TransportError error, int os_errno = 0,
                      std::string text = "", std::string address = "",
                      int port = 0) {
  RequestOutcome o;
  o.error = error;
  o.os_errno = os_errno;
  o.error_text = std::move(text);
  o.remote_address = std::move(address);
  o.remote_port = port;
  return o;
}

// A verification failure: libcurl also knows the connected peer then.
RequestOutcome BadCert(long verify_result) {  // NOLINT(runtime/int)
  RequestOutcome o = Failed(TransportError::kTlsVerify, 0,
                            "SSL certificate verify result", "10.0.0.5", 4747);
  o.tls_verify_result = verify_result;
  return o;
}

RequestOutcome Handshake(std::string text, int os_errno = 0) {
  RequestOutcome o = Failed(TransportError::kTlsHandshake, os_errno,
                            std::move(text), "10.0.0.5", 4747);
  o.tls_verify_result = 1;  // libcurl 7.88's "not verified" placeholder
  return o;
}

RequestOutcome WithStatus(RequestOutcome o, int status) {
  o.http_status = status;
  return o;
}

// The transport's own name for the failure (the curl transport's CURLcode
// name), which is the error code when nothing more specific is known.
RequestOutcome Named(RequestOutcome o, std::string name) {
  o.error_name = std::move(name);
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

      // -- Statuses outside 2xx, as axios and Butler SOS name them.
      Fails("status_401", Response(401, ""), kObject,
            v1::ERROR_CATEGORY_AUTH_ERROR, "ERR_BAD_REQUEST", 401),
      Fails("status_403_with_json", Response(403, "{}"), kObject,
            v1::ERROR_CATEGORY_AUTH_ERROR, "ERR_BAD_REQUEST", 403),
      Fails("status_404", Response(404, "Not found"), kArray,
            v1::ERROR_CATEGORY_NOT_FOUND, "ERR_BAD_REQUEST", 404),
      Fails("status_429", Response(429, ""), kArray,
            v1::ERROR_CATEGORY_RATE_LIMITED, "ERR_BAD_REQUEST", 429),
      Fails("status_400", Response(400, ""), kObject,
            v1::ERROR_CATEGORY_HTTP_4XX, "ERR_BAD_REQUEST", 400),
      Fails("status_418", Response(418, ""), kObject,
            v1::ERROR_CATEGORY_HTTP_4XX, "ERR_BAD_REQUEST", 418),
      Fails("status_499", Response(499, ""), kObject,
            v1::ERROR_CATEGORY_HTTP_4XX, "ERR_BAD_REQUEST", 499),
      Fails("status_500", Response(500, "{}"), kObject,
            v1::ERROR_CATEGORY_HTTP_5XX, "ERR_BAD_RESPONSE", 500),
      Fails("status_503", Response(503, ""), kArray,
            v1::ERROR_CATEGORY_HTTP_5XX, "ERR_BAD_RESPONSE", 503),
      Fails("status_599", Response(599, ""), kArray,
            v1::ERROR_CATEGORY_HTTP_5XX, "ERR_BAD_RESPONSE", 599),
      Fails("status_600_like_butler_sos", Response(600, ""), kArray,
            v1::ERROR_CATEGORY_HTTP_5XX, "", 600),
      Fails("final_302_without_location", Response(302, ""), kObject,
            v1::ERROR_CATEGORY_UNKNOWN, "", 302),
      Fails("final_304", Response(304, ""), kObject, v1::ERROR_CATEGORY_UNKNOWN,
            "", 304),
      Fails("final_101", Response(101, ""), kObject, v1::ERROR_CATEGORY_UNKNOWN,
            "", 101),
      Fails("status_500_with_body_over_cap", CutResponse(500, "<html>"),
            kObject, v1::ERROR_CATEGORY_HTTP_5XX, "ERR_BAD_RESPONSE", 500),
      Fails("status_404_body_cut_short", ShortResponse(404, "Not fo"), kObject,
            v1::ERROR_CATEGORY_NOT_FOUND, "ERR_BAD_REQUEST", 404),

      // -- Timeouts.
      Fails("timeout",
            Failed(TransportError::kTimeout, 0,
                   "Operation timed out after 5000 milliseconds with 0 bytes "
                   "received",
                   "10.0.0.5", 4747),
            kObject, v1::ERROR_CATEGORY_TIMEOUT, "ECONNABORTED"),
      Fails("timeout_during_connect",
            Failed(TransportError::kTimeout, EINPROGRESS,
                   "Connection timed out after 5001 milliseconds", "10.0.0.5",
                   4747),
            kObject, v1::ERROR_CATEGORY_TIMEOUT, "ECONNABORTED"),
      Fails("timeout_after_status_line_has_no_status",
            WithStatus(Failed(TransportError::kTimeout), 200), kObject,
            v1::ERROR_CATEGORY_TIMEOUT, "ECONNABORTED"),

      // -- Connect failures: the address and port dialled.
      Fails("refused",
            Failed(TransportError::kConnect, ECONNREFUSED,
                   "Failed to connect to 10.0.0.5 port 4747 after 0 ms: "
                   "Couldn't connect to server",
                   "10.0.0.5", 4747),
            kObject, v1::ERROR_CATEGORY_CONNECTION_REFUSED, "ECONNREFUSED",
            kNone, "connect", "10.0.0.5", 4747),
      Fails("refused_ipv6",
            Failed(TransportError::kConnect, ECONNREFUSED, "", "::1", 4243),
            kArray, v1::ERROR_CATEGORY_CONNECTION_REFUSED, "ECONNREFUSED",
            kNone, "connect", "::1", 4243),
      Fails("connect_etimedout",
            Failed(TransportError::kConnect, ETIMEDOUT, "", "10.0.0.5", 4747),
            kObject, v1::ERROR_CATEGORY_TIMEOUT, "ETIMEDOUT", kNone, "connect",
            "10.0.0.5", 4747),
      Fails(
          "host_unreachable",
          Failed(TransportError::kConnect, EHOSTUNREACH, "", "10.0.0.5", 4747),
          kObject, v1::ERROR_CATEGORY_UNKNOWN, "EHOSTUNREACH", kNone, "connect",
          "10.0.0.5", 4747),
      Fails("network_unreachable",
            Failed(TransportError::kConnect, ENETUNREACH, "", "10.0.0.5", 4747),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "ENETUNREACH", kNone,
            "connect", "10.0.0.5", 4747),
      Fails("connect_failed_without_errno",
            Named(Failed(TransportError::kConnect, 0, "", "10.0.0.5", 4747),
                  "CURLE_COULDNT_CONNECT"),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "CURLE_COULDNT_CONNECT", kNone,
            "connect", "10.0.0.5", 4747),
      Fails("connect_failed_nothing_dialled",
            Failed(TransportError::kConnect, ECONNREFUSED), kObject,
            v1::ERROR_CATEGORY_CONNECTION_REFUSED, "ECONNREFUSED", kNone,
            "connect", "", kNone),

      // -- Name resolution.
      Fails("host_not_found",
            Failed(TransportError::kResolve, 0,
                   "Could not resolve host: sense1.invalid"),
            kObject, v1::ERROR_CATEGORY_HOST_NOT_FOUND, "ENOTFOUND", kNone,
            "getaddrinfo"),

      // -- Resets and closes.
      Fails("reset_on_read",
            Failed(TransportError::kReceive, ECONNRESET,
                   "Recv failure: Connection reset by peer", "10.0.0.5", 4747),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET", kNone,
            "read"),
      Fails("reset_on_write",
            Failed(TransportError::kSend, ECONNRESET,
                   "Send failure: Connection reset by peer"),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET", kNone,
            "write"),
      // Seen with libcurl 7.88 over TLS: the reset is in the text, but the
      // saved errno is the EPIPE of the teardown that followed.
      Fails("reset_on_read_errno_overwritten",
            Failed(TransportError::kReceive, EPIPE,
                   "Recv failure: Connection reset by peer"),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET", kNone,
            "read"),
      Fails("broken_pipe_on_write",
            Failed(TransportError::kSend, EPIPE, "Send failure: Broken pipe"),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "EPIPE", kNone, "write"),
      Fails("recv_error_without_errno",
            Named(Failed(TransportError::kReceive, 0, "Recv failure"),
                  "CURLE_RECV_ERROR"),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "CURLE_RECV_ERROR"),
      Fails("closed_without_answer_socket_hang_up",
            Failed(TransportError::kEmptyReply, 0, "Empty reply from server"),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET"),
      Fails("reset_during_handshake",
            Handshake("Recv failure: Connection reset by peer", ECONNRESET),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET", kNone,
            "read"),
      Fails("closed_during_handshake",
            Handshake("OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection "
                      "to 10.0.0.5:4747 "),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET"),
      Fails("unexpected_eof_during_handshake",
            Handshake("OpenSSL/3.0.22: error:0A000126:SSL routines::unexpected "
                      "eof while reading"),
            kObject, v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET"),

      // -- TLS: certificate verification (no address, port or syscall).
      Fails("unknown_ca_leaf_only",
            BadCert(X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE), kObject,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
      Fails("unknown_root_sent_along",
            BadCert(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), kObject,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "SELF_SIGNED_CERT_IN_CHAIN"),
      Fails("self_signed_leaf", BadCert(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "DEPTH_ZERO_SELF_SIGNED_CERT"),
      Fails("expired", BadCert(X509_V_ERR_CERT_HAS_EXPIRED), kArray,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "CERT_HAS_EXPIRED"),
      Fails("not_yet_valid", BadCert(X509_V_ERR_CERT_NOT_YET_VALID), kArray,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "CERT_NOT_YET_VALID"),
      Fails("issuer_not_local",
            BadCert(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY), kObject,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
      Fails("curl_host_check_verify_ok", BadCert(X509_V_OK), kObject,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "ERR_TLS_CERT_ALTNAME_INVALID"),
      Fails("curl_host_check_placeholder_result",
            BadCert(X509_V_ERR_UNSPECIFIED), kObject,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "ERR_TLS_CERT_ALTNAME_INVALID"),
      Fails("openssl_hostname_mismatch", BadCert(X509_V_ERR_HOSTNAME_MISMATCH),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "ERR_TLS_CERT_ALTNAME_INVALID"),
      Fails("openssl_ip_mismatch", BadCert(X509_V_ERR_IP_ADDRESS_MISMATCH),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "ERR_TLS_CERT_ALTNAME_INVALID"),
      Fails("verify_code_openssl_does_not_have", BadCert(4242), kObject,
            v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "UNKNOWN_VERIFY_ERROR_4242"),

      // -- TLS: handshake failures.
      Fails("plain_http_peer_wrong_version_number",
            Handshake("OpenSSL/3.0.22: error:0A00010B:SSL routines::wrong "
                      "version number"),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "EPROTO", kNone,
            "write"),
      Fails("plain_http_peer_packet_length_too_long",
            Handshake("error:0A0000C6:SSL routines::packet length too long"),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "EPROTO", kNone,
            "write"),
      Fails("client_cert_rejected_tls12_alert",
            Handshake("OpenSSL/3.0.22: error:0A000410:SSL routines::sslv3 "
                      "alert handshake failure"),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "EPROTO", kNone,
            "write"),
      Fails("client_cert_missing_tls13_alert_after_handshake",
            Failed(TransportError::kReceive, 0,
                   "OpenSSL SSL_read: OpenSSL/3.0.22: error:0A00045C:SSL "
                   "routines::tlsv13 alert certificate required, errno 0",
                   "10.0.0.5", 4747),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"),
      Fails("our_client_cert_unusable",
            Named(Failed(TransportError::kTlsSetup, 0,
                         "could not load PEM client certificate"),
                  "CURLE_SSL_CERTPROBLEM"),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "CURLE_SSL_CERTPROBLEM"),
      Fails("our_ca_file_unusable",
            Named(Failed(TransportError::kTlsSetup, 0,
                         "error setting certificate file"),
                  "CURLE_SSL_CACERT_BADFILE"),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
            "CURLE_SSL_CACERT_BADFILE"),

      // -- Everything else.
      Fails("cancelled",
            Failed(TransportError::kCancelled, 0,
                   "cancelled: the transport was shut down"),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "ERR_CANCELED"),
      Fails("too_many_redirects",
            WithStatus(Failed(TransportError::kTooManyRedirects, 0,
                              "Maximum (5) redirects followed"),
                       302),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "ERR_FR_TOO_MANY_REDIRECTS",
            302),
      Fails("redirect_to_plain_http",
            WithStatus(Named(Failed(TransportError::kOther, 0,
                                    "Protocol \"http\" not supported"),
                             "CURLE_UNSUPPORTED_PROTOCOL"),
                       301),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "CURLE_UNSUPPORTED_PROTOCOL",
            301),
      Fails("malformed_url", Failed(TransportError::kBadUrl), kObject,
            v1::ERROR_CATEGORY_UNKNOWN, "ERR_INVALID_URL"),
      Fails("write_error_not_from_cap",
            Named(Failed(TransportError::kOther, 0, "Failure writing output"),
                  "CURLE_WRITE_ERROR"),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "CURLE_WRITE_ERROR"),
      Fails("curl_code_without_a_name",
            Named(Failed(TransportError::kOther), "CURLE_999"), kObject,
            v1::ERROR_CATEGORY_UNKNOWN, "CURLE_999"),
      Fails("transport_without_a_name_for_it", Failed(TransportError::kOther),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "ERR_TRANSPORT"),
      Fails("tls_setup_problem_keeps_the_transport_name",
            Named(Failed(TransportError::kTlsSetup, 0, "no cipher match"),
                  "CURLE_SSL_CIPHER"),
            kObject, v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "CURLE_SSL_CIPHER"),
      Fails("body_cut_short_without_a_status",
            Named(Failed(TransportError::kBodyCutShort, 0, "transfer closed"),
                  "CURLE_PARTIAL_FILE"),
            kObject, v1::ERROR_CATEGORY_UNKNOWN, "CURLE_PARTIAL_FILE"),
      Fails("completed_without_status", Response(0, "{}"), kObject,
            v1::ERROR_CATEGORY_UNKNOWN, ""),
  };
}

class ClassifyTableTest : public ::testing::TestWithParam<Row> {};

TEST_P(ClassifyTableTest, Classifies) {
  const Row& row = GetParam();
  const std::optional<Classification> got =
      ClassifyOutcome(row.in, row.expected);
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
  const auto got =
      ClassifyOutcome(Response(200, std::string("<!doctype html>\n\x01<p>") +
                                        std::string(100, 'x')),
                      kObject);
  ASSERT_TRUE(got.has_value());
  EXPECT_NE(got->message.find("<!doctype html>?"
                              "?<p>"),
            std::string::npos)
      << got->message;
  EXPECT_EQ(got->message.find('\n'), std::string::npos);
  EXPECT_EQ(got->message.find('\x01'), std::string::npos);
}

TEST(ClassifyMessageTest, StatusMessageIsAxiosLike) {
  const auto got = ClassifyOutcome(Response(503, ""), kObject);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->message, "Request failed with status code 503");
}

// ---- Hostile bodies: classified, never a crash -----------------------------

std::optional<Classification> Classify200(std::string body,
                                          ExpectedBody expected) {
  return ClassifyOutcome(Response(200, std::move(body)), expected);
}

TEST(HostileBodyTest, VeryDeepUnterminatedNesting) {
  const auto got = Classify200(std::string(1'000'000, '['), kArray);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
}

TEST(HostileBodyTest, VeryDeepValidNestingIsStillAnArray) {
  // Deep enough to overflow the stack of a recursive parser or destructor.
  const std::string body =
      std::string(500'000, '[') + std::string(500'000, ']');
  EXPECT_FALSE(Classify200(body, kArray).has_value());
  const auto got = Classify200(body, kObject);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
}

TEST(HostileBodyTest, DeepObjectNesting) {
  std::string body;
  for (int i = 0; i < 200'000; ++i) body += R"({"a":)";
  body += "1";
  body += std::string(200'000, '}');
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
  // nlohmann's lexer takes a NUL for the end of input; JSON never has one.
  using std::string_literals::operator""s;
  for (const std::string& body :
       {"\0"s, "{}\0"s, "\0{}"s, "{\"a\":\"x\0y\"}"s, "[1,\0 2]"s}) {
    const auto got = Classify200(body, kObject);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->category, v1::ERROR_CATEGORY_INVALID_RESPONSE);
  }
}

TEST(HostileBodyTest, HugeNumbersAndStrings) {
  // nlohmann rejects numbers that overflow a double; either way, no crash.
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
    o.body = coin(rng) != 0 ? "{}" : "[";
    o.error_text = coin(rng) != 0 ? "SSL routines::x" : "SSL routines:";
    o.remote_address = coin(rng) != 0 ? "127.0.0.1" : "";
    o.remote_port = coin(rng) != 0 ? 1 : 0;
    const auto got = ClassifyOutcome(o, coin(rng) != 0 ? kObject : kArray);
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
