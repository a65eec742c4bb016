#include "tracker-service/write_pipeline.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/memory_failure_queue.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/metric_value.h"

namespace qfp::tracker {
namespace {

using ::testing::ElementsAre;

// An InfluxWriter whose answers a test scripts; records every body.
class FakeWriter final : public InfluxWriter {
 public:
  using Answer = std::function<WriteResult(const std::vector<std::string>&)>;

  explicit FakeWriter(Answer answer) : answer_(std::move(answer)) {}

  absl::Status Prepare() override {
    absl::MutexLock lock(&mu_);
    ++prepares_;
    return prepare_status_;
  }
  WriteResult Write(absl::string_view body) override {
    std::vector<std::string> lines = absl::StrSplit(body, '\n');
    WriteResult result = answer_(lines);
    absl::MutexLock lock(&mu_);
    bodies_.push_back(lines);
    if (result.kind == WriteResult::Kind::kOk) {
      for (auto& line : lines) stored_.push_back(line);
    }
    return result;
  }
  bool integer_numbers() const override { return false; }
  std::string Describe() const override { return "fake influxdb"; }

  std::vector<std::string> stored() const {
    absl::MutexLock lock(&mu_);
    return stored_;
  }
  std::vector<std::vector<std::string>> bodies() const {
    absl::MutexLock lock(&mu_);
    return bodies_;
  }
  void set_prepare_status(absl::Status s) {
    absl::MutexLock lock(&mu_);
    prepare_status_ = std::move(s);
  }
  int prepares() const {
    absl::MutexLock lock(&mu_);
    return prepares_;
  }

 private:
  Answer answer_;
  mutable absl::Mutex mu_;
  std::vector<std::string> stored_;
  std::vector<std::vector<std::string>> bodies_;
  absl::Status prepare_status_;
  int prepares_ = 0;
};

WriteResult Ok() { return WriteResult{}; }
WriteResult Answer(WriteResult::Kind kind, int status) {
  WriteResult r;
  r.kind = kind;
  r.http_status = status;
  r.message = "scripted";
  return r;
}

std::vector<std::string> Lines(int from, int to) {
  std::vector<std::string> lines;
  for (int i = from; i < to; ++i) lines.push_back(absl::StrCat("m v=", i));
  return lines;
}

WritePipelineOptions FastOptions() {
  WritePipelineOptions options;
  options.max_batch = 10;
  options.flush_interval = absl::Milliseconds(20);
  options.backoff = {absl::Milliseconds(1), 2.0, 0.2, absl::Milliseconds(5)};
  options.auth_retry = absl::Milliseconds(5);
  return options;
}

// A pipeline over a memory queue, with the registry its counts live in.
class WritePipelineTest : public ::testing::Test {
 protected:
  explicit WritePipelineTest(QueueLimits limits = {})
      : queue_(MemoryQueueOptions{limits, &metrics_, "qfp_tracker_queue"}) {}

  WritePipeline& Make(FakeWriter& writer,
                      WritePipelineOptions options = FastOptions()) {
    pipeline_ =
        std::make_unique<WritePipeline>(writer, queue_, options, metrics_);
    return *pipeline_;
  }
  void Append(std::vector<std::string> lines) {
    ASSERT_TRUE(queue_.AppendAndWait(std::move(lines)).ok());
  }
  double Metric(absl::string_view sample) const {
    return testing::MetricValue(metrics_, sample);
  }
  double Written() const { return Metric("qfp_tracker_points_written_total"); }
  double Rejected(absl::string_view reason) const {
    return Metric(absl::StrCat("qfp_tracker_points_rejected_total{reason=\"",
                               reason, "\"}"));
  }
  // Waits (bounded) until the queue holds nothing: every point written or
  // rejected, and released.
  void Drain() {
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (queue_.stats().records > 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(queue_.stats().records, 0u) << "pipeline did not drain in time";
  }

  MetricsRegistry metrics_;
  MemoryFailureQueue queue_;
  std::unique_ptr<WritePipeline> pipeline_;
};

TEST_F(WritePipelineTest, WritesInBatchesOfMaxBatchInOrder) {
  FakeWriter writer([](const auto&) { return Ok(); });
  WritePipeline& pipeline = Make(writer);
  Append(Lines(0, 25));
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  // Two batches are in flight at once, so they may land in either order.
  std::vector<std::string> stored = writer.stored();
  std::vector<std::string> expected = Lines(0, 25);
  std::sort(stored.begin(), stored.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(stored, expected);
  for (const auto& body : writer.bodies()) EXPECT_LE(body.size(), 10u);
  EXPECT_EQ(writer.prepares(), 1);
  EXPECT_EQ(Written(), 25);
}

TEST_F(WritePipelineTest, WritesRecordsLeftInTheQueueBeforeStart) {
  // What an earlier run left is in the queue before the pipeline exists.
  Append(Lines(0, 3));
  FakeWriter writer([](const auto&) { return Ok(); });
  WritePipeline& pipeline = Make(writer);
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 3));
}

TEST_F(WritePipelineTest, WaitsForAFullBatchOrTheFlushInterval) {
  FakeWriter writer([](const auto&) { return Ok(); });
  WritePipelineOptions options = FastOptions();
  options.flush_interval = absl::Seconds(60);
  options.concurrent_writes = 1;
  WritePipeline& pipeline = Make(writer, options);
  pipeline.Start();
  Append(Lines(0, 4));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(writer.bodies().empty()) << "a partial batch went out early";
  Append(Lines(4, 10));  // a full batch: written at once
  Drain();
  ASSERT_EQ(writer.bodies().size(), 1u);
  EXPECT_EQ(writer.bodies()[0], Lines(0, 10));
  pipeline.Stop(absl::Seconds(1));
}

TEST_F(WritePipelineTest, IsolatesBadPointsAndWritesTheRest) {
  // InfluxDB-like: a body with a bad line is refused as a whole.
  FakeWriter writer([](const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
      if (absl::StrContains(line, "BAD"))
        return Answer(WriteResult::Kind::kBadPoints, 400);
    }
    return Ok();
  });
  WritePipeline& pipeline = Make(writer);
  std::vector<std::string> lines = Lines(0, 10);
  lines[3] = "BAD line one";
  lines[8] = "BAD line two";
  Append(lines);
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(Rejected("bad_point"), 2);
  EXPECT_EQ(Written(), 8);
  std::vector<std::string> stored = writer.stored();
  std::sort(stored.begin(), stored.end());
  std::vector<std::string> expected = Lines(0, 10);
  expected.erase(expected.begin() + 8);
  expected.erase(expected.begin() + 3);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(stored, expected);
}

TEST_F(WritePipelineTest, SplitsWhenTooLarge) {
  FakeWriter writer([](const std::vector<std::string>& lines) {
    return lines.size() > 3 ? Answer(WriteResult::Kind::kTooLarge, 413) : Ok();
  });
  WritePipeline& pipeline = Make(writer);
  Append(Lines(0, 10));
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(Written(), 10);
  EXPECT_EQ(Rejected("too_large"), -1);  // never rejected: no series
}

TEST_F(WritePipelineTest, RetriesOutagesUntilTheyEndAndReportsHealth) {
  std::atomic<int> failures_left{5};
  FakeWriter writer([&](const auto&) {
    if (failures_left.fetch_sub(1) > 0)
      return Answer(WriteResult::Kind::kRetryable, 503);
    return Ok();
  });
  WritePipeline& pipeline = Make(writer);
  Append(Lines(0, 4));
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 4));
  EXPECT_EQ(Metric("qfp_tracker_write_attempts_total{outcome=\"retryable\"}"),
            5);
  EXPECT_TRUE(pipeline.healthy());
}

TEST_F(WritePipelineTest, KeepsPointsThroughAuthFailures) {
  std::atomic<int> failures_left{2};
  FakeWriter writer([&](const auto&) {
    if (failures_left.fetch_sub(1) > 0)
      return Answer(WriteResult::Kind::kAuth, 401);
    return Ok();
  });
  WritePipeline& pipeline = Make(writer);
  Append(Lines(0, 3));
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 3));
}

TEST_F(WritePipelineTest, RetriesPrepareUntilTheDestinationIsUsable) {
  FakeWriter writer([](const auto&) { return Ok(); });
  writer.set_prepare_status(absl::UnavailableError("connection refused"));
  WritePipeline& pipeline = Make(writer);
  Append(Lines(0, 2));
  pipeline.Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (writer.prepares() < 3 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  std::string why;
  EXPECT_FALSE(pipeline.healthy(&why));
  EXPECT_THAT(why, ::testing::HasSubstr("connection refused"));
  EXPECT_TRUE(writer.stored().empty());
  writer.set_prepare_status(absl::OkStatus());
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 2));
}

TEST_F(WritePipelineTest, StopLeavesWhatAnOutageLeftUnwrittenInTheQueue) {
  FakeWriter writer(
      [](const auto&) { return Answer(WriteResult::Kind::kRetryable, 0); });
  WritePipeline& pipeline = Make(writer);
  Append(Lines(0, 15));
  pipeline.Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (writer.bodies().empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  const absl::Time stop_started = absl::Now();
  pipeline.Stop(absl::Milliseconds(50));
  EXPECT_LT(absl::Now() - stop_started, absl::Seconds(5));
  EXPECT_EQ(queue_.stats().records, 15u);
  // Every record is still readable, in order, for the next run.
  absl::StatusOr<std::vector<QueueRecord>> left = queue_.Read(0, 100, 1 << 20);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 15u);
  EXPECT_EQ(left->front().payload, "m v=0");
}

TEST_F(WritePipelineTest, StopWakesAPipelineWaitingOnALongBackoff) {
  FakeWriter writer(
      [](const auto&) { return Answer(WriteResult::Kind::kAuth, 401); });
  WritePipelineOptions options = FastOptions();
  options.auth_retry = absl::Hours(1);
  WritePipeline& pipeline = Make(writer, options);
  Append(Lines(0, 1));
  pipeline.Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (writer.bodies().empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  const absl::Time stop_started = absl::Now();
  pipeline.Stop(absl::ZeroDuration());
  EXPECT_LT(absl::Now() - stop_started, absl::Seconds(3));
  EXPECT_EQ(queue_.stats().records, 1u);
}

// Issue 9 §1b: a 400 that refuses the request itself (bad database name,
// encoding) names no line; the batch is kept and retried, never dropped.
TEST_F(WritePipelineTest, KeepsEveryPointThroughARejectedRequest) {
  std::atomic<int> failures_left{3};
  FakeWriter writer([&](const auto&) {
    if (failures_left.fetch_sub(1) > 0) {
      return Answer(WriteResult::Kind::kRequestRejected, 400);
    }
    return Ok();
  });
  WriteTotals totals;
  WritePipelineOptions options = FastOptions();
  options.totals = &totals;
  WritePipeline& pipeline = Make(writer, options);
  Append(Lines(0, 6));
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  std::vector<std::string> stored = writer.stored();
  std::sort(stored.begin(), stored.end());
  EXPECT_EQ(stored, Lines(0, 6));
  EXPECT_EQ(Rejected("bad_point"), -1);  // no series: nothing dropped
  EXPECT_EQ(
      Metric("qfp_tracker_write_attempts_total{outcome=\"request_rejected\"}"),
      3);
  EXPECT_EQ(totals.written.load(), 6u);
  EXPECT_EQ(totals.dropped_bad_point.load(), 0u);
  EXPECT_EQ(totals.dropped_too_large.load(), 0u);
}

// Issue 9 §6: the totals behind the shutdown summary, each record once.
TEST_F(WritePipelineTest, TotalsCountWrittenAndDroppedByReason) {
  FakeWriter writer([](const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
      if (absl::StrContains(line, "BAD")) {
        return Answer(WriteResult::Kind::kBadPoints, 400);
      }
      if (absl::StrContains(line, "HUGE")) {
        return Answer(WriteResult::Kind::kTooLarge, 413);
      }
    }
    return Ok();
  });
  WriteTotals totals;
  WritePipelineOptions options = FastOptions();
  options.totals = &totals;
  WritePipeline& pipeline = Make(writer, options);
  std::vector<std::string> lines = Lines(0, 10);
  lines[1] = "BAD one";
  lines[4] = "HUGE one";
  lines[7] = "BAD two";
  Append(lines);
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(totals.written.load(), 7u);
  EXPECT_EQ(totals.dropped_bad_point.load(), 2u);
  EXPECT_EQ(totals.dropped_too_large.load(), 1u);
  EXPECT_EQ(Written(), 7);
}

TEST_F(WritePipelineTest, DoesNotPrepareAgainWhenTheCallerDid) {
  FakeWriter writer([](const auto&) { return Ok(); });
  WritePipelineOptions options = FastOptions();
  options.prepared = true;
  WritePipeline& pipeline = Make(writer, options);
  Append(Lines(0, 2));
  pipeline.Start();
  Drain();
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.prepares(), 0);
  EXPECT_EQ(writer.stored(), Lines(0, 2));
}

}  // namespace
}  // namespace qfp::tracker
