#include "common/clock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

TEST(FakeClockTest, AdvanceMovesBothReadingsStepWallOnlyTheWallClock) {
  FakeClock clock(absl::FromUnixSeconds(1764000000));
  const absl::Duration mono = clock.Monotonic();
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1764000005));
  EXPECT_EQ(clock.Monotonic(), mono + absl::Seconds(5));
  clock.StepWall(-absl::Hours(1));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1764000005 - 3600));
  EXPECT_EQ(clock.Monotonic(), mono + absl::Seconds(5));
}

TEST(SystemClockTest, MonotonicNeverGoesBack) {
  const Clock& clock = SystemClock::Get();
  absl::Duration last = clock.Monotonic();
  for (int i = 0; i < 1000; ++i) {
    const absl::Duration now = clock.Monotonic();
    ASSERT_GE(now, last);
    last = now;
  }
}

// A waiter whose deadline is far away is woken by the state change itself.
TEST(AwaitUntilTest, ReturnsTrueWhenTheConditionBecomesTrue) {
  absl::Mutex mu;
  bool ready = false;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(20));
    absl::MutexLock lock(&mu);
    ready = true;
  });
  const Clock& clock = SystemClock::Get();
  bool result;
  {
    absl::MutexLock lock(&mu);
    result = AwaitUntil(mu, absl::Condition(&ready), clock,
                        clock.Monotonic() + absl::Hours(1));
  }
  setter.join();
  EXPECT_TRUE(result);
}

TEST(AwaitUntilTest, ReturnsFalseOnceTheMonotonicDeadlinePasses) {
  absl::Mutex mu;
  bool never = false;
  const Clock& clock = SystemClock::Get();
  const absl::Duration deadline = clock.Monotonic() + absl::Milliseconds(30);
  absl::MutexLock lock(&mu);
  EXPECT_FALSE(AwaitUntil(mu, absl::Condition(&never), clock, deadline));
  EXPECT_GE(clock.Monotonic(), deadline);
}

TEST(AwaitUntilTest, APastDeadlineOrATrueConditionReturnsAtOnce) {
  absl::Mutex mu;
  bool yes = true, no = false;
  const Clock& clock = SystemClock::Get();
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(AwaitUntil(mu, absl::Condition(&yes), clock,
                         clock.Monotonic() - absl::Seconds(1)));
  EXPECT_FALSE(AwaitUntil(mu, absl::Condition(&no), clock,
                          clock.Monotonic() - absl::Seconds(1)));
}

// Many short waits at once, some woken, some timing out: every one returns
// the truth (exercises the timer's cancel paths).
TEST(AwaitUntilTest, ManyConcurrentWaitersEachGetTheirOwnOutcome) {
  absl::Mutex mu;
  int flips = 0;
  std::vector<std::thread> threads;
  std::atomic<int> woken{0}, timed_out{0};
  const Clock& clock = SystemClock::Get();
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        absl::MutexLock lock(&mu);
        const int seen = flips;
        auto changed = [&] { return flips != seen; };
        const bool r =
            AwaitUntil(mu, absl::Condition(&changed), clock,
                       clock.Monotonic() + absl::Microseconds(100 + 50 * t));
        (r ? woken : timed_out).fetch_add(1);
        if (r) EXPECT_NE(flips, seen);
        if (!r) EXPECT_EQ(flips, seen);
      }
    });
  }
  std::thread flipper([&] {
    for (int i = 0; i < 400; ++i) {
      {
        absl::MutexLock lock(&mu);
        ++flips;
      }
      absl::SleepFor(absl::Microseconds(150));
    }
  });
  for (std::thread& t : threads) t.join();
  flipper.join();
  EXPECT_EQ(woken.load() + timed_out.load(), 8 * 200);
}

// The deadline timer is a thread; a child of fork() has none of its
// parent's threads and must still be able to wait with a deadline.
TEST(AwaitUntilTest, WorksInAForkedChild) {
  {
    // Make sure the parent's timer exists before the fork.
    absl::Mutex mu;
    bool never = false;
    absl::MutexLock lock(&mu);
    AwaitUntil(mu, absl::Condition(&never), SystemClock::Get(),
               SystemClock::Get().Monotonic() + absl::Milliseconds(1));
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::Mutex mu;
    bool never = false;
    absl::MutexLock lock(&mu);
    const bool r =
        AwaitUntil(mu, absl::Condition(&never), SystemClock::Get(),
                   SystemClock::Get().Monotonic() + absl::Milliseconds(20));
    _exit(r ? 1 : 0);
  }
  int status = 0;
  // Bounded: a child stuck forever would be killed by ctest's timeout; give
  // it 10 s and then kill it ourselves so the failure is clear.
  for (int i = 0; i < 1000 && waitpid(child, &status, WNOHANG) == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (waitpid(child, &status, WNOHANG) == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL() << "the child's AwaitUntil never returned";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace qfp
