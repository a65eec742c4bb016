// Where the poller keeps every failure until the tracker acknowledges it.
//
// Two implementations share one contract (tests/unit/failure_spool_test.cc
// runs the same suite against both):
//   * MemorySpool: a bounded in-memory queue; lost when the process ends.
//   * DiskSpool: the same queue, with every failure also appended to segment
//     files in a directory, so a restarted poller resends exactly what the
//     tracker never acknowledged, with the original ids.
//
// Contract:
//   * Failures are held in the order they were added. Each gets a position
//     (strictly increasing, never reused within one spool; a DiskSpool keeps
//     positions across restarts), which senders use as a cursor.
//   * Acknowledge removes a failure by id; ids not held are ignored.
//   * Bounded by count and by bytes (the sum of the serialized sizes of the
//     held failures). When an Add would exceed either bound, the OLDEST
//     failures are dropped until both hold; every dropped failure is counted
//     in dropped() and reported in a rate-limited warn line, never silently.
//   * Thread-safe: every method may be called from any thread.
#ifndef QFP_POLLER_FAILURE_SPOOL_H_
#define QFP_POLLER_FAILURE_SPOOL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp::poller {

struct SpoolLimits {
  // Most failures held (Butler-SOS.failedPolls.poller.maxPendingFailures).
  size_t max_failures = 100000;
  // Most bytes held, counted as the serialized size of each failure
  // (Butler-SOS.failedPolls.poller.maxSpoolBytes).
  uint64_t max_bytes = uint64_t{256} << 20;
};

// Called for each held failure: its position and its serialized PollFailure.
// The view is valid only during the call.
using SpoolVisitor =
    absl::FunctionRef<void(uint64_t position, absl::string_view serialized)>;

class FailureSpool {
 public:
  virtual ~FailureSpool() = default;

  // Prepares the spool; a DiskSpool loads what earlier runs left. Must be
  // called once, before any other method. Never fails for a MemorySpool.
  virtual absl::Status Open() = 0;

  // Holds `failure` until acknowledged, dropping the oldest on overflow.
  // OK: held (and, for a DiskSpool, written to the segment file).
  // AlreadyExists: a failure with the same id is held; nothing changed.
  // ResourceExhausted: the failure alone exceeds max_bytes; it is dropped
  //   (and counted in dropped()).
  // Other errors (a DiskSpool that cannot write): the failure is held in
  //   memory and will be sent, but would not survive a restart.
  virtual absl::Status Add(failedpolls::v1::PollFailure failure) = 0;

  // Forgets the failures with these ids; returns how many were held.
  virtual size_t Acknowledge(
      absl::Span<const failedpolls::v1::FailureId> ids) = 0;
  size_t Acknowledge(const failedpolls::v1::FailureId& id) {
    return Acknowledge(absl::MakeConstSpan(&id, 1));
  }

  // Visits up to `max` held failures with position >= `from`, oldest first.
  // Returns the position to pass as `from` to continue after them (at most
  // next_position()).
  virtual uint64_t VisitFrom(uint64_t from, size_t max,
                             SpoolVisitor visit) const = 0;
  // True when some held failure has position >= `from`.
  virtual bool HasFrom(uint64_t from) const = 0;
  // Visits the failure with this id if it is held; returns whether it was.
  virtual bool Find(const failedpolls::v1::FailureId& id,
                    SpoolVisitor visit) const = 0;

  // Makes every Add so far durable (fsync); a no-op for a MemorySpool.
  virtual absl::Status Sync() = 0;

  virtual size_t size() const = 0;
  virtual uint64_t bytes() const = 0;
  // Failures dropped on overflow since Open (including at Open, when the
  // limits shrank since the last run).
  virtual uint64_t dropped() const = 0;
  // Failures a DiskSpool loaded at Open (0 for a MemorySpool).
  virtual size_t reloaded() const = 0;
  // True when held failures survive a restart.
  virtual bool durable() const = 0;
  // For logs: "memory" or "directory /var/spool/qs-poller".
  virtual std::string Describe() const = 0;
};

namespace spool_internal {

// The in-memory queue both spools use: failures by position, and an index
// by id. Not synchronized: its owner's mutex guards it.
class PendingQueue {
 public:
  using Key = std::tuple<std::string, std::string, uint64_t>;
  static Key KeyOf(const failedpolls::v1::FailureId& id);

  struct Entry {
    std::string serialized;
    Key key;
    // DiskSpool: the segments holding a copy of the record (none when the
    // write failed; two while a compaction copies it forward, or after a
    // crash in the middle of one).
    absl::InlinedVector<uint32_t, 1> segments;
  };

  bool Contains(const Key& key) const { return by_key_.count(key) > 0; }
  // Inserts at `position`. False (and nothing changes) if the key or the
  // position is already held.
  bool Insert(uint64_t position, Entry entry);
  // The entry at `position`, or null. Only `segments` may be changed.
  Entry* Find(uint64_t position);
  // Removes and returns the entry at `position`; false if none.
  bool Remove(uint64_t position, Entry* removed);
  // The position of `key`, or 0.
  uint64_t PositionOf(const Key& key) const;

  // See FailureSpool::VisitFrom; `end` is the next position to be given.
  uint64_t VisitFrom(uint64_t from, size_t max, uint64_t end,
                     SpoolVisitor visit) const;
  bool HasFrom(uint64_t from) const;

  size_t size() const { return entries_.size(); }
  uint64_t bytes() const { return bytes_; }
  bool empty() const { return entries_.empty(); }
  // Oldest first.
  const std::map<uint64_t, Entry>& entries() const { return entries_; }

 private:
  std::map<uint64_t, Entry> entries_;
  absl::flat_hash_map<Key, uint64_t> by_key_;
  uint64_t bytes_ = 0;
};

// Counts overflow drops and logs them as summaries: the first drop at once,
// then at most one line per interval.
class DropReporter {
 public:
  explicit DropReporter(std::string what) : what_(std::move(what)) {}
  void Dropped(size_t count, const SpoolLimits& limits);
  uint64_t total() const { return total_; }

 private:
  std::string what_;
  uint64_t total_ = 0;
  uint64_t unreported_ = 0;
  absl::Time last_report_ = absl::InfinitePast();
};

}  // namespace spool_internal

// What both spools share: the failures held in memory, in order, and the
// read side of the interface over them. Subclasses add and remove.
class QueuedSpool : public FailureSpool {
 public:
  uint64_t VisitFrom(uint64_t from, size_t max,
                     SpoolVisitor visit) const override;
  bool HasFrom(uint64_t from) const override;
  bool Find(const failedpolls::v1::FailureId& id,
            SpoolVisitor visit) const override;
  size_t size() const override;
  uint64_t bytes() const override;
  uint64_t dropped() const override;

 protected:
  QueuedSpool(SpoolLimits limits, std::string drop_subject)
      : limits_(limits), drops_(std::move(drop_subject)) {}

  const SpoolLimits limits_;
  mutable absl::Mutex mu_;
  spool_internal::PendingQueue queue_ ABSL_GUARDED_BY(mu_);
  spool_internal::DropReporter drops_ ABSL_GUARDED_BY(mu_);
  uint64_t next_position_ ABSL_GUARDED_BY(mu_) = 1;
};

// Failures in memory only: lost when the process ends.
class MemorySpool final : public QueuedSpool {
 public:
  explicit MemorySpool(SpoolLimits limits);

  absl::Status Open() override { return absl::OkStatus(); }
  absl::Status Add(failedpolls::v1::PollFailure failure) override;
  using FailureSpool::Acknowledge;
  size_t Acknowledge(
      absl::Span<const failedpolls::v1::FailureId> ids) override;
  absl::Status Sync() override { return absl::OkStatus(); }
  size_t reloaded() const override { return 0; }
  bool durable() const override { return false; }
  std::string Describe() const override { return "memory"; }
};

struct DiskSpoolOptions {
  // A segment file is closed (after an fsync) and a new one started once it
  // reaches this size.
  uint64_t segment_bytes = uint64_t{4} << 20;
  // Group commit: appends are written at once (write(2)) but fsync'd by a
  // background thread at most this often, and only when something was
  // appended since the last fsync.
  absl::Duration sync_interval = absl::Milliseconds(100);
};

// Failures in memory AND in segment files under a directory.
//
// Files: spool-NNNNNN.log segments (numbered upwards) and LOCK (held with
// flock so two pollers never share a directory). A segment starts with the
// 8-byte magic "QFPSPL01" and holds records:
//   u32 crc32c   CRC-32C of every byte after this field up to the record end
//   u32 length   payload length
//   u8  type     1 = failure, 2 = removal
//   u64 position failure: its position; removal: 0
//   payload      failure: the serialized PollFailure;
//                removal: positions (u64 each) acknowledged or dropped
// All integers are little-endian. Open replays every segment in order; a
// record that is short, too long, fails its CRC or does not parse ends that
// segment: it is truncated there, with a warning, and loading continues.
//
// Durability: Add returns after the record is handed to the kernel with one
// write(2), so a killed process (kill -9) loses nothing added; only an OS
// crash or power loss can lose the records appended in the last
// `sync_interval` (they are fsync'd in groups). Removals are never fsync'd:
// a lost removal only makes a restart resend a failure the tracker already
// has, which it deduplicates.
//
// Space: a segment is deleted once it holds no unacknowledged failure (and
// no removal that still matters). When the files grow past twice the held
// bytes plus two segments (one old failure the tracker keeps refusing), the
// oldest segment's held failures are copied forward and it is deleted, so
// disk use stays bounded by about 2 * max_bytes + 2 * segment_bytes.
class DiskSpool final : public QueuedSpool {
 public:
  DiskSpool(std::string directory, SpoolLimits limits,
            DiskSpoolOptions options = {});
  ~DiskSpool() override;  // fsyncs and closes
  DiskSpool(const DiskSpool&) = delete;
  DiskSpool& operator=(const DiskSpool&) = delete;

  // Creates the directory if needed, takes its lock, loads the segments
  // (truncating torn or corrupt tails), drops the oldest if the loaded
  // failures exceed the limits and starts a new segment for appends.
  // FailedPrecondition naming the directory when it cannot be created,
  // written or locked.
  absl::Status Open() override;
  absl::Status Add(failedpolls::v1::PollFailure failure) override;
  using FailureSpool::Acknowledge;
  size_t Acknowledge(
      absl::Span<const failedpolls::v1::FailureId> ids) override;
  absl::Status Sync() override;
  size_t reloaded() const override;
  bool durable() const override { return true; }
  std::string Describe() const override;

  // For tests and logs: segment files present, and their total size.
  size_t segment_count() const;
  uint64_t disk_bytes() const;
  // Records cut off at Open because they were torn or corrupt.
  uint64_t truncated_records() const;

 private:
  class File;
  struct Segment {
    uint32_t number = 0;
    std::string path;
    uint64_t file_bytes = 0;
    size_t held_count = 0;
    uint64_t held_bytes = 0;
    // Segments whose failures this segment's removal records removed; while
    // one of them (other than this one) exists, deleting this segment would
    // bring those failures back at the next Open.
    std::set<uint32_t> removes_from;
  };

  absl::Status LoadSegment(Segment& segment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyRemoval(Segment& segment, absl::string_view payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartSegment() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends one record to the head segment, rotating first when it is full.
  absl::Status AppendRecord(uint8_t type, uint64_t position,
                            absl::string_view payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes held entries (acknowledged or dropped) and records the removal.
  void RemoveLocked(const std::vector<uint64_t>& positions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnforceLimitsLocked(std::vector<uint64_t>* dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes segments no longer needed and compacts when the files bloat.
  void ReclaimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool DeletableLocked(const Segment& segment) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteSegmentLocked(uint32_t number) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncLoop();

  const std::string directory_;
  const DiskSpoolOptions options_;

  std::map<uint32_t, Segment> segments_ ABSL_GUARDED_BY(mu_);
  // The segment appended to; shared with the sync thread so an fsync can
  // run without the lock while a rotation closes the file.
  std::shared_ptr<File> head_ ABSL_GUARDED_BY(mu_);
  uint32_t head_number_ ABSL_GUARDED_BY(mu_) = 0;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool opened_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool reclaiming_ ABSL_GUARDED_BY(mu_) = false;
  // Set when a removal or a rotation may have made a segment deletable.
  bool reclaim_due_ ABSL_GUARDED_BY(mu_) = false;
  size_t reloaded_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t truncated_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t write_errors_ ABSL_GUARDED_BY(mu_) = 0;
  int lock_fd_ = -1;
  std::thread sync_thread_;
};

// CRC-32C (Castagnoli), as used in the segment records. Exposed for tests.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

}  // namespace qfp::poller

#endif  // QFP_POLLER_FAILURE_SPOOL_H_
