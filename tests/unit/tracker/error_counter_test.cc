#include "tracker-service/error_counter.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace qfp::tracker {
namespace {

absl::Time Utc(int y, int m, int d, int hh, int mm, int ss) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss),
                         absl::UTCTimeZone());
}

TEST(ErrorCounterTest, SummaryInButlerSosFormatFirstSeenOrder) {
  FakeClock clock(Utc(2026, 11, 24, 10, 0, 0));
  ErrorCounter counter(clock);
  EXPECT_FALSE(counter.Count("PROXY_API", "sense1").has_value());
  counter.Count("HEALTH_API", "sense1");
  counter.Count("PROXY_API", "sense1");
  EXPECT_EQ(counter.Summary(),
            "Error counts today (UTC): Total=3, "
            "Details={\"PROXY_API\":{\"total\":2,\"servers\":{\"sense1\":2}},"
            "\"HEALTH_API\":{\"total\":1,\"servers\":{\"sense1\":1}}}");
  EXPECT_EQ(counter.total(), 3u);
}

TEST(ErrorCounterTest, ResetsAtMidnightUtcAndReportsTheFinalTotals) {
  FakeClock clock(Utc(2026, 11, 24, 23, 59, 58));
  ErrorCounter counter(clock);
  counter.Count("HEALTH_API", "a");
  counter.Count("HEALTH_API", "b");
  EXPECT_FALSE(counter.RollOver().has_value());  // same day

  clock.Advance(absl::Seconds(3));  // 00:00:01 on the 25th
  std::optional<std::string> final_summary = counter.RollOver();
  ASSERT_TRUE(final_summary.has_value());
  EXPECT_EQ(*final_summary,
            "Final error counts for 2026-11-24 (UTC): Total=2, "
            "Details={\"HEALTH_API\":{\"total\":2,\"servers\":{\"a\":1,"
            "\"b\":1}}}");
  EXPECT_EQ(counter.total(), 0u);
  EXPECT_EQ(counter.Summary(), "Error counts today (UTC): Total=0, Details={}");
  EXPECT_FALSE(counter.RollOver().has_value());  // only once per day
}

TEST(ErrorCounterTest, CountAfterMidnightRollsOverFirst) {
  FakeClock clock(Utc(2026, 11, 24, 12, 0, 0));
  ErrorCounter counter(clock);
  counter.Count("APP_NAMES_EXTRACT", "qrs");
  clock.Advance(absl::Hours(13));
  std::optional<std::string> ended = counter.Count("HEALTH_API", "s");
  ASSERT_TRUE(ended.has_value());
  EXPECT_NE(ended->find("APP_NAMES_EXTRACT"), std::string::npos);
  EXPECT_EQ(counter.total(), 1u);
  ASSERT_EQ(counter.Snapshot().size(), 1u);
  EXPECT_EQ(counter.Snapshot()[0].error_type, "HEALTH_API");
}

TEST(ErrorCounterTest, SummaryIfChangedOncePerChange) {
  FakeClock clock(Utc(2026, 11, 24, 23, 59, 58));
  ErrorCounter counter(clock);
  EXPECT_FALSE(counter.SummaryIfChanged().has_value());  // nothing yet
  counter.Count("HEALTH_API", "a");
  counter.Count("HEALTH_API", "a");
  EXPECT_EQ(counter.SummaryIfChanged(),
            "Error counts today (UTC): Total=2, "
            "Details={\"HEALTH_API\":{\"total\":2,\"servers\":{\"a\":2}}}");
  EXPECT_FALSE(counter.SummaryIfChanged().has_value());  // no change since
  clock.Advance(absl::Seconds(3));
  ASSERT_TRUE(counter.RollOver().has_value());
  // The reset is a change: the next summary says the day starts at zero.
  EXPECT_EQ(counter.SummaryIfChanged(),
            "Error counts today (UTC): Total=0, Details={}");
}

// Thousands of failing servers: every count lands on its own server, in
// first-seen order, types kept apart.
TEST(ErrorCounterTest, ManyServersCountedExactly) {
  FakeClock clock(Utc(2026, 11, 24, 10, 0, 0));
  ErrorCounter counter(clock);
  for (int round = 0; round < 3; ++round) {
    for (int s = 0; s < 5000; ++s) {
      counter.Count(s % 2 == 0 ? "HEALTH_API" : "PROXY_API",
                    absl::StrCat("sense", s));
    }
  }
  const std::vector<ErrorCounter::TypeCount> types = counter.Snapshot();
  ASSERT_EQ(types.size(), 2u);
  EXPECT_EQ(types[0].error_type, "HEALTH_API");
  EXPECT_EQ(types[0].total, 7500u);
  ASSERT_EQ(types[0].servers.size(), 2500u);
  EXPECT_EQ(types[0].servers[1].first, "sense2");
  EXPECT_EQ(types[1].servers[2499].first, "sense4999");
  for (const auto& type : types) {
    for (const auto& [server, count] : type.servers) {
      ASSERT_EQ(count, 3u) << server;
    }
  }
  EXPECT_EQ(counter.total(), 15000u);
}

TEST(ErrorCounterTest, HostileServerNamesNeverBreakTheSummary) {
  FakeClock clock(Utc(2026, 11, 24, 12, 0, 0));
  ErrorCounter counter(clock);
  counter.Count("HEALTH_API", std::string("bad\xff\xfe utf8\"q", 13));
  const std::string summary = counter.Summary();
  EXPECT_NE(summary.find("Total=1"), std::string::npos);
  EXPECT_NE(summary.find("\\\"q"), std::string::npos);  // quote escaped
}

}  // namespace
}  // namespace qfp::tracker
