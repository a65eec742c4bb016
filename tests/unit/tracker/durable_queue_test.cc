// The tracker's write path end to end below gRPC, with real parts: failures
// encoded as the tracker encodes them, committed to a real SQLite queue,
// written by the real WritePipeline and the 1.x writer into a real private
// influxd.
#include "tracker-service/durable_queue.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/influxd_process.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/temp_dir.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;
using ::qfp::testing::InfluxdProcess;

constexpr int kFailures = 5000;
constexpr int kBadIndex = 2345;
constexpr char kDatabase[] = "senseops";

// Failure `i`: one of 20 servers, refused, at its own nanosecond so that no
// two points share series and time (which InfluxDB would merge).
PollFailure Failure(int i) {
  PollFailure failure;
  failure.mutable_occurred_at()->set_seconds(1764000000 + i / 1000);
  failure.mutable_occurred_at()->set_nanos((i % 1000) * 1000 + 7);
  failure.set_source(failedpolls::v1::HEALTH_API);
  failure.set_server_name(absl::StrCat("sense", i % 20));
  failure.set_host(absl::StrCat("10.0.0.", i % 20, ":4747"));
  failure.set_error_category(
      failedpolls::v1::ERROR_CATEGORY_CONNECTION_REFUSED);
  failure.set_error_code("ECONNREFUSED");
  failure.set_request_url(
      absl::StrCat("https://10.0.0.", i % 20, ":4747/engine/healthcheck"));
  failure.set_request_timeout_ms(5000);
  failure.set_remote_address(absl::StrCat("10.0.0.", i % 20));
  failure.set_remote_port(4747);
  failure.set_syscall("connect");
  return failure;
}

// Appends and waits for the store's answer, as the service's handler does
// before it acknowledges.
absl::Status AppendAndWait(DurableQueue& queue,
                           std::vector<std::string> lines) {
  absl::Notification done;
  absl::Status result;
  queue.Append(std::move(lines), [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

// SELECT COUNT(...)'s single value, or -1.
int64_t CountOf(const std::string& answer_text) {
  const nlohmann::json answer =
      nlohmann::json::parse(answer_text, nullptr, false);
  if (!answer.is_object()) return -1;
  const nlohmann::json::json_pointer value("/results/0/series/0/values/0/1");
  if (!answer.contains(value) || !answer[value].is_number_integer()) return -1;
  return answer[value].get<int64_t>();
}

int64_t CountIn(InfluxdProcess& influxd) {
  absl::StatusOr<std::string> count = influxd.Query(
      "SELECT COUNT(request_url) FROM butler_sos_errors", kDatabase);
  return count.ok() ? CountOf(*count) : -1;
}

std::vector<std::string> EncodedFailures(int from, int to) {
  const PointSchema schema;  // 1.x: numbers as floats
  std::vector<std::string> lines;
  for (int i = from; i < to; ++i) {
    absl::StatusOr<std::string> line =
        EncodeLine(FailureToPoint(Failure(i), schema));
    EXPECT_TRUE(line.ok()) << line.status();
    lines.push_back(*line);
  }
  return lines;
}

DurableQueueOptions Options(const std::string& directory) {
  DurableQueueOptions options;
  options.directory = directory;
  options.pipeline.max_batch = 1000;  // Butler SOS's default maxBatchSize
  options.pipeline.flush_interval = absl::Milliseconds(20);
  options.pipeline.backoff = {absl::Milliseconds(10), 2.0, 0.2,
                              absl::Milliseconds(200)};
  return options;
}

// Bounded wait until the queue holds nothing.
bool Drained(const DurableQueue& queue) {
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (queue.backlog() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  return queue.backlog() == 0;
}

// 5000 failures, one bad point among them: InfluxDB refuses the bad point;
// every other point lands, once.
TEST(DurableQueueTest, FiveThousandFailuresOneBadPointLand4999) {
  absl::StatusOr<std::unique_ptr<InfluxdProcess>> influxd =
      InfluxdProcess::Start();
  ASSERT_TRUE(influxd.ok()) << influxd.status();

  InfluxV1Settings settings;
  settings.host = (*influxd)->host();
  settings.port = (*influxd)->http_port();
  settings.database = kDatabase;
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(settings);

  std::vector<std::string> lines = EncodedFailures(0, kFailures);
  // The bad point: error_count as a string, a field type conflict with the
  // floats around it, which InfluxDB refuses while storing the rest of the
  // batch (no line the encoder writes is malformed, so this one is made by
  // hand).
  lines[kBadIndex] = absl::StrCat(
      "butler_sos_errors,error_type=HEALTH_API,host=bad:4747,server_name=bad "
      "error_category=\"unknown\",error_count=\"one\" ",
      1764000000000000000 + kBadIndex);

  testing::TempDir dir;
  MetricsRegistry metrics;
  absl::StatusOr<std::unique_ptr<DurableQueue>> queue =
      DurableQueue::Open(Options(dir.File("queue")), *writer, metrics);
  ASSERT_TRUE(queue.ok()) << queue.status();
  // Appended in the batches the tracker's service would hand over.
  for (int begin = 0; begin < kFailures; begin += 250) {
    ASSERT_TRUE(AppendAndWait(**queue, std::vector<std::string>(
                                           lines.begin() + begin,
                                           lines.begin() + begin + 250))
                    .ok());
  }
  (*queue)->Start();
  EXPECT_TRUE(Drained(**queue));
  EXPECT_EQ((*queue)->Stop(absl::Seconds(5)), 0u);
  EXPECT_EQ(testing::MetricValue(metrics, "qfp_tracker_points_written_total"),
            kFailures - 1);
  EXPECT_EQ(
      testing::MetricValue(
          metrics, "qfp_tracker_points_rejected_total{reason=\"bad_point\"}"),
      1);

  EXPECT_EQ(CountIn(**influxd), kFailures - 1);
  // The refused point is not there at all, and the floats stayed floats.
  absl::StatusOr<std::string> bad = (*influxd)->Query(
      "SELECT COUNT(error_category) FROM butler_sos_errors "
      "WHERE server_name = 'bad'",
      kDatabase);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(bad->find("\"values\""), std::string::npos) << *bad;
}

// Points committed while InfluxDB is away stay on disk through a stop, and
// the next start writes them, once.
TEST(DurableQueueTest, WhatInfluxDbNeverConfirmedIsWrittenAfterARestart) {
  absl::StatusOr<std::unique_ptr<InfluxdProcess>> influxd =
      InfluxdProcess::Start();
  ASSERT_TRUE(influxd.ok()) << influxd.status();
  testing::TempDir dir;
  const std::string directory = dir.File("queue");
  {
    // A port nothing listens on: every write fails.
    InfluxV1Settings nowhere;
    nowhere.host = "127.0.0.1";
    nowhere.port = 9;
    nowhere.database = kDatabase;
    std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(nowhere);
    MetricsRegistry metrics;
    absl::StatusOr<std::unique_ptr<DurableQueue>> queue =
        DurableQueue::Open(Options(directory), *writer, metrics);
    ASSERT_TRUE(queue.ok()) << queue.status();
    (*queue)->Start();
    ASSERT_TRUE(AppendAndWait(**queue, EncodedFailures(0, 300)).ok());
    ASSERT_TRUE(AppendAndWait(**queue, EncodedFailures(300, 500)).ok());
    absl::SleepFor(absl::Milliseconds(300));
    std::string why;
    EXPECT_FALSE((*queue)->healthy(&why));
    EXPECT_THAT(why, ::testing::HasSubstr("InfluxDB"));
    EXPECT_EQ((*queue)->Stop(absl::Milliseconds(100)), 500u);
  }
  InfluxV1Settings settings;
  settings.host = (*influxd)->host();
  settings.port = (*influxd)->http_port();
  settings.database = kDatabase;
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(settings);
  MetricsRegistry metrics;
  absl::StatusOr<std::unique_ptr<DurableQueue>> queue =
      DurableQueue::Open(Options(directory), *writer, metrics);
  ASSERT_TRUE(queue.ok()) << queue.status();
  EXPECT_EQ((*queue)->reloaded(), 500u);
  (*queue)->Start();
  EXPECT_TRUE(Drained(**queue));
  EXPECT_EQ((*queue)->Stop(absl::Seconds(5)), 0u);
  EXPECT_EQ(CountIn(**influxd), 500);
}

TEST(DurableQueueTest, RefusesBeyondItsCapsAllOrNothing) {
  InfluxV1Settings nowhere;
  nowhere.host = "127.0.0.1";
  nowhere.port = 9;
  nowhere.database = kDatabase;
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(nowhere);
  testing::TempDir dir;
  DurableQueueOptions options = Options(dir.File("queue"));
  options.max_records = 5;
  MetricsRegistry metrics;
  absl::StatusOr<std::unique_ptr<DurableQueue>> queue =
      DurableQueue::Open(options, *writer, metrics);
  ASSERT_TRUE(queue.ok()) << queue.status();
  EXPECT_TRUE(AppendAndWait(**queue, EncodedFailures(0, 4)).ok());
  absl::Status full = AppendAndWait(**queue, EncodedFailures(4, 6));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_EQ((*queue)->backlog(), 4u);
  EXPECT_TRUE(AppendAndWait(**queue, EncodedFailures(4, 5)).ok());
  EXPECT_EQ((*queue)->Stop(absl::ZeroDuration()), 5u);
  EXPECT_EQ(AppendAndWait(**queue, EncodedFailures(5, 6)).code(),
            absl::StatusCode::kUnavailable);
}

TEST(DurableQueueTest, ASecondTrackerOnTheSameDirectoryIsRefused) {
  InfluxV1Settings nowhere;
  nowhere.host = "127.0.0.1";
  nowhere.port = 9;
  nowhere.database = kDatabase;
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(nowhere);
  testing::TempDir dir;
  MetricsRegistry first_metrics, second_metrics;
  absl::StatusOr<std::unique_ptr<DurableQueue>> first =
      DurableQueue::Open(Options(dir.File("queue")), *writer, first_metrics);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<DurableQueue>> second =
      DurableQueue::Open(Options(dir.File("queue")), *writer, second_metrics);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr(dir.File("queue")));
}

}  // namespace
}  // namespace qfp::tracker
