// The queue both services keep failures in until the next hop has them: the
// poller until the tracker acknowledges a failure, the tracker until
// InfluxDB has stored its point.
//
// Two implementations share this contract (tests/unit/common/
// failure_queue_test.cc runs one suite against both):
//   * SqliteFailureQueue (sqlite_failure_queue.h): records in an SQLite
//     database (WAL journal, synchronous=FULL) in a directory, so they
//     survive a crash or restart. See docs/storage.md.
//   * MemoryFailureQueue (memory_failure_queue.h): the same queue in memory
//     only, for deployments without a directory; lost when the process ends.
//
// Contract:
//   * A record is an opaque payload and an id. Ids are > 0, strictly
//     increasing in Append order, never reused within one queue (a
//     SqliteFailureQueue keeps them across restarts).
//   * Append hands payloads over and returns at once: it never waits on a
//     disk. The queue commits what it was handed in groups, on one writer
//     thread; `done` runs once the group holding the payloads has been
//     committed (OK: durable, for a SqliteFailureQueue) or could not be
//     (an error: NOTHING of that Append is in the queue). No caller is ever
//     told a record is stored that the store has not committed.
//   * Only committed records are visible to Read, in id order.
//   * Release forgets records by id; unknown ids are ignored. Releases are
//     applied in the writer's next commit (they need no durability: a lost
//     release only makes a record be delivered again, and both next hops
//     deduplicate).
//   * Bounded by count and by bytes (the sum of payload sizes), tracked
//     exactly over committed and pending records. What happens beyond the
//     bounds is QueueLimits::overflow.
//   * Thread-safe: every method may be called from any thread. Callbacks
//     (`done`, the commit listener) run without any queue lock held, so they
//     may call back into the queue, but they must not block for long: they
//     delay the next commit.
#ifndef QFP_COMMON_FAILURE_QUEUE_H_
#define QFP_COMMON_FAILURE_QUEUE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qfp {

struct QueueRecord {
  int64_t id = 0;
  std::string payload;
};

struct QueueLimits {
  // Most records held, committed and pending together.
  uint64_t max_records = 1000000;
  // Most payload bytes held, committed and pending together.
  uint64_t max_bytes = uint64_t{1} << 30;
  enum class Overflow {
    // Append fails with ResourceExhausted when its payloads would not fit;
    // nothing of it is taken (the tracker: the producer keeps the failures).
    kRefuse,
    // The oldest records are dropped until the new ones fit (the poller: the
    // newest failures say the most about the site now). Every drop of a
    // stored record is counted in QueueStats::dropped and logged
    // (rate-limited). While commits fail, records still waiting to be
    // stored are held to the same limits: the oldest of them are given up
    // and their Append's `done` gets ResourceExhausted.
    kDropOldest,
  };
  Overflow overflow = Overflow::kRefuse;
};

struct QueueStats {
  uint64_t records = 0;  // committed and not released
  uint64_t bytes = 0;    // their payload bytes
  uint64_t pending = 0;  // handed to Append, not yet committed
  // Records that were in the store when it opened (a SqliteFailureQueue
  // left by an earlier run).
  uint64_t reloaded = 0;
  uint64_t dropped = 0;        // kDropOldest drops since open
  uint64_t commits = 0;        // transactions committed
  uint64_t commit_errors = 0;  // transactions that failed
  // The error of the last failed commit, OK once a commit succeeds again.
  absl::Status last_error;
};

class FailureQueue {
 public:
  // `status` is OK with the ids given to the payloads, in order, or the
  // reason none of them was stored:
  //   ResourceExhausted: over the limits (kRefuse), or the Append alone
  //     over them (any overflow mode: a payload alone larger than max_bytes,
  //     or more payloads than max_records); retry after records are
  //     released, or split the Append.
  //   Unavailable: the commit failed (disk full, I/O error, read-only) or
  //     the queue is closing; retry later, the queue recovers by itself.
  // An empty `payloads` succeeds at once with no ids.
  using AppendCallback =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<int64_t>> ids)>;

  virtual ~FailureQueue() = default;

  // Hands `payloads` over; `done` runs exactly once, on the writer thread or
  // (when the outcome is known at once: a refusal, or a memory queue) before
  // Append returns.
  virtual void Append(std::vector<std::string> payloads,
                      AppendCallback done) = 0;

  // Append, then wait for the commit. For callers that acknowledge to
  // someone else only after the store has committed (the tracker's
  // producers). Never call it from a callback of this queue.
  absl::StatusOr<std::vector<int64_t>> AppendAndWait(
      std::vector<std::string> payloads);

  // Up to `max_records` committed records with id > `after_id`, in id order,
  // stopping before the one that would take the payload total over
  // `max_bytes` (at least one record is returned if any qualifies).
  // A SqliteFailureQueue reads on the caller's thread through its own
  // connection; its errors are Unavailable.
  virtual absl::StatusOr<std::vector<QueueRecord>> Read(
      int64_t after_id, size_t max_records, uint64_t max_bytes) const = 0;

  // Forgets these records (see the contract above).
  virtual void Release(absl::Span<const int64_t> ids) = 0;
  // Forgets every record with first <= id <= last.
  virtual void ReleaseRange(int64_t first, int64_t last) = 0;

  // `listener` runs (on the writer thread, no queue lock held) after every
  // commit that changed the records: made some visible, released or dropped
  // some. Readers use it to wake instead of polling (to read new records, or
  // to see that the queue is empty). Set it before the first Append; one
  // listener.
  virtual void SetCommitListener(std::function<void()> listener) = 0;

  // Commits everything handed over so far, then stops the writer thread.
  // Later Appends fail with Unavailable. Called by the destructor.
  virtual void Close() = 0;

  virtual QueueStats stats() const = 0;
  // True when records survive a restart.
  virtual bool durable() const = 0;
  // For logs: "memory" or "SQLite database /var/lib/x/failures.db".
  virtual std::string Describe() const = 0;
};

}  // namespace qfp

#endif  // QFP_COMMON_FAILURE_QUEUE_H_
