// The FailureQueue contract (common/failure_queue.h), run against both
// implementations: MemoryFailureQueue and SqliteFailureQueue on real SQLite
// files in a temporary directory. Then what only the SQLite queue promises:
// its directory lock, refusing databases that are not its own, reloading,
// an operator reading the live file, and "the probe": no record is
// acknowledged without a committed transaction. Disk faults are in
// failure_queue_fault_test.cc (it needs an LD_PRELOAD shim).
//
// Every wait is bounded; no assertion depends on how fast anything runs.
#include "common/failure_queue.h"

#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/memory_failure_queue.h"
#include "common/metrics.h"
#include "common/sqlite_failure_queue.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace qfp {
namespace {

using Ids = std::vector<int64_t>;

// The bound on any wait in this file; it only stops a hang.
constexpr absl::Duration kHangGuard = absl::Seconds(15);
constexpr size_t kAll = std::numeric_limits<size_t>::max();
constexpr uint64_t kAllBytes = std::numeric_limits<uint64_t>::max();

// Polls `done` until it holds or kHangGuard passes; returns its last value.
bool WaitUntil(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + kHangGuard;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

std::vector<QueueRecord> ReadAll(const FailureQueue& queue,
                                 int64_t after_id = 0) {
  absl::StatusOr<std::vector<QueueRecord>> records =
      queue.Read(after_id, kAll, kAllBytes);
  EXPECT_TRUE(records.ok()) << records.status();
  return records.ok() ? *std::move(records) : std::vector<QueueRecord>{};
}

std::string ReadFile(const std::string& path) {
  std::string contents;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return contents;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) contents.append(buf, n);
  std::fclose(f);
  return contents;
}

Ids IdsOf(const std::vector<QueueRecord>& records) {
  Ids ids;
  for (const QueueRecord& r : records) ids.push_back(r.id);
  return ids;
}

std::vector<std::string> PayloadsOf(const std::vector<QueueRecord>& records) {
  std::vector<std::string> payloads;
  for (const QueueRecord& r : records) payloads.push_back(r.payload);
  return payloads;
}

// Appends and expects success.
Ids MustAppend(FailureQueue& queue, std::vector<std::string> payloads) {
  absl::StatusOr<Ids> ids = queue.AppendAndWait(std::move(payloads));
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *std::move(ids) : Ids{};
}

SqliteQueueOptions SqliteOptions(const std::string& directory,
                                 QueueLimits limits = {},
                                 std::string purpose = "test queue") {
  SqliteQueueOptions options;
  options.directory = directory;
  options.limits = limits;
  options.purpose = std::move(purpose);
  options.commit_retry.initial = absl::Milliseconds(10);
  options.commit_retry.max = absl::Milliseconds(200);
  return options;
}

std::unique_ptr<FailureQueue> MustOpen(SqliteQueueOptions options) {
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(std::move(options));
  EXPECT_TRUE(queue.ok()) << queue.status();
  return queue.ok() ? *std::move(queue) : nullptr;
}

// ---- The contract, for both implementations ---------------------------------

// The large-queue test checks correctness at scale; under the sanitizers'
// builds (ASan's unoptimized one, ThreadSanitizer's 5-15x slowdown) the
// million B-tree operations take over a minute, so it runs a tenth of the
// size there (the plain build covers the full size).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

struct MemoryKind {
  static constexpr bool kDurable = false;
  // How many records the large release test holds.
  static constexpr int kManyRecords = 1000000 / kScale;
  static std::unique_ptr<FailureQueue> Make(const testing::TempDir&,
                                            QueueLimits limits) {
    MemoryQueueOptions options;
    options.limits = limits;
    return std::make_unique<MemoryFailureQueue>(options);
  }
};

struct SqliteKind {
  static constexpr bool kDurable = true;
  static constexpr int kManyRecords = 200000 / kScale;
  static std::unique_ptr<FailureQueue> Make(const testing::TempDir& dir,
                                            QueueLimits limits) {
    return MustOpen(SqliteOptions(dir.File("queue"), limits));
  }
};

class KindNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MemoryKind> ? "Memory" : "Sqlite";
  }
};

template <typename Kind>
class FailureQueueContractTest : public ::testing::Test {
 protected:
  std::unique_ptr<FailureQueue> Make(QueueLimits limits = {}) {
    return Kind::Make(dir_, limits);
  }
  testing::TempDir dir_;
};

using Kinds = ::testing::Types<MemoryKind, SqliteKind>;
TYPED_TEST_SUITE(FailureQueueContractTest, Kinds, KindNames);

TYPED_TEST(FailureQueueContractTest, IdsArePositiveAndIncreaseInAppendOrder) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->durable(), TypeParam::kDurable);
  const Ids a = MustAppend(*queue, {"a1", "a2"});
  const Ids b = MustAppend(*queue, {"b1"});
  const Ids c = MustAppend(*queue, {"c1", "c2", "c3"});
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 1u);
  ASSERT_EQ(c.size(), 3u);
  Ids all = a;
  all.insert(all.end(), b.begin(), b.end());
  all.insert(all.end(), c.begin(), c.end());
  EXPECT_GT(all.front(), 0);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());

  const std::vector<QueueRecord> records = ReadAll(*queue);
  EXPECT_EQ(IdsOf(records), all);
  EXPECT_EQ(PayloadsOf(records),
            (std::vector<std::string>{"a1", "a2", "b1", "c1", "c2", "c3"}));
  const QueueStats stats = queue->stats();
  EXPECT_EQ(stats.records, 6u);
  EXPECT_EQ(stats.bytes, 12u);
  EXPECT_EQ(stats.pending, 0u);
  EXPECT_GE(stats.commits, 1u);
  EXPECT_EQ(stats.commit_errors, 0u);
  EXPECT_TRUE(stats.last_error.ok());
}

TYPED_TEST(FailureQueueContractTest, EmptyAppendSucceedsAtOnceWithNoIds) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  bool called = false;
  queue->Append({}, [&](absl::StatusOr<Ids> ids) {
    called = true;
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_TRUE(ids->empty());
  });
  EXPECT_TRUE(called);
  EXPECT_TRUE(ReadAll(*queue).empty());
}

TYPED_TEST(FailureQueueContractTest, ReadHonoursAfterIdAndLimits) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  std::vector<std::string> payloads;
  for (int i = 0; i < 10; ++i) payloads.push_back(absl::StrCat("payload-", i));
  const Ids ids = MustAppend(*queue, payloads);  // 9 bytes each
  ASSERT_EQ(ids.size(), 10u);

  auto read = [&](int64_t after, size_t n, uint64_t bytes) {
    absl::StatusOr<std::vector<QueueRecord>> r = queue->Read(after, n, bytes);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? IdsOf(*r) : Ids{};
  };
  EXPECT_EQ(read(0, 3, kAllBytes), Ids(ids.begin(), ids.begin() + 3));
  EXPECT_EQ(read(ids[4], 2, kAllBytes), Ids({ids[5], ids[6]}));
  // 27 bytes: three records (27) fit, a fourth (36) would not.
  EXPECT_EQ(read(0, kAll, 27), Ids(ids.begin(), ids.begin() + 3));
  EXPECT_EQ(read(0, kAll, 35), Ids(ids.begin(), ids.begin() + 3));
  // At least one record, even if it alone is over max_bytes.
  EXPECT_EQ(read(ids[1], kAll, 1), Ids({ids[2]}));
  EXPECT_EQ(read(ids[1], kAll, 0), Ids({ids[2]}));
  EXPECT_TRUE(read(ids.back(), kAll, kAllBytes).empty());
  EXPECT_TRUE(read(0, 0, kAllBytes).empty());
  EXPECT_EQ(read(-5, kAll, kAllBytes), ids);
}

TYPED_TEST(FailureQueueContractTest, ReleaseByIdAndRangeIgnoresUnknownIds) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  const Ids ids = MustAppend(*queue, {"1", "22", "333", "4444", "55555",
                                      "666666", "7", "88", "999", "0000"});
  ASSERT_EQ(ids.size(), 10u);
  queue->Release({ids[1], ids[4], ids.back() + 1000, -3});
  queue->ReleaseRange(ids[6], ids[7]);
  queue->ReleaseRange(ids.back() + 1, ids.back() + 100);  // unknown
  queue->ReleaseRange(ids[3], ids[2]);                    // empty range
  ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 6; }))
      << queue->stats().records;
  EXPECT_EQ(IdsOf(ReadAll(*queue)),
            Ids({ids[0], ids[2], ids[3], ids[5], ids[8], ids[9]}));
  EXPECT_EQ(queue->stats().bytes, 1u + 3 + 4 + 6 + 3 + 4);

  // Releasing again, and releasing everything.
  queue->Release({ids[1]});
  queue->ReleaseRange(std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 0; }));
  EXPECT_EQ(queue->stats().bytes, 0u);
  EXPECT_TRUE(ReadAll(*queue).empty());
  // Ids are not reused after a release.
  const Ids next = MustAppend(*queue, {"x"});
  ASSERT_EQ(next.size(), 1u);
  EXPECT_GT(next[0], ids.back());
}

TYPED_TEST(FailureQueueContractTest, RefuseAtExactCapsTakesNothing) {
  QueueLimits limits;
  limits.max_records = 3;
  limits.max_bytes = 10;
  limits.overflow = QueueLimits::Overflow::kRefuse;
  std::unique_ptr<FailureQueue> queue = this->Make(limits);
  ASSERT_NE(queue, nullptr);

  const Ids first = MustAppend(*queue, {"aaaa", "bbbb"});  // 2 records, 8 B
  // 11 bytes: over by one byte, so nothing of it is taken.
  absl::StatusOr<Ids> over = queue->AppendAndWait({"cc", "d"});
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted)
      << over.status();
  EXPECT_EQ(queue->stats().records, 2u);
  EXPECT_EQ(queue->stats().bytes, 8u);
  // Exactly at both caps is fine.
  const Ids fill = MustAppend(*queue, {"cc"});
  EXPECT_EQ(queue->stats().records, 3u);
  EXPECT_EQ(queue->stats().bytes, 10u);
  // One record over the count cap, with no bytes at all.
  over = queue->AppendAndWait({""});
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(PayloadsOf(ReadAll(*queue)),
            (std::vector<std::string>{"aaaa", "bbbb", "cc"}));
  EXPECT_EQ(queue->stats().dropped, 0u);

  // Room comes back once a release is applied.
  queue->Release({first[0]});
  ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 2; }));
  const Ids after = MustAppend(*queue, {"eeee"});
  ASSERT_EQ(after.size(), 1u);
  EXPECT_GT(after[0], fill[0]);
  EXPECT_EQ(queue->stats().bytes, 10u);
}

TYPED_TEST(FailureQueueContractTest, RefuseCountsAppendsNotYetCommitted) {
  QueueLimits limits;
  limits.max_records = 100;
  limits.overflow = QueueLimits::Overflow::kRefuse;
  std::unique_ptr<FailureQueue> queue = this->Make(limits);
  ASSERT_NE(queue, nullptr);
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::atomic<int> answered{0};
  for (int i = 0; i < 150; ++i) {
    queue->Append({absl::StrCat(i)}, [&](absl::StatusOr<Ids> ids) {
      if (ids.ok()) {
        ++ok;
      } else if (ids.status().code() == absl::StatusCode::kResourceExhausted) {
        ++refused;
      }
      ++answered;
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return answered.load() == 150; }));
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(refused.load(), 50);
  EXPECT_EQ(ReadAll(*queue).size(), 100u);
}

TYPED_TEST(FailureQueueContractTest, DropOldestDropsTheOldestAndCountsThem) {
  QueueLimits limits;
  limits.max_records = 3;
  limits.max_bytes = 10;
  limits.overflow = QueueLimits::Overflow::kDropOldest;
  std::unique_ptr<FailureQueue> queue = this->Make(limits);
  ASSERT_NE(queue, nullptr);
  std::atomic<int> listened{0};
  queue->SetCommitListener([&] { ++listened; });

  Ids ids;
  for (const char* p : {"1", "2", "3", "4", "5"}) {
    const Ids got = MustAppend(*queue, {p});
    ASSERT_EQ(got.size(), 1u);
    ids.push_back(got[0]);
  }
  EXPECT_EQ(IdsOf(ReadAll(*queue)), Ids({ids[2], ids[3], ids[4]}));
  EXPECT_EQ(queue->stats().dropped, 2u);
  EXPECT_EQ(queue->stats().records, 3u);
  EXPECT_EQ(queue->stats().bytes, 3u);

  // 4 records / 12 bytes: dropping "3" fixes the count but leaves 11 bytes,
  // so "4" goes too.
  const Ids big = MustAppend(*queue, {"123456789"});
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(IdsOf(ReadAll(*queue)), Ids({ids[4], big[0]}));
  EXPECT_EQ(queue->stats().dropped, 4u);
  EXPECT_EQ(queue->stats().bytes, 10u);
  EXPECT_EQ(queue->stats().records, 2u);
  EXPECT_TRUE(WaitUntil([&] { return listened.load() >= 6; }));
}

TYPED_TEST(FailureQueueContractTest, AnAppendThatCanNeverFitIsRefused) {
  for (const QueueLimits::Overflow overflow :
       {QueueLimits::Overflow::kRefuse, QueueLimits::Overflow::kDropOldest}) {
    testing::TempDir dir;
    QueueLimits limits;
    limits.max_records = 4;
    limits.max_bytes = 10;
    limits.overflow = overflow;
    std::unique_ptr<FailureQueue> queue = TypeParam::Make(dir, limits);
    ASSERT_NE(queue, nullptr);
    MustAppend(*queue, {"keep"});
    bool called = false;
    queue->Append({"12345678901"}, [&](absl::StatusOr<Ids> ids) {
      called = true;
      EXPECT_EQ(ids.status().code(), absl::StatusCode::kResourceExhausted);
    });
    EXPECT_TRUE(called) << "a refusal is answered before Append returns";
    absl::StatusOr<Ids> many = queue->AppendAndWait({"a", "b", "c", "d", "e"});
    EXPECT_EQ(many.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(PayloadsOf(ReadAll(*queue)), std::vector<std::string>{"keep"});
    EXPECT_EQ(queue->stats().dropped, 0u);
  }
}

TYPED_TEST(FailureQueueContractTest, ListenerRunsAfterCommitsAndSeesRecords) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  // One entry per call: the last id the listener could read.
  absl::Mutex mu;
  Ids calls;
  FailureQueue* q = queue.get();
  queue->SetCommitListener([&mu, &calls, q] {
    absl::StatusOr<std::vector<QueueRecord>> r = q->Read(0, kAll, kAllBytes);
    const int64_t last = r.ok() && !r->empty() ? r->back().id : -1;
    absl::MutexLock lock(&mu);
    calls.push_back(last);
  });
  auto snapshot = [&] {
    absl::MutexLock lock(&mu);
    return calls;
  };
  const Ids ids = MustAppend(*queue, {"x", "y"});
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_TRUE(WaitUntil([&] { return !snapshot().empty(); }));
  EXPECT_EQ(snapshot(), Ids({ids[1]})) << "one call, which saw the records";
  // A release that releases something is a change: one call, after which
  // ids[1] is still there.
  queue->Release({ids[0]});
  ASSERT_TRUE(WaitUntil([&] { return snapshot().size() == 2; }));
  EXPECT_EQ(snapshot(), Ids({ids[1], ids[1]}));
  // Releasing unknown ids changes nothing: no call. Listener calls come in
  // commit order, so once the call for "z" came, one for that release would
  // have come before it (or the release shared z's commit: still one call).
  queue->Release({ids[0], ids[1] + 1000});
  queue->ReleaseRange(ids[1] + 10, ids[1] + 20);
  const Ids z = MustAppend(*queue, {"z"});
  ASSERT_EQ(z.size(), 1u);
  ASSERT_TRUE(WaitUntil([&] { return snapshot().back() == z[0]; }));
  EXPECT_EQ(snapshot(), Ids({ids[1], ids[1], z[0]}));
  // Draining the queue is a change a reader may wait for.
  queue->ReleaseRange(ids[0], z[0]);
  ASSERT_TRUE(WaitUntil([&] { return snapshot().size() == 4; }));
  EXPECT_EQ(snapshot().back(), -1) << "the last call saw an empty queue";
}

TYPED_TEST(FailureQueueContractTest, CallbacksMayCallBackIntoTheQueue) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  FailureQueue* q = queue.get();
  std::atomic<int> listener_reads{0};
  queue->SetCommitListener([q, &listener_reads] {
    if (q->Read(0, 1, kAllBytes).ok()) ++listener_reads;
  });
  absl::Notification nested_done;
  absl::StatusOr<Ids> nested = absl::UnknownError("not called");
  size_t seen_in_done = 0;
  queue->Append({"outer"}, [&](absl::StatusOr<Ids> ids) {
    ASSERT_TRUE(ids.ok()) << ids.status();
    absl::StatusOr<std::vector<QueueRecord>> r = q->Read(0, kAll, kAllBytes);
    seen_in_done = r.ok() ? r->size() : 0;
    q->Release(*ids);
    q->Append({"inner"}, [&](absl::StatusOr<Ids> inner) {
      nested = std::move(inner);
      nested_done.Notify();
    });
  });
  ASSERT_TRUE(nested_done.WaitForNotificationWithTimeout(kHangGuard));
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(seen_in_done, 1u);
  ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 1; }));
  EXPECT_EQ(PayloadsOf(ReadAll(*queue)), std::vector<std::string>{"inner"});
  EXPECT_TRUE(WaitUntil([&] { return listener_reads.load() >= 2; }));
}

TYPED_TEST(FailureQueueContractTest, AppendAfterCloseIsUnavailable) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  MustAppend(*queue, {"before"});
  queue->Close();
  queue->Close();  // idempotent
  bool called = false;
  queue->Append({"after"}, [&](absl::StatusOr<Ids> ids) {
    called = true;
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kUnavailable)
        << ids.status();
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(queue->AppendAndWait({"after"}).status().code(),
            absl::StatusCode::kUnavailable);
  queue->Release({1});  // ignored, no crash
  queue->ReleaseRange(1, 5);
}

TYPED_TEST(FailureQueueContractTest, BinaryPayloadsRoundTrip) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  std::string every_byte;
  for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<char>(i));
  const std::string nuls("\0\0a\0", 4);
  std::string large(1 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i) {
    large[i] = static_cast<char>((i * 131) % 251);
  }
  const std::vector<std::string> payloads = {every_byte, nuls, "", large,
                                             std::string(1, '\0')};
  const Ids ids = MustAppend(*queue, payloads);
  ASSERT_EQ(ids.size(), payloads.size());
  EXPECT_EQ(PayloadsOf(ReadAll(*queue)), payloads);
  EXPECT_EQ(queue->stats().bytes, 256u + 4 + 0 + (1u << 20) + 1);
}

TYPED_TEST(FailureQueueContractTest, ConcurrentAppendersGetDistinctIds) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  // ids[t][i]: the id of thread t's i-th Append, written by its callback.
  std::vector<std::vector<int64_t>> ids(kThreads,
                                        std::vector<int64_t>(kPerThread, 0));
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        queue->Append({absl::StrCat(t, "/", i)},
                      [&, t, i](absl::StatusOr<Ids> got) {
                        if (got.ok() && got->size() == 1) {
                          ids[t][i] = (*got)[0];
                        } else {
                          ++failed;
                        }
                        ++answered;
                      });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(WaitUntil([&] {
    return answered.load() == kThreads * kPerThread;
  })) << answered.load();
  EXPECT_EQ(failed.load(), 0);
  std::set<int64_t> all;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(std::is_sorted(ids[t].begin(), ids[t].end()))
        << "thread " << t << "'s ids follow its Append order";
    all.insert(ids[t].begin(), ids[t].end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(all.count(0), 0u);
  const std::vector<QueueRecord> records = ReadAll(*queue);
  ASSERT_EQ(records.size(), all.size());
  EXPECT_EQ(IdsOf(records), Ids(all.begin(), all.end()));
  for (const QueueRecord& r : records) {
    // The payload names its appender, whose slot must hold this id.
    const size_t slash = r.payload.find('/');
    ASSERT_NE(slash, std::string::npos);
    const int t = std::stoi(r.payload.substr(0, slash));
    const int i = std::stoi(r.payload.substr(slash + 1));
    ASSERT_EQ(ids[t][i], r.id) << r.payload;
  }
}

TYPED_TEST(FailureQueueContractTest, ManyRecordsReleaseByIdAndByRange) {
  std::unique_ptr<FailureQueue> queue = this->Make();
  ASSERT_NE(queue, nullptr);
  const int n = TypeParam::kManyRecords;
  constexpr int kBatch = 10000;
  Ids ids;
  ids.reserve(n);
  for (int done = 0; done < n; done += kBatch) {
    std::vector<std::string> batch(kBatch, "0123456789");
    const Ids got = MustAppend(*queue, std::move(batch));
    ASSERT_EQ(got.size(), static_cast<size_t>(kBatch));
    ids.insert(ids.end(), got.begin(), got.end());
  }
  EXPECT_EQ(queue->stats().records, static_cast<uint64_t>(n));
  // Every other record of the first half by id, the rest by ranges.
  Ids odd;
  for (int i = 0; i < n / 2; i += 2) odd.push_back(ids[i]);
  queue->Release(odd);
  for (int i = 1; i < n / 2; i += 2) queue->ReleaseRange(ids[i], ids[i]);
  queue->ReleaseRange(ids[n / 2], ids.back());
  ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 0; }))
      << queue->stats().records;
  EXPECT_EQ(queue->stats().bytes, 0u);
  EXPECT_TRUE(ReadAll(*queue).empty());
}

// ---- SqliteFailureQueue -----------------------------------------------------

// A plain connection, as an operator's sqlite3 shell has.
class Operator {
 public:
  explicit Operator(const std::string& path, bool read_only = true) {
    const int rc = sqlite3_open_v2(
        path.c_str(), &db_,
        read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db_);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Operator() { sqlite3_close(db_); }
  Operator(const Operator&) = delete;
  Operator& operator=(const Operator&) = delete;

  // The first column of every row, as text ("" for NULL).
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << sqlite3_errmsg(db_);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      out.push_back(text ? reinterpret_cast<const char*>(text) : "");
      rc = SQLITE_OK;
    }
    EXPECT_EQ(rc, SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    return out;
  }
  std::string One(const std::string& sql) {
    std::vector<std::string> rows = Column(sql);
    return rows.empty() ? "<no row>" : rows[0];
  }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error),
              SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST(SqliteFailureQueueTest, IdsAreKeptAcrossReopenEvenWhenDrained) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  int64_t last = 0;
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
    ASSERT_NE(queue, nullptr);
    last = MustAppend(*queue, {"a", "b", "c"}).back();
  }
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
    ASSERT_NE(queue, nullptr);
    EXPECT_EQ(queue->stats().reloaded, 3u);
    const Ids ids = MustAppend(*queue, {"d"});
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_GT(ids[0], last);
    last = ids[0];
    queue->ReleaseRange(0, last);
    ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 0; }));
  }
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
    ASSERT_NE(queue, nullptr);
    EXPECT_EQ(queue->stats().reloaded, 0u);
    const Ids ids = MustAppend(*queue, {"e"});
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_GT(ids[0], last) << "an emptied queue must not reuse ids";
  }
}

TEST(SqliteFailureQueueTest, ReloadHasExactCountAndBytes) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  uint64_t bytes = 0;
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
    ASSERT_NE(queue, nullptr);
    std::vector<std::string> payloads;
    for (int i = 0; i < 100; ++i) payloads.push_back(std::string(i, 'x'));
    const Ids ids = MustAppend(*queue, payloads);
    ASSERT_EQ(ids.size(), 100u);
    queue->Release({ids[10], ids[20]});
    queue->ReleaseRange(ids[50], ids[59]);
    ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 88; }));
    bytes = queue->stats().bytes;
    uint64_t expected = 0;
    for (int i = 0; i < 100; ++i) {
      if (i != 10 && i != 20 && (i < 50 || i > 59)) expected += i;
    }
    EXPECT_EQ(bytes, expected);
  }
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  const QueueStats stats = queue->stats();
  EXPECT_EQ(stats.reloaded, 88u);
  EXPECT_EQ(stats.records, 88u);
  EXPECT_EQ(stats.bytes, bytes);
  EXPECT_EQ(ReadAll(*queue).size(), 88u);
}

TEST(SqliteFailureQueueTest, ReloadedRecordsCountAgainstTheCaps) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
    ASSERT_NE(queue, nullptr);
    MustAppend(*queue, {"12345", "12345"});
  }
  QueueLimits limits;
  limits.max_bytes = 12;
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path, limits));
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->AppendAndWait({"123"}).status().code(),
            absl::StatusCode::kResourceExhausted);
  MustAppend(*queue, {"12"});
}

TEST(SqliteFailureQueueTest, SecondOpenOfTheSameDirectoryFails) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  std::unique_ptr<FailureQueue> first = MustOpen(SqliteOptions(path));
  ASSERT_NE(first, nullptr);
  MustAppend(*first, {"kept"});
  // A trailing slash names the same directory.
  for (const std::string& p : {path, path + "/"}) {
    absl::StatusOr<std::unique_ptr<FailureQueue>> second =
        OpenSqliteFailureQueue(SqliteOptions(p));
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(second.status().message(), path))
        << second.status();
    EXPECT_TRUE(absl::StrContains(second.status().message(), "another process"))
        << second.status();
  }
  // The failed open disturbed nothing.
  MustAppend(*first, {"more"});
  first.reset();
  std::unique_ptr<FailureQueue> again = MustOpen(SqliteOptions(path));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(ReadAll(*again).size(), 2u);
}

TEST(SqliteFailureQueueTest, AnotherProcessHoldingTheLockIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  MustOpen(SqliteOptions(path)).reset();  // creates the directory and LOCK
  int locked[2];
  int release[2];
  ASSERT_EQ(pipe(locked), 0);
  ASSERT_EQ(pipe(release), 0);
  const std::string lock_path = path + "/LOCK";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only async-signal-safe calls here.
    const int fd = open(lock_path.c_str(), O_RDWR);
    const char ok = (fd >= 0 && flock(fd, LOCK_EX) == 0) ? '1' : '0';
    (void)!write(locked[1], &ok, 1);
    char c;
    (void)!read(release[0], &c, 1);
    _exit(0);
  }
  close(locked[1]);
  close(release[0]);
  char ok = 0;
  ASSERT_EQ(read(locked[0], &ok, 1), 1);
  ASSERT_EQ(ok, '1');
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(SqliteOptions(path));
  EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(queue.status().message(), path))
      << queue.status();
  ASSERT_EQ(write(release[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(locked[0]);
  close(release[1]);
  // And ours is visible to another process: flock(1) cannot take it.
  std::unique_ptr<FailureQueue> open_queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(open_queue, nullptr);
  if (system("command -v flock >/dev/null 2>&1") == 0) {
    const int rc = system(("flock -n -E 42 " + lock_path + " true").c_str());
    EXPECT_EQ(WEXITSTATUS(rc), 42);
    open_queue.reset();
    const int rc2 = system(("flock -n -E 42 " + lock_path + " true").c_str());
    EXPECT_EQ(WEXITSTATUS(rc2), 0);
  }
}

TEST(SqliteFailureQueueTest, DirectoryIsCreatedWithMode0750) {
  testing::TempDir dir;
  const std::string path = dir.File("a/b/queue");
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  const mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0750 & ~mask);
  EXPECT_EQ(stat((path + "/failures.db").c_str(), &st), 0);
  EXPECT_EQ(stat((path + "/LOCK").c_str(), &st), 0);
  EXPECT_TRUE(absl::StrContains(queue->Describe(), path + "/failures.db"));
}

TEST(SqliteFailureQueueTest, InvalidOptionsAreRefused) {
  testing::TempDir dir;
  EXPECT_EQ(OpenSqliteFailureQueue(SqliteOptions("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenSqliteFailureQueue(SqliteOptions(dir.File("q"), {}, ""))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // A file where the directory should be.
  const std::string file = dir.Write("plain", "x");
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(SqliteOptions(file));
  EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(queue.status().message(), file));
}

TEST(SqliteFailureQueueTest, TheFileHasTheDocumentedSchemaAndSettings) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  std::unique_ptr<FailureQueue> queue =
      MustOpen(SqliteOptions(path, {}, "qs-poller spool"));
  ASSERT_NE(queue, nullptr);
  MustAppend(*queue, {"x"});
  Operator op(path + "/failures.db");
  EXPECT_EQ(op.One("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(op.One("PRAGMA auto_vacuum"), "2");
  EXPECT_EQ(op.One("PRAGMA user_version"), "1");
  EXPECT_EQ(op.One("PRAGMA application_id"), absl::StrCat(0x51465051));
  EXPECT_EQ(op.One("SELECT value FROM queue_meta WHERE key='purpose'"),
            "qs-poller spool");
  EXPECT_EQ(op.One("SELECT value FROM queue_meta WHERE key='format'"), "1");
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const int64_t at = std::stoll(op.One("SELECT enqueued_at_ms FROM failures"));
  EXPECT_LE(std::abs(now_ms - at), 60000) << "wall-clock unix milliseconds";
  EXPECT_EQ(op.One("SELECT typeof(payload) FROM failures"), "blob");
}

TEST(SqliteFailureQueueTest, ADatabaseOfAnotherPurposeIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  MustOpen(SqliteOptions(path, {}, "qs-poller spool")).reset();
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(SqliteOptions(path, {}, "qs-error-tracker queue"));
  ASSERT_FALSE(queue.ok());
  EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(queue.status().message(), "qs-poller spool"))
      << queue.status();
  EXPECT_TRUE(absl::StrContains(queue.status().message(), path))
      << queue.status();
  // The refused open left the lock free and the file intact.
  MustOpen(SqliteOptions(path, {}, "qs-poller spool"));
}

TEST(SqliteFailureQueueTest, OtherVersionsAndDamagedSchemasAreRefused) {
  const struct {
    const char* name;
    const char* sql;  // run on a fresh queue database
    const char* expect;
  } cases[] = {
      {"newer format", "PRAGMA user_version=2", "format version 2"},
      {"missing table", "DROP TABLE queue_meta", "lacks its table queue_meta"},
      {"missing failures", "DROP TABLE failures", "lacks its table failures"},
      {"format row", "UPDATE queue_meta SET value='9' WHERE key='format'",
       "format '9'"},
      {"purpose row", "DELETE FROM queue_meta WHERE key='purpose'",
       "belongs to"},
      {"other application", "PRAGMA application_id=7", "another application"},
      {"bad last_id", "INSERT INTO queue_meta VALUES('last_id', 'lots')",
       "last_id"},
      {"huge id", "INSERT INTO failures VALUES(9223372036854775807, 0, x'00')",
       "implausible ids"},
      {"other columns",
       "DROP TABLE failures; CREATE TABLE failures(id INTEGER PRIMARY KEY, "
       "data BLOB)",
       "schema does not fit"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    testing::TempDir dir;
    const std::string path = dir.File("q");
    MustOpen(SqliteOptions(path)).reset();
    {
      Operator op(path + "/failures.db", /*read_only=*/false);
      op.Exec(c.sql);
    }
    absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
        OpenSqliteFailureQueue(SqliteOptions(path));
    ASSERT_FALSE(queue.ok());
    EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(queue.status().message(), c.expect))
        << queue.status();
    EXPECT_TRUE(absl::StrContains(queue.status().message(), "failures.db"))
        << queue.status();
  }
  // A database of another application (no application_id, other tables).
  testing::TempDir dir;
  const std::string path = dir.File("q");
  ASSERT_EQ(mkdir(path.c_str(), 0750), 0);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((path + "/failures.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(SqliteOptions(path));
  EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StrContains(queue.status().message(), "another application"))
      << queue.status();
}

TEST(SqliteFailureQueueTest, GarbageFilesAreRefusedWithAClearError) {
  std::string random(64 * 1024, '\0');
  uint32_t x = 12345;
  for (char& c : random) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 16);
  }
  const std::string header("SQLite format 3\0", 16);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"text", std::string(5000, 'x') + "this is not a database\n"},
      {"random", random},
      {"sqlite header then garbage", header + random},
      {"short", "SQLite"},
  };
  for (const auto& [name, contents] : files) {
    SCOPED_TRACE(name);
    testing::TempDir dir;
    const std::string path = dir.File("q");
    ASSERT_EQ(mkdir(path.c_str(), 0750), 0);
    dir.Write("q/failures.db", contents);
    absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
        OpenSqliteFailureQueue(SqliteOptions(path));
    ASSERT_FALSE(queue.ok());
    EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(
        absl::StrContains(queue.status().message(), path + "/failures.db"))
        << queue.status();
    // The file was left as it was.
    EXPECT_EQ(ReadFile(path + "/failures.db"), contents);
  }
}

// Damage inside a real queue database, page by page: the queue either refuses
// it at open or reads what it can; it never crashes.
TEST(SqliteFailureQueueTest, DamagedDatabasesNeverCrash) {
  testing::TempDir source;
  const std::string src = source.File("q");
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(src));
    ASSERT_NE(queue, nullptr);
    std::vector<std::string> payloads;
    for (int i = 0; i < 300; ++i)
      payloads.push_back(std::string(300, 'a' + i % 26));
    MustAppend(*queue, payloads);
  }
  const std::string original = ReadFile(src + "/failures.db");
  ASSERT_GT(original.size(), 8192u);
  int refused = 0;
  int opened = 0;
  for (size_t offset = 0; offset < original.size(); offset += 2048 + 37) {
    std::string damaged = original;
    for (size_t i = offset; i < std::min(offset + 64, damaged.size()); ++i) {
      damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    }
    testing::TempDir dir;
    const std::string path = dir.File("q");
    ASSERT_EQ(mkdir(path.c_str(), 0750), 0);
    dir.Write("q/failures.db", damaged);
    absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
        OpenSqliteFailureQueue(SqliteOptions(path));
    if (!queue.ok()) {
      ++refused;
      EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_TRUE(absl::StrContains(queue.status().message(), "failures.db"));
      continue;
    }
    ++opened;
    absl::StatusOr<std::vector<QueueRecord>> records =
        (*queue)->Read(0, kAll, kAllBytes);
    if (!records.ok()) {
      EXPECT_EQ(records.status().code(), absl::StatusCode::kUnavailable);
    }
    (*queue)->AppendAndWait({"after damage"}).IgnoreError();
  }
  EXPECT_GT(refused, 0);
  std::printf("damaged databases: %d refused at open, %d opened\n", refused,
              opened);
}

TEST(SqliteFailureQueueTest, AnOperatorCanReadTheLiveDatabase) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  MustAppend(*queue, {"one", "two", "three"});
  const std::string db = path + "/failures.db";
  Operator op(db);
  EXPECT_EQ(op.One("SELECT count(*) FROM failures"), "3");
  EXPECT_EQ(op.One("SELECT sum(length(payload)) FROM failures"), "11");
  // An operator's open read transaction does not stop the queue's commits.
  op.Exec("BEGIN");
  EXPECT_EQ(op.One("SELECT count(*) FROM failures"), "3");
  MustAppend(*queue, {"four"});
  EXPECT_EQ(op.One("SELECT count(*) FROM failures"), "3") << "its snapshot";
  op.Exec("COMMIT");
  EXPECT_EQ(op.One("SELECT count(*) FROM failures"), "4");
  EXPECT_EQ(ReadAll(*queue).size(), 4u);
  // The sqlite3 shell itself, when installed.
  if (system("command -v sqlite3 >/dev/null 2>&1") == 0) {
    FILE* shell =
        popen(("sqlite3 -readonly " + db + " 'SELECT count(*) FROM failures'")
                  .c_str(),
              "r");
    ASSERT_NE(shell, nullptr);
    char line[64] = {};
    const bool got = fgets(line, sizeof line, shell) != nullptr;
    EXPECT_EQ(pclose(shell), 0);
    EXPECT_TRUE(got);
    EXPECT_EQ(std::string(line), "4\n");
  }
}

TEST(SqliteFailureQueueTest, CloseCommitsWhatWasHandedOver) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  absl::Mutex mu;
  Ids acknowledged;
  int answered = 0;
  for (int i = 0; i < 500; ++i) {
    queue->Append({absl::StrCat("r", i)}, [&](absl::StatusOr<Ids> ids) {
      absl::MutexLock lock(&mu);
      ++answered;
      if (ids.ok())
        acknowledged.insert(acknowledged.end(), ids->begin(), ids->end());
    });
  }
  queue->Close();
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(answered, 500) << "Close answers every Append";
    EXPECT_EQ(acknowledged.size(), 500u);
  }
  queue.reset();
  queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(IdsOf(ReadAll(*queue)), acknowledged);
}

TEST(SqliteFailureQueueTest, ADrainedQueueGivesItsDiskBack) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 10; ++i) {
    MustAppend(*queue, std::vector<std::string>(200, std::string(4096, 'p')));
  }
  const std::string db = path + "/failures.db";
  int64_t full_pages = 0;
  {
    Operator op(db);
    full_pages = std::stoll(op.One("PRAGMA page_count"));
  }
  EXPECT_GT(full_pages, 1000);
  queue->ReleaseRange(0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(WaitUntil([&] { return queue->stats().records == 0; }));
  int64_t pages = 0;
  int64_t free_pages = 0;
  const bool shrunk = WaitUntil([&] {
    Operator op(db);
    pages = std::stoll(op.One("PRAGMA page_count"));
    free_pages = std::stoll(op.One("PRAGMA freelist_count"));
    return pages < 20 && free_pages == 0;
  });
  EXPECT_TRUE(shrunk) << pages << " pages, " << free_pages << " free";
  struct stat st;
  ASSERT_EQ(stat(db.c_str(), &st), 0);
  std::printf("full: %lld pages; drained: %lld pages; file %lld bytes\n",
              static_cast<long long>(full_pages), static_cast<long long>(pages),
              static_cast<long long>(st.st_size));
}

TEST(SqliteFailureQueueTest, MetricsAreTheStatsCounters) {
  testing::TempDir dir;
  MetricsRegistry registry;
  SqliteQueueOptions options = SqliteOptions(dir.File("q"));
  options.metrics = &registry;
  options.metrics_prefix = "qfp_test_queue";
  std::unique_ptr<FailureQueue> queue = MustOpen(options);
  ASSERT_NE(queue, nullptr);
  MustAppend(*queue, {"ab", "cde"});
  MustAppend(*queue, {"f"});
  const QueueStats stats = queue->stats();
  const std::string page = registry.RenderText();
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_test_queue_records 3\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_test_queue_bytes 6\n")) << page;
  EXPECT_TRUE(absl::StrContains(
      page,
      absl::StrCat("\nqfp_test_queue_commits_total ", stats.commits, "\n")))
      << page;
  EXPECT_TRUE(
      absl::StrContains(page, "\nqfp_test_queue_commit_errors_total 0\n"));
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_test_queue_dropped_total 0\n"));
  // Every transaction is timed, failed ones included.
  EXPECT_TRUE(absl::StrContains(
      page, absl::StrCat("\nqfp_test_queue_commit_duration_seconds_count ",
                         stats.commits + stats.commit_errors, "\n")))
      << page;
  // The registry may outlive the queue: its gauges keep the last values.
  queue.reset();
  EXPECT_TRUE(
      absl::StrContains(registry.RenderText(), "\nqfp_test_queue_records 3\n"));
}

TEST(MemoryFailureQueueTest, MetricsAreTheStatsCounters) {
  MetricsRegistry registry;
  MemoryQueueOptions options;
  options.limits.max_records = 2;
  options.limits.overflow = QueueLimits::Overflow::kDropOldest;
  options.metrics = &registry;
  options.metrics_prefix = "qfp_mem_queue";
  MemoryFailureQueue queue(options);
  MustAppend(queue, {"ab", "cde"});
  MustAppend(queue, {"f"});
  const std::string page = registry.RenderText();
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_mem_queue_records 2\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_mem_queue_bytes 4\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_mem_queue_dropped_total 1\n"));
  EXPECT_TRUE(absl::StrContains(page, "\nqfp_mem_queue_commits_total 2\n"));
  EXPECT_EQ(queue.stats().dropped, 1u);
  EXPECT_EQ(queue.Describe(), "memory");
}

// The probe: many single-record AppendAndWaits from 8 threads; every id
// acknowledged must be in the file as a fresh connection sees it while the
// queue is still open, so no acknowledgement ran ahead of its COMMIT.
TEST(SqliteFailureQueueTest, ProbeEveryAcknowledgedRecordIsCommitted) {
  testing::TempDir dir;
  const std::string path = dir.File("q");
  std::unique_ptr<FailureQueue> queue = MustOpen(SqliteOptions(path));
  ASSERT_NE(queue, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1500;
  std::vector<Ids> acked(kThreads);
  std::atomic<int> failures{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<Ids> ids =
            queue->AppendAndWait({absl::StrCat("probe ", t, " ", i)});
        if (ids.ok() && ids->size() == 1) {
          acked[t].push_back((*ids)[0]);
        } else {
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(failures.load(), 0);

  Operator op(path + "/failures.db");
  const std::vector<std::string> rows = op.Column("SELECT id FROM failures");
  std::set<int64_t> present;
  for (const std::string& r : rows) present.insert(std::stoll(r));
  size_t missing = 0;
  size_t total = 0;
  for (const Ids& ids : acked) {
    for (const int64_t id : ids) {
      ++total;
      if (present.count(id) == 0) ++missing;
    }
  }
  EXPECT_EQ(total, static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(missing, 0u) << "acknowledged without a committed transaction";
  const QueueStats stats = queue->stats();
  std::printf(
      "probe: %zu acknowledged, %zu missing, %llu commits (%.1f records per "
      "commit), %.2f s\n",
      total, missing, static_cast<unsigned long long>(stats.commits),
      stats.commits ? static_cast<double>(total) / stats.commits : 0.0,
      absl::ToDoubleSeconds(elapsed));
  RecordProperty("commits", static_cast<int>(stats.commits));
}

}  // namespace
}  // namespace qfp
