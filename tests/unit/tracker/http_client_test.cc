// What the tracker's bytes-only HTTP client does by itself, against a local
// FakeHttpServer: what goes out on the wire, what comes back, and how a
// failed exchange is reported. What an InfluxDB answer means is tested with
// the writers (influx_writer_contract_test.cc).
#include "tracker-service/http_client.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_http_server.h"

namespace qfp::tracker {
namespace {

using ::qfp::testing::FakeHttpServer;
using ::qfp::testing::RecordedRequest;
using ::qfp::testing::ScriptedResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

class HttpCallTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start().ok()); }

  HttpRequest Request(const std::string& method, const std::string& target) {
    HttpRequest request;
    request.method = method;
    request.url = server_.url() + target;
    request.timeout = absl::Seconds(5);
    return request;
  }

  RecordedRequest OnlyRequest() {
    std::vector<RecordedRequest> requests = server_.requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? RecordedRequest{} : requests.front();
  }

  FakeHttpServer server_;
};

TEST_F(HttpCallTest, ErrorStatusesAreResponsesWithHeadersAndBody) {
  server_.set_handler([](const RecordedRequest&) {
    ScriptedResponse response = ScriptedResponse::Json(503, R"({"x":1})");
    response.headers.emplace_back("Retry-After", "7");
    response.headers.emplace_back("X-Twice", "a");
    response.headers.emplace_back("X-Twice", "b");
    return response;
  });
  absl::StatusOr<HttpResponse> answer = HttpCall(Request("GET", "/ping"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 503);
  EXPECT_EQ(answer->body, R"({"x":1})");
  // Names lower-cased, repeated headers joined.
  EXPECT_THAT(answer->headers, ::testing::Contains(Pair("retry-after", "7")));
  EXPECT_THAT(answer->headers, ::testing::Contains(Pair("x-twice", "a, b")));
  EXPECT_THAT(answer->headers,
              ::testing::Contains(Pair("content-type", "application/json")));
  EXPECT_EQ(OnlyRequest().target, "/ping");
}

// A server (or proxy) that echoes the request in its error answer must not
// hand our credentials to the logs: they come back masked.
TEST_F(HttpCallTest, CredentialsEchoedByTheServerAreMasked) {
  server_.set_handler([](const RecordedRequest& request) {
    std::string echo = request.target;
    for (const auto& [name, value] : request.headers) {
      absl::StrAppend(&echo, " ", name, "=", value);
    }
    ScriptedResponse response = ScriptedResponse::Json(401, echo);
    response.headers.emplace_back("X-Echo", echo);
    return response;
  });
  HttpRequest request = Request("POST", "/query?u=writer&p=pw%2Bsecret1");
  request.headers = {{"Authorization", "Token tok-secret-2"}};
  request.basic_auth = HttpBasicAuth{"writer", "pw+secret1"};
  absl::StatusOr<HttpResponse> answer = HttpCall(request);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 401);
  const std::string basic = absl::Base64Escape("writer:pw+secret1");
  // The echo really carried them: the server saw what was sent.
  EXPECT_THAT(OnlyRequest().target, HasSubstr("pw%2Bsecret1"));
  for (const std::string& text : {answer->body, answer->headers.at("x-echo")}) {
    EXPECT_THAT(text, Not(HasSubstr("tok-secret-2")));
    EXPECT_THAT(text, Not(HasSubstr("pw%2Bsecret1")));
    EXPECT_THAT(text, Not(HasSubstr(basic)));
    EXPECT_THAT(text, HasSubstr("********"));
    EXPECT_THAT(text, HasSubstr("u=writer"));  // the rest is kept
  }
}

TEST(RedactSecretsTest, MasksEveryOccurrenceButNotTinySecrets) {
  EXPECT_EQ(RedactSecrets("a tok b tok", {"tok"}), "a ******** b ********");
  EXPECT_EQ(RedactSecrets("a b", {"a", ""}), "a b");
  EXPECT_EQ(RedactSecrets("x", {}), "x");
}

TEST_F(HttpCallTest, SendsMethodHeadersAndBodyAsGiven) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(204); });
  HttpRequest request = Request("PUT", "/thing?a=1");
  request.headers = {{"Authorization", "Token t"}, {"X-Custom", "v"}};
  request.body = "payload";
  absl::StatusOr<HttpResponse> answer = HttpCall(request);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 204);
  const RecordedRequest sent = OnlyRequest();
  EXPECT_EQ(sent.method, "PUT");
  EXPECT_EQ(sent.target, "/thing?a=1");
  EXPECT_EQ(sent.body, "payload");
  EXPECT_EQ(sent.Header("Authorization"), "Token t");
  EXPECT_EQ(sent.Header("X-Custom"), "v");
  EXPECT_EQ(sent.Header("User-Agent"), "qs-error-tracker");
  EXPECT_EQ(sent.HeaderCount("Content-Encoding"), 0);
}

TEST_F(HttpCallTest, EmptyHeaderValueRemovesCurlsOwnHeader) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(204); });
  HttpRequest request = Request("GET", "/");
  request.headers = {{"Accept", ""}};
  ASSERT_TRUE(HttpCall(request).ok());
  EXPECT_EQ(OnlyRequest().HeaderCount("Accept"), 0);
}

TEST_F(HttpCallTest, LargeBodyIsSentWithoutExpectContinue) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(204); });
  HttpRequest request = Request("POST", "/write");
  request.body = std::string(2 << 20, 'x');
  absl::StatusOr<HttpResponse> answer = HttpCall(request);
  ASSERT_TRUE(answer.ok()) << answer.status();
  const RecordedRequest sent = OnlyRequest();
  EXPECT_EQ(sent.HeaderCount("Expect"), 0);
  EXPECT_EQ(sent.body.size(), request.body.size());
}

TEST_F(HttpCallTest, GzipBodyIsCompressedAndLabelled) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(204); });
  HttpRequest request = Request("POST", "/write");
  for (int i = 0; i < 1000; ++i)
    absl::StrAppend(&request.body, "m v=", i, "\n");
  request.gzip_body = true;
  ASSERT_TRUE(HttpCall(request).ok());
  const RecordedRequest sent = OnlyRequest();
  EXPECT_EQ(sent.Header("Content-Encoding"), "gzip");
  EXPECT_EQ(sent.decode_error, "");
  EXPECT_EQ(sent.decoded_body, request.body);
  EXPECT_LT(sent.body.size(), request.body.size());
}

TEST_F(HttpCallTest, CompressedAnswerIsDecoded) {
  const std::string text(5000, 'a');
  server_.set_handler([&text](const RecordedRequest&) {
    ScriptedResponse response;
    response.status = 200;
    response.headers.emplace_back("Content-Encoding", "gzip");
    response.body = *GzipCompress(text);
    return response;
  });
  absl::StatusOr<HttpResponse> answer = HttpCall(Request("GET", "/"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->body, text);
}

TEST_F(HttpCallTest, BasicAuthIsSent) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(204); });
  HttpRequest request = Request("POST", "/query");
  request.basic_auth = HttpBasicAuth{"user", "pa:ss"};
  ASSERT_TRUE(HttpCall(request).ok());
  EXPECT_EQ(OnlyRequest().Header("Authorization"),
            "Basic " + absl::Base64Escape("user:pa:ss"));
}

TEST_F(HttpCallTest, HeadHasNoBody) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(200); });
  absl::StatusOr<HttpResponse> answer = HttpCall(Request("HEAD", "/ping"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(OnlyRequest().method, "HEAD");
}

TEST_F(HttpCallTest, RedirectsAreNotFollowed) {
  server_.set_handler([](const RecordedRequest&) {
    ScriptedResponse response = ScriptedResponse::Bare(302);
    response.headers.emplace_back("Location", "/elsewhere");
    return response;
  });
  absl::StatusOr<HttpResponse> answer = HttpCall(Request("GET", "/here"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 302);
  EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(HttpCallTest, RefusesRequestsItCannotMakeWithoutSending) {
  HttpRequest lower = Request("get", "/");
  EXPECT_TRUE(absl::IsInvalidArgument(HttpCall(lower).status()));
  HttpRequest empty = Request("", "/");
  EXPECT_TRUE(absl::IsInvalidArgument(HttpCall(empty).status()));
  HttpRequest smuggling = Request("GET", "/");
  smuggling.headers = {{"Authorization", "Token t\r\nX-Evil: 1"}};
  absl::Status status = HttpCall(smuggling).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("line break"));
  EXPECT_EQ(server_.request_count(), 0u);
}

TEST_F(HttpCallTest, AnswerOverTheLimitIsResourceExhausted) {
  server_.set_handler([](const RecordedRequest&) {
    ScriptedResponse response = ScriptedResponse::Bare(200);
    response.body = std::string(100, 'b');
    return response;
  });
  HttpRequest request = Request("GET", "/");
  request.max_response_bytes = 100;
  absl::StatusOr<HttpResponse> answer = HttpCall(request);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->body.size(), 100u);
  request.max_response_bytes = 99;
  EXPECT_TRUE(absl::IsResourceExhausted(HttpCall(request).status()));
}

TEST_F(HttpCallTest, SlowAnswerIsDeadlineExceeded) {
  server_.set_handler([](const RecordedRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    return ScriptedResponse::Bare(204);
  });
  HttpRequest request = Request("GET", "/slow?token=secret");
  request.timeout = absl::Milliseconds(100);
  const absl::Status status = HttpCall(request).status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("GET " + server_.url() + "/slow?token=***"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));
}

TEST_F(HttpCallTest, HangUpIsUnavailable) {
  server_.set_handler([](const RecordedRequest&) {
    ScriptedResponse response;
    response.hang_up = true;
    return response;
  });
  const absl::Status status = HttpCall(Request("POST", "/write")).status();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
}

TEST_F(HttpCallTest, ConnectionRefusedIsUnavailableAndRedacted) {
  HttpRequest request = Request("POST", "/write?u=me&p=secret");
  server_.Stop();
  const absl::Status status = HttpCall(request).status();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("POST " + server_.url() + "/write?u=me&p=***: "));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));
}

TEST_F(HttpCallTest, ThreadsCallConcurrently) {
  server_.set_handler(
      [](const RecordedRequest&) { return ScriptedResponse::Bare(204); });
  constexpr int kThreads = 4;
  constexpr int kCalls = 25;
  std::vector<std::thread> threads;
  std::vector<int> ok(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &ok] {
      for (int i = 0; i < kCalls; ++i) {
        absl::StatusOr<HttpResponse> answer =
            HttpCall(Request("POST", absl::StrCat("/t", t)));
        if (answer.ok() && answer->status == 204) ++ok[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(ok[t], kCalls) << "thread " << t;
    EXPECT_EQ(server_.CountRequests("POST", absl::StrCat("/t", t)), kCalls);
  }
}

TEST(GzipCompressTest, IsGzipThatInflatesBack) {
  for (const std::string& data :
       {std::string(), std::string("m v=1\n"), std::string(100000, 'z')}) {
    absl::StatusOr<std::string> gz = GzipCompress(data);
    ASSERT_TRUE(gz.ok()) << gz.status();
    ASSERT_GE(gz->size(), 2u);
    EXPECT_EQ(static_cast<unsigned char>((*gz)[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>((*gz)[1]), 0x8b);
    absl::StatusOr<std::string> back = ::qfp::testing::Gunzip(*gz);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, data);
  }
}

TEST(UrlEncodeTest, KeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UrlEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(UrlEncode("a b&c=d/e+f?"), "a%20b%26c%3Dd%2Fe%2Bf%3F");
  EXPECT_EQ(UrlEncode("\xC3\xA9"), "%C3%A9");  // é
  EXPECT_EQ(UrlEncode(""), "");
}

TEST(RedactUrlTest, HidesSecretQueryValues) {
  EXPECT_EQ(RedactUrl("http://h:8086/query?u=me&p=secret&db=x"),
            "http://h:8086/query?u=me&p=***&db=x");
  EXPECT_EQ(RedactUrl("http://h/x?password=a&token=b#frag"),
            "http://h/x?password=***&token=***#frag");
  // Only those exact names, and only with a value.
  EXPECT_EQ(RedactUrl("http://h/x?pp=1&p&tokens=2"),
            "http://h/x?pp=1&p&tokens=2");
  EXPECT_EQ(RedactUrl("http://h/write"), "http://h/write");
}

TEST(ParseRetryAfterTest, DeltaSecondsOnly) {
  EXPECT_EQ(ParseRetryAfter("120"), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 5 "), absl::Seconds(5));
  EXPECT_EQ(ParseRetryAfter("0"), absl::ZeroDuration());
  for (const char* bad :
       {"", " ", "-1", "1.5", "5s", "Wed, 21 Oct 2015 07:28:00 GMT",
        "99999999999999999999"}) {
    EXPECT_EQ(ParseRetryAfter(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace qfp::tracker
