// The tracker's write-ahead log: a failure is acknowledged to its producer
// only once it is on disk here, and leaves the log only once InfluxDB has
// confirmed its point.
//
// Layout: segment files `wal-<16 hex digit segment number>.log` in one
// directory, each starting with an 8-byte magic, then records
//   [u32 little-endian payload length][u32 little-endian CRC-32 of payload]
//   [payload]
// A record's log sequence number (LSN) numbers records in append order
// within one run of the process (replayed records first); LSNs are not
// stored. Segments rotate at `segment_bytes`; a segment whose records are
// all released is deleted. A new run appends to a new segment.
//
// Durability: Append returns after fdatasync. Concurrent appenders share one
// fdatasync (group commit): whoever finds no sync running syncs everything
// written so far, and the others wait for it.
//
// Recovery: Open reads every segment in order, checking each record's length
// and checksum. At the first bad record (a torn write or a flipped byte) the
// segment is truncated there with a warning; what came before it is kept.
// Release marks are not persisted: after a restart every record still in the
// log is replayed, including some InfluxDB may already hold; re-writing
// those yields the identical point, which InfluxDB stores once.
#ifndef QFP_TRACKER_WRITE_AHEAD_LOG_H_
#define QFP_TRACKER_WRITE_AHEAD_LOG_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace qfp {

struct WriteAheadLogOptions {
  std::string directory;
  // Most bytes on disk; Append beyond it is refused (ResourceExhausted).
  uint64_t max_bytes = uint64_t{1} << 30;  // 1 GiB
  uint64_t segment_bytes = uint64_t{16} << 20;  // 16 MiB
  // Largest payload accepted; anything longer on disk is corruption.
  uint32_t max_record_bytes = 1 << 20;
};

struct WalRecord {
  uint64_t lsn = 0;
  std::string payload;
};

struct WalStats {
  uint64_t bytes = 0;         // on disk, all live segments
  uint64_t live_records = 0;  // appended and not yet released
  uint64_t segments = 0;
  uint64_t syncs = 0;         // fdatasync calls (group commits)
  uint64_t appended = 0;
  uint64_t truncated_at_open = 0;  // bytes cut from corrupt tails
};

// Thread-safe.
class WriteAheadLog {
 public:
  // Opens (creating when missing) the log in options.directory and returns
  // in `replay` every record it holds, oldest first.
  static absl::StatusOr<std::unique_ptr<WriteAheadLog>> Open(
      WriteAheadLogOptions options, std::vector<WalRecord>* replay);

  ~WriteAheadLog();
  WriteAheadLog(const WriteAheadLog&) = delete;
  WriteAheadLog& operator=(const WriteAheadLog&) = delete;

  // Appends `payloads` and returns their LSNs once they are durable. All or
  // none: ResourceExhausted when they would take the log over max_bytes;
  // Unavailable/Internal on an I/O error (nothing of the call is then
  // acknowledged; the log stays usable for later calls when the cause goes).
  absl::StatusOr<std::vector<uint64_t>> Append(
      const std::vector<std::string>& payloads);

  // Marks records as written to InfluxDB. Unknown or repeated LSNs are
  // ignored. Segments left with no live record (except the one being
  // appended to) are deleted.
  void Release(const std::vector<uint64_t>& lsns);

  WalStats stats() const;
  const std::string& directory() const { return options_.directory; }

 private:
  struct Segment {
    uint64_t first_lsn = 0;
    uint64_t next_lsn = 0;  // one past the last record
    uint64_t bytes = 0;
    uint64_t live = 0;  // records not yet released
    std::string path;
  };

  explicit WriteAheadLog(WriteAheadLogOptions options);
  absl::Status OpenExisting(std::vector<WalRecord>* replay);
  // Writes `data` at the end of the active segment; on failure cuts the
  // segment back to its previous size and marks it broken.
  absl::Status WriteLocked(const std::string& data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a new segment file whose first record will get `first_lsn`.
  absl::Status StartSegmentLocked(uint64_t first_lsn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteReleasedSegmentsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WriteAheadLogOptions options_;

  mutable absl::Mutex mu_;
  // By first LSN; the last one is the active (appended-to) segment.
  std::map<uint64_t, Segment> segments_ ABSL_GUARDED_BY(mu_);
  // LSNs appended (or replayed) and not yet released.
  absl::flat_hash_set<uint64_t> live_ ABSL_GUARDED_BY(mu_);
  int fd_ ABSL_GUARDED_BY(mu_) = -1;  // active segment
  uint64_t next_lsn_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_segment_number_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Group commit: bytes written vs. made durable, as a running count.
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t synced_ ABSL_GUARDED_BY(mu_) = 0;
  bool sync_running_ ABSL_GUARDED_BY(mu_) = false;
  // After a failed write or sync the active segment is abandoned: the next
  // Append starts a new one. Appenders whose bytes a failed sync covered
  // get its error.
  bool segment_broken_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t failed_up_to_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_sync_error_ ABSL_GUARDED_BY(mu_);
  WalStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qfp

#endif  // QFP_TRACKER_WRITE_AHEAD_LOG_H_
