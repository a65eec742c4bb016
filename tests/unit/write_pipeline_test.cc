#include "tracker-service/write_pipeline.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp {
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
  options.min_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(5);
  options.auth_retry = absl::Milliseconds(5);
  return options;
}

// Waits (bounded) until the pipeline has no point buffered or in flight.
void Drain(WritePipeline& pipeline, size_t expected_written_and_rejected) {
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up) {
    WritePipelineStats s = pipeline.stats();
    if (s.points_written + s.points_rejected >= expected_written_and_rejected)
      return;
    absl::SleepFor(absl::Milliseconds(5));
  }
  FAIL() << "pipeline did not drain in time";
}

TEST(WritePipelineTest, WritesInBatchesOfMaxBatchInOrder) {
  FakeWriter writer([](const auto&) { return Ok(); });
  WritePipeline pipeline(writer, FastOptions());
  ASSERT_TRUE(pipeline.Enqueue(Lines(0, 25)).ok());
  pipeline.Start();
  Drain(pipeline, 25);
  EXPECT_EQ(pipeline.Stop(absl::Seconds(1)), 0u);
  // Two batches are in flight at once, so they may land in either order.
  std::vector<std::string> stored = writer.stored();
  std::vector<std::string> expected = Lines(0, 25);
  std::sort(stored.begin(), stored.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(stored, expected);
  for (const auto& body : writer.bodies()) EXPECT_LE(body.size(), 10u);
  EXPECT_EQ(writer.prepares(), 1);
  EXPECT_EQ(pipeline.stats().points_written, 25u);
}

TEST(WritePipelineTest, IsolatesBadPointsAndWritesTheRest) {
  // InfluxDB-like: a body with a bad line is refused as a whole.
  FakeWriter writer([](const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
      if (absl::StrContains(line, "BAD"))
        return Answer(WriteResult::Kind::kBadPoints, 400);
    }
    return Ok();
  });
  WritePipeline pipeline(writer, FastOptions());
  std::vector<std::string> lines = Lines(0, 10);
  lines[3] = "BAD line one";
  lines[8] = "BAD line two";
  ASSERT_TRUE(pipeline.Enqueue(lines).ok());
  pipeline.Start();
  Drain(pipeline, 10);
  pipeline.Stop(absl::Seconds(1));
  WritePipelineStats stats = pipeline.stats();
  EXPECT_EQ(stats.points_rejected, 2u);
  EXPECT_EQ(stats.points_written, 8u);
  std::vector<std::string> stored = writer.stored();
  std::sort(stored.begin(), stored.end());
  std::vector<std::string> expected = Lines(0, 10);
  expected.erase(expected.begin() + 8);
  expected.erase(expected.begin() + 3);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(stored, expected);
}

TEST(WritePipelineTest, SplitsWhenTooLarge) {
  FakeWriter writer([](const std::vector<std::string>& lines) {
    return lines.size() > 3 ? Answer(WriteResult::Kind::kTooLarge, 413)
                            : Ok();
  });
  WritePipeline pipeline(writer, FastOptions());
  ASSERT_TRUE(pipeline.Enqueue(Lines(0, 10)).ok());
  pipeline.Start();
  Drain(pipeline, 10);
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(pipeline.stats().points_written, 10u);
  EXPECT_EQ(pipeline.stats().points_rejected, 0u);
}

TEST(WritePipelineTest, RetriesOutagesUntilTheyEndAndReportsHealth) {
  std::atomic<int> failures_left{5};
  FakeWriter writer([&](const auto&) {
    if (failures_left.fetch_sub(1) > 0)
      return Answer(WriteResult::Kind::kRetryable, 503);
    return Ok();
  });
  WritePipeline pipeline(writer, FastOptions());
  ASSERT_TRUE(pipeline.Enqueue(Lines(0, 4)).ok());
  pipeline.Start();
  Drain(pipeline, 4);
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 4));
  EXPECT_EQ(pipeline.stats().writes_failed, 5u);
  EXPECT_TRUE(pipeline.healthy());
}

TEST(WritePipelineTest, KeepsPointsThroughAuthFailures) {
  std::atomic<int> failures_left{2};
  FakeWriter writer([&](const auto&) {
    if (failures_left.fetch_sub(1) > 0)
      return Answer(WriteResult::Kind::kAuth, 401);
    return Ok();
  });
  WritePipeline pipeline(writer, FastOptions());
  ASSERT_TRUE(pipeline.Enqueue(Lines(0, 3)).ok());
  pipeline.Start();
  Drain(pipeline, 3);
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 3));
}

TEST(WritePipelineTest, RetriesPrepareUntilTheDestinationIsUsable) {
  FakeWriter writer([](const auto&) { return Ok(); });
  writer.set_prepare_status(absl::UnavailableError("connection refused"));
  WritePipeline pipeline(writer, FastOptions());
  ASSERT_TRUE(pipeline.Enqueue(Lines(0, 2)).ok());
  pipeline.Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (writer.prepares() < 3 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_FALSE(pipeline.healthy());
  EXPECT_TRUE(writer.stored().empty());
  writer.set_prepare_status(absl::OkStatus());
  Drain(pipeline, 2);
  pipeline.Stop(absl::Seconds(1));
  EXPECT_EQ(writer.stored(), Lines(0, 2));
}

TEST(WritePipelineTest, RefusesBeyondTheBufferCapAllOrNothing) {
  FakeWriter writer([](const auto&) { return Ok(); });
  WritePipelineOptions options = FastOptions();
  options.max_buffered = 5;
  WritePipeline pipeline(writer, options);  // not started: nothing drains
  EXPECT_TRUE(pipeline.Enqueue(Lines(0, 4)).ok());
  absl::Status full = pipeline.Enqueue(Lines(4, 6));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pipeline.stats().buffered, 4u);
  EXPECT_TRUE(pipeline.Enqueue(Lines(4, 5)).ok());
  EXPECT_EQ(pipeline.Stop(absl::ZeroDuration()), 5u);
}

TEST(WritePipelineTest, StopReportsWhatAnOutageLeftUnwritten) {
  FakeWriter writer(
      [](const auto&) { return Answer(WriteResult::Kind::kRetryable, 0); });
  WritePipeline pipeline(writer, FastOptions());
  ASSERT_TRUE(pipeline.Enqueue(Lines(0, 15)).ok());
  pipeline.Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (writer.bodies().empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_EQ(pipeline.Stop(absl::Milliseconds(50)), 15u);
  EXPECT_FALSE(pipeline.Enqueue(Lines(0, 1)).ok());
}

}  // namespace
}  // namespace qfp
