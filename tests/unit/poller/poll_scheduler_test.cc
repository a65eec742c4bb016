#include "poller-service/poll_scheduler.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
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
    // Every target starts at its own phase within the interval: move the
    // clock to sense1's, so that it is due at construction, as the tests
    // below expect.
    clock_.Advance(SpreadOffset("HEALTH_API sense1", absl::Seconds(10)));
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
  scheduler.Step(absl::ZeroDuration());  // sense1, at its phase
  clock_.Advance(absl::Seconds(60));     // both due, within one interval
  transport_.Complete(Healthy());
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
  const absl::Time completed = clock_.Now();
  transport_.Complete(Status(500));
  ASSERT_EQ(sink_.failures.size(), 1u);
  const auto& f = sink_.failures[0];
  EXPECT_EQ(f.id().poller_id(), "poller-a");
  EXPECT_EQ(f.id().instance_id(), scheduler.instance_id());
  EXPECT_EQ(f.id().sequence(), 1u);
  EXPECT_EQ(f.occurred_at().seconds(), absl::ToUnixSeconds(completed));
  EXPECT_EQ(f.occurred_at().nanos(), absl::ToUnixNanos(completed) % 1000000000);
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

// After a stall the rounds missed are skipped whole: the target keeps its
// phase, so targets spread over the interval stay spread.
TEST_F(PollSchedulerTest, AStallKeepsTheTargetsPhase) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  const absl::Duration phase = clock_.Monotonic();  // sense1 is due now
  scheduler.Step(absl::ZeroDuration());
  transport_.Complete(Healthy());
  clock_.Advance(absl::Minutes(5) + absl::Milliseconds(3700));
  scheduler.Step(absl::Hours(1));  // late, once
  ASSERT_EQ(transport_.started.size(), 1u);
  transport_.Complete(Healthy());
  // The next one at the old phase: 310 s after it, not 10 s after the stall.
  EXPECT_EQ(transport_.waits.back(), absl::Milliseconds(6300));
  clock_.Advance(absl::Milliseconds(6300));
  scheduler.Step(absl::ZeroDuration());
  EXPECT_EQ(transport_.started.size(), 1u);
  EXPECT_EQ(clock_.Monotonic() - phase, absl::Seconds(310));
  EXPECT_EQ(scheduler.stats().polls_started, 3u);
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
  // Within one interval both were due once; only sense2 is owned.
  clock_.Advance(absl::Seconds(10));
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
  clock_.Advance(absl::Seconds(60));     // past the QRS poll's phase
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

// The same key gives the same offset in every build and process: these are
// SHA-256's first 8 bytes of the key, big-endian, modulo the interval (the
// values are Python's hashlib's, so that the bench can place due times too).
TEST(SpreadOffsetTest, IsAStableHashOfTheKeyWithinTheInterval) {
  EXPECT_EQ(SpreadOffset("HEALTH_API sense1", absl::Seconds(30)),
            absl::Nanoseconds(24742400695));
  EXPECT_EQ(SpreadOffset("HEALTH_API sense1", absl::Seconds(10)),
            absl::Nanoseconds(4742400695));
  EXPECT_EQ(SpreadOffset("PROXY_API sense1 /sales", absl::Seconds(30)),
            absl::Nanoseconds(20270091416));
  EXPECT_EQ(SpreadOffset("HEALTH_API sense1", absl::ZeroDuration()),
            absl::ZeroDuration());
  for (const absl::Duration interval :
       {absl::Nanoseconds(1), absl::Milliseconds(7), absl::Seconds(1),
        absl::Seconds(30), absl::Hours(24)}) {
    for (int i = 0; i < 200; ++i) {
      const absl::Duration offset =
          SpreadOffset(absl::StrCat("HEALTH_API sense", i), interval);
      EXPECT_GE(offset, absl::ZeroDuration()) << interval << " " << i;
      EXPECT_LT(offset, interval) << interval << " " << i;
    }
  }
}

TEST(SpreadOffsetTest, DistinctTargetsSpreadEvenlyOverTheInterval) {
  const absl::Duration interval = absl::Seconds(30);
  constexpr int kTargets = 5000;
  constexpr int kBins = 10;  // 3 s each: 500 expected in each
  std::vector<int> bins(kBins, 0);
  std::set<int64_t> distinct;
  for (int i = 0; i < kTargets; ++i) {
    const absl::Duration offset = SpreadOffset(
        absl::StrCat("HEALTH_API sense", i, ".example.com"), interval);
    distinct.insert(absl::ToInt64Nanoseconds(offset));
    ++bins[static_cast<size_t>(offset / (interval / kBins))];
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kTargets));
  // A burst would put most in one bin; +-20% is over 4 standard deviations
  // of a uniform spread (sqrt(5000 * 0.1 * 0.9) = 21).
  for (int b = 0; b < kBins; ++b) {
    EXPECT_GT(bins[b], 400) << "bin " << b;
    EXPECT_LT(bins[b], 600) << "bin " << b;
  }
}

TEST(FirstDueTimeTest, IsTheNextInstantAtTheOffsetOnTheWallClock) {
  const absl::Duration interval = absl::Seconds(30);
  const absl::Duration mono = absl::Hours(5);
  // The wall clock at 12 s into an interval (Unix time 1795000002 is a
  // multiple of 30 s plus 12).
  const absl::Time wall = absl::FromUnixSeconds(1795000002);
  ASSERT_EQ(1795000002 % 30, 12);
  EXPECT_EQ(FirstDueTime(absl::Seconds(20), interval, wall, mono),
            mono + absl::Seconds(8));
  EXPECT_EQ(FirstDueTime(absl::Seconds(12), interval, wall, mono), mono);
  EXPECT_EQ(FirstDueTime(absl::Seconds(5), interval, wall, mono),
            mono + absl::Seconds(23));
  // Before the Unix epoch too (a badly set clock).
  EXPECT_EQ(FirstDueTime(absl::Seconds(5), interval, absl::FromUnixSeconds(-12),
                         mono),
            mono + absl::Seconds(17));
}

class PollSchedulerSpreadTest : public PollSchedulerTest {
 protected:
  // `n` servers sense0 .. sense<n-1>, 10 s interval.
  void UseServers(int n) {
    config_.servers.clear();
    for (int i = 0; i < n; ++i) {
      MonitoredServer server;
      server.server_name = absl::StrCat("sense", i);
      server.host = absl::StrCat(server.server_name, ":4747");
      config_.servers.push_back(server);
    }
  }
  // The host of each poll started since the last call, in order.
  std::vector<std::string> TakeStartedHosts() {
    std::vector<std::string> hosts;
    while (!transport_.started.empty()) {
      const std::string& url = transport_.started.front().request.url;
      hosts.push_back(url.substr(8, url.find(':', 8) - 8));
      transport_.Complete(Healthy());
    }
    return hosts;
  }
};

// Each target starts at its own offset, not all at construction; then one
// interval apart.
TEST_F(PollSchedulerSpreadTest, EachTargetStartsAtItsOwnOffset) {
  UseServers(20);
  const absl::Duration interval = absl::Seconds(10);
  const absl::Time wall0 = clock_.Now();
  const absl::Duration mono0 = clock_.Monotonic();
  std::vector<std::pair<absl::Duration, std::string>> expected;
  for (int i = 0; i < 20; ++i) {
    const std::string name = absl::StrCat("sense", i);
    const absl::Duration offset =
        SpreadOffset(absl::StrCat("HEALTH_API ", name), interval);
    expected.emplace_back(FirstDueTime(offset, interval, wall0, mono0), name);
  }
  std::sort(expected.begin(), expected.end());
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  // Step at every due time of two rounds: exactly the target due starts.
  for (int round = 0; round < 2; ++round) {
    for (const auto& [due, name] : expected) {
      const absl::Duration at = due + round * interval;
      clock_.Advance(at - clock_.Monotonic() - absl::Nanoseconds(1));
      scheduler.Step(absl::Hours(1));
      EXPECT_TRUE(TakeStartedHosts().empty()) << name << " started early";
      // Waits for the next due time, not longer.
      EXPECT_EQ(transport_.waits.back(), absl::Nanoseconds(1)) << name;
      clock_.Advance(absl::Nanoseconds(1));
      scheduler.Step(absl::ZeroDuration());
      EXPECT_THAT(TakeStartedHosts(), ElementsAreArray({name}));
    }
  }
  // Spread: the 20 first due times are not all within one second.
  EXPECT_GT(expected.back().first - expected.front().first, absl::Seconds(1));
  EXPECT_EQ(scheduler.stats().polls_started, 40u);
  EXPECT_EQ(scheduler.stats().polls_skipped, 0u);
}

// The phase is anchored on the wall clock: a poller restarted at another
// moment polls each target at the same wall-clock phase.
TEST_F(PollSchedulerSpreadTest, ARestartKeepsEachTargetsPhase) {
  UseServers(1);  // "HEALTH_API sense0"
  const absl::Duration interval = absl::Seconds(10);
  const int64_t offset_ns =
      absl::ToInt64Nanoseconds(SpreadOffset("HEALTH_API sense0", interval));
  for (const absl::Duration restart_after :
       {absl::Milliseconds(3700), absl::Seconds(61), absl::Milliseconds(1)}) {
    SCOPED_TRACE(restart_after);
    clock_.Advance(restart_after);
    MetricsRegistry metrics;
    PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                            clock_, metrics);
    int64_t started_at = -1;
    for (int ms = 0; ms <= 10000 && started_at < 0; ++ms) {
      scheduler.Step(absl::ZeroDuration());
      if (!TakeStartedHosts().empty()) {
        started_at = absl::ToUnixNanos(clock_.Now());
      } else {
        clock_.Advance(absl::Milliseconds(1));
      }
    }
    ASSERT_GE(started_at, 0) << "no poll within one interval";
    // Within the 1 ms steps of this loop of the offset.
    const int64_t phase = started_at % absl::ToInt64Nanoseconds(interval);
    EXPECT_GE(phase, offset_ns);
    EXPECT_LT(phase, offset_ns + 1000000);
  }
}

// The value of `series` in the rendered metrics; NaN when missing.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find(series + " ");
  if (at == std::string::npos) return std::nan("");
  return std::stod(text.substr(at + series.size() + 1));
}

// Lateness counts from the due time to when the transport began the
// request: the scheduler's own delay plus the transport's queue. The queue
// alone is the completion time less the transport's elapsed.
TEST_F(PollSchedulerTest, LatenessCountsFromTheDueTimeToTheTransfersStart) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  clock_.Advance(absl::Milliseconds(300));  // the loop was busy
  scheduler.Step(absl::ZeroDuration());
  ASSERT_EQ(transport_.started.size(), 1u);
  clock_.Advance(absl::Milliseconds(1200));
  RequestOutcome outcome = Healthy();
  outcome.elapsed = absl::Milliseconds(200);  // queued 1000 ms, ran 200 ms
  transport_.Complete(outcome);
  // On time: started at its due time, began at once, ran 40 ms.
  clock_.Advance(absl::Seconds(10) - absl::Milliseconds(1500));
  scheduler.Step(absl::ZeroDuration());
  ASSERT_EQ(transport_.started.size(), 1u);
  clock_.Advance(absl::Milliseconds(40));
  outcome.elapsed = absl::Milliseconds(40);
  transport_.Complete(outcome);

  const std::string text = metrics_.RenderText();
  const std::string late = "qfp_poller_poll_start_lateness_seconds";
  const std::string queued = "qfp_poller_poll_queued_seconds";
  const std::string by = "{source=\"HEALTH_API\"";
  EXPECT_NEAR(Sample(text, late + "_sum" + by + "}"), 1.3, 1e-9);
  EXPECT_NEAR(Sample(text, late + "_count" + by + "}"), 2, 1e-9);
  EXPECT_NEAR(Sample(text, late + "_bucket" + by + ",le=\"0.001\"}"), 1, 1e-9);
  EXPECT_NEAR(Sample(text, late + "_bucket" + by + ",le=\"1\"}"), 1, 1e-9);
  EXPECT_NEAR(Sample(text, late + "_bucket" + by + ",le=\"2.5\"}"), 2, 1e-9);
  EXPECT_NEAR(Sample(text, queued + "_sum" + by + "}"), 1, 1e-9);
  EXPECT_NEAR(Sample(text, queued + "_bucket" + by + ",le=\"0.001\"}"), 1,
              1e-9);
  EXPECT_NEAR(Sample(text, "qfp_poller_poll_duration_seconds_sum" + by + "}"),
              0.24, 1e-9);
}

// An elapsed time longer than the poll was with the transport (its own
// clock) neither puts the start before the request nor makes lateness
// negative.
TEST_F(PollSchedulerTest, LatenessIsClampedToTheRequest) {
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  scheduler.Step(absl::ZeroDuration());
  clock_.Advance(absl::Milliseconds(100));
  RequestOutcome outcome = Healthy();
  outcome.elapsed = absl::Seconds(5);
  transport_.Complete(outcome);
  const std::string text = metrics_.RenderText();
  EXPECT_NEAR(
      Sample(text,
             "qfp_poller_poll_start_lateness_seconds_sum{source=\"HEALTH_"
             "API\"}"),
      0, 1e-9);
  EXPECT_NEAR(
      Sample(text, "qfp_poller_poll_queued_seconds_sum{source=\"HEALTH_API\"}"),
      0, 1e-9);
}

// Thousands of targets: every one starts once per interval, none skipped,
// each within its own 1 ms step of its due time.
TEST_F(PollSchedulerSpreadTest, ManyTargetsEachStartOncePerInterval) {
  UseServers(3000);
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  std::map<std::string, int> starts;
  for (int ms = 0; ms < 20000; ++ms) {  // two intervals
    scheduler.Step(absl::ZeroDuration());
    for (const std::string& host : TakeStartedHosts()) ++starts[host];
    clock_.Advance(absl::Milliseconds(1));
  }
  EXPECT_EQ(starts.size(), 3000u);
  for (const auto& [host, n] : starts) EXPECT_EQ(n, 2) << host;
  const std::string text = metrics_.RenderText();
  // Started at the first Step at or after the due time: under 1 ms late.
  EXPECT_NEAR(
      Sample(text,
             "qfp_poller_poll_start_lateness_seconds_bucket{source=\"HEALTH_"
             "API\",le=\"0.001\"}"),
      6000, 1e-9);
}

// --spread_polls=false: rounds, as before spreading.
TEST_F(PollSchedulerSpreadTest, PollInRoundsStartsEveryTargetTogether) {
  UseServers(20);
  PollScheduler scheduler(config_, BuildPollPlan(config_), transport_, sink_,
                          clock_, metrics_);
  scheduler.PollInRounds();
  for (int round = 0; round < 3; ++round) {
    scheduler.Step(absl::Hours(1));
    EXPECT_EQ(TakeStartedHosts().size(), 20u) << round;
    EXPECT_EQ(transport_.waits.back(), absl::Seconds(10)) << round;
    clock_.Advance(absl::Seconds(10));
  }
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
  EXPECT_EQ(sink_.failures[0].occurred_at().nanos(),
            absl::ToUnixNanos(expected) % 1000000000);
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
