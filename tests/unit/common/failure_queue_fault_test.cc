// SqliteFailureQueue on a failing disk. ctest runs this binary with
// LD_PRELOAD=libqfp_fault_shim.so (tests/testing/fault_shim.c), which makes
// fsync/fdatasync fail with EIO while the file named by QFP_FAULT_FILE
// exists, and database writes fail while QFP_FAULT_WRITE_FILE exists.
//
// What must hold: while the disk fails, Appends get Unavailable and nothing
// is acknowledged or visible; the queue recovers by itself within a bounded
// time once the disk works; every record acknowledged before, during and
// after is in the database after a reopen, and nothing that failed is.
// Each test checks the shim's counters, so none can pass because SQLite
// never reached the shim.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/failure_queue.h"
#include "common/sqlite_failure_queue.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace qfp {
namespace {

using Ids = std::vector<int64_t>;
constexpr absl::Duration kHangGuard = absl::Seconds(15);

using ShimCounter = unsigned long (*)();

ShimCounter FindCounter(const char* name) {
  return reinterpret_cast<ShimCounter>(dlsym(RTLD_DEFAULT, name));
}

SqliteQueueOptions Options(const std::string& directory) {
  SqliteQueueOptions options;
  options.directory = directory;
  options.purpose = "fault test";
  options.commit_retry.initial = absl::Milliseconds(10);
  options.commit_retry.max = absl::Milliseconds(100);
  return options;
}

std::unique_ptr<FailureQueue> MustOpen(const std::string& directory) {
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(Options(directory));
  EXPECT_TRUE(queue.ok()) << queue.status();
  return queue.ok() ? *std::move(queue) : nullptr;
}

// Which payload got which answer, across threads.
class Ledger {
 public:
  void Acked(const std::string& payload, int64_t id) {
    absl::MutexLock lock(&mu_);
    acked_[id] = payload;
  }
  void Failed(const std::string& payload, const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    failed_.insert(payload);
    if (status.code() != absl::StatusCode::kUnavailable) ++wrong_code_;
    last_failure_ = status;
  }
  std::map<int64_t, std::string> acked() const {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  std::set<std::string> failed() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  int wrong_code() const {
    absl::MutexLock lock(&mu_);
    return wrong_code_;
  }
  absl::Status last_failure() const {
    absl::MutexLock lock(&mu_);
    return last_failure_;
  }

  // Appends one record and books the answer; true if acknowledged.
  bool Append(FailureQueue& queue, const std::string& payload) {
    absl::StatusOr<Ids> ids = queue.AppendAndWait({payload});
    if (ids.ok() && ids->size() == 1) {
      Acked(payload, (*ids)[0]);
      return true;
    }
    Failed(payload,
           ids.ok() ? absl::InternalError("wrong id count") : ids.status());
    return false;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<int64_t, std::string> acked_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> failed_ ABSL_GUARDED_BY(mu_);
  int wrong_code_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_failure_ ABSL_GUARDED_BY(mu_);
};

class FailureQueueFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    syncs_ = FindCounter("qfp_fault_shim_syncs");
    injected_ = FindCounter("qfp_fault_shim_injected");
    ASSERT_NE(syncs_, nullptr)
        << "the fault shim is not loaded: run this test through ctest, which "
           "sets LD_PRELOAD=libqfp_fault_shim.so";
    ASSERT_NE(injected_, nullptr);
    const char* sync_file = std::getenv("QFP_FAULT_FILE");
    const char* write_file = std::getenv("QFP_FAULT_WRITE_FILE");
    ASSERT_TRUE(sync_file != nullptr && *sync_file != '\0');
    ASSERT_TRUE(write_file != nullptr && *write_file != '\0');
    sync_fault_ = sync_file;
    write_fault_ = write_file;
    Heal();
  }
  void TearDown() override { Heal(); }

  void Break(const std::string& which) {
    FILE* f = std::fopen(which.c_str(), "w");
    ASSERT_NE(f, nullptr) << which;
    std::fclose(f);
  }
  void Heal() {
    std::remove(sync_fault_.c_str());
    std::remove(write_fault_.c_str());
  }

  // The whole story for one kind of fault: see the file comment.
  void RunOutage(const std::string& fault);

  testing::TempDir dir_;
  ShimCounter syncs_ = nullptr;
  ShimCounter injected_ = nullptr;
  std::string sync_fault_;
  std::string write_fault_;
};

void FailureQueueFaultTest::RunOutage(const std::string& fault) {
  const std::string path = dir_.File("q");
  std::unique_ptr<FailureQueue> queue = MustOpen(path);
  ASSERT_NE(queue, nullptr);
  Ledger ledger;

  // Before: everything is acknowledged, and SQLite syncs through the shim.
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(ledger.Append(*queue, absl::StrCat("before-", i)));
  }
  EXPECT_GT(syncs_(), 0u) << "SQLite's fdatasync did not reach the shim";

  // A background appender runs through the whole outage and the recovery.
  std::atomic<bool> stop{false};
  std::thread background([&] {
    for (int i = 0; !stop.load(); ++i) {
      ledger.Append(*queue, absl::StrCat("background-", i));
      absl::SleepFor(absl::Milliseconds(2));
    }
  });

  // During: nothing is acknowledged.
  const unsigned long injected_before = injected_();
  const uint64_t errors_before = queue->stats().commit_errors;
  Break(fault);
  const size_t acked_at_break = ledger.acked().size();
  int failed_during = 0;
  for (int i = 0; i < 20; ++i) {
    if (!ledger.Append(*queue, absl::StrCat("during-", i))) ++failed_during;
  }
  const QueueStats during = queue->stats();
  // Only committed records are visible, and every one of them acknowledged
  // (the background appender may have been acknowledged just before Break).
  absl::StatusOr<std::vector<QueueRecord>> visible =
      queue->Read(0, 1 << 20, uint64_t{1} << 40);
  ASSERT_TRUE(visible.ok()) << visible.status();
  const std::map<int64_t, std::string> acked_now = ledger.acked();
  for (const QueueRecord& r : *visible) {
    ASSERT_EQ(acked_now.count(r.id), 1u)
        << "record " << r.id << " (" << r.payload
        << ") is visible but was never acknowledged";
  }
  EXPECT_LE(acked_now.size(), acked_at_break + 1)
      << "at most the one background Append in flight at Break";
  Heal();

  EXPECT_EQ(failed_during, 20);
  EXPECT_GT(injected_(), injected_before) << "no fault was injected";
  EXPECT_GT(during.commit_errors, errors_before);
  EXPECT_FALSE(during.last_error.ok());
  EXPECT_EQ(during.last_error.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(during.last_error.message(), "I/O"))
      << during.last_error;
  EXPECT_EQ(ledger.wrong_code(), 0) << ledger.last_failure();
  EXPECT_TRUE(absl::StrContains(ledger.last_failure().message(), "I/O"))
      << ledger.last_failure();
  std::printf(
      "%s: %lu faults injected, %llu commit errors; last error: %s\n",
      fault == sync_fault_ ? "fsync faults" : "write faults",
      injected_() - injected_before,
      static_cast<unsigned long long>(during.commit_errors - errors_before),
      std::string(during.last_error.message()).c_str());

  // After: the queue recovers by itself, within a bounded time.
  const absl::Time healed = absl::Now();
  bool recovered = false;
  for (int i = 0; !recovered && absl::Now() - healed < kHangGuard; ++i) {
    recovered = ledger.Append(*queue, absl::StrCat("recovery-", i));
  }
  ASSERT_TRUE(recovered) << "no successful commit within " << kHangGuard;
  std::printf("recovered %.0f ms after the fault ended\n",
              absl::ToDoubleMilliseconds(absl::Now() - healed));
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(ledger.Append(*queue, absl::StrCat("after-", i)));
  }
  stop = true;
  background.join();
  EXPECT_TRUE(queue->stats().last_error.ok()) << queue->stats().last_error;

  // Reopen: every acknowledged record, and nothing that failed.
  queue.reset();
  queue = MustOpen(path);
  ASSERT_NE(queue, nullptr);
  absl::StatusOr<std::vector<QueueRecord>> records =
      queue->Read(0, 1 << 20, uint64_t{1} << 40);
  ASSERT_TRUE(records.ok()) << records.status();
  std::map<int64_t, std::string> stored;
  for (QueueRecord& r : *records) stored[r.id] = std::move(r.payload);
  const std::map<int64_t, std::string> acked = ledger.acked();
  for (const auto& [id, payload] : acked) {
    auto it = stored.find(id);
    ASSERT_NE(it, stored.end()) << "acknowledged " << payload << " is lost";
    EXPECT_EQ(it->second, payload);
  }
  for (const auto& [id, payload] : stored) {
    EXPECT_EQ(ledger.failed().count(payload), 0u)
        << payload << " was refused but is stored";
  }
  EXPECT_EQ(stored.size(), acked.size());
  std::printf("%zu acknowledged, %zu failed, %zu stored after reopen\n",
              acked.size(), ledger.failed().size(), stored.size());
}

TEST_F(FailureQueueFaultTest, FsyncFailuresFailCommitsAndTheQueueRecovers) {
  RunOutage(sync_fault_);
}

TEST_F(FailureQueueFaultTest, WriteFailuresFailCommitsAndTheQueueRecovers) {
  RunOutage(write_fault_);
}

// Health follows last_error: after the disk recovers, the error must clear
// by itself even when nothing is appended (a tracker taken out of service
// for being unhealthy gets no traffic that would clear it).
TEST_F(FailureQueueFaultTest, TheErrorClearsWithoutNewTraffic) {
  std::unique_ptr<FailureQueue> queue = MustOpen(dir_.File("q"));
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(queue->AppendAndWait({"before"}).ok());
  Break(sync_fault_);
  EXPECT_FALSE(queue->AppendAndWait({"during"}).ok());
  EXPECT_FALSE(queue->stats().last_error.ok());
  // Still failing while the fault lasts, probes or not.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(queue->stats().last_error.ok());
  Heal();
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  while (!queue->stats().last_error.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(queue->stats().last_error.ok()) << queue->stats().last_error;
  EXPECT_EQ(queue->stats().records, 1u);
}

// A database that can be read but not written is refused at open, not found
// out at the first failure.
TEST_F(FailureQueueFaultTest, ADatabaseThatCannotBeWrittenIsRefusedAtOpen) {
  {
    std::unique_ptr<FailureQueue> queue = MustOpen(dir_.File("q"));
    ASSERT_NE(queue, nullptr);
    ASSERT_TRUE(queue->AppendAndWait({"kept"}).ok());
  }
  Break(write_fault_);
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(Options(dir_.File("q")));
  Heal();
  ASSERT_FALSE(queue.ok());
  EXPECT_EQ(queue.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(queue.status().message(), "cannot write"))
      << queue.status();
  EXPECT_TRUE(absl::StrContains(queue.status().message(), "failures.db"))
      << queue.status();
  // Nothing was lost by the refusal.
  std::unique_ptr<FailureQueue> again = MustOpen(dir_.File("q"));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->stats().records, 1u);
}

// kDropOldest (the poller) while commits fail: what waits to be stored is
// held to the limits in memory; the oldest are given up through their
// `done`, never silently, and the newest are stored once the disk is back.
TEST_F(FailureQueueFaultTest, DropOldestHoldsWaitingRecordsToTheLimits) {
  SqliteQueueOptions options = Options(dir_.File("q"));
  options.limits.max_records = 10;
  options.limits.overflow = QueueLimits::Overflow::kDropOldest;
  options.commit_retry.initial = absl::Seconds(30);  // no retry during it
  options.commit_retry.max = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
      OpenSqliteFailureQueue(options);
  ASSERT_TRUE(queue.ok()) << queue.status();
  Break(sync_fault_);
  // The first Append meets the fault and starts the 30 s back-off.
  EXPECT_FALSE((*queue)->AppendAndWait({"first"}).ok());
  absl::Mutex mu;
  int given_up = 0, stored = 0;
  for (int i = 0; i < 25; ++i) {
    (*queue)->Append({absl::StrCat("r", i)},
                     [&](absl::StatusOr<std::vector<int64_t>> ids) {
                       absl::MutexLock lock(&mu);
                       if (ids.ok()) {
                         ++stored;
                       } else {
                         EXPECT_EQ(ids.status().code(),
                                   absl::StatusCode::kResourceExhausted)
                             << ids.status();
                         ++given_up;
                       }
                     });
  }
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(given_up, 15);  // told at once, oldest first
  }
  EXPECT_EQ((*queue)->stats().pending, 10u);
  Heal();
  (*queue)->Close();  // its last try stores the ten that waited
  absl::MutexLock lock(&mu);
  EXPECT_EQ(stored, 10);
  EXPECT_EQ(given_up, 15);
}

// A process that dies after a failed commit (before any later commit) must
// not find the failed records in its database after the restart: SQLite may
// have written their WAL frames before the fsync failed.
TEST_F(FailureQueueFaultTest, FailedRecordsDoNotComeBackAfterACrash) {
  const std::string path = dir_.File("q");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: some good records, a failed group, then a crash (_exit:
    // no Close, no checkpoint, the WAL left as it is).
    absl::StatusOr<std::unique_ptr<FailureQueue>> queue =
        OpenSqliteFailureQueue(Options(path));
    if (!queue.ok()) _exit(10);
    for (int i = 0; i < 5; ++i) {
      if (!(*queue)->AppendAndWait({absl::StrCat("good-", i)}).ok()) _exit(11);
    }
    if (FILE* f = std::fopen(sync_fault_.c_str(), "w")) {
      std::fclose(f);
    } else {
      _exit(12);
    }
    std::vector<std::string> failed;
    for (int i = 0; i < 50; ++i) failed.push_back(absl::StrCat("failed-", i));
    if ((*queue)->AppendAndWait(failed).ok()) _exit(13);
    if ((*queue)->AppendAndWait({"failed-single"}).ok()) _exit(14);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  Heal();
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child's step failed";

  std::unique_ptr<FailureQueue> queue = MustOpen(path);
  ASSERT_NE(queue, nullptr);
  absl::StatusOr<std::vector<QueueRecord>> records =
      queue->Read(0, 1000, uint64_t{1} << 40);
  ASSERT_TRUE(records.ok()) << records.status();
  std::vector<std::string> payloads;
  for (const QueueRecord& r : *records) payloads.push_back(r.payload);
  EXPECT_EQ(payloads, (std::vector<std::string>{"good-0", "good-1", "good-2",
                                                "good-3", "good-4"}));
}

}  // namespace
}  // namespace qfp
