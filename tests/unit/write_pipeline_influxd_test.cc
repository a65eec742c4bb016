// The real write path end to end below gRPC: 5000 failures encoded as the
// tracker encodes them, one bad point among them, through the real
// WritePipeline and the 1.x writer into a real private influxd. InfluxDB
// refuses the bad point; every other point must land, once.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/influxd_process.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/write_pipeline.h"

namespace qfp {
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

// SELECT COUNT(...)'s single value, or -1.
int64_t CountOf(const std::string& answer_text) {
  const nlohmann::json answer =
      nlohmann::json::parse(answer_text, nullptr, false);
  if (!answer.is_object()) return -1;
  const nlohmann::json::json_pointer value("/results/0/series/0/values/0/1");
  if (!answer.contains(value) || !answer[value].is_number_integer()) return -1;
  return answer[value].get<int64_t>();
}

TEST(WritePipelineInfluxdTest, FiveThousandFailuresOneBadPointLand4999) {
  absl::StatusOr<std::unique_ptr<InfluxdProcess>> influxd =
      InfluxdProcess::Start();
  ASSERT_TRUE(influxd.ok()) << influxd.status();

  InfluxV1Settings settings;
  settings.host = (*influxd)->host();
  settings.port = (*influxd)->http_port();
  settings.database = kDatabase;
  std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(settings);

  const PointSchema schema;  // 1.x: numbers as floats
  std::vector<std::string> lines;
  for (int i = 0; i < kFailures; ++i) {
    absl::StatusOr<std::string> line =
        EncodeLine(FailureToPoint(Failure(i), schema));
    ASSERT_TRUE(line.ok()) << line.status();
    lines.push_back(*line);
  }
  // The bad point: error_count as a string, a field type conflict with the
  // floats around it, which InfluxDB refuses while storing the rest of the
  // batch (no line the encoder writes is malformed, so this one is made by
  // hand).
  lines[kBadIndex] = absl::StrCat(
      "butler_sos_errors,error_type=HEALTH_API,host=bad:4747,server_name=bad "
      "error_category=\"unknown\",error_count=\"one\" ",
      1764000000000000000 + kBadIndex);

  WritePipelineOptions options;
  options.max_batch = 1000;  // Butler SOS's default maxBatchSize
  options.flush_interval = absl::Milliseconds(20);
  options.min_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(200);
  WritePipeline pipeline(*writer, options);
  // Enqueued in the batches the tracker's service would hand over.
  for (int begin = 0; begin < kFailures; begin += 250) {
    ASSERT_TRUE(pipeline
                    .Enqueue(std::vector<std::string>(
                        lines.begin() + begin, lines.begin() + begin + 250))
                    .ok());
  }
  pipeline.Start();

  // Bounded wait until every point is written or rejected.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  WritePipelineStats stats = pipeline.stats();
  while (stats.points_written + stats.points_rejected < kFailures &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
    stats = pipeline.stats();
  }
  EXPECT_EQ(pipeline.Stop(absl::Seconds(5)), 0u);
  stats = pipeline.stats();
  EXPECT_EQ(stats.points_written, static_cast<uint64_t>(kFailures - 1));
  EXPECT_EQ(stats.points_rejected, 1u);
  EXPECT_EQ(stats.buffered, 0u);

  absl::StatusOr<std::string> count = (*influxd)->Query(
      "SELECT COUNT(request_url) FROM butler_sos_errors", kDatabase);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(CountOf(*count), kFailures - 1) << *count;
  // The refused point is not there at all, and the floats stayed floats.
  absl::StatusOr<std::string> bad = (*influxd)->Query(
      "SELECT COUNT(error_category) FROM butler_sos_errors "
      "WHERE server_name = 'bad'",
      kDatabase);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(bad->find("\"values\""), std::string::npos) << *bad;
}

}  // namespace
}  // namespace qfp
