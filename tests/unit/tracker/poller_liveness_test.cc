#include "tracker-service/poller_liveness.h"

#include "absl/time/time.h"
#include "common/clock.h"
#include "gtest/gtest.h"

namespace qfp::tracker {
namespace {

using Beat = PollerLiveness::Beat;

constexpr absl::Duration kInterval = absl::Seconds(10);

class PollerLivenessTest : public ::testing::Test {
 protected:
  FakeClock clock_{absl::FromUnixSeconds(1764000000)};
  PollerLiveness liveness_{3, clock_};
};

TEST_F(PollerLivenessTest, SilentAfterKMissedHeartbeatsOnce) {
  EXPECT_EQ(liveness_.Heartbeat("p1", "i1", kInterval, false).beat, Beat::kNew);
  clock_.Advance(kInterval);
  EXPECT_EQ(liveness_.Heartbeat("p1", "i1", kInterval, false).beat,
            Beat::kKnown);
  // Two missed: not yet.
  clock_.Advance(3 * kInterval - absl::Milliseconds(1));
  EXPECT_TRUE(liveness_.Check().empty());
  // The third missed: silent, reported once.
  clock_.Advance(absl::Milliseconds(1));
  const auto silences = liveness_.Check();
  ASSERT_EQ(silences.size(), 1u);
  EXPECT_EQ(silences[0].poller_id, "p1");
  EXPECT_EQ(silences[0].instance_id, "i1");
  EXPECT_EQ(silences[0].interval, kInterval);
  EXPECT_EQ(silences[0].quiet_for, 3 * kInterval);
  EXPECT_EQ(liveness_.silent(), 1u);
  clock_.Advance(absl::Hours(5));
  EXPECT_TRUE(liveness_.Check().empty());
}

TEST_F(PollerLivenessTest, ReturnIsReportedWithHowLongItWasQuiet) {
  liveness_.Heartbeat("p1", "i1", kInterval, false);
  clock_.Advance(4 * kInterval);
  ASSERT_EQ(liveness_.Check().size(), 1u);
  clock_.Advance(kInterval);
  // Back under a new instance (a restart): the same poller, by poller_id.
  const auto back = liveness_.Heartbeat("p1", "i2", kInterval, false);
  EXPECT_EQ(back.beat, Beat::kReturned);
  EXPECT_EQ(back.quiet_for, 5 * kInterval);
  EXPECT_EQ(liveness_.silent(), 0u);
  EXPECT_EQ(liveness_.tracked(), 1u);
  // Watched again: a second silence is a second report.
  clock_.Advance(3 * kInterval);
  const auto again = liveness_.Check();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].instance_id, "i2");
}

TEST_F(PollerLivenessTest, ReconnectsThatKeepBeatingAreNeverSilent) {
  liveness_.Heartbeat("p1", "i1", kInterval, false);
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(2 * kInterval);  // late, but under 3 intervals
    EXPECT_TRUE(liveness_.Check().empty()) << i;
    EXPECT_EQ(liveness_.Heartbeat("p1", "i1", kInterval, false).beat,
              Beat::kKnown);
  }
}

TEST_F(PollerLivenessTest, TheLastAnnouncedIntervalCounts) {
  liveness_.Heartbeat("p1", "i1", kInterval, false);
  liveness_.Heartbeat("p1", "i1", absl::Seconds(1), false);
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(liveness_.Check().size(), 1u);
}

TEST_F(PollerLivenessTest, AStoppingPollerIsNotSilentAndMayResume) {
  liveness_.Heartbeat("p1", "i1", kInterval, false);
  liveness_.Heartbeat("p1", "i1", kInterval, /*stopping=*/true);
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(liveness_.Check().empty());
  const auto resumed = liveness_.Heartbeat("p1", "i2", kInterval, false);
  EXPECT_EQ(resumed.beat, Beat::kResumed);
  EXPECT_EQ(resumed.quiet_for, absl::Hours(1));
  clock_.Advance(3 * kInterval);
  EXPECT_EQ(liveness_.Check().size(), 1u);
}

TEST_F(PollerLivenessTest, EachPollerOnItsOwnAndReportedInOrder) {
  liveness_.Heartbeat("b", "i", kInterval, false);
  liveness_.Heartbeat("a", "i", kInterval, false);
  liveness_.Heartbeat("c", "i", 10 * kInterval, false);
  clock_.Advance(3 * kInterval);
  const auto silences = liveness_.Check();
  ASSERT_EQ(silences.size(), 2u);
  EXPECT_EQ(silences[0].poller_id, "a");
  EXPECT_EQ(silences[1].poller_id, "b");
}

TEST_F(PollerLivenessTest, NewPollersBeyondTheBoundAreNotTracked) {
  PollerLiveness bounded(3, clock_, /*max_pollers=*/2);
  EXPECT_EQ(bounded.Heartbeat("a", "i", kInterval, false).beat, Beat::kNew);
  EXPECT_EQ(bounded.Heartbeat("b", "i", kInterval, false).beat, Beat::kNew);
  EXPECT_EQ(bounded.Heartbeat("c", "i", kInterval, false).beat,
            Beat::kUntracked);
  EXPECT_EQ(bounded.Heartbeat("a", "i", kInterval, false).beat, Beat::kKnown);
  EXPECT_EQ(bounded.tracked(), 2u);
}

// The wall clock is not used: a step changes nothing.
TEST_F(PollerLivenessTest, WallClockStepsDoNotMakeSilence) {
  liveness_.Heartbeat("p1", "i1", kInterval, false);
  clock_.StepWall(absl::Hours(24));
  EXPECT_TRUE(liveness_.Check().empty());
}

}  // namespace
}  // namespace qfp::tracker
