#include "tracker-service/write_ahead_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"
#include "zlib.h"

namespace qfp {
namespace {

constexpr char kMagic[8] = {'Q', 'F', 'P', 'W', 'A', 'L', '1', '\n'};
constexpr size_t kHeaderBytes = 8;  // length + CRC

std::string ErrnoText(int error) { return std::strerror(error); }

uint32_t Crc32(absl::string_view data) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data()),
            static_cast<uInt>(data.size())));
}

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  }
  return v;
}

std::string SegmentName(uint64_t number) {
  return absl::StrFormat("wal-%016x.log", number);
}

// Reads a whole file; false on an I/O error.
bool ReadFile(const std::string& path, std::string* data) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return false;
    }
    if (n == 0) break;
    data->append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// Parses "wal-<16 hex>.log"; false for any other name.
bool ParseSegmentName(const std::string& name, uint64_t* number) {
  if (name.size() != 24 || name.compare(0, 4, "wal-") != 0 ||
      name.compare(20, 4, ".log") != 0) {
    return false;
  }
  uint64_t value = 0;
  for (size_t i = 4; i < 20; ++i) {
    const char c = name[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  *number = value;
  return true;
}

absl::Status SyncDirectory(const std::string& directory) {
  const int fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot open WAL directory ", directory, ": ", ErrnoText(errno)));
  }
  const int rc = fsync(fd);
  const int error = errno;
  close(fd);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot sync WAL directory ", directory, ": ", ErrnoText(error)));
  }
  return absl::OkStatus();
}

}  // namespace

WriteAheadLog::WriteAheadLog(WriteAheadLogOptions options)
    : options_(std::move(options)) {}

WriteAheadLog::~WriteAheadLog() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<WriteAheadLog>> WriteAheadLog::Open(
    WriteAheadLogOptions options, std::vector<WalRecord>* replay) {
  if (options.directory.empty()) {
    return absl::InvalidArgumentError("WAL directory not set");
  }
  if (mkdir(options.directory.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create WAL directory ", options.directory, ": ",
                     ErrnoText(errno)));
  }
  std::unique_ptr<WriteAheadLog> wal(new WriteAheadLog(std::move(options)));
  replay->clear();
  if (absl::Status status = wal->OpenExisting(replay); !status.ok()) {
    return status;
  }
  return wal;
}

absl::Status WriteAheadLog::OpenExisting(std::vector<WalRecord>* replay) {
  DIR* dir = opendir(options_.directory.c_str());
  if (dir == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list WAL directory ", options_.directory, ": ",
                     ErrnoText(errno)));
  }
  // By segment number: the order they were written in.
  std::map<uint64_t, std::string> files;
  while (dirent* entry = readdir(dir)) {
    uint64_t number = 0;
    if (ParseSegmentName(entry->d_name, &number)) {
      files[number] = absl::StrCat(options_.directory, "/", entry->d_name);
    }
  }
  closedir(dir);

  absl::MutexLock lock(&mu_);
  if (!files.empty()) next_segment_number_ = files.rbegin()->first + 1;
  // LSNs number the records of this run, oldest first; they are not stored.
  uint64_t next_lsn = 1;
  for (const auto& [number, path] : files) {
    std::string data;
    if (!ReadFile(path, &data)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot read WAL segment ", path, ": ", ErrnoText(errno)));
    }
    Segment segment;
    segment.first_lsn = next_lsn;
    segment.path = path;
    size_t offset = 0;
    bool valid_header =
        data.size() >= sizeof(kMagic) &&
        std::memcmp(data.data(), kMagic, sizeof(kMagic)) == 0;
    if (valid_header) offset = sizeof(kMagic);
    while (valid_header && offset < data.size()) {
      if (data.size() - offset < kHeaderBytes) break;
      const uint32_t length = GetU32(data.data() + offset);
      const uint32_t crc = GetU32(data.data() + offset + 4);
      if (length > options_.max_record_bytes ||
          length > data.size() - offset - kHeaderBytes) {
        break;
      }
      absl::string_view payload(data.data() + offset + kHeaderBytes, length);
      if (Crc32(payload) != crc) break;
      replay->push_back(WalRecord{next_lsn, std::string(payload)});
      live_.insert(next_lsn);
      ++segment.live;
      ++next_lsn;
      offset += kHeaderBytes + length;
    }
    if (offset < data.size() || !valid_header) {
      const uint64_t keep = valid_header ? offset : 0;
      spdlog::warn(
          "WAL segment {}: {} at byte {} of {}; truncating there ({} bytes "
          "dropped, {} records before it kept)",
          path, valid_header ? "torn or corrupt record" : "bad header", keep,
          data.size(), data.size() - keep, segment.live);
      stats_.truncated_at_open += data.size() - keep;
      if (truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
        return absl::UnavailableError(absl::StrCat(
            "cannot truncate corrupt WAL segment ", path, ": ",
            ErrnoText(errno)));
      }
      offset = keep;
    }
    if (segment.live == 0) {
      // Nothing to replay: the file has no further use.
      unlink(path.c_str());
      continue;
    }
    segment.next_lsn = next_lsn;
    segment.bytes = offset;
    total_bytes_ += offset;
    segments_[segment.first_lsn] = segment;
  }
  next_lsn_ = next_lsn;
  // Appends go to a fresh segment: the old ones are replay material only.
  return StartSegmentLocked(next_lsn_);
}

absl::Status WriteAheadLog::StartSegmentLocked(uint64_t first_lsn) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  // An active segment that never got a record (a failed write) goes.
  if (auto it = segments_.find(first_lsn); it != segments_.end()) {
    unlink(it->second.path.c_str());
    total_bytes_ -= it->second.bytes;
    segments_.erase(it);
  }
  const std::string path = absl::StrCat(options_.directory, "/",
                                        SegmentName(next_segment_number_++));
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create WAL segment ", path, ": ", ErrnoText(errno)));
  }
  fd_ = fd;
  Segment segment;
  segment.first_lsn = first_lsn;
  segment.next_lsn = first_lsn;
  segment.path = path;
  segments_[first_lsn] = segment;
  segment_broken_ = false;
  if (absl::Status status =
          WriteLocked(std::string(kMagic, sizeof(kMagic)));
      !status.ok()) {
    return status;
  }
  if (fdatasync(fd_) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot sync new WAL segment ", path, ": ", ErrnoText(errno)));
  }
  synced_ = written_;
  return SyncDirectory(options_.directory);
}

absl::Status WriteAheadLog::WriteLocked(const std::string& data) {
  Segment& active = segments_.rbegin()->second;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      // Cut back whatever part landed so the file stays parseable.
      if (ftruncate(fd_, static_cast<off_t>(active.bytes)) != 0 ||
          lseek(fd_, static_cast<off_t>(active.bytes), SEEK_SET) < 0) {
        segment_broken_ = true;
      }
      return absl::UnavailableError(absl::StrCat(
          "cannot write WAL segment ", active.path, ": ", ErrnoText(error)));
    }
    done += static_cast<size_t>(n);
  }
  active.bytes += data.size();
  total_bytes_ += data.size();
  written_ += data.size();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> WriteAheadLog::Append(
    const std::vector<std::string>& payloads) {
  std::string data;
  for (const std::string& payload : payloads) {
    if (payload.size() > options_.max_record_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("record of ", payload.size(),
                       " bytes exceeds the WAL's maximum of ",
                       options_.max_record_bytes));
    }
    PutU32(data, static_cast<uint32_t>(payload.size()));
    PutU32(data, Crc32(payload));
    data.append(payload);
  }
  std::vector<uint64_t> lsns;
  uint64_t my_end = 0;
  {
    absl::MutexLock lock(&mu_);
    if (total_bytes_ + data.size() > options_.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "write-ahead log full (", total_bytes_, " of ", options_.max_bytes,
          " bytes in ", options_.directory,
          "); waiting for InfluxDB to take the backlog"));
    }
    Segment* active = segments_.empty() ? nullptr : &segments_.rbegin()->second;
    if (active == nullptr || segment_broken_ || fd_ < 0 ||
        (active->bytes + data.size() > options_.segment_bytes &&
         active->next_lsn > active->first_lsn)) {
      if (absl::Status status = StartSegmentLocked(next_lsn_); !status.ok()) {
        segment_broken_ = true;
        return status;
      }
      active = &segments_.rbegin()->second;
    }
    if (absl::Status status = WriteLocked(data); !status.ok()) {
      segment_broken_ = true;
      return status;
    }
    for (size_t i = 0; i < payloads.size(); ++i) {
      lsns.push_back(next_lsn_);
      live_.insert(next_lsn_);
      ++next_lsn_;
    }
    active->next_lsn = next_lsn_;
    active->live += payloads.size();
    stats_.appended += payloads.size();
    my_end = written_;

    // Group commit: one appender syncs for everyone written so far.
    while (synced_ < my_end) {
      if (failed_up_to_ >= my_end) break;
      if (!sync_running_) {
        sync_running_ = true;
        const uint64_t target = written_;
        const int fd = fd_;
        mu_.Unlock();
        const int rc = fdatasync(fd);
        const int error = errno;
        mu_.Lock();
        sync_running_ = false;
        ++stats_.syncs;
        if (rc == 0) {
          synced_ = std::max(synced_, target);
        } else {
          failed_up_to_ = target;
          segment_broken_ = true;
          last_sync_error_ = absl::UnavailableError(absl::StrCat(
              "cannot sync WAL in ", options_.directory, ": ",
              ErrnoText(error)));
        }
      } else {
        auto progressed = [this, my_end]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return synced_ >= my_end || failed_up_to_ >= my_end ||
                 !sync_running_;
        };
        mu_.Await(absl::Condition(&progressed));
      }
    }
    if (synced_ < my_end) {
      // Never acknowledged: forget them (a replay after restart may still
      // find them; producers resend them anyway).
      for (uint64_t lsn : lsns) live_.erase(lsn);
      active->live -= std::min<uint64_t>(active->live, lsns.size());
      return last_sync_error_;
    }
  }
  return lsns;
}

void WriteAheadLog::Release(const std::vector<uint64_t>& lsns) {
  absl::MutexLock lock(&mu_);
  for (uint64_t lsn : lsns) {
    if (live_.erase(lsn) == 0) continue;
    auto it = segments_.upper_bound(lsn);
    if (it == segments_.begin()) continue;
    --it;
    if (it->second.live > 0) --it->second.live;
  }
  DeleteReleasedSegmentsLocked();
}

void WriteAheadLog::DeleteReleasedSegmentsLocked() {
  if (segments_.empty()) return;
  const uint64_t active = segments_.rbegin()->first;
  for (auto it = segments_.begin(); it != segments_.end();) {
    const Segment& segment = it->second;
    // The active segment goes too once it has records and all are released
    // (so a clean restart replays nothing); the next Append starts a new
    // one. Not while a sync may still be using its descriptor.
    const bool is_active = it->first == active;
    if (segment.live > 0 ||
        (is_active && (segment.next_lsn == segment.first_lsn ||
                       sync_running_))) {
      ++it;
      continue;
    }
    if (is_active) {
      close(fd_);
      fd_ = -1;
    }
    if (unlink(it->second.path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("cannot delete released WAL segment {}: {}",
                   it->second.path, ErrnoText(errno));
      ++it;
      continue;
    }
    total_bytes_ -= it->second.bytes;
    it = segments_.erase(it);
  }
}

WalStats WriteAheadLog::stats() const {
  absl::MutexLock lock(&mu_);
  WalStats stats = stats_;
  stats.bytes = total_bytes_;
  stats.live_records = live_.size();
  stats.segments = segments_.size();
  return stats;
}

}  // namespace qfp
