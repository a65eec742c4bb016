#include "tracker-service/heartbeat.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tracker-service/line_protocol.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::Heartbeat;

const absl::Time kNow = absl::FromUnixSeconds(1764000000);

Heartbeat Beat() {
  Heartbeat beat;
  beat.set_poller_id("poller-a");
  beat.set_instance_id("0123456789abcdef");
  beat.mutable_sent_at()->set_seconds(1764000000);
  beat.mutable_sent_at()->set_nanos(123456789);
  beat.set_interval_ms(30000);
  auto* health = beat.add_targets();
  health->set_source(failedpolls::v1::HEALTH_API);
  health->set_server_name("sense 1");
  health->set_host("10.0.0.5:4747");
  health->set_attempted(2);
  health->set_failed(1);
  auto* proxy = beat.add_targets();
  proxy->set_source(failedpolls::v1::PROXY_API);
  proxy->set_server_name("sense,1");
  proxy->set_host("sense1:4243");
  proxy->set_virtual_proxy("/sales");
  proxy->set_attempted(3);
  proxy->set_failed(0);
  auto* apps = beat.add_targets();
  apps->set_source(failedpolls::v1::APP_NAMES_EXTRACT);
  apps->set_server_name("10.0.0.9");
  apps->set_host("10.0.0.9");
  apps->set_virtual_proxy("/ignored");  // not PROXY_API: not a tag
  apps->set_attempted(1);
  apps->set_failed(1);
  return beat;
}

std::vector<std::string> Lines(const std::vector<Point>& points) {
  std::vector<std::string> lines;
  for (const Point& point : points) {
    absl::StatusOr<std::string> line = EncodeLine(point);
    EXPECT_TRUE(line.ok()) << line.status();
    lines.push_back(line.ok() ? *line : "");
  }
  return lines;
}

// The schema the dashboards are built on (docs/compatibility.md, "Our
// additions"): the lines exactly, escaping included.
TEST(HeartbeatTest, AttemptsPointsGolden) {
  AttemptsSchema schema;
  EXPECT_EQ(
      Lines(HeartbeatToAttemptsPoints(Beat(), schema)),
      (std::vector<std::string>{
          "butler_sos_poll_attempts,error_type=HEALTH_API,host=10.0.0.5:4747,"
          "poller_id=poller-a,server_name=sense\\ 1 attempted=2i,failed=1i "
          "1764000000123456789",
          "butler_sos_poll_attempts,error_type=PROXY_API,host=sense1:4243,"
          "poller_id=poller-a,server_name=sense\\,1,virtual_proxy=/sales "
          "attempted=3i,failed=0i 1764000000123456789",
          "butler_sos_poll_attempts,error_type=APP_NAMES_EXTRACT,"
          "host=10.0.0.9,poller_id=poller-a,server_name=10.0.0.9 "
          "attempted=1i,failed=1i 1764000000123456789"}));
}

TEST(HeartbeatTest, AttemptsPointsTakeStaticTagsButNeverOverTheirOwn) {
  AttemptsSchema schema;
  schema.measurement = "attempts";
  schema.static_tags = {
      {"env", "prod"}, {"poller_id", "forged"}, {"virtual_proxy", "/forged"}};
  Heartbeat beat = Beat();
  beat.mutable_targets()->DeleteSubrange(1, 2);
  EXPECT_EQ(Lines(HeartbeatToAttemptsPoints(beat, schema)),
            (std::vector<std::string>{
                "attempts,env=prod,error_type=HEALTH_API,host=10.0.0.5:4747,"
                "poller_id=poller-a,server_name=sense\\ 1 attempted=2i,"
                "failed=1i 1764000000123456789"}));
}

TEST(HeartbeatTest, SilentPollerPointIsAFailurePointShape) {
  PointSchema schema;
  schema.static_tags = {{"env", "prod"}, {"host", "forged"}};
  const absl::Time at = absl::FromUnixNanos(1764000000500000000);
  EXPECT_EQ(*EncodeLine(TrackerErrorPoint(
                {"POLLER", "poller a", "poller a", ""}, "silent", at, schema)),
            "butler_sos_errors,env=prod,error_type=POLLER,host=poller\\ a,"
            "server_name=poller\\ a error_category=\"silent\",error_count=1 "
            "1764000000500000000");
  schema.integer_numbers = true;  // InfluxDB 2.x and 3.x
  EXPECT_EQ(*EncodeLine(TrackerErrorPoint(
                {"PROXY_API", "sense1", "sense1:4243", "/sales"}, "not_polled",
                at, schema)),
            "butler_sos_errors,env=prod,error_type=PROXY_API,host=sense1:4243,"
            "server_name=sense1,virtual_proxy=/sales "
            "error_category=\"not_polled\",error_count=1i "
            "1764000000500000000");
}

TEST(HeartbeatTest, CheckAcceptsAGoodHeartbeat) {
  EXPECT_EQ(CheckHeartbeat(Beat(), FailureLimits{}, kNow), std::nullopt);
  Heartbeat empty = Beat();
  empty.clear_targets();
  empty.set_stopping(true);
  EXPECT_EQ(CheckHeartbeat(empty, FailureLimits{}, kNow), std::nullopt);
}

TEST(HeartbeatTest, CheckRefusesWhatCannotBeUsed) {
  struct Case {
    const char* name;
    void (*spoil)(Heartbeat&);
  };
  const Case cases[] = {
      {"no poller_id", [](Heartbeat& b) { b.clear_poller_id(); }},
      {"control char",
       [](Heartbeat& b) { b.set_poller_id(std::string("a\nb")); }},
      {"long id",
       [](Heartbeat& b) { b.set_instance_id(std::string(257, 'x')); }},
      {"no interval", [](Heartbeat& b) { b.set_interval_ms(0); }},
      {"interval too long",
       [](Heartbeat& b) { b.set_interval_ms(25 * 3600 * 1000); }},
      {"no sent_at", [](Heartbeat& b) { b.clear_sent_at(); }},
      {"bad nanos", [](Heartbeat& b) { b.mutable_sent_at()->set_nanos(-1); }},
      {"future",
       [](Heartbeat& b) {
         b.mutable_sent_at()->set_seconds(1764000000 + 600);
       }},
      {"far future",
       [](Heartbeat& b) {
         b.mutable_sent_at()->set_seconds(std::numeric_limits<int64_t>::max());
       }},
      {"unknown source",
       [](Heartbeat& b) {
         b.mutable_targets(0)->set_source(
             static_cast<failedpolls::v1::PollSource>(42));
       }},
      {"no source",
       [](Heartbeat& b) {
         b.mutable_targets(0)->set_source(
             failedpolls::v1::POLL_SOURCE_UNSPECIFIED);
       }},
      {"no server",
       [](Heartbeat& b) { b.mutable_targets(1)->clear_server_name(); }},
      {"bad host",
       [](Heartbeat& b) { b.mutable_targets(1)->set_host("a\tb"); }},
      {"long vp",
       [](Heartbeat& b) {
         b.mutable_targets(1)->set_virtual_proxy(std::string(1025, 'v'));
       }},
      {"failed over attempted",
       [](Heartbeat& b) { b.mutable_targets(2)->set_failed(2); }},
      {"attempted over int64",
       [](Heartbeat& b) {
         b.mutable_targets(2)->set_attempted(uint64_t{1} << 63);
       }},
  };
  for (const Case& c : cases) {
    Heartbeat beat = Beat();
    c.spoil(beat);
    EXPECT_NE(CheckHeartbeat(beat, FailureLimits{}, kNow), std::nullopt)
        << c.name;
  }
}

}  // namespace
}  // namespace qfp::tracker
