#include "poller-service/poll_scheduler.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp::poller {
namespace {

using ::testing::ElementsAreArray;

// A transport that completes requests only when the test says so. Run()
// records how long it was asked to wait and calls `on_run`, if set (a test
// lets time pass there).
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
  void Run(absl::Duration max_wait) override {
    waits.push_back(max_wait);
    if (on_run) on_run(max_wait);
  }
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
  std::vector<absl::Duration> waits;
  std::function<void(absl::Duration)> on_run;

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
  o.body_head = R"({"version":"12.1","started":"20261124T000000.000Z"})";
  o.body_bytes = o.body_head.size();
  return o;
}

RequestOutcome Status(int status) {
  RequestOutcome o;
  o.http_status = status;
  o.body_head = "error";
  o.body_bytes = 5;
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
  MetricsRegistry metrics_;
  FakeTransport transport_;
  VectorSink sink_;
};

TEST_F(PollSchedulerTest, PollsAtStartThenEveryInterval) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
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

TEST_F(PollSchedulerTest, FailureReportsItsOwnSourcesTimeout) {
  config_.health_timeout = absl::Milliseconds(3000);
  config_.app_names_enabled = true;
  config_.app_names_host = "qrs:4242";
  config_.app_names_interval = absl::Seconds(60);
  config_.app_names_timeout = absl::Milliseconds(90000);
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  scheduler.Step(absl::ZeroDuration());
  ASSERT_EQ(transport_.started.size(), 2u);
  transport_.Complete(Status(500));
  transport_.Complete(Status(503));
  ASSERT_EQ(sink_.failures.size(), 2u);
  for (const auto& f : sink_.failures) {
    EXPECT_EQ(f.request_timeout_ms(),
              f.source() == failedpolls::v1::APP_NAMES_EXTRACT ? 90000u : 3000u)
        << f.request_url();
  }
}

TEST_F(PollSchedulerTest, FailureCarriesEveryTagFieldAndIdentity) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
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
                          clock_, metrics_);
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
                          clock_, metrics_);
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
                          clock_, metrics_);
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Healthy());
  clock_.Advance(absl::Minutes(5));  // 30 intervals missed
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Healthy());
  scheduler.Step(absl::ZeroDuration());
  EXPECT_TRUE(transport_.started.empty());
  EXPECT_EQ(scheduler.stats().polls_started, 2u);
}

// Owns only the targets whose key is listed; the list may change between
// steps, as members from DNS do.
class ListedTargets final : public TargetOwnership {
 public:
  bool Owns(absl::string_view key) const override {
    return std::find(owned.begin(), owned.end(), key) != owned.end();
  }
  std::vector<std::string> owned;
};

TEST_F(PollSchedulerTest, PollsOnlyOwnedTargetsAskingAtEachDueTime) {
  MonitoredServer second = config_.servers[0];
  second.host = "sense2:4747";
  second.server_name = "sense2";
  config_.servers.push_back(second);
  ListedTargets ownership;
  ownership.owned = {"HEALTH_API sense2"};
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_, &ownership);
  scheduler.Step(absl::ZeroDuration());
  ASSERT_EQ(transport_.started.size(), 1u);
  EXPECT_EQ(transport_.started.front().request.url,
            "https://sense2:4747/engine/healthcheck");
  transport_.Complete(Healthy());
  ownership.owned = {"HEALTH_API sense1", "HEALTH_API sense2"};
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());
  EXPECT_EQ(transport_.started.size(), 2u);
  // A target not owned is neither started nor skipped.
  EXPECT_EQ(scheduler.stats().polls_started, 3u);
  EXPECT_EQ(scheduler.stats().polls_skipped, 0u);
}

TEST_F(PollSchedulerTest, LedgerCountsCompletedPollsAndFailures) {
  AttemptLedger ledger;
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_, nullptr, &ledger);
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Status(503));
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Healthy());
  std::vector<TargetAttempts> taken = ledger.Take();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].source, failedpolls::v1::HEALTH_API);
  EXPECT_EQ(taken[0].server_name, "sense1");
  EXPECT_EQ(taken[0].host, "sense1:4747");
  EXPECT_EQ(taken[0].attempted, 2u);
  EXPECT_EQ(taken[0].failed, 1u);
  // Taken counts start again from zero.
  EXPECT_TRUE(ledger.Take().empty());
  // A poll cancelled at shutdown is no attempt.
  clock_.Advance(absl::Seconds(10));
  scheduler.Step(absl::ZeroDuration());
  RequestOutcome cancelled;
  cancelled.cancelled = true;
  transport_.Complete(cancelled);
  EXPECT_TRUE(ledger.Take().empty());
}

TEST_F(PollSchedulerTest, CancellationAtShutdownIsNotAFailure) {
  // As the curl transport reports it, and with the flag alone: the flag is
  // what the scheduler goes by, whatever the transport.
  RequestOutcome from_curl;
  from_curl.cancelled = true;
  from_curl.error = TransportError::kCancelled;
  RequestOutcome flag_only;
  flag_only.cancelled = true;
  for (const RequestOutcome& cancelled : {from_curl, flag_only}) {
    SCOPED_TRACE(static_cast<int>(cancelled.error));
    MetricsRegistry metrics;  // one scheduler per registry
    PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                            clock_, metrics);
    scheduler.Step(absl::ZeroDuration());
    ASSERT_EQ(transport_.started.size(), 1u);
    transport_.Complete(cancelled);
    EXPECT_TRUE(sink_.failures.empty());
    EXPECT_EQ(scheduler.stats().polls_failed, 0u);
  }
}

TEST_F(PollSchedulerTest, CountsPollsAndFailuresInMetrics) {
  MetricsRegistry metrics;
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics);
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

TEST_F(PollSchedulerTest, DrainEndsWhenTheLastPollFinishes) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  scheduler.Step(absl::ZeroDuration());
  ASSERT_EQ(transport_.started.size(), 1u);
  transport_.waits.clear();
  transport_.on_run = [this](absl::Duration wait) {
    clock_.Advance(wait);
    if (transport_.waits.size() == 3) transport_.Complete(Healthy());
  };
  const absl::Duration begin = clock_.Monotonic();
  const std::atomic<bool> stop{true};
  scheduler.Run(stop);
  EXPECT_EQ(transport_.waits.size(), 3u);
  EXPECT_EQ(clock_.Monotonic() - begin, absl::Milliseconds(600));
  EXPECT_EQ(transport_.in_flight(), 0u);
}

// A stop never waits the QRS's long timeout: the Helm chart's grace period
// counts on requestTimeout.
TEST_F(PollSchedulerTest, DrainWaitsAtMostTheSharedRequestTimeout) {
  config_.servers.clear();
  config_.app_names_enabled = true;
  config_.app_names_host = "qrs:4242";
  config_.app_names_interval = absl::Seconds(60);
  config_.app_names_timeout = absl::Seconds(120);
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  scheduler.Step(absl::ZeroDuration());  // the QRS poll, never answered
  ASSERT_EQ(transport_.in_flight(), 1u);
  transport_.on_run = [this](absl::Duration wait) { clock_.Advance(wait); };
  const absl::Duration begin = clock_.Monotonic();
  const std::atomic<bool> stop{true};
  scheduler.Run(stop);
  EXPECT_EQ(clock_.Monotonic() - begin, absl::Seconds(6));
  EXPECT_EQ(transport_.in_flight(), 1u);
}

TEST_F(PollSchedulerTest, TwoInstancesHaveDifferentInstanceIds) {
  MetricsRegistry metrics_a, metrics_b;
  PollScheduler a(config_, BuildPollPlan(config_), transport_, sink_, clock_,
                  metrics_a);
  PollScheduler b(config_, BuildPollPlan(config_), transport_, sink_, clock_,
                  metrics_b);
  EXPECT_NE(a.instance_id(), b.instance_id());
  EXPECT_EQ(a.instance_id().size(), 16u);
}

// A wall-clock step (NTP, a resumed VM) while the scheduler runs. Only
// FakeClock::StepWall moves the wall clock alone; every poll is driven by
// Advance, which moves both readings as time passing does.
class PollSchedulerClockStepTest
    : public PollSchedulerTest,
      public ::testing::WithParamInterface<absl::Duration> {
 protected:
  // Steps `scheduler` once a second for `seconds` seconds, completing each
  // poll at once (healthy). Returns when polls started, in whole seconds of
  // monotonic time since `origin_`.
  std::vector<int64_t> Drive(PollScheduler& scheduler, int seconds) {
    std::vector<int64_t> starts;
    for (int i = 0; i < seconds; ++i) {
      scheduler.Step(absl::ZeroDuration());
      while (!transport_.started.empty()) {
        starts.push_back(absl::ToInt64Seconds(clock_.Monotonic() - origin_));
        transport_.Complete(Healthy());
      }
      clock_.Advance(absl::Seconds(1));
    }
    return starts;
  }

  const absl::Time wall_origin_ = clock_.Now();
  const absl::Duration origin_ = clock_.Monotonic();
};

TEST_P(PollSchedulerClockStepTest, CadenceIsUnchangedByAWallClockStep) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);  // 10 s interval
  ASSERT_THAT(Drive(scheduler, 25), ElementsAreArray({0, 10, 20}));

  clock_.StepWall(GetParam());  // at t = 25 s, halfway to the next poll
  scheduler.Step(absl::Hours(2));
  EXPECT_TRUE(transport_.started.empty()) << "a poll started at the step";
  ASSERT_FALSE(transport_.waits.empty());
  EXPECT_EQ(transport_.waits.back(), absl::Seconds(5))
      << "the transport should wait for the poll due at t = 30 s";

  // The ten intervals after the step, [25 s, 125 s): one poll in each, at
  // the same phase as before the step.
  const std::vector<int64_t> starts = Drive(scheduler, 100);
  std::vector<int64_t> expected;
  for (int64_t t = 30; t <= 120; t += 10) expected.push_back(t);
  EXPECT_THAT(starts, ElementsAreArray(expected));
  for (int k = 0; k < 10; ++k) {
    const int64_t from = 25 + 10 * k;
    EXPECT_EQ(
        std::count_if(starts.begin(), starts.end(),
                      [from](int64_t t) { return t >= from && t < from + 10; }),
        1)
        << "interval [" << from << " s, " << from + 10 << " s)";
  }
  EXPECT_EQ(scheduler.stats().polls_started, 13u);
  EXPECT_EQ(scheduler.stats().polls_skipped, 0u);
}

TEST_P(PollSchedulerClockStepTest, OccurredAtFollowsTheSteppedWallClock) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  ASSERT_THAT(Drive(scheduler, 25), ElementsAreArray({0, 10, 20}));
  clock_.StepWall(GetParam());
  clock_.Advance(absl::Seconds(5));
  scheduler.Step(absl::ZeroDuration());  // the poll due at t = 30 s
  ASSERT_EQ(transport_.started.size(), 1u);
  clock_.Advance(absl::Milliseconds(1500));
  transport_.Complete(Status(503));
  ASSERT_EQ(sink_.failures.size(), 1u);
  const absl::Time expected =
      wall_origin_ + GetParam() + absl::Milliseconds(31500);
  EXPECT_EQ(sink_.failures[0].occurred_at().seconds(),
            absl::ToUnixSeconds(expected));
  EXPECT_EQ(sink_.failures[0].occurred_at().nanos(), 500000000);
}

TEST_P(PollSchedulerClockStepTest, ShutdownDrainIsBoundedOnMonotonicTime) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  scheduler.Step(absl::ZeroDuration());  // a poll that never ends
  ASSERT_EQ(transport_.in_flight(), 1u);
  transport_.waits.clear();
  const absl::Duration begin = clock_.Monotonic();
  transport_.on_run = [this, begin](absl::Duration wait) {
    if (transport_.waits.size() == 1) clock_.StepWall(GetParam());
    clock_.Advance(wait);
    // A drain timed on the wall clock could run for the whole step (a year
    // of 200 ms rounds): end it here, and let the check below fail.
    if (clock_.Monotonic() - begin >= absl::Minutes(1)) {
      transport_.Complete(Healthy());
    }
  };
  const std::atomic<bool> stop{true};
  scheduler.Run(stop);
  // The request timeout (5 s) plus 1 s, however the wall clock moved; the
  // poll is left to the transport's destructor.
  EXPECT_EQ(clock_.Monotonic() - begin, absl::Seconds(6));
  EXPECT_EQ(transport_.in_flight(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    WallSteps, PollSchedulerClockStepTest,
    ::testing::Values(absl::Hours(-1), absl::Hours(1), absl::Seconds(-5),
                      absl::Seconds(5), absl::Hours(-24 * 365)),
    [](const ::testing::TestParamInfo<absl::Duration>& step_info) {
      const absl::Duration step = step_info.param;
      const std::string size = absl::FormatDuration(absl::AbsDuration(step));
      std::string name = (step < absl::ZeroDuration() ? "Back" : "Forward");
      for (char c : size) {
        if (std::isalnum(static_cast<unsigned char>(c))) name += c;
      }
      return name;
    });

}  // namespace
}  // namespace qfp::poller
