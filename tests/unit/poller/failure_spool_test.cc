#include "poller-service/failure_spool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace qfp::poller {
namespace {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

FailureId Id(uint64_t sequence, const std::string& instance = "inst-a") {
  FailureId id;
  id.set_poller_id("poller-1");
  id.set_instance_id(instance);
  id.set_sequence(sequence);
  return id;
}

// A failure whose message pads it to a predictable serialized size.
PollFailure Failure(uint64_t sequence, size_t padding = 40,
                    const std::string& instance = "inst-a") {
  PollFailure failure;
  *failure.mutable_id() = Id(sequence, instance);
  failure.set_server_name("sense1");
  failure.set_source(failedpolls::v1::HEALTH_API);
  failure.set_error_category(failedpolls::v1::ERROR_CATEGORY_TIMEOUT);
  failure.set_message(std::string(padding, 'x'));
  failure.mutable_occurred_at()->set_seconds(1700000000 +
                                             static_cast<int64_t>(sequence));
  return failure;
}

// The sequences held, oldest first, read in pages of `page`.
std::vector<uint64_t> Held(const FailureSpool& spool, size_t page = 1000) {
  std::vector<uint64_t> sequences;
  uint64_t cursor = 0;
  uint64_t last_position = 0;
  while (true) {
    size_t seen = 0;
    cursor = spool.VisitFrom(
        cursor, page, [&](uint64_t position, absl::string_view serialized) {
          EXPECT_GT(position, last_position) << "positions must increase";
          last_position = position;
          PollFailure failure;
          EXPECT_TRUE(failure.ParseFromArray(
              serialized.data(), static_cast<int>(serialized.size())));
          sequences.push_back(failure.id().sequence());
          ++seen;
        });
    if (seen < page) break;
  }
  return sequences;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> values;
  for (uint64_t i = first; i <= last; ++i) values.push_back(i);
  return values;
}

size_t SerializedSize(uint64_t sequence, size_t padding = 40) {
  return Failure(sequence, padding).SerializeAsString().size();
}

// ---------------------------------------------------------------------------
// The contract, run against both implementations.

struct MemoryKind {
  static std::unique_ptr<FailureSpool> Make(const std::string& /*dir*/,
                                            SpoolLimits limits) {
    return std::make_unique<MemorySpool>(limits);
  }
};

struct DiskKind {
  static std::unique_ptr<FailureSpool> Make(const std::string& dir,
                                            SpoolLimits limits) {
    DiskSpoolOptions options;
    options.segment_bytes = 4096;  // rotate often, to cross segments
    return std::make_unique<DiskSpool>(dir + "/spool", limits, options);
  }
};

template <typename Kind>
class SpoolContractTest : public ::testing::Test {
 protected:
  std::unique_ptr<FailureSpool> Open(SpoolLimits limits = {}) {
    std::unique_ptr<FailureSpool> spool = Kind::Make(dir_.path(), limits);
    absl::Status status = spool->Open();
    EXPECT_TRUE(status.ok()) << status;
    return spool;
  }

  testing::TempDir dir_;
};

using SpoolKinds = ::testing::Types<MemoryKind, DiskKind>;
class KindNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MemoryKind> ? "Memory" : "Disk";
  }
};
TYPED_TEST_SUITE(SpoolContractTest, SpoolKinds, KindNames);

TYPED_TEST(SpoolContractTest, HoldsFailuresInTheOrderAdded) {
  auto spool = this->Open();
  for (uint64_t i = 1; i <= 50; ++i) ASSERT_TRUE(spool->Add(Failure(i)).ok());
  EXPECT_EQ(spool->size(), 50u);
  EXPECT_EQ(spool->bytes(), 50 * SerializedSize(1));
  EXPECT_EQ(Held(*spool), Range(1, 50));
  EXPECT_EQ(Held(*spool, 7), Range(1, 50));  // paging keeps the order
  EXPECT_EQ(spool->dropped(), 0u);
}

TYPED_TEST(SpoolContractTest, KeepsOneCopyOfAnId) {
  auto spool = this->Open();
  ASSERT_TRUE(spool->Add(Failure(1)).ok());
  EXPECT_EQ(spool->Add(Failure(1)).code(), absl::StatusCode::kAlreadyExists);
  // The same sequence from another instance is another failure.
  EXPECT_TRUE(spool->Add(Failure(1, 40, "inst-b")).ok());
  EXPECT_EQ(spool->size(), 2u);
}

TYPED_TEST(SpoolContractTest, AcknowledgeRemoves) {
  auto spool = this->Open();
  for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(spool->Add(Failure(i)).ok());
  EXPECT_EQ(spool->Acknowledge(Id(2)), 1u);
  EXPECT_EQ(spool->Acknowledge(Id(2)), 0u);   // already gone
  EXPECT_EQ(spool->Acknowledge(Id(99)), 0u);  // never held
  std::vector<FailureId> batch = {Id(4), Id(5), Id(4)};
  EXPECT_EQ(spool->Acknowledge(batch), 2u);
  EXPECT_THAT(Held(*spool), ElementsAre(1u, 3u));
  EXPECT_EQ(spool->size(), 2u);
  EXPECT_EQ(spool->bytes(), 2 * SerializedSize(1));
  EXPECT_FALSE(spool->Find(Id(2), [](uint64_t, absl::string_view) {}));
  bool found = false;
  EXPECT_TRUE(spool->Find(Id(3), [&](uint64_t, absl::string_view bytes) {
    PollFailure failure;
    ASSERT_TRUE(failure.ParseFromArray(bytes.data(),
                                       static_cast<int>(bytes.size())));
    EXPECT_EQ(failure.id().sequence(), 3u);
    found = true;
  }));
  EXPECT_TRUE(found);
}

TYPED_TEST(SpoolContractTest, CountBoundDropsTheOldestAndCountsThem) {
  SpoolLimits limits;
  limits.max_failures = 100;
  auto spool = this->Open(limits);
  for (uint64_t i = 1; i <= 150; ++i) {
    ASSERT_TRUE(spool->Add(Failure(i)).ok());
  }
  EXPECT_EQ(spool->size(), 100u);
  EXPECT_EQ(spool->dropped(), 50u);
  EXPECT_EQ(Held(*spool), Range(51, 150));
}

TYPED_TEST(SpoolContractTest, ByteBoundDropsTheOldestAndCountsThem) {
  SpoolLimits limits;
  limits.max_bytes = 10 * SerializedSize(1, 200);
  auto spool = this->Open(limits);
  for (uint64_t i = 1; i <= 25; ++i) {
    ASSERT_TRUE(spool->Add(Failure(i, 200)).ok());
  }
  EXPECT_EQ(spool->size(), 10u);
  EXPECT_LE(spool->bytes(), limits.max_bytes);
  EXPECT_EQ(spool->dropped(), 15u);
  EXPECT_EQ(Held(*spool), Range(16, 25));

  // A larger failure makes room by dropping as many old ones as it takes.
  ASSERT_TRUE(spool->Add(Failure(26, 700)).ok());
  EXPECT_LE(spool->bytes(), limits.max_bytes);
  // 11 were held for a moment; all but size() of them went.
  EXPECT_EQ(spool->dropped(), 15u + 11u - spool->size());
  EXPECT_LT(spool->size(), 10u);
  EXPECT_EQ(Held(*spool).back(), 26u);
}

TYPED_TEST(SpoolContractTest, FailureLargerThanTheByteBoundIsDroppedCounted) {
  SpoolLimits limits;
  limits.max_bytes = 1000;
  auto spool = this->Open(limits);
  ASSERT_TRUE(spool->Add(Failure(1)).ok());
  EXPECT_EQ(spool->Add(Failure(2, 5000)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(spool->dropped(), 1u);
  EXPECT_THAT(Held(*spool), ElementsAre(1u));
}

TYPED_TEST(SpoolContractTest, CursorIterationAfterPartialAcks) {
  auto spool = this->Open();
  for (uint64_t i = 1; i <= 20; ++i) ASSERT_TRUE(spool->Add(Failure(i)).ok());
  for (uint64_t i = 2; i <= 20; i += 2) spool->Acknowledge(Id(i));
  EXPECT_THAT(Held(*spool, 3),
              ElementsAre(1u, 3u, 5u, 7u, 9u, 11u, 13u, 15u, 17u, 19u));

  // A sender's cursor: a page, acks behind and ahead of it, new failures.
  std::vector<uint64_t> sent;
  auto collect = [&](uint64_t, absl::string_view bytes) {
    PollFailure failure;
    failure.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    sent.push_back(failure.id().sequence());
  };
  uint64_t cursor = spool->VisitFrom(0, 4, collect);
  EXPECT_THAT(sent, ElementsAre(1u, 3u, 5u, 7u));
  EXPECT_TRUE(spool->HasFrom(cursor));
  spool->Acknowledge(Id(3));   // behind the cursor
  spool->Acknowledge(Id(11));  // ahead of it: never sent
  cursor = spool->VisitFrom(cursor, 100, collect);
  EXPECT_THAT(sent, ElementsAre(1u, 3u, 5u, 7u, 9u, 13u, 15u, 17u, 19u));
  EXPECT_FALSE(spool->HasFrom(cursor));
  ASSERT_TRUE(spool->Add(Failure(21)).ok());
  EXPECT_TRUE(spool->HasFrom(cursor));
  spool->VisitFrom(cursor, 100, collect);
  EXPECT_EQ(sent.back(), 21u);
  // A new stream starts again from the beginning.
  EXPECT_THAT(Held(*spool), ElementsAre(1u, 5u, 7u, 9u, 13u, 15u, 17u, 19u, 21u));
}

TYPED_TEST(SpoolContractTest, ConcurrentAddsAndAcknowledgementsStayConsistent) {
  auto spool = this->Open();
  constexpr uint64_t kCount = 2000;
  std::thread producer([&] {
    for (uint64_t i = 1; i <= kCount; ++i) {
      EXPECT_TRUE(spool->Add(Failure(i)).ok());
    }
  });
  // Acknowledges every odd failure as it appears (bounded: each iteration
  // either acknowledges one or yields; the producer always finishes).
  size_t acknowledged = 0;
  for (uint64_t next = 1; next <= kCount; next += 2) {
    while (spool->Acknowledge(Id(next)) == 0) std::this_thread::yield();
    ++acknowledged;
  }
  producer.join();
  EXPECT_EQ(acknowledged, kCount / 2);
  EXPECT_EQ(spool->size(), kCount / 2);
  std::vector<uint64_t> evens;
  for (uint64_t i = 2; i <= kCount; i += 2) evens.push_back(i);
  EXPECT_EQ(Held(*spool), evens);
}

// ---------------------------------------------------------------------------
// DiskSpool only.

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("spool-", 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
}

class DiskSpoolTest : public ::testing::Test {
 protected:
  std::string Dir() const { return dir_.path() + "/spool"; }

  std::unique_ptr<DiskSpool> Open(SpoolLimits limits = {},
                                  uint64_t segment_bytes = 4096) {
    DiskSpoolOptions options;
    options.segment_bytes = segment_bytes;
    auto spool = std::make_unique<DiskSpool>(Dir(), limits, options);
    absl::Status status = spool->Open();
    EXPECT_TRUE(status.ok()) << status;
    return spool;
  }

  testing::TempDir dir_;
};

TEST(Crc32cTest, MatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  // Incremental use gives the same value as one pass.
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), 0xE3069283u);
}

TEST_F(DiskSpoolTest, ReopenRestoresExactlyTheUnacknowledgedInOrder) {
  std::vector<std::string> originals;
  {
    auto spool = Open();
    for (uint64_t i = 1; i <= 60; ++i) {
      ASSERT_TRUE(spool->Add(Failure(i)).ok());
    }
    for (uint64_t i = 1; i <= 60; i += 3) spool->Acknowledge(Id(i));
    EXPECT_EQ(spool->reloaded(), 0u);
    spool->VisitFrom(0, 1000, [&](uint64_t, absl::string_view bytes) {
      originals.emplace_back(bytes);
    });
  }
  auto spool = Open();
  EXPECT_EQ(spool->reloaded(), 40u);
  EXPECT_EQ(spool->size(), 40u);
  EXPECT_EQ(spool->truncated_records(), 0u);
  std::vector<std::string> reloaded;
  spool->VisitFrom(0, 1000, [&](uint64_t, absl::string_view bytes) {
    reloaded.emplace_back(bytes);
  });
  // Byte for byte: the same ids, timestamps and everything else.
  EXPECT_EQ(reloaded, originals);

  // New failures go after the reloaded ones, and a third run sees both.
  ASSERT_TRUE(spool->Add(Failure(1, 40, "inst-b")).ok());
  spool->Acknowledge(Id(2));
  spool.reset();
  spool = Open();
  EXPECT_EQ(spool->size(), 40u);
  std::vector<uint64_t> held = Held(*spool);
  EXPECT_EQ(held.front(), 3u);
  EXPECT_EQ(held.back(), 1u);  // inst-b's first failure, added last
}

TEST_F(DiskSpoolTest, DroppedFailuresDoNotComeBack) {
  SpoolLimits limits;
  limits.max_failures = 10;
  {
    auto spool = Open(limits);
    for (uint64_t i = 1; i <= 30; ++i) {
      ASSERT_TRUE(spool->Add(Failure(i)).ok());
    }
    EXPECT_EQ(spool->dropped(), 20u);
  }
  auto spool = Open(limits);
  EXPECT_EQ(Held(*spool), Range(21, 30));
  EXPECT_EQ(spool->dropped(), 0u);
}

TEST_F(DiskSpoolTest, SmallerLimitsAtOpenDropTheOldestCounted) {
  {
    auto spool = Open();
    for (uint64_t i = 1; i <= 30; ++i) {
      ASSERT_TRUE(spool->Add(Failure(i)).ok());
    }
  }
  SpoolLimits limits;
  limits.max_failures = 12;
  {
    auto spool = Open(limits);
    EXPECT_EQ(spool->dropped(), 18u);
    EXPECT_EQ(spool->reloaded(), 12u);
    EXPECT_EQ(Held(*spool), Range(19, 30));
  }
  auto spool = Open();
  EXPECT_EQ(Held(*spool), Range(19, 30));
}

// Writes `count` failures in a first run and returns the path of the one
// segment holding them.
std::string WriteOneSegment(uint64_t count, const std::string& dir) {
  DiskSpoolOptions options;
  options.segment_bytes = 1 << 20;
  DiskSpool spool(dir, SpoolLimits{}, options);
  EXPECT_TRUE(spool.Open().ok());
  for (uint64_t i = 1; i <= count; ++i) {
    EXPECT_TRUE(spool.Add(Failure(i)).ok());
  }
  return dir + "/spool-000001.log";
}

TEST_F(DiskSpoolTest, TornTailIsTruncatedAndEverythingBeforeKept) {
  const std::string segment = WriteOneSegment(5, Dir());
  const std::string contents = ReadFile(segment);
  // Cut the last record in the middle of its payload.
  WriteFile(segment, contents.substr(0, contents.size() - 10));
  {
    auto spool = Open();
    EXPECT_EQ(spool->truncated_records(), 1u);
    EXPECT_EQ(Held(*spool), Range(1, 4));
  }
  // The cut is permanent: the next run finds nothing to repair.
  auto spool = Open();
  EXPECT_EQ(spool->truncated_records(), 0u);
  EXPECT_EQ(Held(*spool), Range(1, 4));
}

TEST_F(DiskSpoolTest, FlippedByteInTheLastRecordIsDetected) {
  const std::string segment = WriteOneSegment(5, Dir());
  std::string contents = ReadFile(segment);
  contents[contents.size() - 3] ^= 0x20;
  WriteFile(segment, contents);
  auto spool = Open();
  EXPECT_EQ(spool->truncated_records(), 1u);
  EXPECT_EQ(Held(*spool), Range(1, 4));
}

TEST_F(DiskSpoolTest, EveryCutOfASegmentLoadsTheCompleteRecordsOnly) {
  const std::string source = dir_.path() + "/source";
  const std::string segment = WriteOneSegment(3, source);
  const std::string contents = ReadFile(segment);
  const size_t record = (contents.size() - 8) / 3;  // equal-sized records
  for (size_t cut = 0; cut <= contents.size(); ++cut) {
    SCOPED_TRACE(absl::StrCat("cut at byte ", cut));
    const std::string dir = absl::StrCat(dir_.path(), "/cut", cut);
    fs::create_directories(dir);
    WriteFile(dir + "/spool-000001.log", contents.substr(0, cut));
    DiskSpool spool(dir, SpoolLimits{});
    ASSERT_TRUE(spool.Open().ok());
    const size_t complete = cut < 8 ? 0 : (cut - 8) / record;
    EXPECT_EQ(Held(spool), Range(1, complete));
    const bool clean = cut == contents.size() || cut == 0 ||
                       (cut >= 8 && (cut - 8) % record == 0);
    EXPECT_EQ(spool.truncated_records(), clean ? 0u : 1u);
    fs::remove_all(dir);
  }
}

TEST_F(DiskSpoolTest, GarbageInASegmentNeverCrashes) {
  fs::create_directories(Dir());
  // A huge length, random bytes, and a file that is not a segment at all.
  std::string header = "QFPSPL01";
  std::string huge_length = header + std::string("\x01\x02\x03\x04", 4) +
                            std::string("\xff\xff\xff\x7f", 4) +
                            std::string(20, '\x01');
  WriteFile(Dir() + "/spool-000001.log", huge_length);
  std::string noise;
  for (int i = 0; i < 5000; ++i) {
    noise.push_back(static_cast<char>((i * 7919) & 0xff));
  }
  WriteFile(Dir() + "/spool-000002.log", header + noise);
  WriteFile(Dir() + "/spool-000003.log", noise);
  WriteFile(Dir() + "/spool-000004.log", "");
  auto spool = Open();
  EXPECT_EQ(spool->size(), 0u);
  EXPECT_EQ(spool->truncated_records(), 3u);
  ASSERT_TRUE(spool->Add(Failure(1)).ok());
  spool.reset();
  spool = Open();
  EXPECT_THAT(Held(*spool), ElementsAre(1u));
}

TEST_F(DiskSpoolTest, RotatesSegmentsAndDeletesFullyAcknowledgedOnes) {
  auto spool = Open(SpoolLimits{}, /*segment_bytes=*/2048);
  for (uint64_t i = 1; i <= 100; ++i) {
    ASSERT_TRUE(spool->Add(Failure(i, 100)).ok());
  }
  const size_t segments = spool->segment_count();
  EXPECT_GE(segments, 5u);
  EXPECT_EQ(SegmentFiles(Dir()).size(), segments);

  // Acknowledging the first half frees the segments that held only those.
  for (uint64_t i = 1; i <= 50; ++i) spool->Acknowledge(Id(i));
  EXPECT_LT(spool->segment_count(), segments);
  EXPECT_GT(spool->segment_count(), 1u);
  EXPECT_EQ(SegmentFiles(Dir()).size(), spool->segment_count());

  for (uint64_t i = 51; i <= 100; ++i) spool->Acknowledge(Id(i));
  EXPECT_EQ(spool->segment_count(), 1u);  // the head, appended to
  EXPECT_EQ(SegmentFiles(Dir()).size(), 1u);
  spool.reset();
  spool = Open();
  EXPECT_EQ(spool->size(), 0u);
}

TEST_F(DiskSpoolTest, ASegmentWithOneUnacknowledgedFailureIsKept) {
  {
    auto spool = Open(SpoolLimits{}, 2048);
    // Little enough that the files are not worth compacting.
    for (uint64_t i = 1; i <= 20; ++i) {
      ASSERT_TRUE(spool->Add(Failure(i, 100)).ok());
    }
    for (uint64_t i = 2; i <= 20; ++i) spool->Acknowledge(Id(i));
    EXPECT_GE(spool->segment_count(), 2u);
  }
  auto spool = Open(SpoolLimits{}, 2048);
  EXPECT_THAT(Held(*spool), ElementsAre(1u));
}

TEST_F(DiskSpoolTest, OneStuckFailureDoesNotMakeTheFilesGrowForever) {
  constexpr uint64_t kSegment = 2048;
  auto spool = Open(SpoolLimits{}, kSegment);
  ASSERT_TRUE(spool->Add(Failure(1, 100)).ok());  // never acknowledged
  uint64_t most_disk = 0;
  for (uint64_t i = 2; i <= 3001; ++i) {
    ASSERT_TRUE(spool->Add(Failure(i, 100)).ok());
    if (i % 5 == 1) {
      for (uint64_t j = i - 4; j <= i; ++j) spool->Acknowledge(Id(j));
    }
    most_disk = std::max(most_disk, spool->disk_bytes());
  }
  // 3000 failures of ~150 bytes went through; the files never held more
  // than the documented bound (plus the few records since the last check).
  EXPECT_THAT(Held(*spool), ElementsAre(1u));
  EXPECT_LE(most_disk, 2 * 6 * SerializedSize(1, 100) + 3 * kSegment);
  spool.reset();
  spool = Open(SpoolLimits{}, kSegment);
  EXPECT_THAT(Held(*spool), ElementsAre(1u));
}

TEST_F(DiskSpoolTest, UncreatableDirectoryIsAClearError) {
  // A path below a regular file cannot be created, even by root.
  const std::string file = dir_.Write("plain-file", "x");
  DiskSpool spool(file + "/spool", SpoolLimits{});
  absl::Status status = spool.Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("cannot create spool directory \"" + file + "/spool"));
}

TEST_F(DiskSpoolTest, NonWritableDirectoryIsAClearError) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes regardless of mode bits";
  fs::create_directories(Dir());
  ASSERT_EQ(chmod(Dir().c_str(), 0500), 0);
  DiskSpool spool(Dir(), SpoolLimits{});
  absl::Status status = spool.Open();
  chmod(Dir().c_str(), 0700);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("cannot write in spool directory \"" + Dir()));
}

TEST_F(DiskSpoolTest, ASecondSpoolOnTheSameDirectoryIsRefused) {
  auto first = Open();
  DiskSpool second(Dir(), SpoolLimits{});
  absl::Status status = second.Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("in use"));
  first.reset();
  DiskSpool third(Dir(), SpoolLimits{});
  EXPECT_TRUE(third.Open().ok());
}

TEST_F(DiskSpoolTest, SyncMakesAppendsDurableWithoutError) {
  auto spool = Open();
  ASSERT_TRUE(spool->Add(Failure(1)).ok());
  EXPECT_TRUE(spool->Sync().ok());
  EXPECT_TRUE(spool->Sync().ok());  // nothing new: a no-op
}

}  // namespace
}  // namespace qfp::poller
