#include "poller-service/failure_spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;

// ---------------------------------------------------------------------------
// CRC-32C

namespace {

constexpr uint32_t kCastagnoliReversed = 0x82F63B78u;

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1u) != 0 ? (crc >> 1) ^ kCastagnoliReversed : crc >> 1;
    }
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

}  // namespace

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
  crc = ~crc;
  for (const char c : data) {
    crc = kCrcTable[(crc ^ static_cast<uint8_t>(c)) & 0xffu] ^ (crc >> 8);
  }
  return ~crc;
}

// ---------------------------------------------------------------------------
// PendingQueue, DropReporter

namespace spool_internal {

PendingQueue::Key PendingQueue::KeyOf(const FailureId& id) {
  return Key(id.poller_id(), id.instance_id(), id.sequence());
}

bool PendingQueue::Insert(uint64_t position, Entry entry) {
  if (entries_.count(position) > 0 || by_key_.count(entry.key) > 0) {
    return false;
  }
  bytes_ += entry.serialized.size();
  by_key_.emplace(entry.key, position);
  entries_.emplace(position, std::move(entry));
  return true;
}

PendingQueue::Entry* PendingQueue::Find(uint64_t position) {
  auto it = entries_.find(position);
  return it == entries_.end() ? nullptr : &it->second;
}

bool PendingQueue::Remove(uint64_t position, Entry* removed) {
  auto it = entries_.find(position);
  if (it == entries_.end()) return false;
  bytes_ -= it->second.serialized.size();
  by_key_.erase(it->second.key);
  *removed = std::move(it->second);
  entries_.erase(it);
  return true;
}

uint64_t PendingQueue::PositionOf(const Key& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? 0 : it->second;
}

uint64_t PendingQueue::VisitFrom(uint64_t from, size_t max, uint64_t end,
                                 SpoolVisitor visit) const {
  size_t visited = 0;
  for (auto it = entries_.lower_bound(from); it != entries_.end(); ++it) {
    if (visited == max) return it->first;
    visit(it->first, it->second.serialized);
    ++visited;
  }
  // Nothing held past here: the next failure added gets `end` or later.
  return std::max(from, end);
}

bool PendingQueue::HasFrom(uint64_t from) const {
  return entries_.lower_bound(from) != entries_.end();
}

void DropReporter::Dropped(size_t count, const SpoolLimits& limits) {
  if (count == 0) return;
  // Overflow happens in floods: one line per interval, not per failure.
  constexpr absl::Duration kReportInterval = absl::Seconds(10);
  total_ += count;
  unreported_ += count;
  const absl::Time now = absl::Now();
  if (now - last_report_ < kReportInterval) return;
  spdlog::warn(
      "{} is full ({} failures / {} bytes at most): dropped the {} oldest "
      "failures since the last report, {} in all; is the tracker reachable?",
      what_, limits.max_failures, limits.max_bytes, unreported_, total_);
  unreported_ = 0;
  last_report_ = now;
}

}  // namespace spool_internal

using spool_internal::PendingQueue;

// ---------------------------------------------------------------------------
// MemorySpool

MemorySpool::MemorySpool(SpoolLimits limits)
    : QueuedSpool(limits, "the in-memory failure spool") {}

absl::Status MemorySpool::Add(PollFailure failure) {
  PendingQueue::Entry entry;
  entry.key = PendingQueue::KeyOf(failure.id());
  absl::MutexLock lock(&mu_);
  if (queue_.Contains(entry.key)) {
    return absl::AlreadyExistsError("a failure with this id is spooled");
  }
  entry.serialized = failure.SerializeAsString();
  if (entry.serialized.size() > limits_.max_bytes) {
    drops_.Dropped(1, limits_);
    return absl::ResourceExhaustedError(absl::StrCat(
        "a failure of ", entry.serialized.size(),
        " bytes exceeds the spool's byte limit"));
  }
  queue_.Insert(next_position_++, std::move(entry));
  size_t dropped = 0;
  PendingQueue::Entry removed;
  while (!queue_.empty() && (queue_.size() > limits_.max_failures ||
                             queue_.bytes() > limits_.max_bytes)) {
    queue_.Remove(queue_.entries().begin()->first, &removed);
    ++dropped;
  }
  drops_.Dropped(dropped, limits_);
  return absl::OkStatus();
}

size_t MemorySpool::Acknowledge(absl::Span<const FailureId> ids) {
  absl::MutexLock lock(&mu_);
  size_t removed_count = 0;
  PendingQueue::Entry removed;
  for (const FailureId& id : ids) {
    const uint64_t position = queue_.PositionOf(PendingQueue::KeyOf(id));
    if (position != 0 && queue_.Remove(position, &removed)) ++removed_count;
  }
  return removed_count;
}

uint64_t QueuedSpool::VisitFrom(uint64_t from, size_t max,
                                SpoolVisitor visit) const {
  absl::MutexLock lock(&mu_);
  return queue_.VisitFrom(from, max, next_position_, visit);
}

bool QueuedSpool::HasFrom(uint64_t from) const {
  absl::MutexLock lock(&mu_);
  return queue_.HasFrom(from);
}

bool QueuedSpool::Find(const FailureId& id, SpoolVisitor visit) const {
  absl::MutexLock lock(&mu_);
  const uint64_t position = queue_.PositionOf(PendingQueue::KeyOf(id));
  if (position == 0) return false;
  visit(position, queue_.entries().at(position).serialized);
  return true;
}

size_t QueuedSpool::size() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

uint64_t QueuedSpool::bytes() const {
  absl::MutexLock lock(&mu_);
  return queue_.bytes();
}

uint64_t QueuedSpool::dropped() const {
  absl::MutexLock lock(&mu_);
  return drops_.total();
}

// ---------------------------------------------------------------------------
// DiskSpool: file format

namespace {

constexpr char kMagic[] = "QFPSPL01";
constexpr size_t kMagicSize = 8;
// crc (4) + length (4) + type (1) + position (8).
constexpr size_t kHeaderSize = 17;
constexpr uint8_t kFailureRecord = 1;
constexpr uint8_t kRemovalRecord = 2;
// No PollFailure comes near this; a larger length is corruption.
constexpr uint32_t kMaxPayload = 16u << 20;
// Positions per removal record (8 bytes each), well under kMaxPayload.
constexpr size_t kMaxRemovalsPerRecord = 65536;

void PutU32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
  }
}

void PutU64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
  }
}

uint32_t GetU32(const char* p) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) {
    value = (value << 8) | static_cast<uint8_t>(p[i]);
  }
  return value;
}

uint64_t GetU64(const char* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) {
    value = (value << 8) | static_cast<uint8_t>(p[i]);
  }
  return value;
}

std::string EncodeRecord(uint8_t type, uint64_t position,
                         absl::string_view payload) {
  std::string record;
  record.reserve(kHeaderSize + payload.size());
  PutU32(record, 0);  // the CRC, filled in below
  PutU32(record, static_cast<uint32_t>(payload.size()));
  record.push_back(static_cast<char>(type));
  PutU64(record, position);
  record.append(payload.data(), payload.size());
  const uint32_t crc = Crc32c(absl::string_view(record).substr(4));
  for (int i = 0; i < 4; ++i) {
    record[static_cast<size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xffu);
  }
  return record;
}

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

std::string SegmentName(uint32_t number) {
  return absl::StrFormat("spool-%06u.log", number);
}

// "spool-000012.log" -> 12; 0 for any other name.
uint32_t SegmentNumber(const std::string& name) {
  constexpr absl::string_view kPrefix = "spool-";
  constexpr absl::string_view kSuffix = ".log";
  absl::string_view view(name);
  if (view.size() <= kPrefix.size() + kSuffix.size() ||
      view.substr(0, kPrefix.size()) != kPrefix ||
      view.substr(view.size() - kSuffix.size()) != kSuffix) {
    return 0;
  }
  view = view.substr(kPrefix.size(),
                     view.size() - kPrefix.size() - kSuffix.size());
  if (!std::all_of(view.begin(), view.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  uint32_t number = 0;
  if (!absl::SimpleAtoi(view, &number)) return 0;
  return number;
}

bool ReadWholeFile(const std::string& path, std::string* contents,
                   std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = ErrnoText(errno);
    return false;
  }
  contents->clear();
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = ErrnoText(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    contents->append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

absl::Status SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open \"", directory,
                                            "\": ", ErrnoText(errno)));
  }
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) {
    return absl::InternalError(absl::StrCat("fsync of \"", directory,
                                            "\" failed: ", ErrnoText(error)));
  }
  return absl::OkStatus();
}

}  // namespace

// An open segment file. Shared between the appending thread and the sync
// thread, so it closes when the last of them lets go.
class DiskSpool::File {
 public:
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }

  // Writes all of `data` at the end. On failure the file is cut back to its
  // previous length so a partial record never sits before later ones.
  absl::Status Append(absl::string_view data, uint64_t size_before) {
    size_t written = 0;
    while (written < data.size()) {
      const ssize_t n =
          ::write(fd_, data.data() + written, data.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int error = n < 0 ? errno : EIO;
        if (::ftruncate(fd_, static_cast<off_t>(size_before)) != 0) {
          broken_ = true;  // a torn record stays: start a new segment
        }
        return absl::UnavailableError(absl::StrCat(
            "cannot write to \"", path_, "\": ", ErrnoText(error)));
      }
      written += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() {
    if (::fdatasync(fd_) != 0) {
      return absl::UnavailableError(absl::StrCat(
          "fsync of \"", path_, "\" failed: ", ErrnoText(errno)));
    }
    return absl::OkStatus();
  }

  bool broken() const { return broken_; }

 private:
  const int fd_;
  const std::string path_;
  bool broken_ = false;
};

// ---------------------------------------------------------------------------
// DiskSpool

DiskSpool::DiskSpool(std::string directory, SpoolLimits limits,
                     DiskSpoolOptions options)
    : QueuedSpool(limits, absl::StrCat("the failure spool in ", directory)),
      directory_(std::move(directory)),
      options_(options) {}

DiskSpool::~DiskSpool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (sync_thread_.joinable()) sync_thread_.join();
  absl::MutexLock lock(&mu_);
  if (head_ != nullptr && dirty_) {
    if (absl::Status status = head_->Sync(); !status.ok()) {
      spdlog::warn("failure spool: {}", std::string(status.message()));
    }
  }
  head_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string DiskSpool::Describe() const {
  return absl::StrCat("directory ", directory_);
}

absl::Status DiskSpool::Open() {
  absl::MutexLock lock(&mu_);
  if (opened_) return absl::FailedPreconditionError("spool already open");
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(directory_, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create spool directory \"", directory_,
                     "\": ", error.message()));
  }
  const std::string lock_path = directory_ + "/LOCK";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write in spool directory \"", directory_,
                     "\": ", ErrnoText(errno)));
  }
  // Two pollers appending to one directory would corrupt each other.
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int lock_error = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    return absl::FailedPreconditionError(absl::StrCat(
        "spool directory \"", directory_, "\" is in use by another process (",
        ErrnoText(lock_error), ")"));
  }

  std::vector<uint32_t> numbers;
  for (fs::directory_iterator it(directory_, error), end; !error && it != end;
       it.increment(error)) {
    const uint32_t number = SegmentNumber(it->path().filename().string());
    if (number != 0) numbers.push_back(number);
  }
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list spool directory \"", directory_,
                     "\": ", error.message()));
  }
  std::sort(numbers.begin(), numbers.end());
  for (const uint32_t number : numbers) {
    Segment& segment = segments_[number];
    segment.number = number;
    segment.path = absl::StrCat(directory_, "/", SegmentName(number));
    if (absl::Status status = LoadSegment(segment); !status.ok()) {
      return status;
    }
  }
  // Never append to a segment written by an earlier run: its tail may have
  // just been cut, and a fresh file keeps that simple.
  if (absl::Status status = StartSegment(); !status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write in spool directory \"", directory_,
                     "\": ", status.message()));
  }
  std::vector<uint64_t> dropped;
  EnforceLimitsLocked(&dropped);
  RemoveLocked(dropped);
  drops_.Dropped(dropped.size(), limits_);
  reloaded_ = queue_.size();
  ReclaimLocked();
  opened_ = true;
  sync_thread_ = std::thread([this] { SyncLoop(); });
  return absl::OkStatus();
}

absl::Status DiskSpool::LoadSegment(Segment& segment) {
  std::string contents;
  std::string read_error;
  if (!ReadWholeFile(segment.path, &contents, &read_error)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read spool segment \"", segment.path,
                     "\": ", read_error));
  }
  size_t offset = 0;
  std::string problem;
  if (contents.empty()) {
    // Created just before a crash: holds nothing.
  } else if (contents.size() < kMagicSize ||
             absl::string_view(contents).substr(0, kMagicSize) !=
                 absl::string_view(kMagic, kMagicSize)) {
    problem = "no spool segment header";
  } else {
    offset = kMagicSize;
  }
  while (problem.empty() && offset < contents.size()) {
    // Every length read from the file is checked against what remains
    // before it is used: these bytes may be torn or damaged.
    const size_t remaining = contents.size() - offset;
    const char* record = contents.data() + offset;
    if (remaining < kHeaderSize) {
      problem = "torn record header";
      break;
    }
    const uint32_t crc = GetU32(record);
    const uint32_t length = GetU32(record + 4);
    const uint8_t type = static_cast<uint8_t>(record[8]);
    const uint64_t position = GetU64(record + 9);
    if (length > kMaxPayload) {
      problem = absl::StrCat("record length ", length, " out of range");
      break;
    }
    if (length > remaining - kHeaderSize) {
      problem = "torn record";
      break;
    }
    const absl::string_view checked(record + 4, kHeaderSize - 4 + length);
    if (Crc32c(checked) != crc) {
      problem = "checksum mismatch";
      break;
    }
    const absl::string_view payload(record + kHeaderSize, length);
    if (type == kFailureRecord) {
      PollFailure failure;
      if (position == 0 ||
          !failure.ParseFromArray(payload.data(), static_cast<int>(length))) {
        problem = "unreadable failure record";
        break;
      }
      next_position_ = std::max(next_position_, position + 1);
      if (PendingQueue::Entry* held = queue_.Find(position)) {
        // A copy made by a compaction the last run did not finish.
        if (std::find(held->segments.begin(), held->segments.end(),
                      segment.number) == held->segments.end()) {
          held->segments.push_back(segment.number);
          ++segment.held_count;
          segment.held_bytes += held->serialized.size();
        }
      } else {
        PendingQueue::Entry entry;
        entry.key = PendingQueue::KeyOf(failure.id());
        entry.serialized = std::string(payload);
        entry.segments.push_back(segment.number);
        const uint64_t size = entry.serialized.size();
        if (queue_.Insert(position, std::move(entry))) {
          ++segment.held_count;
          segment.held_bytes += size;
        }
        // else: the same id under another position; the first one stands.
      }
    } else if (type == kRemovalRecord && length % 8 == 0 && position == 0) {
      ApplyRemoval(segment, payload);
    } else {
      problem = absl::StrCat("unknown record type ", type);
      break;
    }
    offset += kHeaderSize + length;
  }
  segment.file_bytes = problem.empty() ? contents.size() : offset;
  if (problem.empty()) return absl::OkStatus();

  ++truncated_records_;
  spdlog::warn(
      "failure spool: {} at byte {} of {}: truncating the {} bytes from "
      "there (failures recorded after it are lost)",
      problem, offset, segment.path, contents.size() - offset);
  if (::truncate(segment.path.c_str(), static_cast<off_t>(offset)) != 0) {
    // Not fatal: the same cut happens at every Open until it succeeds, and
    // the segment is deleted once nothing in it is needed.
    spdlog::warn("failure spool: cannot truncate {}: {}", segment.path,
                 ErrnoText(errno));
  }
  return absl::OkStatus();
}

void DiskSpool::ApplyRemoval(Segment& segment, absl::string_view payload) {
  PendingQueue::Entry removed;
  for (size_t i = 0; i + 8 <= payload.size(); i += 8) {
    const uint64_t position = GetU64(payload.data() + i);
    next_position_ = std::max(next_position_, position + 1);
    if (!queue_.Remove(position, &removed)) continue;
    for (const uint32_t number : removed.segments) {
      auto it = segments_.find(number);
      if (it == segments_.end()) continue;
      --it->second.held_count;
      it->second.held_bytes -= removed.serialized.size();
      if (number != segment.number) segment.removes_from.insert(number);
    }
  }
}

absl::Status DiskSpool::StartSegment() {
  const uint32_t number =
      segments_.empty() ? 1 : segments_.rbegin()->first + 1;
  const std::string path = absl::StrCat(directory_, "/", SegmentName(number));
  const int fd = ::open(path.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
                        0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create \"", path, "\": ", ErrnoText(errno)));
  }
  auto file = std::make_shared<File>(fd, path);
  if (absl::Status status =
          file->Append(absl::string_view(kMagic, kMagicSize), 0);
      !status.ok()) {
    file.reset();
    ::unlink(path.c_str());
    return status;
  }
  // The new name must survive a crash along with the records in it.
  if (absl::Status status = SyncDirectory(directory_); !status.ok()) {
    spdlog::warn("failure spool: {}", std::string(status.message()));
  }
  Segment& segment = segments_[number];
  segment.number = number;
  segment.path = path;
  segment.file_bytes = kMagicSize;
  head_ = std::move(file);
  head_number_ = number;
  // The previous head may now be deletable, or the files bloated.
  reclaim_due_ = true;
  return absl::OkStatus();
}

absl::Status DiskSpool::AppendRecord(uint8_t type, uint64_t position,
                                     absl::string_view payload) {
  if (head_ == nullptr) {
    if (absl::Status status = StartSegment(); !status.ok()) return status;
  }
  Segment* head = &segments_[head_number_];
  if (head_->broken() ||
      (head->file_bytes >= options_.segment_bytes &&
       head->file_bytes > kMagicSize)) {
    // Rotation: what the old segment holds is made durable before moving
    // on, so only the head ever has unsynced records.
    if (absl::Status status = head_->Sync(); !status.ok()) {
      spdlog::warn("failure spool: {}", std::string(status.message()));
    }
    std::shared_ptr<File> previous = std::move(head_);
    if (absl::Status status = StartSegment(); !status.ok()) {
      head_ = std::move(previous);  // keep appending to the full one
      if (head_->broken()) return status;
    }
    head = &segments_[head_number_];
  }
  const std::string record = EncodeRecord(type, position, payload);
  if (absl::Status status = head_->Append(record, head->file_bytes);
      !status.ok()) {
    ++write_errors_;
    return status;
  }
  head->file_bytes += record.size();
  return absl::OkStatus();
}

absl::Status DiskSpool::Add(PollFailure failure) {
  PendingQueue::Entry entry;
  entry.key = PendingQueue::KeyOf(failure.id());
  absl::MutexLock lock(&mu_);
  if (queue_.Contains(entry.key)) {
    return absl::AlreadyExistsError("a failure with this id is spooled");
  }
  entry.serialized = failure.SerializeAsString();
  if (entry.serialized.size() > limits_.max_bytes ||
      entry.serialized.size() > kMaxPayload) {
    drops_.Dropped(1, limits_);
    return absl::ResourceExhaustedError(absl::StrCat(
        "a failure of ", entry.serialized.size(),
        " bytes exceeds the spool's byte limit"));
  }
  const uint64_t position = next_position_++;
  absl::Status written =
      AppendRecord(kFailureRecord, position, entry.serialized);
  if (written.ok()) {
    Segment& head = segments_[head_number_];
    ++head.held_count;
    head.held_bytes += entry.serialized.size();
    entry.segments.push_back(head_number_);
    dirty_ = true;
  } else {
    // Still held (and sent) from memory; only a restart would lose it.
    if (write_errors_ == 1 || write_errors_ % 1000 == 0) {
      spdlog::warn(
          "failure spool: {} ({} write errors so far); failures are kept in "
          "memory only until writing works again",
          std::string(written.message()), write_errors_);
    }
    written = absl::UnavailableError(
        absl::StrCat("kept in memory only: ", written.message()));
  }
  queue_.Insert(position, std::move(entry));
  std::vector<uint64_t> dropped;
  EnforceLimitsLocked(&dropped);
  RemoveLocked(dropped);
  drops_.Dropped(dropped.size(), limits_);
  ReclaimLocked();
  return written;
}

void DiskSpool::EnforceLimitsLocked(std::vector<uint64_t>* dropped) {
  // Counts what would remain, so the removal is recorded in one go.
  size_t count = queue_.size();
  uint64_t bytes = queue_.bytes();
  for (const auto& [position, entry] : queue_.entries()) {
    if (count <= limits_.max_failures && bytes <= limits_.max_bytes) break;
    dropped->push_back(position);
    --count;
    bytes -= entry.serialized.size();
  }
}

void DiskSpool::RemoveLocked(const std::vector<uint64_t>& positions) {
  std::vector<uint64_t> removed_positions;
  std::vector<uint32_t> touched;  // segments the removed records were in
  PendingQueue::Entry removed;
  for (const uint64_t position : positions) {
    if (!queue_.Remove(position, &removed)) continue;
    removed_positions.push_back(position);
    for (const uint32_t number : removed.segments) {
      auto it = segments_.find(number);
      if (it == segments_.end()) continue;
      --it->second.held_count;
      it->second.held_bytes -= removed.serialized.size();
      touched.push_back(number);
    }
  }
  for (size_t start = 0; start < removed_positions.size();
       start += kMaxRemovalsPerRecord) {
    const size_t end =
        std::min(removed_positions.size(), start + kMaxRemovalsPerRecord);
    std::string payload;
    payload.reserve((end - start) * 8);
    for (size_t i = start; i < end; ++i) PutU64(payload, removed_positions[i]);
    if (absl::Status status = AppendRecord(kRemovalRecord, 0, payload);
        !status.ok()) {
      // Not fatal: the tracker deduplicates what a restart would resend.
      if (write_errors_ == 1 || write_errors_ % 1000 == 0) {
        spdlog::warn(
            "failure spool: cannot record acknowledgements ({}); a restart "
            "may resend failures the tracker already has",
            std::string(status.message()));
      }
      // Without the record, these failures come back only if the poller
      // restarts before their segments are deleted.
      continue;
    }
    // (Over-inclusive when there are several records: harmless, it only
    // keeps a segment a little longer.)
    Segment& head = segments_[head_number_];
    for (const uint32_t number : touched) {
      if (number != head_number_) head.removes_from.insert(number);
    }
  }
  if (!removed_positions.empty()) reclaim_due_ = true;
  ReclaimLocked();
}

bool DiskSpool::DeletableLocked(const Segment& segment) const {
  if (segment.number == head_number_ || segment.held_count > 0) return false;
  for (const uint32_t number : segment.removes_from) {
    if (segments_.count(number) > 0) return false;
  }
  return true;
}

void DiskSpool::DeleteSegmentLocked(uint32_t number) {
  auto it = segments_.find(number);
  if (it == segments_.end()) return;
  if (::unlink(it->second.path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("failure spool: cannot delete {}: {}", it->second.path,
                 ErrnoText(errno));
  }
  segments_.erase(it);
}

void DiskSpool::ReclaimLocked() {
  // Compaction appends, and appending may rotate; neither re-enters here.
  if (!reclaim_due_ || reclaiming_ || head_ == nullptr) return;
  reclaiming_ = true;
  reclaim_due_ = false;
  // Each pass deletes or compacts at least one segment, or stops.
  for (size_t passes = 0; passes < 2 * segments_.size() + 2; ++passes) {
    bool deleted = false;
    for (auto it = segments_.begin(); it != segments_.end();) {
      if (DeletableLocked(it->second)) {
        const uint32_t number = it->first;
        ++it;
        DeleteSegmentLocked(number);
        deleted = true;
      } else {
        ++it;
      }
    }
    if (deleted) continue;

    uint64_t disk = 0;
    for (const auto& [number, segment] : segments_) disk += segment.file_bytes;
    if (segments_.size() < 2 ||
        disk <= 2 * queue_.bytes() + 2 * options_.segment_bytes) {
      break;
    }
    // The files hold mostly acknowledged records kept alive by a few old
    // failures: copy those forward (same positions, so order is kept) and
    // let the oldest segment go.
    const uint32_t oldest = segments_.begin()->first;
    std::vector<uint64_t> to_copy;
    for (const auto& [position, entry] : queue_.entries()) {
      if (std::find(entry.segments.begin(), entry.segments.end(), oldest) !=
          entry.segments.end()) {
        to_copy.push_back(position);
      }
    }
    bool copied_all = true;
    for (const uint64_t position : to_copy) {
      PendingQueue::Entry* entry = queue_.Find(position);
      if (absl::Status status =
              AppendRecord(kFailureRecord, position, entry->serialized);
          !status.ok()) {
        copied_all = false;
        break;
      }
      dirty_ = true;
      auto& copies = entry->segments;
      copies.erase(std::remove(copies.begin(), copies.end(), oldest),
                   copies.end());
      if (std::find(copies.begin(), copies.end(), head_number_) ==
          copies.end()) {
        copies.push_back(head_number_);
        ++segments_[head_number_].held_count;
        segments_[head_number_].held_bytes += entry->serialized.size();
      }
      --segments_[oldest].held_count;
      segments_[oldest].held_bytes -= entry->serialized.size();
    }
    if (!copied_all) break;
    // The copies must be on disk before the originals go.
    if (head_ != nullptr && head_->Sync().ok()) dirty_ = false;
  }
  reclaiming_ = false;
}

size_t DiskSpool::Acknowledge(absl::Span<const FailureId> ids) {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> positions;
  positions.reserve(ids.size());
  for (const FailureId& id : ids) {
    const uint64_t position = queue_.PositionOf(PendingQueue::KeyOf(id));
    if (position != 0) positions.push_back(position);
  }
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()),
                  positions.end());
  RemoveLocked(positions);
  return positions.size();
}

absl::Status DiskSpool::Sync() {
  std::shared_ptr<File> file;
  {
    absl::MutexLock lock(&mu_);
    if (!dirty_ || head_ == nullptr) return absl::OkStatus();
    file = head_;
    dirty_ = false;
  }
  // Without the lock: appends continue while the disk catches up.
  absl::Status status = file->Sync();
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    dirty_ = true;
  }
  return status;
}

void DiskSpool::SyncLoop() {
  uint64_t failures = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           options_.sync_interval);
      if (stopping_) return;
    }
    if (absl::Status status = Sync(); !status.ok()) {
      if (++failures == 1 || failures % 100 == 0) {
        spdlog::warn("failure spool: {} ({} times so far)",
                     std::string(status.message()), failures);
      }
    }
  }
}

size_t DiskSpool::reloaded() const {
  absl::MutexLock lock(&mu_);
  return reloaded_;
}

size_t DiskSpool::segment_count() const {
  absl::MutexLock lock(&mu_);
  return segments_.size();
}

uint64_t DiskSpool::disk_bytes() const {
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const auto& [number, segment] : segments_) total += segment.file_bytes;
  return total;
}

uint64_t DiskSpool::truncated_records() const {
  absl::MutexLock lock(&mu_);
  return truncated_records_;
}

}  // namespace qfp::poller
