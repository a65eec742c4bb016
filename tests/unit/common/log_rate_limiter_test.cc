#include "common/log_rate_limiter.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

constexpr absl::Duration kInterval = absl::Seconds(10);

FakeClock MakeClock() { return FakeClock(absl::FromUnixSeconds(1795000000)); }

TEST(LogRateLimiterTest, FirstEventIsReportedAtOnce) {
  for (uint64_t n : {uint64_t{1}, uint64_t{7}, uint64_t{1} << 40}) {
    FakeClock clock = MakeClock();
    LogRateLimiter limiter(kInterval, clock);
    EXPECT_EQ(limiter.Add(n), n);
    EXPECT_EQ(limiter.Add(), 0u);  // the next one waits for the interval
  }
}

TEST(LogRateLimiterTest, HeldCountsAreExactAndReportedOnceTheIntervalPasses) {
  struct Row {
    absl::Duration advance;  // before Add
    uint64_t add;
    uint64_t reported;  // what Add returns
  };
  using absl::Milliseconds;
  using absl::Seconds;
  using absl::ZeroDuration;
  const std::vector<Row> rows = {
      {ZeroDuration(), 1, 1},      // t = 0: the first, at once
      {Seconds(1), 1, 0},          // held: 1
      {Seconds(2), 3, 0},          // held: 4
      {Milliseconds(6999), 1, 0},  // t = 9.999 s, held: 5
      {Milliseconds(1), 2, 7},     // t = 10 s: the 5 held and these 2
      {ZeroDuration(), 1, 0},      // a new interval from t = 10 s
      {Seconds(9), 4, 0},          // held: 5
      {Seconds(1), 0, 5},          // t = 20 s: nothing new, the 5 held
      {Seconds(300), 1, 1},        // after a quiet spell: at once
      {Seconds(5), 1, 0},         {Seconds(5), 1, 2},
  };
  FakeClock clock = MakeClock();
  LogRateLimiter limiter(kInterval, clock);
  uint64_t added = 0;
  uint64_t reported = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    clock.Advance(rows[i].advance);
    added += rows[i].add;
    const uint64_t got = limiter.Add(rows[i].add);
    reported += got;
    EXPECT_EQ(got, rows[i].reported) << "row " << i;
  }
  EXPECT_EQ(reported, added);  // no event lost, none counted twice
}

TEST(LogRateLimiterTest, ResetReportsTheNextEventAtOnceWithWhatWasHeld) {
  FakeClock clock = MakeClock();
  LogRateLimiter limiter(kInterval, clock);
  EXPECT_EQ(limiter.Add(), 1u);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(limiter.Add(2), 0u);  // held: 2
  limiter.Reset();
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(limiter.Add(), 3u);  // at once, 1 s into the interval
  EXPECT_EQ(limiter.Add(), 0u);  // and a new interval from here
  clock.Advance(kInterval);
  EXPECT_EQ(limiter.Add(), 2u);
}

TEST(LogRateLimiterTest, WallClockStepsDoNotMatter) {
  FakeClock clock = MakeClock();
  LogRateLimiter limiter(kInterval, clock);
  ASSERT_EQ(limiter.Add(), 1u);
  // The wall clock jumps an hour ahead: no time has passed, still held.
  clock.StepWall(absl::Hours(1));
  EXPECT_EQ(limiter.Add(), 0u);
  // And two hours back: the interval still ends 10 s after the first line.
  clock.StepWall(absl::Hours(-2));
  clock.Advance(absl::Seconds(9));
  EXPECT_EQ(limiter.Add(), 0u);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(limiter.Add(), 3u);  // the two held and this one
  // Setting the wall clock far back changes nothing either.
  clock.Set(absl::UnixEpoch());
  EXPECT_EQ(limiter.Add(), 0u);
  clock.Advance(kInterval);
  EXPECT_EQ(limiter.Add(), 2u);
}

TEST(LogRateLimiterTest, CountsStayExactUnderConcurrentAdds) {
  constexpr int kThreads = 4;
  constexpr int kAddsPerThread = 20000;
  FakeClock clock = MakeClock();
  const absl::Duration start = clock.Monotonic();
  LogRateLimiter limiter(kInterval, clock);
  std::atomic<uint64_t> reported{0};
  std::atomic<uint64_t> lines{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAddsPerThread; ++i) {
        if (const uint64_t n = limiter.Add(); n > 0) {
          reported += n;
          ++lines;
        }
        // Time passes meanwhile (80 s in all), so lines fall due mid-run.
        if (i % 1000 == 999) clock.Advance(absl::Seconds(1));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  clock.Advance(kInterval);
  reported += limiter.Add(0);  // whatever was still held
  EXPECT_EQ(reported.load(), uint64_t{kThreads} * kAddsPerThread);
  // At least one line after the first (each thread alone lets 20 s pass),
  // and at most one per interval plus the first.
  const int64_t intervals = (clock.Monotonic() - start) / kInterval;
  EXPECT_GE(lines.load(), 2u);
  EXPECT_LE(lines.load(), static_cast<uint64_t>(intervals) + 1);
}

}  // namespace
}  // namespace qfp
