#include "poller-service/poll_scheduler.h"

#include <deque>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

// A transport that completes requests only when the test says so.
class FakeTransport final : public HttpTransport {
 public:
  struct Started {
    HttpRequest request;
    DoneCallback done;
  };
  void Start(const HttpRequest& request, DoneCallback done) override {
    started.push_back(Started{request, std::move(done)});
    ++in_flight_;
  }
  void Run(absl::Duration /*max_wait*/) override {}
  void Wakeup() override {}
  size_t in_flight() const override { return in_flight_; }

  // Completes the oldest started request with `outcome`.
  void Complete(RequestOutcome outcome) {
    Started s = std::move(started.front());
    started.pop_front();
    --in_flight_;
    s.done(std::move(outcome));
  }

  std::deque<Started> started;

 private:
  size_t in_flight_ = 0;
};

class VectorSink final : public FailureSink {
 public:
  void Deliver(failedpolls::v1::PollFailure failure) override {
    failures.push_back(std::move(failure));
  }
  std::vector<failedpolls::v1::PollFailure> failures;
};

RequestOutcome Healthy() {
  RequestOutcome o;
  o.http_status = 200;
  o.body = R"({"version":"12.1","started":"20261124T000000.000Z"})";
  return o;
}

RequestOutcome Status(int status) {
  RequestOutcome o;
  o.http_status = status;
  o.body = "error";
  return o;
}

class PollSchedulerTest : public ::testing::Test {
 protected:
  PollSchedulerTest() : clock_(absl::FromUnixSeconds(1795000000)) {
    config_.poller_id = "poller-a";
    config_.health_interval = absl::Seconds(10);
    MonitoredServer server;
    server.host = "sense1:4747";
    server.server_name = "sense1";
    server.server_tags = {{"site", "east"}};
    config_.servers = {server};
  }

  PollerConfig config_;
  FakeClock clock_;
  FakeTransport transport_;
  VectorSink sink_;
};

TEST_F(PollSchedulerTest, PollsAtStartThenEveryInterval) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_);
  scheduler.Step(absl::ZeroDuration());
  ASSERT_EQ(transport_.started.size(), 1u);
  transport_.Complete(Healthy());
  clock_.Advance(absl::Seconds(9));
  scheduler.Step(absl::ZeroDuration());
  EXPECT_TRUE(transport_.started.empty());
  clock_.Advance(absl::Seconds(1));
  scheduler.Step(absl::ZeroDuration());
  EXPECT_EQ(transport_.started.size(), 1u);
  EXPECT_TRUE(sink_.failures.empty());
  EXPECT_EQ(scheduler.stats().polls_started, 2u);
}

TEST_F(PollSchedulerTest, FailureCarriesEveryTagFieldAndIdentity) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_);
  scheduler.Step(absl::ZeroDuration());
  clock_.Advance(absl::Milliseconds(1500));
  transport_.Complete(Status(500));
  ASSERT_EQ(sink_.failures.size(), 1u);
  const auto& f = sink_.failures[0];
  EXPECT_EQ(f.id().poller_id(), "poller-a");
  EXPECT_EQ(f.id().instance_id(), scheduler.instance_id());
  EXPECT_EQ(f.id().sequence(), 1u);
  EXPECT_EQ(f.occurred_at().seconds(), 1795000001);
  EXPECT_EQ(f.occurred_at().nanos(), 500000000);
  EXPECT_EQ(f.source(), failedpolls::v1::HEALTH_API);
  EXPECT_EQ(f.server_name(), "sense1");
  EXPECT_EQ(f.host(), "sense1:4747");
  EXPECT_EQ(f.virtual_proxy(), "");
  EXPECT_EQ(f.server_tags().at("site"), "east");
  EXPECT_EQ(f.error_category(), failedpolls::v1::ERROR_CATEGORY_HTTP_5XX);
  EXPECT_EQ(f.error_code(), "ERR_BAD_RESPONSE");
  EXPECT_EQ(f.http_status(), 500u);
  EXPECT_EQ(f.request_url(), "https://sense1:4747/engine/healthcheck");
  EXPECT_EQ(f.request_timeout_ms(), 5000u);
  EXPECT_FALSE(f.has_remote_port());
  EXPECT_EQ(scheduler.stats().polls_failed, 1u);
}

TEST_F(PollSchedulerTest, SequenceNumbersIncrease) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_);
  for (int i = 0; i < 3; ++i) {
    scheduler.Step(absl::ZeroDuration());
    transport_.Complete(Status(503));
    clock_.Advance(absl::Seconds(10));
  }
  ASSERT_EQ(sink_.failures.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sink_.failures[i].id().sequence(), static_cast<uint64_t>(i + 1));
  }
}

TEST_F(PollSchedulerTest, SkipsARoundWhileThePreviousPollRuns) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_);
  scheduler.Step(absl::ZeroDuration());
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());  // still in flight: skipped
  EXPECT_EQ(transport_.started.size(), 1u);
  EXPECT_EQ(scheduler.stats().polls_skipped, 1u);
  transport_.Complete(Status(500));
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());
  EXPECT_EQ(transport_.started.size(), 1u);
  EXPECT_EQ(scheduler.stats().polls_started, 2u);
}

TEST_F(PollSchedulerTest, NoBurstOfCatchUpRoundsAfterAStall) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_);
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Healthy());
  clock_.Advance(absl::Minutes(5));  // 30 intervals missed
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Healthy());
  scheduler.Step(absl::ZeroDuration());
  EXPECT_TRUE(transport_.started.empty());
  EXPECT_EQ(scheduler.stats().polls_started, 2u);
}

TEST_F(PollSchedulerTest, CancellationAtShutdownIsNotAFailure) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_);
  scheduler.Step(absl::ZeroDuration());
  RequestOutcome cancelled;
  cancelled.curl_code = 42;  // CURLE_ABORTED_BY_CALLBACK
  transport_.Complete(cancelled);
  EXPECT_TRUE(sink_.failures.empty());
  EXPECT_EQ(scheduler.stats().polls_failed, 0u);
}

TEST_F(PollSchedulerTest, CountsPollsAndFailuresInMetrics) {
  MetricsRegistry metrics;
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, &metrics);
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Status(503));
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());  // skipped: still in flight
  const std::string text = metrics.RenderText();
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "qfp_poller_polls_total{source=\"HEALTH_API\"} 2\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "qfp_poller_poll_failures_total{source=\"HEALTH_API\","
                        "category=\"http_5xx\"} 1\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr(
                  "qfp_poller_polls_skipped_total{source=\"HEALTH_API\"} 1\n"));
}

TEST_F(PollSchedulerTest, TwoInstancesHaveDifferentInstanceIds) {
  PollScheduler a(config_, BuildPollPlan(config_), transport_, sink_, clock_);
  PollScheduler b(config_, BuildPollPlan(config_), transport_, sink_, clock_);
  EXPECT_NE(a.instance_id(), b.instance_id());
  EXPECT_EQ(a.instance_id().size(), 16u);
}

}  // namespace
}  // namespace qfp
