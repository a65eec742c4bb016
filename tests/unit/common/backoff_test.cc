#include "common/backoff.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace qfp {
namespace {

struct GrowthCase {
  std::string name;
  BackOff::Options options;  // jitter 0: the nominal delays themselves
  std::vector<absl::Duration> expected;
};

BackOff::Options Exact(absl::Duration initial, double multiplier,
                       absl::Duration max) {
  BackOff::Options options;
  options.initial = initial;
  options.multiplier = multiplier;
  options.jitter = 0;
  options.max = max;
  return options;
}

TEST(BackOffTest, GrowsByTheMultiplierUpToTheCap) {
  using absl::Milliseconds;
  using absl::Seconds;
  const std::vector<GrowthCase> cases = {
      {"doubling",
       Exact(Milliseconds(100), 2.0, Seconds(1)),
       {Milliseconds(100), Milliseconds(200), Milliseconds(400),
        Milliseconds(800), Seconds(1), Seconds(1), Seconds(1)}},
      {"one and a half",
       Exact(Milliseconds(200), 1.5, Seconds(1)),
       {Milliseconds(200), Milliseconds(300), Milliseconds(450),
        Milliseconds(675), Seconds(1), Seconds(1)}},
      {"tripling, cap not a step of the series",
       Exact(Seconds(1), 3.0, Seconds(10)),
       {Seconds(1), Seconds(3), Seconds(9), Seconds(10), Seconds(10)}},
      {"multiplier 1: constant",
       Exact(Milliseconds(250), 1.0, Seconds(30)),
       {Milliseconds(250), Milliseconds(250), Milliseconds(250)}},
      {"initial at the cap",
       Exact(Seconds(5), 2.0, Seconds(5)),
       {Seconds(5), Seconds(5), Seconds(5)}},
  };
  for (const GrowthCase& c : cases) {
    SCOPED_TRACE(c.name);
    BackOff backoff(c.options);
    for (size_t i = 0; i < c.expected.size(); ++i) {
      EXPECT_EQ(backoff.Next(), c.expected[i]) << "delay #" << i;
    }
  }
}

TEST(BackOffTest, StaysAtTheCapForever) {
  BackOff backoff(Exact(absl::Milliseconds(1), 10.0, absl::Seconds(30)));
  absl::Duration last;
  for (int i = 0; i < 200; ++i) last = backoff.Next();
  EXPECT_EQ(last, absl::Seconds(30));
}

TEST(BackOffTest, ResetReturnsToInitial) {
  BackOff backoff(Exact(absl::Milliseconds(100), 2.0, absl::Seconds(30)));
  backoff.Next();
  backoff.Next();
  EXPECT_EQ(backoff.Next(), absl::Milliseconds(400));
  backoff.Reset();
  EXPECT_EQ(backoff.Next(), absl::Milliseconds(100));
  EXPECT_EQ(backoff.Next(), absl::Milliseconds(200));
  // Reset at the cap, too.
  for (int i = 0; i < 20; ++i) backoff.Next();
  backoff.Reset();
  EXPECT_EQ(backoff.Next(), absl::Milliseconds(100));
}

TEST(BackOffTest, JitterStaysWithinItsFractionOfEachNominalDelay) {
  // initial 100 ms, x2, max 800 ms
  const std::vector<absl::Duration> series = {
      absl::Milliseconds(100), absl::Milliseconds(200), absl::Milliseconds(400),
      absl::Milliseconds(800), absl::Milliseconds(800)};
  for (double jitter : {0.1, 0.2, 0.5}) {
    SCOPED_TRACE(jitter);
    BackOff::Options options;
    options.initial = absl::Milliseconds(100);
    options.multiplier = 2.0;
    options.jitter = jitter;
    options.max = absl::Milliseconds(800);
    // Many sequences: every delay within +-jitter of its nominal value, and
    // the spread really used (near both ends), so that jitter is not 0.
    std::vector<double> lowest(series.size(), 2.0);
    std::vector<double> highest(series.size(), 0.0);
    for (int run = 0; run < 400; ++run) {
      BackOff backoff(options);
      for (size_t i = 0; i < series.size(); ++i) {
        const double ratio = absl::FDivDuration(backoff.Next(), series[i]);
        ASSERT_GE(ratio, 1.0 - jitter - 1e-9) << "delay #" << i;
        ASSERT_LE(ratio, 1.0 + jitter + 1e-9) << "delay #" << i;
        lowest[i] = std::min(lowest[i], ratio);
        highest[i] = std::max(highest[i], ratio);
      }
    }
    for (size_t i = 0; i < series.size(); ++i) {
      // The chance that 400 uniform draws all miss the outer tenth of the
      // range at one end is 0.9^400, about 5e-19.
      EXPECT_LT(lowest[i], 1.0 - 0.8 * jitter) << "delay #" << i;
      EXPECT_GT(highest[i], 1.0 + 0.8 * jitter) << "delay #" << i;
    }
  }
}

TEST(BackOffTest, TwoBackOffsDoNotRetryInStep) {
  BackOff::Options options;  // the defaults: 100 ms, x2, +-20 %, 30 s
  BackOff a(options);
  BackOff b(options);
  int same = 0;
  for (int i = 0; i < 20; ++i) {
    if (a.Next() == b.Next()) ++same;
  }
  EXPECT_LT(same, 20);
}

}  // namespace
}  // namespace qfp
