#include "common/heap_trim.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

using absl::Seconds;

struct Tick {
  bool busy;
  int second;  // monotonic time of the tick
  bool trims;  // expected decision
};

struct PolicyCase {
  std::string name;
  std::vector<Tick> ticks;
};

TEST(HeapTrimPolicyTest, TrimsOnQuietTicksAndEveryBusyIntervalWhileBusy) {
  // busy_interval 30 s (the default), one tick a second unless said.
  const std::vector<PolicyCase> cases = {
      {"idle: every tick trims",
       {{false, 0, true}, {false, 1, true}, {false, 2, true}}},
      {"a burst: no trim while busy, one on the first quiet tick",
       {{false, 0, true},
        {true, 1, false},
        {true, 2, false},
        {true, 3, false},
        {false, 4, true},
        {false, 5, true}}},
      {"busy for longer than the interval: one trim every 30 s",
       {{false, 0, true},
        {true, 1, false},
        {true, 29, false},
        {true, 30, true},
        {true, 31, false},
        {true, 59, false},
        {true, 60, true},
        {false, 61, true}}},
      {"a quiet tick restarts the busy interval",
       {{false, 0, true},
        {true, 20, false},
        {false, 21, true},
        {true, 22, false},
        {true, 50, false},
        {true, 51, true}}},
      {"busy from the start: the interval starts at the first busy tick",
       {{true, 100, false},
        {true, 101, false},
        {true, 129, false},
        {true, 130, true},
        {true, 131, false}}},
      {"ticks late (a stalled thread): a busy tick past the interval trims",
       {{false, 0, true}, {true, 45, true}, {true, 46, false}}},
  };
  for (const PolicyCase& c : cases) {
    SCOPED_TRACE(c.name);
    HeapTrimPolicy policy;
    for (const Tick& tick : c.ticks) {
      SCOPED_TRACE(tick.second);
      EXPECT_EQ(policy.ShouldTrim(tick.busy, Seconds(tick.second)), tick.trims);
    }
  }
}

TEST(HeapTrimPolicyTest, BusyIntervalIsConfigurable) {
  HeapTrimPolicy policy(HeapTrimPolicy::Options{Seconds(2)});
  EXPECT_TRUE(policy.ShouldTrim(false, Seconds(0)));
  EXPECT_FALSE(policy.ShouldTrim(true, Seconds(1)));
  EXPECT_TRUE(policy.ShouldTrim(true, Seconds(2)));
  EXPECT_FALSE(policy.ShouldTrim(true, Seconds(3)));
  EXPECT_TRUE(policy.ShouldTrim(true, Seconds(4)));
}

TEST(ResidentBytesTest, GrowsWhenPagesAreTouched) {
  const std::optional<uint64_t> before = ResidentBytes();
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(*before, 0u);
  // 64 MiB, touched: malloc takes it straight from mmap, so it is resident
  // until freed.
  constexpr size_t kSize = 64 << 20;
  char* block = static_cast<char*>(std::malloc(kSize));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kSize);
  const std::optional<uint64_t> during = ResidentBytes();
  ASSERT_TRUE(during.has_value());
  EXPECT_GE(*during, *before + kSize / 2);
  std::free(block);
}

// The sanitizers' builds replace malloc with an allocator of their own, so
// malloc_trim(0) has no glibc heap to give back there: the tests that measure
// it run in the plain build only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kGlibcMalloc = false;
#else
constexpr bool kGlibcMalloc = true;
#endif

// 32 MiB of small blocks on the main arena freed below a block allocated
// after them, which stays live: free() alone keeps them resident, since
// glibc returns memory only from the top of the heap.
class FreedBelowALiveBlock {
 public:
  static constexpr uint64_t kBytes = 32 << 20;
  FreedBelowALiveBlock() {
    std::vector<char*> blocks;
    blocks.reserve(kBytes / 4096 + 1);  // no reallocation among the blocks
    for (uint64_t i = 0; i <= kBytes / 4096; ++i) {
      char* block = static_cast<char*>(std::malloc(4096));
      std::memset(block, 1, 4096);
      blocks.push_back(block);
    }
    // The last block, taken from the top of the heap, stays.
    pin_ = blocks.back();
    blocks.pop_back();
    for (char* block : blocks) std::free(block);
  }
  ~FreedBelowALiveBlock() { std::free(pin_); }

 private:
  char* pin_;
};

TEST(TrimHeapTest, GivesBackFreeMemoryBelowALiveAllocation) {
  if (!kGlibcMalloc) GTEST_SKIP() << "a sanitizer's allocator, not glibc's";
  FreedBelowALiveBlock freed;
  const HeapTrimResult result = TrimHeap(SystemClock::Get());
  ASSERT_TRUE(result.resident_before.has_value());
  ASSERT_TRUE(result.resident_after.has_value());
  EXPECT_GE(result.duration, absl::ZeroDuration());
  // At least half of the 32 MiB came back (the rest: pages shared with
  // chunks in use, malloc's own bookkeeping).
  EXPECT_LE(*result.resident_after + FreedBelowALiveBlock::kBytes / 2,
            *result.resident_before);
}

TEST(PeriodicHeapTrimTest, GivesBackFreeMemoryWithinAnInterval) {
  if (!kGlibcMalloc) GTEST_SKIP() << "a sanitizer's allocator, not glibc's";
  FreedBelowALiveBlock freed;
  const uint64_t before = ResidentBytes().value();
  PeriodicHeapTrim trim(absl::Milliseconds(100));
  // Bounded: 10 s is a hundred intervals.
  const absl::Time deadline = absl::Now() + Seconds(10);
  uint64_t now = before;
  while (absl::Now() < deadline) {
    now = ResidentBytes().value();
    if (now + FreedBelowALiveBlock::kBytes / 2 <= before) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_LE(now + FreedBelowALiveBlock::kBytes / 2, before)
      << "resident " << (before >> 20) << " MiB, then " << (now >> 20)
      << " MiB";
}

TEST(PeriodicHeapTrimTest, DestructionWakesTheThread) {
  // An interval far longer than the test: the destructor must wake the
  // thread, not wait for the interval to end.
  const absl::Time start = absl::Now();
  { PeriodicHeapTrim trim(absl::Hours(1)); }
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

}  // namespace
}  // namespace qfp
