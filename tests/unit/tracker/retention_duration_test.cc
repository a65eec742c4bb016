// Retention durations as Butler SOS users write them (issue 9 §1, §1b).
#include "tracker-service/retention_duration.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp::tracker {
namespace {

using ::testing::HasSubstr;

absl::Duration Parsed(const std::string& text) {
  absl::StatusOr<RetentionDuration> parsed = ParseRetentionDuration(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.status();
  if (!parsed.ok()) return absl::ZeroDuration();
  EXPECT_FALSE(parsed->infinite) << text;
  return parsed->duration;
}

TEST(ParseRetentionDurationTest, InfluxDbDurations) {
  EXPECT_EQ(Parsed("10d"), absl::Hours(240));
  EXPECT_EQ(Parsed(" 1h30m "), absl::Minutes(90));
  EXPECT_EQ(Parsed("2w"), absl::Hours(24 * 14));
  EXPECT_EQ(Parsed("1500ms"), absl::Milliseconds(1500));
  EXPECT_EQ(Parsed("3\xC2\xB5s"), absl::Microseconds(3));
  EXPECT_EQ(Parsed("3u"), absl::Microseconds(3));
  EXPECT_EQ(Parsed("30m"), absl::Minutes(30));
}

TEST(ParseRetentionDurationTest, WordsAndYears) {
  EXPECT_EQ(Parsed("30days"), absl::Hours(24 * 30));
  EXPECT_EQ(Parsed("30 days"), absl::Hours(24 * 30));
  EXPECT_EQ(Parsed("1day"), absl::Hours(24));
  EXPECT_EQ(Parsed("1y"), absl::Hours(24 * 365));
  EXPECT_EQ(Parsed("2 years"), absl::Hours(24 * 730));
  EXPECT_EQ(Parsed("1 Year"), absl::Hours(24 * 365));
  EXPECT_EQ(Parsed("4weeks"), absl::Hours(24 * 28));
  EXPECT_EQ(Parsed("12hours"), absl::Hours(12));
  EXPECT_EQ(Parsed("90mins"), absl::Minutes(90));
  EXPECT_EQ(Parsed("6 months"), absl::Hours(24 * 180));
  EXPECT_EQ(Parsed("1y2d"), absl::Hours(24 * 367));
}

TEST(ParseRetentionDurationTest, InfiniteForms) {
  for (const char* text :
       {"", "0", "INF", "inf", "Infinite", "infinity", "forever", "0d"}) {
    absl::StatusOr<RetentionDuration> parsed = ParseRetentionDuration(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_TRUE(parsed->infinite) << text;
    EXPECT_EQ(parsed->InfluxQl(), "INF");
    EXPECT_EQ(parsed->Seconds(), 0);
  }
}

TEST(ParseRetentionDurationTest, RefusesWhatCannotBeADuration) {
  for (const char* bad :
       {"10", "d", "10x", "1.5h", "-1h", "ten days", "1d-", "30 dayz",
        "99999999999999999999d", "9223372036854775807w", "20000y"}) {
    absl::StatusOr<RetentionDuration> parsed = ParseRetentionDuration(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
  }
}

TEST(ParseRetentionDurationTest, MapsToEachServersForm) {
  EXPECT_EQ(ParseRetentionDuration("1y")->InfluxQl(), "365d");
  EXPECT_EQ(ParseRetentionDuration("36h")->InfluxQl(), "36h");
  EXPECT_EQ(ParseRetentionDuration("1h30m")->InfluxQl(), "90m");
  EXPECT_EQ(ParseRetentionDuration("1y")->Seconds(), 31536000);
  EXPECT_EQ(ParseRetentionDuration("10d")->Seconds(), 864000);
  EXPECT_EQ(ParseRetentionDuration("10d")->ToString(), "240h");
  EXPECT_EQ(ParseRetentionDuration("INF")->ToString(), "infinite");
}

TEST(ValidateRetentionDurationTest, RefusesBelowOneHourNamingTheKey) {
  absl::StatusOr<RetentionDuration> short_one = ValidateRetentionDuration(
      "influxdbConfig.v1Config.retentionPolicy.duration", "30m");
  ASSERT_FALSE(short_one.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(short_one.status()));
  EXPECT_THAT(std::string(short_one.status().message()),
              HasSubstr("influxdbConfig.v1Config.retentionPolicy.duration: "
                        "\"30m\" is shorter than one hour"));
  absl::StatusOr<RetentionDuration> garbage = ValidateRetentionDuration(
      "influxdbConfig.v2Config.retentionDuration", "soon");
  ASSERT_FALSE(garbage.ok());
  EXPECT_THAT(std::string(garbage.status().message()),
              HasSubstr("influxdbConfig.v2Config.retentionDuration: \"soon\" "
                        "is not a retention duration"));
  absl::StatusOr<RetentionDuration> raised = ValidateRetentionDuration(
      "influxdbConfig.v2Config.retentionDuration", "30m", BelowMinimum::kRaise);
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->duration, absl::Hours(1));
  EXPECT_TRUE(raised->raised_to_minimum);
  EXPECT_EQ(raised->Seconds(), 3600);
  EXPECT_FALSE(ValidateRetentionDuration("k", "2h", BelowMinimum::kRaise)
                   ->raised_to_minimum);
  EXPECT_FALSE(
      ValidateRetentionDuration("k", "soon", BelowMinimum::kRaise).ok());
  // A bare capital M: minutes or months? Refused rather than guessed.
  for (const char* ambiguous : {"6M", "1M", "2 M", "1d6M"}) {
    absl::StatusOr<RetentionDuration> m =
        ValidateRetentionDuration("k", ambiguous, BelowMinimum::kRaise);
    ASSERT_FALSE(m.ok()) << ambiguous;
    EXPECT_THAT(std::string(m.status().message()),
                ::testing::HasSubstr("could mean minutes or months"));
  }
  EXPECT_EQ(ValidateRetentionDuration("k", "6 Months")->duration,
            absl::Hours(24 * 180));
  EXPECT_EQ(ValidateRetentionDuration("k", "90Min")->duration,
            absl::Minutes(90));
  EXPECT_TRUE(ValidateRetentionDuration("k", "1h").ok());
  EXPECT_TRUE(ValidateRetentionDuration("k", "60m").ok());
  EXPECT_TRUE(ValidateRetentionDuration("k", "INF").ok());
  EXPECT_TRUE(ValidateRetentionDuration("k", "").ok());
}

}  // namespace
}  // namespace qfp::tracker
