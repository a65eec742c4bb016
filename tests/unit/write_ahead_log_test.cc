#include "tracker-service/write_ahead_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace qfp {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Payloads(const std::vector<WalRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.payload);
  return out;
}

std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class WriteAheadLogTest : public ::testing::Test {
 protected:
  WriteAheadLogOptions Options() {
    WriteAheadLogOptions options;
    options.directory = dir_.File("wal");
    return options;
  }
  std::unique_ptr<WriteAheadLog> Open(std::vector<WalRecord>* replay,
                                      WriteAheadLogOptions options) {
    absl::StatusOr<std::unique_ptr<WriteAheadLog>> wal =
        WriteAheadLog::Open(options, replay);
    EXPECT_TRUE(wal.ok()) << wal.status();
    return wal.ok() ? *std::move(wal) : nullptr;
  }
  std::unique_ptr<WriteAheadLog> Open(std::vector<WalRecord>* replay) {
    return Open(replay, Options());
  }

  testing::TempDir dir_;
};

TEST_F(WriteAheadLogTest, NewLogReplaysNothing) {
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  EXPECT_TRUE(replay.empty());
  EXPECT_EQ(wal->stats().live_records, 0u);
}

TEST_F(WriteAheadLogTest, UnreleasedRecordsReplayInOrderAfterReopen) {
  {
    std::vector<WalRecord> replay;
    auto wal = Open(&replay);
    absl::StatusOr<std::vector<uint64_t>> lsns =
        wal->Append({"one", "two", "three"});
    ASSERT_TRUE(lsns.ok()) << lsns.status();
    ASSERT_EQ(lsns->size(), 3u);
    ASSERT_TRUE(wal->Append({std::string("fo\0ur", 5)}).ok());
    wal->Release({(*lsns)[1]});
  }
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  EXPECT_THAT(Payloads(replay),
              ElementsAre("one", "two", "three", std::string("fo\0ur", 5)))
      << "release marks are not persisted: everything in the log replays";
  EXPECT_EQ(wal->stats().live_records, 4u);
}

TEST_F(WriteAheadLogTest, FullyReleasedSegmentsAreDeleted) {
  WriteAheadLogOptions options = Options();
  options.segment_bytes = 64;  // a couple of records per segment
  std::vector<WalRecord> replay;
  auto wal = Open(&replay, options);
  std::vector<uint64_t> all;
  for (int i = 0; i < 20; ++i) {
    auto lsns = wal->Append({absl::StrCat("record-", i, "-padding-padding")});
    ASSERT_TRUE(lsns.ok()) << lsns.status();
    all.push_back((*lsns)[0]);
  }
  EXPECT_GT(wal->stats().segments, 5u);
  const uint64_t bytes_before = wal->stats().bytes;
  wal->Release(all);
  EXPECT_EQ(wal->stats().live_records, 0u);
  EXPECT_EQ(wal->stats().segments, 0u) << "every released segment goes";
  EXPECT_LT(wal->stats().bytes, bytes_before);
  EXPECT_TRUE(Segments(options.directory).empty());
  // Appending after everything was released starts a new segment.
  ASSERT_TRUE(wal->Append({"later"}).ok());
  EXPECT_EQ(Segments(options.directory).size(), 1u);
  wal->Release({all.back() + 1});
  wal.reset();
  replay.clear();
  wal = Open(&replay, options);
  EXPECT_TRUE(replay.empty());
}

TEST_F(WriteAheadLogTest, ReleaseIgnoresUnknownAndRepeatedLsns) {
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  auto lsns = wal->Append({"a", "b"});
  ASSERT_TRUE(lsns.ok());
  wal->Release({(*lsns)[0], (*lsns)[0], 999999});
  EXPECT_EQ(wal->stats().live_records, 1u);
}

TEST_F(WriteAheadLogTest, RefusesBeyondTheCapAllOrNothingAndRecovers) {
  WriteAheadLogOptions options = Options();
  options.max_bytes = 300;
  options.segment_bytes = 100;  // one 100-byte record per segment
  std::vector<WalRecord> replay;
  auto wal = Open(&replay, options);
  auto a = wal->Append({std::string(100, 'a')});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(wal->Append({std::string(100, 'b')}).ok());
  auto refused = wal->Append({std::string(50, 'c'), std::string(50, 'd')});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("full"));
  EXPECT_EQ(wal->stats().live_records, 2u) << "nothing of a refusal stays";
  // Space returns once InfluxDB has confirmed the oldest record.
  wal->Release(*a);
  EXPECT_TRUE(wal->Append({std::string(100, 'c')}).ok());
  wal.reset();
  replay.clear();
  wal = Open(&replay, options);
  EXPECT_THAT(Payloads(replay),
              ElementsAre(std::string(100, 'b'), std::string(100, 'c')));
}

TEST_F(WriteAheadLogTest, TornTailIsTruncatedAndEverythingBeforeKept) {
  std::string segment;
  {
    std::vector<WalRecord> replay;
    auto wal = Open(&replay);
    ASSERT_TRUE(wal->Append({"keep-1", "keep-2"}).ok());
    ASSERT_TRUE(wal->Append({"torn-record-payload"}).ok());
    segment = Options().directory + "/" + Segments(Options().directory).back();
  }
  // Cut the last record in the middle of its payload.
  const auto size = fs::file_size(segment);
  fs::resize_file(segment, size - 5);
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  EXPECT_THAT(Payloads(replay), ElementsAre("keep-1", "keep-2"));
  EXPECT_GT(wal->stats().truncated_at_open, 0u);
  // Appending after recovery works and survives another reopen.
  ASSERT_TRUE(wal->Append({"after"}).ok());
  wal.reset();
  replay.clear();
  wal = Open(&replay);
  EXPECT_THAT(Payloads(replay), ElementsAre("keep-1", "keep-2", "after"));
}

TEST_F(WriteAheadLogTest, FlippedByteIsDetectedByTheChecksum) {
  std::string segment;
  {
    std::vector<WalRecord> replay;
    auto wal = Open(&replay);
    ASSERT_TRUE(wal->Append({"good"}).ok());
    ASSERT_TRUE(wal->Append({"flipped"}).ok());
    segment = Options().directory + "/" + Segments(Options().directory).back();
  }
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('X');
  }
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  EXPECT_THAT(Payloads(replay), ElementsAre("good"));
}

TEST_F(WriteAheadLogTest, HostileLengthNeverCrashes) {
  std::string segment;
  {
    std::vector<WalRecord> replay;
    auto wal = Open(&replay);
    ASSERT_TRUE(wal->Append({"good"}).ok());
    segment = Options().directory + "/" + Segments(Options().directory).back();
  }
  {
    std::ofstream f(segment, std::ios::binary | std::ios::app);
    const char huge[8] = {'\xff', '\xff', '\xff', '\x7f', 0, 0, 0, 0};
    f.write(huge, sizeof(huge));
    f.write("garbage", 7);
  }
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  EXPECT_THAT(Payloads(replay), ElementsAre("good"));
}

TEST_F(WriteAheadLogTest, GarbageFileWithSegmentNameIsDropped) {
  fs::create_directories(Options().directory);
  std::ofstream(Options().directory + "/wal-0000000000000007.log")
      << "not a wal segment";
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  EXPECT_TRUE(replay.empty());
  ASSERT_TRUE(wal->Append({"x"}).ok());
}

TEST_F(WriteAheadLogTest, ConcurrentAppendersShareSyncs) {
  std::vector<WalRecord> replay;
  auto wal = Open(&replay);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!wal->Append({absl::StrCat(t, "-", i)}).ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  WalStats stats = wal->stats();
  EXPECT_EQ(stats.appended, uint64_t{kThreads * kPerThread});
  // Not a speed claim: only that group commit happened at all.
  EXPECT_LE(stats.syncs, stats.appended);
  wal.reset();
  replay.clear();
  wal = Open(&replay);
  EXPECT_EQ(replay.size(), size_t{kThreads * kPerThread});
}

TEST_F(WriteAheadLogTest, UnwritableDirectoryIsAClearError) {
  if (geteuid() == 0) {
    // root ignores permissions; use a path under a regular file instead.
    std::ofstream(dir_.File("file")) << "x";
    WriteAheadLogOptions options;
    options.directory = dir_.File("file") + "/wal";
    std::vector<WalRecord> replay;
    auto wal = WriteAheadLog::Open(options, &replay);
    ASSERT_FALSE(wal.ok());
    EXPECT_THAT(std::string(wal.status().message()),
                HasSubstr("cannot create WAL directory"));
    return;
  }
  fs::create_directories(dir_.File("ro"));
  chmod(dir_.File("ro").c_str(), 0500);
  WriteAheadLogOptions options;
  options.directory = dir_.File("ro");
  std::vector<WalRecord> replay;
  auto wal = WriteAheadLog::Open(options, &replay);
  ASSERT_FALSE(wal.ok());
  EXPECT_THAT(std::string(wal.status().message()), HasSubstr("WAL"));
}

}  // namespace
}  // namespace qfp
