#include "poller-service/poll_plan.h"

#include <set>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp::poller {
namespace {

using ::testing::ElementsAre;
using ::testing::MatchesRegex;

PollerConfig TwoServers() {
  PollerConfig config;
  config.health_interval = absl::Seconds(30);
  config.sessions_enabled = true;
  config.sessions_interval = absl::Seconds(15);
  config.app_names_enabled = true;
  config.app_names_interval = absl::Seconds(60);
  config.app_names_host = "qrs.example.com";
  MonitoredServer a;
  a.host = "sense1.example.com:4747";
  a.server_name = "sense1";
  a.headers = {{"X-Custom", "one"}, {"X-Other", "two"}};
  a.sessions_enabled = true;
  a.sessions_host = "sense1.example.com:4243";
  a.virtual_proxies = {"/", "/sales"};
  MonitoredServer b;
  b.host = "10.0.0.6:4747";
  b.server_name = "sense2";
  b.sessions_enabled = false;
  config.servers = {a, b};
  return config;
}

std::vector<std::string> Keys(const std::vector<PollTarget>& plan) {
  std::vector<std::string> keys;
  for (const auto& t : plan) keys.push_back(t.Key());
  return keys;
}

TEST(PollPlanTest, OneTargetPerSourceServerAndVirtualProxy) {
  std::vector<PollTarget> plan = BuildPollPlan(TwoServers());
  EXPECT_THAT(Keys(plan),
              ElementsAre("HEALTH_API sense1", "HEALTH_API sense2",
                          "PROXY_API sense1 /", "PROXY_API sense1 /sales",
                          "APP_NAMES_EXTRACT qrs.example.com"));
  EXPECT_EQ(plan[0].url, "https://sense1.example.com:4747/engine/healthcheck");
  EXPECT_EQ(plan[2].url, "https://sense1.example.com:4243/qps/session");
  EXPECT_EQ(plan[3].url, "https://sense1.example.com:4243/qps/sales/session");
  EXPECT_EQ(plan[4].url, "https://qrs.example.com:4242/qrs/app");
  EXPECT_EQ(plan[3].host, "sense1.example.com:4243");
  EXPECT_EQ(plan[3].virtual_proxy, "/sales");
  EXPECT_EQ(plan[4].server_name, "qrs.example.com");
  EXPECT_EQ(plan[0].interval, absl::Seconds(30));
  EXPECT_EQ(plan[2].interval, absl::Seconds(15));
  EXPECT_EQ(plan[4].interval, absl::Seconds(60));
}

TEST(PollPlanTest, SwitchesRemoveSources) {
  PollerConfig config = TwoServers();
  config.sessions_enabled = false;
  config.app_names_enabled = false;
  EXPECT_THAT(Keys(BuildPollPlan(config)),
              ElementsAre("HEALTH_API sense1", "HEALTH_API sense2"));
}

TEST(PollPlanTest, HealthCheckRequestCarriesServerHeadersAndNoQuery) {
  PollerConfig config = TwoServers();
  absl::BitGen rng;
  HttpRequest request = MakeRequest(BuildPollPlan(config)[0], config, rng);
  EXPECT_EQ(request.url, "https://sense1.example.com:4747/engine/healthcheck");
  EXPECT_THAT(
      request.headers,
      ElementsAre("Accept: application/json, text/plain, */*",
                  "Content-Type: application/json", "Cache-Control: no-cache",
                  "User-Agent: qlik-failed-polls-qs-poller", "X-Custom: one",
                  "X-Other: two"));
  EXPECT_EQ(request.timeout, absl::Milliseconds(5000));
  EXPECT_EQ(request.tls, &config.tls);
  EXPECT_EQ(request.max_body_bytes, kDefaultMaxBodyBytes);
  ASSERT_NE(request.body_check, nullptr);
  // A fresh check per request that wants a JSON object.
  EXPECT_FALSE(request.body_check->Feed("["));
  EXPECT_NE(MakeRequest(BuildPollPlan(config)[0], config, rng).body_check,
            request.body_check);
}

TEST(PollPlanTest, ServerHeadersReplaceCommonOnesOfTheSameName) {
  PollerConfig config = TwoServers();
  config.servers[0].headers = {{"user-agent", "MyProbe/1"},
                               {"Accept", "application/json"}};
  absl::BitGen rng;
  HttpRequest request = MakeRequest(BuildPollPlan(config)[0], config, rng);
  EXPECT_THAT(
      request.headers,
      ElementsAre("Accept: application/json", "Content-Type: application/json",
                  "Cache-Control: no-cache", "user-agent: MyProbe/1"));
}

TEST(PollPlanTest, EachSourceHasItsOwnTimeoutAndTheBodyCapIsTheConfigs) {
  PollerConfig config = TwoServers();
  config.health_timeout = absl::Milliseconds(3000);
  config.sessions_timeout = absl::Milliseconds(7000);
  config.app_names_timeout = absl::Milliseconds(90000);
  config.max_response_bytes = 5u << 20;
  absl::BitGen rng;
  const std::vector<PollTarget> plan = BuildPollPlan(config);
  EXPECT_EQ(plan[0].timeout, absl::Milliseconds(3000));
  EXPECT_EQ(plan[2].timeout, absl::Milliseconds(7000));
  EXPECT_EQ(plan[4].timeout, absl::Milliseconds(90000));
  EXPECT_EQ(MakeRequest(plan[4], config, rng).timeout,
            absl::Milliseconds(90000));
  EXPECT_EQ(MakeRequest(plan[2], config, rng).timeout,
            absl::Milliseconds(7000));
  EXPECT_EQ(MakeRequest(plan[4], config, rng).max_body_bytes, 5u << 20);
  // A QRS answer must be an array.
  HttpRequest apps = MakeRequest(plan[4], config, rng);
  EXPECT_TRUE(apps.body_check->Feed("[]"));
  apps.body_check->Finish();
  EXPECT_EQ(apps.body_check->Problem(), "");
}

TEST(PollPlanTest, SessionRequestHasMatchingFreshXrfkeyAndNoServerHeaders) {
  PollerConfig config = TwoServers();
  absl::BitGen rng;
  const PollTarget sales = BuildPollPlan(config)[3];
  std::set<std::string> keys;
  for (int i = 0; i < 50; ++i) {
    HttpRequest request = MakeRequest(sales, config, rng);
    ASSERT_THAT(request.url,
                MatchesRegex("https://sense1.example.com:4243/qps/sales/"
                             "session\\?Xrfkey=[0-9a-zA-Z]{16}"));
    const std::string key = request.url.substr(request.url.size() - 16);
    EXPECT_THAT(
        request.headers,
        ElementsAre("Accept: application/json, text/plain, */*",
                    "Content-Type: application/json", "Cache-Control: no-cache",
                    "User-Agent: qlik-failed-polls-qs-poller",
                    "XVirtualProxy: /sales", "X-Qlik-Xrfkey: " + key));
    keys.insert(key);
  }
  EXPECT_EQ(keys.size(), 50u) << "every request needs its own Xrfkey";
}

TEST(PollPlanTest, QrsRequestActsAsRepositoryServiceAccount) {
  PollerConfig config = TwoServers();
  absl::BitGen rng;
  HttpRequest request = MakeRequest(BuildPollPlan(config)[4], config, rng);
  ASSERT_THAT(request.url,
              MatchesRegex("https://qrs.example.com:4242/qrs/app\\?xrfkey="
                           "[0-9a-zA-Z]{16}"));
  EXPECT_THAT(request.headers,
              ::testing::Contains(
                  "X-Qlik-User: UserDirectory=Internal; UserId=sa_repository"));
}

TEST(PollPlanTest, QrsHostWithItsOwnPortIsUsedAsWritten) {
  PollerConfig config = TwoServers();
  config.app_names_host = "127.0.0.1:14242";
  EXPECT_EQ(BuildPollPlan(config).back().url,
            "https://127.0.0.1:14242/qrs/app");
  config.app_names_host = "[::1]:14242";
  EXPECT_EQ(BuildPollPlan(config).back().url, "https://[::1]:14242/qrs/app");
  config.app_names_host = "[::1]";
  EXPECT_EQ(BuildPollPlan(config).back().url, "https://[::1]:4242/qrs/app");
}

TEST(PollPlanTest, MaskedUrlHidesTheKey) {
  std::vector<PollTarget> plan = BuildPollPlan(TwoServers());
  EXPECT_EQ(MaskedUrl(plan[2]),
            "https://sense1.example.com:4243/qps/session?Xrfkey="
            "****************");
  EXPECT_EQ(MaskedUrl(plan[0]), plan[0].url);
}

TEST(PollPlanTest, MaskedHeaderHidesCredentialsOnly) {
  EXPECT_EQ(MaskedHeader("Authorization: Bearer abc"),
            "Authorization: ********");
  EXPECT_EQ(MaskedHeader("X-Api-Key: k"), "X-Api-Key: ********");
  EXPECT_EQ(MaskedHeader("Cookie: a=b"), "Cookie: ********");
  EXPECT_EQ(MaskedHeader("X-Qlik-Xrfkey: 0123456789abcdef"),
            "X-Qlik-Xrfkey: ********");
  EXPECT_EQ(MaskedHeader("Accept: application/json"),
            "Accept: application/json");
  EXPECT_EQ(MaskedHeader("no colon"), "no colon");
}

TEST(PollPlanTest, XrfkeyUsesTheWholeAlphabet) {
  absl::BitGen rng;
  std::set<char> seen;
  for (int i = 0; i < 500; ++i) {
    for (char c : NewXrfkey(rng)) seen.insert(c);
  }
  EXPECT_EQ(seen.size(), 62u);
}

}  // namespace
}  // namespace qfp::poller
