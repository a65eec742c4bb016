// FailureQueue in an SQLite database, so that failures survive a crash, a
// restart or a power loss (see failure_queue.h for the contract, which this
// header does not repeat).
//
// Files, in SqliteQueueOptions::directory (created with mode 0750 if
// missing):
//   failures.db (+ -wal, -shm)  the database, WAL journal, synchronous=FULL.
//   LOCK                        held with flock(LOCK_EX) while the queue is
//                               open, so that two processes (or two queues
//                               in one process) never share a directory. It
//                               is a separate file, not SQLite's exclusive
//                               locking mode, so that an operator can still
//                               inspect the live database with the sqlite3
//                               CLI (read-only, please: a write from outside
//                               makes the queue's counts wrong until the
//                               next open).
//
// Schema (format 1; PRAGMA application_id 0x51465051 "QFPQ", user_version 1,
// auto_vacuum=INCREMENTAL):
//   failures(id INTEGER PRIMARY KEY, enqueued_at_ms INTEGER NOT NULL,
//            payload BLOB NOT NULL)
//     enqueued_at_ms: wall-clock Unix time in milliseconds when Append was
//     called; for operators only (the queue orders by id).
//   queue_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)
//     "purpose"  SqliteQueueOptions::purpose at creation,
//     "format"   "1",
//     "last_id"  the highest id ever committed, so that ids are not reused
//                after a restart even when every record had been released.
//     "fence"    a random value, rewritten right after every failed commit
//                (see "What is durable when").
//
// What is durable when:
//   * An Append whose `done` got OK: its records are in a committed
//     transaction whose WAL frames were fsync'd (synchronous=FULL), so they
//     survive a process crash and a power loss (if the disk honours fsync).
//   * An Append whose `done` got an error: the queue does not hold it, and
//     does not retry it (the caller decides). A COMMIT whose WAL fsync
//     failed has often written its frames anyway, and SQLite's WAL recovery
//     would revive them if the process died before the next transaction
//     overwrote them; so the writer follows every failed commit at once,
//     before telling anyone, with a one-row transaction whose frames
//     overwrite them. If even that cannot write (the disk refuses writes
//     outright), an error is logged: records reported as not stored may then
//     reappear after a crash, as duplicates the next hops discard.
//   * Releases: applied in the writer's next transaction, never waited for;
//     one lost in a crash makes the record be read again after the restart.
//
// Threads: Append, Release and ReleaseRange only take a mutex and never touch
// the disk. One writer thread owns the write connection and commits
// everything handed over since its last transaction in one transaction
// (group commit: while one fsync runs, the next group gathers). Read uses a
// second connection under its own mutex, on the caller's thread; WAL lets it
// read while the writer writes. After a failed commit the writer waits
// SqliteQueueOptions::commit_retry's back-off before its next transaction,
// and resets it after a success, so the queue recovers by itself when the
// disk does; Appends made meanwhile wait for that transaction.
//
// Limits: committed plus pending records count against QueueLimits, so a
// kRefuse Append is refused at once, never after waiting; a Release frees
// its room only once the writer applied it (stats().records drops then).
// A payload SQLite cannot hold (about 1e9 bytes) is refused alone with
// ResourceExhausted instead of failing its whole group. When releases empty
// the queue, the writer runs PRAGMA incremental_vacuum and a truncating WAL
// checkpoint, so a drained backlog gives its disk space back.
//
// Close (and the destructor) commits what is pending in one last try, then
// stops the writer and closes the files; Read then returns Unavailable.
// Called from a callback of the queue, Close only starts closing (the
// writer cannot join itself); the teardown happens in the next Close or the
// destructor.
//
// Metrics, named <metrics_prefix>_...: records, bytes (gauges),
// commit_duration_seconds (histogram, BEGIN to COMMIT), commits_total,
// commit_errors_total, dropped_total. stats() reads the same counters.
#ifndef QFP_COMMON_SQLITE_FAILURE_QUEUE_H_
#define QFP_COMMON_SQLITE_FAILURE_QUEUE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/failure_queue.h"
#include "common/metrics.h"

namespace qfp {

struct SqliteQueueOptions {
  // Holds failures.db and LOCK (see above). Required.
  std::string directory;
  QueueLimits limits;
  // What the queue is for, e.g. "qs-poller spool". Stored at creation and
  // compared at every open, so that a service pointed at another service's
  // directory refuses it instead of consuming its records. Required.
  std::string purpose;
  // Where the queue's metrics go; when null the queue keeps a private
  // registry (same code path, nothing exported). One queue per prefix per
  // registry: registering a prefix twice aborts (see metrics.h), so a queue
  // reopened on the same registry needs another prefix.
  MetricsRegistry* metrics = nullptr;
  // e.g. "qfp_tracker_queue".
  std::string metrics_prefix = "qfp_queue";
  // Delay before the next transaction after a failed one.
  BackOff::Options commit_retry{absl::Milliseconds(50), 2.0, 0.2,
                                absl::Seconds(5)};
};

// Opens (creating if needed) the queue in options.directory and starts its
// writer thread. Errors:
//   InvalidArgument: an empty directory or purpose.
//   FailedPrecondition: the directory cannot be created or locked (another
//     process holds it: the message names the directory), or failures.db is
//     not a database of this format and purpose (not SQLite, corrupt,
//     another purpose, another format version, a table missing): the message
//     names the file and says why. The file is never modified then.
// Records found in an existing database are counted in stats().reloaded.
absl::StatusOr<std::unique_ptr<FailureQueue>> OpenSqliteFailureQueue(
    SqliteQueueOptions options);

}  // namespace qfp

#endif  // QFP_COMMON_SQLITE_FAILURE_QUEUE_H_
