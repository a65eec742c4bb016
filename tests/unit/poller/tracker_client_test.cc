// TrackerClient against a real in-process gRPC server on loopback.
#include "poller-service/tracker_client.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/memory_failure_queue.h"
#include "common/sqlite_failure_queue.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/grpc.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"
#include "tests/testing/grpc_library.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/temp_dir.h"

namespace qfp::poller {
namespace {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

// Every wait in these tests is bounded by this, far above what any of them
// needs; a condition not met by then fails the test.
constexpr absl::Duration kPatience = absl::Seconds(30);

bool WaitFor(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

using Key = std::tuple<std::string, std::string, uint64_t>;
Key KeyOf(const FailureId& id) {
  return Key(id.poller_id(), id.instance_id(), id.sequence());
}

PollFailure Failure(uint64_t sequence, const std::string& instance = "run-1") {
  PollFailure failure;
  failure.mutable_id()->set_poller_id("poller-test");
  failure.mutable_id()->set_instance_id(instance);
  failure.mutable_id()->set_sequence(sequence);
  failure.set_server_name("sense1");
  failure.set_source(failedpolls::v1::HEALTH_API);
  failure.set_error_category(failedpolls::v1::ERROR_CATEGORY_HTTP_5XX);
  failure.mutable_occurred_at()->set_seconds(1700000000);
  return failure;
}

std::set<Key> Keys(uint64_t first, uint64_t last,
                   const std::string& instance = "run-1") {
  std::set<Key> keys;
  for (uint64_t i = first; i <= last; ++i) {
    keys.insert(KeyOf(Failure(i, instance).id()));
  }
  return keys;
}

// A tracker that accepts what it receives, except as told.
class FakeTracker final : public failedpolls::v1::FailedPollTracker::Service {
 public:
  // Refuse each failure whose sequence matches, the first time it arrives.
  void RefuseOnceWhen(std::function<bool(uint64_t)> predicate) {
    absl::MutexLock lock(&mu_);
    refuse_once_ = std::move(predicate);
  }
  // Refuse each failure whose sequence matches, every time, as malformed
  // (REFUSAL_CODE_INVALID_ARGUMENT: not to be resent).
  void RejectWhen(std::function<bool(uint64_t)> predicate) {
    absl::MutexLock lock(&mu_);
    reject_ = std::move(predicate);
  }
  // Refuse everything until told otherwise.
  void RefuseAll(bool refuse) {
    absl::MutexLock lock(&mu_);
    refuse_all_ = refuse;
  }
  // Break the first stream (UNAVAILABLE, the batch in hand unanswered) once
  // this many failures have arrived in all.
  void BreakOnceAfter(size_t failures) {
    absl::MutexLock lock(&mu_);
    break_after_ = failures;
  }

  grpc::Status ReportFailures(
      grpc::ServerContext* /*context*/,
      grpc::ServerReaderWriter<ReportFailuresResponse, ReportFailuresRequest>*
          stream) override {
    {
      absl::MutexLock lock(&mu_);
      ++streams_;
    }
    ReportFailuresRequest request;
    while (stream->Read(&request)) {
      ReportFailuresResponse response;
      {
        absl::MutexLock lock(&mu_);
        ++requests_;
        if (request.has_heartbeat()) heartbeats_.push_back(request.heartbeat());
        received_ += static_cast<size_t>(request.failures_size());
        if (break_after_ > 0 && received_ >= break_after_) {
          break_after_ = 0;
          ++breaks_;
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "test break");
        }
        for (const PollFailure& failure : request.failures()) {
          const Key key = KeyOf(failure.id());
          const bool refuse_first = refuse_once_ &&
                                    refuse_once_(failure.id().sequence()) &&
                                    refused_once_.insert(key).second;
          if (reject_ && reject_(failure.id().sequence())) {
            auto* refusal = response.add_refused();
            *refusal->mutable_id() = failure.id();
            refusal->set_reason("server_name holds a control character");
            refusal->set_code(failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT);
            continue;
          }
          if (refuse_all_ || refuse_first) {
            ++refusals_;
            auto* refusal = response.add_refused();
            *refusal->mutable_id() = failure.id();
            refusal->set_reason("test refusal");
            continue;
          }
          if (!accepted_.insert(key).second) ++duplicates_;
          *response.add_accepted() = failure.id();
        }
      }
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  std::set<Key> accepted() const {
    absl::MutexLock lock(&mu_);
    return accepted_;
  }
  size_t received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  size_t refusals() const {
    absl::MutexLock lock(&mu_);
    return refusals_;
  }
  int breaks() const {
    absl::MutexLock lock(&mu_);
    return breaks_;
  }
  std::vector<failedpolls::v1::Heartbeat> heartbeats() const {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  size_t requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  mutable absl::Mutex mu_;
  std::set<Key> accepted_ ABSL_GUARDED_BY(mu_);
  std::set<Key> refused_once_ ABSL_GUARDED_BY(mu_);
  std::function<bool(uint64_t)> refuse_once_ ABSL_GUARDED_BY(mu_);
  std::function<bool(uint64_t)> reject_ ABSL_GUARDED_BY(mu_);
  bool refuse_all_ ABSL_GUARDED_BY(mu_) = false;
  size_t break_after_ ABSL_GUARDED_BY(mu_) = 0;
  size_t received_ ABSL_GUARDED_BY(mu_) = 0;
  size_t refusals_ ABSL_GUARDED_BY(mu_) = 0;
  size_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  int breaks_ ABSL_GUARDED_BY(mu_) = 0;
  size_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<failedpolls::v1::Heartbeat> heartbeats_ ABSL_GUARDED_BY(mu_);
};

// A gRPC server on 127.0.0.1 serving a FakeTracker.
class TestServer {
 public:
  // `port` 0 picks a free one.
  explicit TestServer(FakeTracker* service, int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(1));
    }
  }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TrackerClientOptions FastOptions(const std::string& address) {
  TrackerClientOptions options;
  options.address = address;
  options.max_batch = 64;
  options.backoff = {absl::Milliseconds(20), 2.0, 0.2, absl::Milliseconds(300)};
  options.refusal_delay = absl::Milliseconds(50);
  return options;
}

std::unique_ptr<FailureQueue> MemorySpool() {
  return std::make_unique<MemoryFailureQueue>(MemoryQueueOptions{});
}

std::unique_ptr<FailureQueue> SqliteSpool(const std::string& dir) {
  SqliteQueueOptions options;
  options.directory = dir;
  options.purpose = "qs-poller spool";
  options.limits.overflow = QueueLimits::Overflow::kDropOldest;
  absl::StatusOr<std::unique_ptr<FailureQueue>> spool =
      OpenSqliteFailureQueue(options);
  EXPECT_TRUE(spool.ok()) << spool.status();
  return spool.ok() ? *std::move(spool) : nullptr;
}

// A client and the registry its counts are kept in.
struct Client {
  Client(TrackerClientOptions options, std::unique_ptr<FailureQueue> spool)
      : client(std::move(options), std::move(spool), metrics) {}
  double Metric(absl::string_view name) const {
    return testing::MetricValue(metrics, name);
  }
  double acknowledged() const {
    return Metric("qfp_poller_failures_acknowledged_total");
  }
  uint64_t pending() const {
    const QueueStats stats = client.spool().stats();
    return stats.records + stats.pending;
  }

  MetricsRegistry metrics;
  TrackerClient client;
};

// A port that was free a moment ago and has nothing listening now.
int ClosedPort() {
  FakeTracker unused;
  TestServer probe(&unused);
  EXPECT_TRUE(probe.ok());
  return probe.port();
}

TEST(TrackerClientTest, DeliversAndGetsAcknowledgements) {
  FakeTracker tracker;
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  Client c(FastOptions(server.address()), MemorySpool());
  c.client.Start();
  for (uint64_t i = 1; i <= 1000; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 1000; }));
  EXPECT_EQ(c.Metric("qfp_poller_failures_delivered_total"), 1000);
  EXPECT_EQ(c.pending(), 0u);
  EXPECT_EQ(c.client.spool().stats().dropped, 0u);
  EXPECT_EQ(tracker.accepted(), Keys(1, 1000));
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

TEST(TrackerClientTest, TrackerStartedLaterStillGetsEverything) {
  FakeTracker tracker;
  const int port = ClosedPort();
  Client c(FastOptions(absl::StrCat("127.0.0.1:", port)), MemorySpool());
  c.client.Start();
  for (uint64_t i = 1; i <= 200; ++i) c.client.Deliver(Failure(i));
  // While nothing listens no stream starts (the client waits for the
  // channel to connect) and everything stays held.
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_EQ(c.Metric("qfp_poller_stream_starts_total"), 0);
  EXPECT_EQ(c.pending(), 200u);

  TestServer server(&tracker, port);
  ASSERT_TRUE(server.ok());
  for (uint64_t i = 201; i <= 300; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 300; }));
  EXPECT_EQ(tracker.accepted(), Keys(1, 300));
  EXPECT_EQ(c.pending(), 0u);
  // Before the server goes (declared after the client).
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

// Keeps what it is given, formatted; Text() may be read while other threads
// log (under the sink's own mutex, which sink_it_ runs under).
class StringSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string Text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    text_.append(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

// Captures what is logged through spdlog's default logger while it lives.
class LogCapture {
 public:
  LogCapture()
      : sink_(std::make_shared<StringSink>()),
        previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", sink_));
    spdlog::set_level(spdlog::level::info);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() { return sink_->Text(); }
  // Lines holding `needle`.
  std::vector<std::string> Lines(const std::string& needle) {
    std::vector<std::string> lines;
    std::istringstream in(text());
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos) lines.push_back(line);
    }
    return lines;
  }

 private:
  std::shared_ptr<StringSink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

// A tracker nobody answers for: one warning (rate limited: the channel is
// looked at every 500 ms) with the address, gRPC's code and message and the
// true spool count; when it comes, one info line with the outage and the
// backlog it left.
TEST(TrackerClientTest, OutageIsLoggedOnceThenTheReconnect) {
  LogCapture log;
  FakeTracker tracker;
  const int port = ClosedPort();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  Client c(FastOptions(address), MemorySpool());
  for (uint64_t i = 1; i <= 25; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return c.pending() == 25; }));
  c.client.Start();
  ASSERT_TRUE(WaitFor([&] { return !log.Lines("cannot reach").empty(); }))
      << log.text();
  // Several looks at the channel later, still one warning.
  absl::SleepFor(absl::Seconds(2));
  const std::vector<std::string> warnings = log.Lines("cannot reach");
  ASSERT_EQ(warnings.size(), 1u) << log.text();
  EXPECT_THAT(warnings[0], ::testing::HasSubstr("tracker " + address));
  EXPECT_THAT(warnings[0], ::testing::HasSubstr(": UNAVAILABLE: "));
  EXPECT_THAT(warnings[0], ::testing::HasSubstr("25 failures waiting"));
  EXPECT_THAT(warnings[0], ::testing::HasSubstr("at most every 30s"));
  EXPECT_TRUE(log.Lines("reconnected").empty()) << log.text();

  auto server = std::make_unique<TestServer>(&tracker, port);
  ASSERT_TRUE(server->ok());
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 25; }));
  ASSERT_TRUE(WaitFor([&] { return !log.Lines("reconnected").empty(); }));
  const std::vector<std::string> up = log.Lines("reconnected");
  ASSERT_EQ(up.size(), 1u) << log.text();
  EXPECT_THAT(up[0], ::testing::ContainsRegex(
                         "reconnected to tracker " + address +
                         " after [0-9]+\\.[0-9] s; 25 failures waiting"));

  // A second outage, a few seconds after the first warning: reported when
  // it starts, not when the first warning's 30 s have passed.
  const size_t before =
      log.Lines("cannot reach").size() + log.Lines("stream to tracker").size();
  server.reset();
  const absl::Time down = absl::Now();
  ASSERT_TRUE(WaitFor([&] {
    return log.Lines("cannot reach").size() +
               log.Lines("stream to tracker").size() >
           before;
  })) << log.text();
  EXPECT_LT(absl::Now() - down, absl::Seconds(10)) << log.text();
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

// A stream the tracker breaks: the warning names the status and the backoff
// before the next try; the next stream that is answered ends the outage.
TEST(TrackerClientTest, BrokenStreamIsLoggedWithTheNextTry) {
  LogCapture log;
  FakeTracker tracker;
  tracker.BreakOnceAfter(10);
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  Client c(FastOptions(server.address()), MemorySpool());
  for (uint64_t i = 1; i <= 10; ++i) c.client.Deliver(Failure(i));
  c.client.Start();
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 10; }));
  ASSERT_TRUE(WaitFor([&] { return !log.Lines("reconnected").empty(); }));
  const std::vector<std::string> ended = log.Lines("ended");
  ASSERT_EQ(ended.size(), 1u) << log.text();
  EXPECT_THAT(ended[0], ::testing::ContainsRegex(
                            "stream to tracker " + server.address() +
                            " ended .*: UNAVAILABLE: test break; 10 failures "
                            "waiting in spool .*; next try in [0-9.]+m?s"));
  const std::vector<std::string> up = log.Lines("reconnected");
  ASSERT_EQ(up.size(), 1u) << log.text();
  EXPECT_THAT(up[0], ::testing::HasSubstr("10 failures waiting"));
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

TEST(TrackerClientTest, RefusedFailuresAreResentLater) {
  FakeTracker tracker;
  tracker.RefuseOnceWhen([](uint64_t sequence) { return sequence % 3 == 0; });
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  Client c(FastOptions(server.address()), MemorySpool());
  c.client.Start();
  for (uint64_t i = 1; i <= 300; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 300; }));
  EXPECT_EQ(tracker.refusals(), 100u);
  EXPECT_EQ(c.Metric("qfp_poller_failures_refused_total"), 100);
  EXPECT_EQ(tracker.accepted(), Keys(1, 300));
  EXPECT_EQ(c.pending(), 0u);
}

// A malformed failure would be refused again and again: it is dropped at
// once, counted, and never sent a second time; the rest go through.
TEST(TrackerClientTest, RejectedFailuresAreDroppedNotResent) {
  FakeTracker tracker;
  tracker.RejectWhen([](uint64_t sequence) { return sequence % 10 == 0; });
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  Client c(FastOptions(server.address()), MemorySpool());
  c.client.Start();
  for (uint64_t i = 1; i <= 300; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return c.pending() == 0; }));
  EXPECT_EQ(c.Metric("qfp_poller_failures_rejected_total"), 30);
  EXPECT_EQ(c.Metric("qfp_poller_failures_acknowledged_total"), 270);
  EXPECT_EQ(c.Metric("qfp_poller_failures_refused_total"), 0);
  EXPECT_EQ(tracker.accepted().size(), 270u);
  // Wait past the refusal delay: nothing is sent again.
  absl::SleepFor(FastOptions(server.address()).refusal_delay * 3);
  EXPECT_EQ(tracker.received(), 300u);
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

TEST(TrackerClientTest, BrokenStreamLosesNothing) {
  FakeTracker tracker;
  tracker.BreakOnceAfter(700);
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  Client c(FastOptions(server.address()), MemorySpool());
  c.client.Start();
  for (uint64_t i = 1; i <= 1000; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return tracker.breaks() == 1; }));
  for (uint64_t i = 1001; i <= 2000; ++i) c.client.Deliver(Failure(i));
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 2000; }));
  EXPECT_EQ(tracker.accepted(), Keys(1, 2000));
  EXPECT_GE(c.Metric("qfp_poller_stream_starts_total"), 2);
  EXPECT_EQ(c.pending(), 0u);
}

TEST(TrackerClientTest, ShutdownReportsWhatIsLeft) {
  Client c(FastOptions(absl::StrCat("127.0.0.1:", ClosedPort())),
           MemorySpool());
  c.client.Start();
  for (uint64_t i = 1; i <= 25; ++i) c.client.Deliver(Failure(i));
  EXPECT_EQ(c.client.Shutdown(absl::Milliseconds(100)), 25u);
  EXPECT_EQ(c.pending(), 25u);
}

TEST(TrackerClientTest, SqliteSpoolResendsAfterRestartWithTheOriginalIds) {
  testing::TempDir dir;
  const std::string spool_dir = dir.path() + "/spool";
  FakeTracker tracker;
  tracker.RefuseAll(true);
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  {
    // The first run: the tracker acknowledges nothing (it refuses all),
    // then the client goes away with everything still spooled.
    Client c(FastOptions(server.address()), SqliteSpool(spool_dir));
    c.client.Start();
    for (uint64_t i = 1; i <= 150; ++i) c.client.Deliver(Failure(i, "run-1"));
    ASSERT_TRUE(WaitFor([&] { return tracker.refusals() >= 150; }));
    EXPECT_EQ(c.client.Shutdown(absl::ZeroDuration()), 150u);
  }
  EXPECT_TRUE(tracker.accepted().empty());

  tracker.RefuseAll(false);
  // The second run: a new instance id for new failures; the old ones go out
  // as they were.
  std::unique_ptr<FailureQueue> spool = SqliteSpool(spool_dir);
  EXPECT_EQ(spool->stats().reloaded, 150u);
  Client c(FastOptions(server.address()), std::move(spool));
  c.client.Start();
  for (uint64_t i = 1; i <= 10; ++i) c.client.Deliver(Failure(i, "run-2"));
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 160; }));
  std::set<Key> expected = Keys(1, 150, "run-1");
  const std::set<Key> second_run = Keys(1, 10, "run-2");
  expected.insert(second_run.begin(), second_run.end());
  EXPECT_EQ(tracker.accepted(), expected);
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

TEST(TrackerClientTest, AcknowledgedFailuresAreNotResentAfterRestart) {
  testing::TempDir dir;
  const std::string spool_dir = dir.path() + "/spool";
  FakeTracker tracker;
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  {
    Client c(FastOptions(server.address()), SqliteSpool(spool_dir));
    c.client.Start();
    for (uint64_t i = 1; i <= 100; ++i) c.client.Deliver(Failure(i));
    ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 100; }));
    EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
  }
  std::unique_ptr<FailureQueue> spool = SqliteSpool(spool_dir);
  EXPECT_EQ(spool->stats().reloaded, 0u);
}

}  // namespace
}  // namespace qfp::poller

namespace qfp::poller {
namespace {

PollTarget Target(failedpolls::v1::PollSource source, const std::string& name,
                  const std::string& virtual_proxy = "") {
  PollTarget target;
  target.source = source;
  target.server_name = name;
  target.host = name + ":4747";
  target.virtual_proxy = virtual_proxy;
  return target;
}

TEST(HeartbeatIntervalTest, ShortestPollingIntervalHeldToBounds) {
  std::vector<PollTarget> plan{Target(failedpolls::v1::HEALTH_API, "a"),
                               Target(failedpolls::v1::PROXY_API, "a", "/")};
  plan[0].interval = absl::Seconds(30);
  plan[1].interval = absl::Seconds(15);
  EXPECT_EQ(HeartbeatInterval(plan), absl::Seconds(15));
  plan[1].interval = absl::Milliseconds(200);
  EXPECT_EQ(HeartbeatInterval(plan), kMinHeartbeatInterval);
  plan[0].interval = plan[1].interval = absl::Minutes(10);
  EXPECT_EQ(HeartbeatInterval(plan), kMaxHeartbeatInterval);
  EXPECT_EQ(HeartbeatInterval({}), kMaxHeartbeatInterval);
}

// The fake tracker answers a heartbeat-only request as a tracker that
// predates heartbeats does: with an empty response. Failures still flow and
// are acknowledged exactly once; the heartbeats carry every recorded count,
// and the last one says the poller is stopping.
TEST(TrackerClientTest, HeartbeatsCarryTheLedgerAndNeverDisturbFailures) {
  FakeTracker tracker;
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  AttemptLedger ledger;
  Client c(FastOptions(server.address()), MemorySpool());
  c.client.EnableHeartbeats(HeartbeatOptions{"poller-test", "run-1",
                                             absl::Milliseconds(100), &ledger});
  c.client.Start();
  const PollTarget health = Target(failedpolls::v1::HEALTH_API, "sense1");
  const PollTarget proxy = Target(failedpolls::v1::PROXY_API, "sense1", "/");
  uint64_t sequence = 0;
  for (int round = 0; round < 5; ++round) {
    ledger.Record(health, /*failed=*/true);
    c.client.Deliver(Failure(++sequence));
    ledger.Record(proxy, /*failed=*/false);
    ASSERT_TRUE(WaitFor([&] {
      return tracker.heartbeats().size() > static_cast<size_t>(round) + 1;
    }));
  }
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 5; }));
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
  EXPECT_EQ(tracker.accepted(), Keys(1, 5));
  EXPECT_EQ(c.Metric("qfp_poller_failures_refused_total"), 0);

  const std::vector<failedpolls::v1::Heartbeat> beats = tracker.heartbeats();
  ASSERT_GE(beats.size(), 6u);
  EXPECT_EQ(c.client.heartbeats_sent(), beats.size());
  uint64_t health_attempted = 0, health_failed = 0, proxy_attempted = 0;
  for (size_t i = 0; i < beats.size(); ++i) {
    const failedpolls::v1::Heartbeat& beat = beats[i];
    EXPECT_EQ(beat.poller_id(), "poller-test");
    EXPECT_EQ(beat.instance_id(), "run-1");
    EXPECT_EQ(beat.interval_ms(), 100u);
    EXPECT_GT(beat.sent_at().seconds(), 1700000000);
    // Only the last one announces the stop.
    EXPECT_EQ(beat.stopping(), i + 1 == beats.size()) << i;
    for (const auto& target : beat.targets()) {
      if (target.source() == failedpolls::v1::HEALTH_API) {
        health_attempted += target.attempted();
        health_failed += target.failed();
      } else {
        EXPECT_EQ(target.virtual_proxy(), "/");
        EXPECT_EQ(target.failed(), 0u);
        proxy_attempted += target.attempted();
      }
    }
  }
  EXPECT_EQ(health_attempted, 5u);
  EXPECT_EQ(health_failed, 5u);
  EXPECT_EQ(proxy_attempted, 5u);
}

TEST(TrackerClientTest, NoHeartbeatsUnlessEnabled) {
  FakeTracker tracker;
  TestServer server(&tracker);
  ASSERT_TRUE(server.ok());
  Client c(FastOptions(server.address()), MemorySpool());
  c.client.Start();
  c.client.Deliver(Failure(1));
  ASSERT_TRUE(WaitFor([&] { return c.acknowledged() == 1; }));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
  EXPECT_TRUE(tracker.heartbeats().empty());
  EXPECT_EQ(c.client.heartbeats_sent(), 0u);
}

// Counts recorded while no tracker listens are not lost: they wait in the
// ledger and go with the first heartbeat of the first stream.
TEST(TrackerClientTest, CountsWaitForTheStream) {
  FakeTracker tracker;
  const int port = ClosedPort();
  AttemptLedger ledger;
  Client c(FastOptions(absl::StrCat("127.0.0.1:", port)), MemorySpool());
  c.client.EnableHeartbeats(HeartbeatOptions{"poller-test", "run-1",
                                             absl::Milliseconds(100), &ledger});
  c.client.Start();
  const PollTarget health = Target(failedpolls::v1::HEALTH_API, "sense1");
  for (int i = 0; i < 7; ++i) ledger.Record(health, i % 2 == 0);
  absl::SleepFor(absl::Milliseconds(300));
  TestServer server(&tracker, port);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(WaitFor([&] { return !tracker.heartbeats().empty(); }));
  const failedpolls::v1::Heartbeat first = tracker.heartbeats().front();
  ASSERT_EQ(first.targets_size(), 1);
  EXPECT_EQ(first.targets(0).attempted(), 7u);
  EXPECT_EQ(first.targets(0).failed(), 4u);
  EXPECT_EQ(c.client.Shutdown(absl::Seconds(5)), 0u);
}

}  // namespace
}  // namespace qfp::poller
