#include "common/sqlite_failure_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/log_rate_limiter.h"
#include "spdlog/spdlog.h"

namespace qfp {
namespace {

constexpr int32_t kApplicationId = 0x51465051;  // "QFPQ"
constexpr int kUserVersion = 1;
constexpr char kFormat[] = "1";
constexpr int kBusyTimeoutMs = 5000;
// A checkpoint waits at most this long for readers (an operator's sqlite3
// shell, our own Read) instead of holding up the next commit.
constexpr int kCheckpointBusyTimeoutMs = 100;

struct StmtDeleter {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// "disk I/O error (SQLite code 1290)": the connection's last message, which
// is more specific than the code's, and the extended code for searches.
std::string SqliteText(sqlite3* db, int rc) {
  // The connection's message describes its most recent call, which is not
  // always the one that returned `rc` (finalizing or resetting a statement
  // clears it): then the code's own text is the truthful one.
  const bool current = db != nullptr && sqlite3_errcode(db) == rc;
  const char* msg = current ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return absl::StrCat(msg, " (SQLite code ", rc, ")");
}

// Runs a statement that returns no rows (or whose rows are not needed).
int ExecSql(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
}

int Prepare(sqlite3* db, const char* sql, Stmt* out) {
  // Finalize the old statement first: finalizing clears the connection's
  // error message, which must describe this prepare.
  out->reset();
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  out->reset(raw);
  return rc;
}

// Creates `path` and its missing parents with `mode`.
absl::Status MakeDirectories(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create failure queue directory ", prefix, ": ",
                       strerror(errno)));
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("failure queue directory ", path, " is not a directory"));
  }
  return absl::OkStatus();
}

// base + add - sub, never below zero. The counts are exact unless someone
// changed the database behind the queue's back (an operator deleting rows by
// hand); then they must not wrap around to "full forever".
uint64_t Apply(uint64_t base, uint64_t add, uint64_t sub) {
  return base + add >= sub ? base + add - sub : 0;
}

// Closes a connection whose statements are all finalized.
void CloseDb(sqlite3*& db, const std::string& path) {
  if (db == nullptr) return;
  if (const int rc = sqlite3_close(db); rc != SQLITE_OK) {
    spdlog::error("failure queue: closing {} failed: {}", path,
                  sqlite3_errstr(rc));
    sqlite3_close_v2(db);  // Closes once the last statement is finalized.
  }
  db = nullptr;
}

}  // namespace

class SqliteFailureQueue final : public FailureQueue {
 public:
  static absl::StatusOr<std::unique_ptr<FailureQueue>> Open(
      SqliteQueueOptions options);
  ~SqliteFailureQueue() override;
  SqliteFailureQueue(const SqliteFailureQueue&) = delete;
  SqliteFailureQueue& operator=(const SqliteFailureQueue&) = delete;

  void Append(std::vector<std::string> payloads, AppendCallback done) override;
  absl::StatusOr<std::vector<QueueRecord>> Read(
      int64_t after_id, size_t max_records, uint64_t max_bytes) const override;
  void Release(absl::Span<const int64_t> ids) override;
  void ReleaseRange(int64_t first, int64_t last) override;
  void SetCommitListener(std::function<void()> listener) override;
  void Close() override;
  QueueStats stats() const override;
  bool durable() const override { return true; }
  std::string Describe() const override {
    return absl::StrCat("SQLite database ", db_path_);
  }

 private:
  struct PendingAppend {
    int64_t first_id = 0;
    int64_t enqueued_at_ms = 0;
    uint64_t bytes = 0;
    std::vector<std::string> payloads;
    AppendCallback done;
  };
  struct Levels {
    std::atomic<uint64_t> records{0};
    std::atomic<uint64_t> bytes{0};
  };
  // What one transaction changed, known exactly from the rows it touched.
  struct Outcome {
    uint64_t inserted = 0;
    uint64_t inserted_bytes = 0;
    uint64_t removed = 0;  // released and dropped
    uint64_t removed_bytes = 0;
    uint64_t dropped = 0;
    // Only a failed COMMIT can leave frames that look committed.
    bool failed_at_commit = false;
  };

  explicit SqliteFailureQueue(SqliteQueueOptions options);

  absl::Status Init();
  absl::Status Lock();
  absl::Status OpenWriter();
  absl::Status CheckOrCreateSchema();
  absl::Status LoadState();
  absl::Status OpenReader();
  absl::Status PrepareStatements();
  // FailedPrecondition naming the file, for everything wrong at open.
  absl::Status OpenError(absl::string_view what, int rc) const;

  void WriterLoop();
  // One transaction over `appends` and the releases; rolls back on failure.
  absl::Status RunTransaction(
      const std::deque<PendingAppend>& appends,
      const std::vector<int64_t>& release_ids,
      const std::vector<std::pair<int64_t, int64_t>>& release_ranges,
      uint64_t committed_records, uint64_t committed_bytes, Outcome* outcome);
  // Steps a DELETE ... RETURNING length(payload) to its end.
  int StepDelete(sqlite3_stmt* stmt, Outcome* outcome);
  absl::Status Failed(const char* step, int rc);
  // After a failed commit: overwrites what it may have left in the WAL.
  void FenceFailedCommit();
  // With nothing to commit after a failed commit: one fsync'd write to see
  // whether the disk works again. True when it does (the error is cleared).
  bool ProbeAfterFailure();
  // Gives the pages of a drained queue back to the file system (when there
  // are enough, at most every few seconds). Writer thread only.
  void ShrinkAfterDrain();
  // Monotonic time of the last shrink; writer thread only.
  absl::Duration last_shrink_ = absl::InfiniteDuration();
  void CloseConnections();

  const SqliteQueueOptions options_;
  const std::string db_path_;
  const std::string lock_path_;

  const std::unique_ptr<MetricsRegistry> own_metrics_;
  MetricsRegistry& registry_;
  Counter& commits_;
  Counter& commit_errors_;
  Counter& dropped_;
  Histogram& commit_duration_;
  const std::shared_ptr<Levels> levels_;
  LogRateLimiter error_log_{absl::Seconds(10)};
  LogRateLimiter drop_log_{absl::Seconds(10)};
  LogRateLimiter fence_log_{absl::Seconds(10)};

  int lock_fd_ = -1;
  // Largest payload SQLite accepts (SQLITE_LIMIT_LENGTH); a larger one would
  // fail its whole group, so Append refuses it alone.
  uint64_t max_payload_ = 0;

  // The writer connection and its statements: used by Init, then only by the
  // writer thread, then by Close after the thread ended.
  sqlite3* db_ = nullptr;
  Stmt begin_, commit_, rollback_, insert_, delete_one_, delete_range_, oldest_,
      set_last_id_, fence_;
  BackOff backoff_;

  mutable absl::Mutex read_mu_;
  sqlite3* reader_ ABSL_GUARDED_BY(read_mu_) = nullptr;
  Stmt read_ ABSL_GUARDED_BY(read_mu_);

  mutable absl::Mutex mu_;
  std::deque<PendingAppend> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> release_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int64_t, int64_t>> release_ranges_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Committed and not released; changed only by the writer.
  uint64_t committed_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Handed to Append and not yet answered (queued or in the running
  // transaction).
  uint64_t pending_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reloaded_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  // Monotonic time before which the writer does not start a transaction.
  absl::Duration retry_at_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id writer_id_ ABSL_GUARDED_BY(mu_);
  std::function<void()> listener_ ABSL_GUARDED_BY(mu_);

  // Serializes Close callers; the thread and the connections are torn down
  // once.
  absl::Mutex close_mu_;
  std::thread writer_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;
};

absl::StatusOr<std::unique_ptr<FailureQueue>> OpenSqliteFailureQueue(
    SqliteQueueOptions options) {
  return SqliteFailureQueue::Open(std::move(options));
}

absl::StatusOr<std::unique_ptr<FailureQueue>> SqliteFailureQueue::Open(
    SqliteQueueOptions options) {
  if (options.directory.empty()) {
    return absl::InvalidArgumentError("failure queue: no directory given");
  }
  if (options.purpose.empty()) {
    return absl::InvalidArgumentError("failure queue: no purpose given");
  }
  if (options.metrics_prefix.empty()) options.metrics_prefix = "qfp_queue";
  while (options.directory.size() > 1 && options.directory.back() == '/') {
    options.directory.pop_back();
  }
  std::unique_ptr<SqliteFailureQueue> queue(
      new SqliteFailureQueue(std::move(options)));
  // On failure the destructor closes whatever Init opened.
  if (absl::Status status = queue->Init(); !status.ok()) return status;
  return std::unique_ptr<FailureQueue>(std::move(queue));
}

SqliteFailureQueue::SqliteFailureQueue(SqliteQueueOptions options)
    : options_(std::move(options)),
      db_path_(options_.directory + "/failures.db"),
      lock_path_(options_.directory + "/LOCK"),
      own_metrics_(options_.metrics == nullptr
                       ? std::make_unique<MetricsRegistry>()
                       : nullptr),
      registry_(options_.metrics != nullptr ? *options_.metrics
                                            : *own_metrics_),
      commits_(
          registry_.AddCounter(options_.metrics_prefix + "_commits_total",
                               "Transactions the failure queue committed.")),
      commit_errors_(registry_.AddCounter(
          options_.metrics_prefix + "_commit_errors_total",
          "Transactions of the failure queue that failed (their Appends got "
          "Unavailable).")),
      dropped_(registry_.AddCounter(
          options_.metrics_prefix + "_dropped_total",
          "Records dropped, oldest first, to make room for newer ones "
          "(overflow: drop_oldest).")),
      commit_duration_(registry_.AddHistogram(
          options_.metrics_prefix + "_commit_duration_seconds",
          "Time from BEGIN to the end of COMMIT of the failure queue's "
          "transactions, failed ones included.",
          {}, ExponentialBuckets(0.0005, 2, 16))),
      levels_(std::make_shared<Levels>()),
      backoff_(options_.commit_retry) {
  // The callbacks hold the levels, not the queue, so a registry that
  // outlives the queue renders the last values instead of freed memory.
  std::shared_ptr<Levels> levels = levels_;
  registry_.AddCallbackGauge(
      options_.metrics_prefix + "_records",
      "Records committed to the failure queue and not yet released.",
      [levels] { return static_cast<double>(levels->records.load()); });
  registry_.AddCallbackGauge(
      options_.metrics_prefix + "_bytes",
      "Payload bytes of the records in the failure queue.",
      [levels] { return static_cast<double>(levels->bytes.load()); });
}

SqliteFailureQueue::~SqliteFailureQueue() { Close(); }

absl::Status SqliteFailureQueue::OpenError(absl::string_view what,
                                           int rc) const {
  return absl::FailedPreconditionError(absl::StrCat("failure queue database ",
                                                    db_path_, ": ", what, ": ",
                                                    SqliteText(db_, rc)));
}

absl::Status SqliteFailureQueue::Init() {
  if (absl::Status s = MakeDirectories(options_.directory, 0750); !s.ok()) {
    return s;
  }
  if (absl::Status s = Lock(); !s.ok()) return s;
  if (absl::Status s = OpenWriter(); !s.ok()) return s;
  if (absl::Status s = CheckOrCreateSchema(); !s.ok()) return s;
  if (absl::Status s = PrepareStatements(); !s.ok()) return s;
  if (absl::Status s = LoadState(); !s.ok()) return s;
  // One real, fsync'd write now: a database that can be read but not
  // written (a read-only or immutable file) is refused at start, not found
  // out at the first failure.
  {
    const int rc = sqlite3_step(fence_.get());
    sqlite3_reset(fence_.get());
    if (rc != SQLITE_DONE) return OpenError("cannot write to it", rc);
  }
  if (absl::Status s = OpenReader(); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    spdlog::info(
        "failure queue: opened {} ({}): {} records, {} bytes reloaded, next "
        "id {}",
        db_path_, options_.purpose, committed_records_, committed_bytes_,
        next_id_);
  }
  writer_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

absl::Status SqliteFailureQueue::Lock() {
  lock_fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the failure queue's lock file ", lock_path_,
                     ": ", strerror(errno)));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "failure queue directory ", options_.directory,
          " is in use: another process (or another queue in this process) "
          "holds its lock ",
          lock_path_));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock ", lock_path_, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status SqliteFailureQueue::OpenWriter() {
  // SQLite takes a file shorter than its header for an empty database and
  // would write over it: refuse anything non-empty that is not SQLite.
  if (const int fd = ::open(db_path_.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    static constexpr char kHeader[] = "SQLite format 3";  // and its NUL
    char head[sizeof kHeader] = {};
    const ssize_t n = ::read(fd, head, sizeof head);
    ::close(fd);
    if (n != 0 && (n != static_cast<ssize_t>(sizeof head) ||
                   memcmp(head, kHeader, sizeof head) != 0)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "failure queue database ", db_path_,
          " is not an SQLite database (it does not start with the SQLite "
          "header); move it away to start an empty queue"));
    }
  } else if (errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read failure queue database ", db_path_, ": ",
                     strerror(errno)));
  }
  const int rc = sqlite3_open_v2(
      db_path_.c_str(), &db_,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) return OpenError("cannot open", rc);
  sqlite3_extended_result_codes(db_, 1);
  if (const int r = sqlite3_busy_timeout(db_, kBusyTimeoutMs); r != SQLITE_OK) {
    return OpenError("cannot set the busy timeout", r);
  }
  // The limit is on the whole row, which adds a few bytes to the payload.
  const int limit = sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, -1);
  max_payload_ = limit > 1024 ? static_cast<uint64_t>(limit) - 1024 : 0;
  return absl::OkStatus();
}

absl::Status SqliteFailureQueue::CheckOrCreateSchema() {
  // Reads first: a file that is not a database of ours is refused before
  // anything is written to it.
  Stmt stmt;
  int64_t application_id = 0;
  int64_t user_version = 0;
  bool has_failures = false;
  bool has_meta = false;
  int64_t tables = 0;
  const auto read_int = [&](const char* sql, int64_t* out) -> int {
    int rc = Prepare(db_, sql, &stmt);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(stmt.get(), 0);
      rc = sqlite3_step(stmt.get());
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  };
  if (const int rc = read_int("PRAGMA application_id", &application_id);
      rc != SQLITE_OK) {
    return OpenError("not a readable SQLite database", rc);
  }
  if (const int rc = read_int("PRAGMA user_version", &user_version);
      rc != SQLITE_OK) {
    return OpenError("not a readable SQLite database", rc);
  }
  {
    int rc = Prepare(db_, "SELECT name FROM sqlite_master WHERE type='table'",
                     &stmt);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      const unsigned char* name = sqlite3_column_text(stmt.get(), 0);
      const std::string table =
          name != nullptr ? reinterpret_cast<const char*>(name) : std::string();
      ++tables;
      has_failures |= table == "failures";
      has_meta |= table == "queue_meta";
      rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
      return OpenError("cannot list its tables", rc);
    }
  }
  stmt.reset();

  const bool fresh = tables == 0 && application_id == 0 && user_version == 0;
  if (!fresh) {
    if (application_id != kApplicationId) {
      return absl::FailedPreconditionError(absl::StrCat(
          "failure queue database ", db_path_,
          " is an SQLite database of another application (application_id ",
          application_id, ", a failure queue has ", kApplicationId,
          "); move it away or point the queue at another directory"));
    }
    if (user_version != kUserVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "failure queue database ", db_path_, " has format version ",
          user_version, "; this build reads version ", kUserVersion));
    }
    if (!has_failures || !has_meta) {
      return absl::FailedPreconditionError(absl::StrCat(
          "failure queue database ", db_path_, " lacks its table ",
          has_failures ? "queue_meta" : "failures", "; it is damaged"));
    }
    std::string purpose;
    std::string format;
    bool has_purpose = false;
    int rc = Prepare(db_,
                     "SELECT key, value FROM queue_meta WHERE key IN "
                     "('purpose', 'format')",
                     &stmt);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      const unsigned char* k = sqlite3_column_text(stmt.get(), 0);
      const unsigned char* v = sqlite3_column_text(stmt.get(), 1);
      const std::string key = k ? reinterpret_cast<const char*>(k) : "";
      std::string value = v ? reinterpret_cast<const char*>(v) : "";
      if (key == "purpose") {
        purpose = std::move(value);
        has_purpose = true;
      } else {
        format = std::move(value);
      }
      rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
      return OpenError("cannot read queue_meta", rc);
    }
    stmt.reset();
    if (format != kFormat) {
      return absl::FailedPreconditionError(absl::StrCat(
          "failure queue database ", db_path_, " has format '", format,
          "' in queue_meta; this build reads '", kFormat, "'"));
    }
    if (!has_purpose || purpose != options_.purpose) {
      return absl::FailedPreconditionError(
          absl::StrCat("failure queue database ", db_path_, " belongs to '",
                       purpose, "', not to '", options_.purpose,
                       "': is this directory configured for another service?"));
    }
  }

  // auto_vacuum only takes effect before the first table exists.
  if (fresh) {
    if (const int rc = ExecSql(db_, "PRAGMA auto_vacuum=INCREMENTAL");
        rc != SQLITE_OK) {
      return OpenError("cannot set auto_vacuum", rc);
    }
  }
  {
    int rc = Prepare(db_, "PRAGMA journal_mode=WAL", &stmt);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return OpenError("cannot set journal_mode=WAL", rc);
    const unsigned char* mode = sqlite3_column_text(stmt.get(), 0);
    if (mode == nullptr ||
        std::string(reinterpret_cast<const char*>(mode)) != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("failure queue database ", db_path_,
                       ": journal_mode=WAL did not take (the file system may "
                       "not support it)"));
    }
    stmt.reset();
  }
  if (const int rc = ExecSql(db_, "PRAGMA synchronous=FULL"); rc != SQLITE_OK) {
    return OpenError("cannot set synchronous=FULL", rc);
  }
  // Temporary tables and indices in memory: the containers run with a
  // read-only root file system, where SQLite's default temp directory is.
  if (const int rc = ExecSql(db_, "PRAGMA temp_store=MEMORY");
      rc != SQLITE_OK) {
    return OpenError("cannot set temp_store=MEMORY", rc);
  }
  if (!fresh) return absl::OkStatus();

  // One transaction: a crash leaves either nothing or the whole schema.
  int rc = ExecSql(db_, "BEGIN IMMEDIATE");
  if (rc == SQLITE_OK) {
    rc = ExecSql(
        db_,
        "CREATE TABLE failures (id INTEGER PRIMARY KEY, enqueued_at_ms "
        "INTEGER NOT NULL, payload BLOB NOT NULL);"
        "CREATE TABLE queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);");
  }
  if (rc == SQLITE_OK) {
    rc = Prepare(db_, "INSERT INTO queue_meta(key, value) VALUES (?1, ?2)",
                 &stmt);
  }
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"purpose", options_.purpose},
        {"format", kFormat}}) {
    if (rc != SQLITE_OK) break;
    rc = sqlite3_bind_text(stmt.get(), 1, key.data(),
                           static_cast<int>(key.size()), SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) {
      rc = sqlite3_bind_text(stmt.get(), 2, value.data(),
                             static_cast<int>(value.size()), SQLITE_TRANSIENT);
    }
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) rc = sqlite3_reset(stmt.get());
  }
  stmt.reset();
  if (rc == SQLITE_OK) {
    rc = ExecSql(db_, absl::StrCat("PRAGMA application_id=", kApplicationId,
                                   "; PRAGMA user_version=", kUserVersion)
                          .c_str());
  }
  if (rc == SQLITE_OK) rc = ExecSql(db_, "COMMIT");
  if (rc != SQLITE_OK) {
    absl::Status error = OpenError("cannot create the schema", rc);
    if (!sqlite3_get_autocommit(db_)) ExecSql(db_, "ROLLBACK");
    return error;
  }
  int64_t auto_vacuum = 0;
  if (read_int("PRAGMA auto_vacuum", &auto_vacuum) != SQLITE_OK ||
      auto_vacuum != 2) {
    spdlog::warn(
        "failure queue: {} was created without auto_vacuum=INCREMENTAL; a "
        "drained queue will not give its disk space back",
        db_path_);
  }
  stmt.reset();
  return absl::OkStatus();
}

absl::Status SqliteFailureQueue::PrepareStatements() {
  struct {
    Stmt* stmt;
    const char* sql;
  } const statements[] = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      {&insert_,
       "INSERT INTO failures(id, enqueued_at_ms, payload) VALUES (?1, ?2, ?3)"},
      {&delete_one_,
       "DELETE FROM failures WHERE id = ?1 RETURNING "
       "length(payload)"},
      {&delete_range_,
       "DELETE FROM failures WHERE id BETWEEN ?1 AND ?2 "
       "RETURNING length(payload)"},
      {&oldest_, "SELECT id, length(payload) FROM failures ORDER BY id"},
      {&set_last_id_,
       "INSERT OR REPLACE INTO queue_meta(key, value) VALUES ('last_id', ?1)"},
      // A new random value: a write that changes nothing writes no frame.
      {&fence_,
       "INSERT OR REPLACE INTO queue_meta(key, value) VALUES ('fence', "
       "hex(randomblob(8)))"},
  };
  for (const auto& s : statements) {
    if (const int rc = Prepare(db_, s.sql, s.stmt); rc != SQLITE_OK) {
      return OpenError(absl::StrCat("its schema does not fit (", s.sql, ")"),
                       rc);
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteFailureQueue::LoadState() {
  Stmt stmt;
  int rc = Prepare(db_,
                   "SELECT coalesce(max(id), 0), count(*), "
                   "coalesce(sum(length(payload)), 0) FROM failures",
                   &stmt);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) return OpenError("cannot count its records", rc);
  const int64_t max_id = sqlite3_column_int64(stmt.get(), 0);
  const int64_t count = sqlite3_column_int64(stmt.get(), 1);
  const int64_t bytes = sqlite3_column_int64(stmt.get(), 2);
  if (rc = sqlite3_step(stmt.get()); rc != SQLITE_DONE) {
    return OpenError("cannot count its records", rc);
  }

  int64_t last_id = 0;
  rc =
      Prepare(db_, "SELECT value FROM queue_meta WHERE key = 'last_id'", &stmt);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
    if (text == nullptr ||
        !absl::SimpleAtoi(reinterpret_cast<const char*>(text), &last_id)) {
      return absl::FailedPreconditionError(
          absl::StrCat("failure queue database ", db_path_,
                       ": queue_meta last_id is not a number; it is damaged"));
    }
    rc = sqlite3_step(stmt.get());
  }
  if (rc != SQLITE_DONE) return OpenError("cannot read queue_meta", rc);

  // Ids must stay far from overflowing (a hostile or damaged file).
  constexpr int64_t kMaxStartId = std::numeric_limits<int64_t>::max() / 2;
  const int64_t highest = std::max({max_id, last_id, int64_t{0}});
  if (highest >= kMaxStartId || count < 0 || bytes < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "failure queue database ", db_path_, " holds implausible ids (", max_id,
        ", last ", last_id, "); it is damaged"));
  }
  absl::MutexLock lock(&mu_);
  next_id_ = highest + 1;
  committed_records_ = static_cast<uint64_t>(count);
  committed_bytes_ = static_cast<uint64_t>(bytes);
  reloaded_ = committed_records_;
  levels_->records.store(committed_records_);
  levels_->bytes.store(committed_bytes_);
  return absl::OkStatus();
}

absl::Status SqliteFailureQueue::OpenReader() {
  absl::MutexLock lock(&read_mu_);
  int rc =
      sqlite3_open_v2(db_path_.c_str(), &reader_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(reader_, 1);
    rc = sqlite3_busy_timeout(reader_, kBusyTimeoutMs);
  }
  // The reader never writes; query_only makes that a rule.
  if (rc == SQLITE_OK) rc = ExecSql(reader_, "PRAGMA query_only=1");
  if (rc == SQLITE_OK) {
    rc = Prepare(reader_,
                 "SELECT id, payload FROM failures WHERE id > ?1 ORDER BY id "
                 "LIMIT ?2",
                 &read_);
  }
  if (rc != SQLITE_OK) {
    return absl::FailedPreconditionError(absl::StrCat(
        "failure queue database ", db_path_,
        ": cannot open the read connection: ", SqliteText(reader_, rc)));
  }
  return absl::OkStatus();
}

void SqliteFailureQueue::Append(std::vector<std::string> payloads,
                                AppendCallback done) {
  if (payloads.empty()) {
    done(std::vector<int64_t>{});
    return;
  }
  uint64_t bytes = 0;
  uint64_t largest = 0;
  for (const std::string& p : payloads) {
    bytes += p.size();
    largest = std::max<uint64_t>(largest, p.size());
  }
  const uint64_t records = payloads.size();
  const int64_t now_ms = absl::ToUnixMillis(SystemClock::Get().Now());
  absl::Status refusal;
  std::deque<PendingAppend> evicted;
  {
    absl::MutexLock lock(&mu_);
    const QueueLimits& limits = options_.limits;
    if (closing_) {
      refusal = absl::UnavailableError(
          absl::StrCat("failure queue ", db_path_, " is closed"));
    } else if (records > limits.max_records || bytes > limits.max_bytes ||
               largest > max_payload_) {
      refusal = absl::ResourceExhaustedError(absl::StrCat(
          "Append of ", records, " records / ", bytes,
          " bytes (largest payload ", largest,
          ") can never fit the failure queue's limits of ", limits.max_records,
          " records / ", limits.max_bytes,
          " bytes (SQLite takes payloads up to ", max_payload_, " bytes)"));
    } else if (limits.overflow == QueueLimits::Overflow::kRefuse &&
               (committed_records_ + pending_records_ + records >
                    limits.max_records ||
                committed_bytes_ + pending_bytes_ + bytes > limits.max_bytes)) {
      refusal = absl::ResourceExhaustedError(absl::StrCat(
          "failure queue full: holds ", committed_records_ + pending_records_,
          " records / ", committed_bytes_ + pending_bytes_,
          " bytes (committed and pending), limits ", limits.max_records,
          " records / ", limits.max_bytes, " bytes; this Append has ", records,
          " records / ", bytes, " bytes"));
    } else {
      if (limits.overflow == QueueLimits::Overflow::kDropOldest) {
        // Commits are failing and failures keep coming: what waits for the
        // disk in memory is held to the same limits, oldest out first (each
        // told through its `done`), so memory stays bounded however long
        // the disk is away.
        while (!pending_.empty() &&
               (pending_records_ + records > limits.max_records ||
                pending_bytes_ + bytes > limits.max_bytes)) {
          pending_records_ -= pending_.front().payloads.size();
          pending_bytes_ -= pending_.front().bytes;
          evicted.push_back(std::move(pending_.front()));
          pending_.pop_front();
        }
      }
      PendingAppend append;
      append.first_id = next_id_;
      append.enqueued_at_ms = now_ms;
      append.bytes = bytes;
      append.payloads = std::move(payloads);
      append.done = std::move(done);
      next_id_ += static_cast<int64_t>(records);
      pending_records_ += records;
      pending_bytes_ += bytes;
      pending_.push_back(std::move(append));
    }
  }
  for (PendingAppend& e : evicted) {
    e.done(absl::ResourceExhaustedError(absl::StrCat(
        "dropped from failure queue ", db_path_,
        " before it could be stored: commits are failing and newer records "
        "took its place within the limits")));
  }
  if (!refusal.ok()) done(std::move(refusal));
}

absl::StatusOr<std::vector<QueueRecord>> SqliteFailureQueue::Read(
    int64_t after_id, size_t max_records, uint64_t max_bytes) const {
  std::vector<QueueRecord> out;
  if (max_records == 0) return out;
  absl::MutexLock lock(&read_mu_);
  if (reader_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("failure queue ", db_path_, " is closed"));
  }
  sqlite3_stmt* stmt = read_.get();
  const int64_t limit = static_cast<int64_t>(
      std::min<uint64_t>(max_records, std::numeric_limits<int64_t>::max()));
  int rc = sqlite3_bind_int64(stmt, 1, after_id);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(stmt, 2, limit);
  uint64_t total = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const void* blob = sqlite3_column_blob(stmt, 1);
    const int size = sqlite3_column_bytes(stmt, 1);
    const uint64_t n = size > 0 ? static_cast<uint64_t>(size) : 0;
    if (!out.empty() && total + n > max_bytes) {
      rc = SQLITE_DONE;
      break;
    }
    total += n;
    QueueRecord record;
    record.id = sqlite3_column_int64(stmt, 0);
    if (blob != nullptr && n > 0) {
      record.payload.assign(static_cast<const char*>(blob), n);
    }
    out.push_back(std::move(record));
    rc = SQLITE_OK;
  }
  // Reset ends the read transaction, so it never holds up a checkpoint.
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE && rc != SQLITE_OK) {
    return absl::UnavailableError(
        absl::StrCat("reading failure queue ", db_path_,
                     " failed: ", SqliteText(reader_, rc)));
  }
  return out;
}

void SqliteFailureQueue::Release(absl::Span<const int64_t> ids) {
  if (ids.empty()) return;
  absl::MutexLock lock(&mu_);
  if (closing_) return;
  release_ids_.insert(release_ids_.end(), ids.begin(), ids.end());
}

void SqliteFailureQueue::ReleaseRange(int64_t first, int64_t last) {
  if (first > last) return;
  absl::MutexLock lock(&mu_);
  if (closing_) return;
  release_ranges_.emplace_back(first, last);
}

void SqliteFailureQueue::SetCommitListener(std::function<void()> listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

QueueStats SqliteFailureQueue::stats() const {
  QueueStats s;
  {
    absl::MutexLock lock(&mu_);
    s.records = committed_records_;
    s.bytes = committed_bytes_;
    s.pending = pending_records_;
    s.reloaded = reloaded_;
    s.last_error = last_error_;
  }
  s.dropped = dropped_.value();
  s.commits = commits_.value();
  s.commit_errors = commit_errors_.value();
  return s;
}

absl::Status SqliteFailureQueue::Failed(const char* step, int rc) {
  return absl::UnavailableError(absl::StrCat(
      "failure queue ", db_path_, ": ", step, " failed: ", SqliteText(db_, rc),
      "; nothing of this group was stored"));
}

int SqliteFailureQueue::StepDelete(sqlite3_stmt* stmt, Outcome* outcome) {
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    ++outcome->removed;
    outcome->removed_bytes += static_cast<uint64_t>(
        std::max<int64_t>(0, sqlite3_column_int64(stmt, 0)));
  }
  sqlite3_reset(stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

absl::Status SqliteFailureQueue::RunTransaction(
    const std::deque<PendingAppend>& appends,
    const std::vector<int64_t>& release_ids,
    const std::vector<std::pair<int64_t, int64_t>>& release_ranges,
    uint64_t committed_records, uint64_t committed_bytes, Outcome* outcome) {
  const char* step = "BEGIN";
  int rc = sqlite3_step(begin_.get());
  sqlite3_reset(begin_.get());
  if (rc == SQLITE_DONE) rc = SQLITE_OK;

  // Releases first, so their room is free for this group's inserts.
  if (rc == SQLITE_OK) step = "DELETE (release)";
  for (size_t i = 0; rc == SQLITE_OK && i < release_ids.size(); ++i) {
    rc = sqlite3_bind_int64(delete_one_.get(), 1, release_ids[i]);
    if (rc == SQLITE_OK) rc = StepDelete(delete_one_.get(), outcome);
  }
  for (size_t i = 0; rc == SQLITE_OK && i < release_ranges.size(); ++i) {
    rc = sqlite3_bind_int64(delete_range_.get(), 1, release_ranges[i].first);
    if (rc == SQLITE_OK) {
      rc = sqlite3_bind_int64(delete_range_.get(), 2, release_ranges[i].second);
    }
    if (rc == SQLITE_OK) rc = StepDelete(delete_range_.get(), outcome);
  }

  if (rc == SQLITE_OK) step = "INSERT";
  int64_t last_id = 0;
  for (size_t a = 0; rc == SQLITE_OK && a < appends.size(); ++a) {
    const PendingAppend& append = appends[a];
    for (size_t i = 0; rc == SQLITE_OK && i < append.payloads.size(); ++i) {
      const std::string& payload = append.payloads[i];
      last_id = append.first_id + static_cast<int64_t>(i);
      rc = sqlite3_bind_int64(insert_.get(), 1, last_id);
      if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(insert_.get(), 2, append.enqueued_at_ms);
      }
      // data() is never null, so an empty payload binds as an empty blob,
      // not NULL. The payload outlives the step (SQLITE_STATIC).
      if (rc == SQLITE_OK) {
        rc = sqlite3_bind_blob(insert_.get(), 3, payload.data(),
                               static_cast<int>(payload.size()), SQLITE_STATIC);
      }
      if (rc == SQLITE_OK) {
        rc = sqlite3_step(insert_.get());
        sqlite3_reset(insert_.get());
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
      }
      if (rc == SQLITE_OK) {
        ++outcome->inserted;
        outcome->inserted_bytes += payload.size();
      }
    }
  }
  if (rc == SQLITE_OK && last_id > 0) {
    step = "UPDATE last_id";
    rc = sqlite3_bind_int64(set_last_id_.get(), 1, last_id);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(set_last_id_.get());
      sqlite3_reset(set_last_id_.get());
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
  }

  // kDropOldest: find the newest id that must go for the rest to fit, then
  // delete up to it; RETURNING keeps the counts exact.
  const uint64_t records =
      Apply(committed_records, outcome->inserted, outcome->removed);
  const uint64_t bytes =
      Apply(committed_bytes, outcome->inserted_bytes, outcome->removed_bytes);
  const QueueLimits& limits = options_.limits;
  if (rc == SQLITE_OK &&
      limits.overflow == QueueLimits::Overflow::kDropOldest &&
      (records > limits.max_records || bytes > limits.max_bytes)) {
    step = "DELETE (drop oldest)";
    uint64_t drop_records = 0;
    uint64_t drop_bytes = 0;
    int64_t cutoff = 0;
    bool found = false;
    sqlite3_stmt* scan = oldest_.get();
    while ((rc = sqlite3_step(scan)) == SQLITE_ROW) {
      cutoff = sqlite3_column_int64(scan, 0);
      ++drop_records;
      drop_bytes += static_cast<uint64_t>(
          std::max<int64_t>(0, sqlite3_column_int64(scan, 1)));
      if (Apply(records, 0, drop_records) <= limits.max_records &&
          Apply(bytes, 0, drop_bytes) <= limits.max_bytes) {
        found = true;
        break;
      }
    }
    sqlite3_reset(scan);
    rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    if (rc == SQLITE_OK && found) {
      const uint64_t removed_before = outcome->removed;
      rc = sqlite3_bind_int64(delete_range_.get(), 1,
                              std::numeric_limits<int64_t>::min());
      if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(delete_range_.get(), 2, cutoff);
      if (rc == SQLITE_OK) rc = StepDelete(delete_range_.get(), outcome);
      outcome->dropped = outcome->removed - removed_before;
    }
  }

  if (rc == SQLITE_OK) {
    step = "COMMIT";
    rc = sqlite3_step(commit_.get());
    sqlite3_reset(commit_.get());
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc == SQLITE_OK) return absl::OkStatus();

  absl::Status error = Failed(step, rc);
  outcome->failed_at_commit = std::string_view(step) == "COMMIT";
  // Some errors (an I/O error in COMMIT) end the transaction themselves.
  if (!sqlite3_get_autocommit(db_)) {
    const int rb = sqlite3_step(rollback_.get());
    sqlite3_reset(rollback_.get());
    if (rb != SQLITE_DONE) {
      spdlog::error("failure queue {}: ROLLBACK failed: {}", db_path_,
                    SqliteText(db_, rb));
    }
  }
  return error;
}

// A COMMIT whose WAL fsync failed has usually written its frames, commit
// marker included, before failing. SQLite forgets them, and the next
// transaction writes over them, but if the process died first, the WAL
// recovery at the next open would find them valid and bring back records
// whose Appends were told they failed. So a failed commit is followed at once
// by a tiny transaction (before anyone is told): its frames land where the
// failed ones began, which breaks their checksum chain. Even if its own fsync
// fails, what it leaves is harmless (queue_meta's "fence" row changed).
void SqliteFailureQueue::FenceFailedCommit() {
  const int rc = sqlite3_step(fence_.get());
  sqlite3_reset(fence_.get());
  if (!sqlite3_get_autocommit(db_)) {
    sqlite3_step(rollback_.get());
    sqlite3_reset(rollback_.get());
  }
  // Done, or failed only at the fsync: either way its frame was written.
  if (rc == SQLITE_DONE || rc == SQLITE_IOERR_FSYNC) return;
  if (const uint64_t n = fence_log_.Add(); n > 0) {
    spdlog::error(
        "failure queue {}: {} failed commit(s) could not be fenced off ({}); "
        "if the process dies before the next successful commit, records "
        "reported as not stored may reappear (the next hops deduplicate)",
        db_path_, n, SqliteText(db_, rc));
  }
}

bool SqliteFailureQueue::ProbeAfterFailure() {
  // The fence write is a real, fsync'd one-row transaction.
  const int rc = sqlite3_step(fence_.get());
  sqlite3_reset(fence_.get());
  if (!sqlite3_get_autocommit(db_)) {
    sqlite3_step(rollback_.get());
    sqlite3_reset(rollback_.get());
  }
  absl::MutexLock lock(&mu_);
  if (last_error_.ok()) return false;  // nothing failed: no probe was due
  if (rc != SQLITE_DONE) {
    retry_at_ = SystemClock::Get().Monotonic() + backoff_.Next();
    return false;
  }
  last_error_ = absl::OkStatus();
  retry_at_ = absl::ZeroDuration();
  backoff_.Reset();
  return true;
}

void SqliteFailureQueue::ShrinkAfterDrain() {
  // A queue that keeps up drains many times a second; shrinking each time
  // (a vacuum and a TRUNCATE checkpoint, each with its fsync) measured as
  // most of the commit cost. Shrink only when there is something worth
  // giving back, and not more often than every few seconds.
  constexpr int64_t kShrinkMinFreePages = 1024;  // 4 MiB at 4 KiB pages
  constexpr absl::Duration kShrinkMinInterval = absl::Seconds(10);
  const absl::Duration now = SystemClock::Get().Monotonic();
  if (last_shrink_ != absl::InfiniteDuration() &&
      now - last_shrink_ < kShrinkMinInterval) {
    return;
  }
  {
    sqlite3_stmt* stmt = nullptr;
    int64_t free_pages = 0;
    if (sqlite3_prepare_v2(db_, "PRAGMA freelist_count", -1, &stmt, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      free_pages = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    if (free_pages < kShrinkMinFreePages) return;
  }
  last_shrink_ = now;
  int rc = ExecSql(db_, "PRAGMA incremental_vacuum");
  if (rc != SQLITE_OK) {
    spdlog::warn("failure queue {}: incremental_vacuum failed: {}", db_path_,
                 SqliteText(db_, rc));
    return;
  }
  sqlite3_busy_timeout(db_, kCheckpointBusyTimeoutMs);
  rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                 nullptr, nullptr);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // BUSY: a reader was active; the next drain (or the close) retries.
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    spdlog::warn("failure queue {}: WAL checkpoint failed: {}", db_path_,
                 SqliteText(db_, rc));
  }
}

void SqliteFailureQueue::WriterLoop() {
  pthread_setname_np(pthread_self(), "qfp-queue-wr");
  bool last_try_done = false;
  uint64_t failed_in_a_row = 0;  // for the "commits work again" line
  while (true) {
    std::deque<PendingAppend> appends;
    std::vector<int64_t> release_ids;
    std::vector<std::pair<int64_t, int64_t>> release_ranges;
    uint64_t group_records = 0;
    uint64_t group_bytes = 0;
    uint64_t committed_records = 0;
    uint64_t committed_bytes = 0;
    {
      absl::MutexLock lock(&mu_);
      writer_id_ = std::this_thread::get_id();
      const auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !pending_.empty() || !release_ids_.empty() ||
               !release_ranges_.empty();
      };
      // Wait for work, and after a failure for the back-off to pass; Close
      // cuts the back-off short.
      // (Condition waits, not CondVar timeouts: abseil times those on the
      // wall clock; AwaitUntil keeps the back-off on the monotonic one.)
      const auto work_or_close = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closing_ || has_work();
      };
      while (!closing_) {
        // After a failed commit there is always something to do: if nothing
        // else, probe the disk once the back-off has passed, so that the
        // error clears (and health recovers) without new traffic.
        if (!has_work() && last_error_.ok()) {
          mu_.Await(absl::Condition(&work_or_close));
          continue;
        }
        if (SystemClock::Get().Monotonic() >= retry_at_) break;
        AwaitUntil(mu_, absl::Condition(&closing_), SystemClock::Get(),
                   retry_at_);
      }
      if (closing_ && (!has_work() || last_try_done)) {
        // Appends are refused once closing_ is set, so after the last try
        // nothing is pending; releases still queued are simply dropped.
        break;
      }
      if (closing_) last_try_done = true;
      appends.swap(pending_);
      release_ids.swap(release_ids_);
      release_ranges.swap(release_ranges_);
      for (const PendingAppend& a : appends) {
        group_records += a.payloads.size();
        group_bytes += a.bytes;
      }
      committed_records = committed_records_;
      committed_bytes = committed_bytes_;
    }

    if (appends.empty() && release_ids.empty() && release_ranges.empty()) {
      if (!ProbeAfterFailure()) continue;
      spdlog::info("failure queue {}: commits succeed again after {} failed",
                   db_path_, failed_in_a_row);
      failed_in_a_row = 0;
      continue;
    }

    Outcome outcome;
    const absl::Duration start = SystemClock::Get().Monotonic();
    const absl::Status status =
        RunTransaction(appends, release_ids, release_ranges, committed_records,
                       committed_bytes, &outcome);
    commit_duration_.Observe(SystemClock::Get().Monotonic() - start);
    if (outcome.failed_at_commit) FenceFailedCommit();

    std::function<void()> listener;
    bool drained = false;
    {
      absl::MutexLock lock(&mu_);
      pending_records_ -= group_records;
      pending_bytes_ -= group_bytes;
      if (status.ok()) {
        committed_records_ =
            Apply(committed_records_, outcome.inserted, outcome.removed);
        committed_bytes_ = Apply(committed_bytes_, outcome.inserted_bytes,
                                 outcome.removed_bytes);
        levels_->records.store(committed_records_);
        levels_->bytes.store(committed_bytes_);
        commits_.Increment();
        if (outcome.dropped > 0) dropped_.Increment(outcome.dropped);
        last_error_ = absl::OkStatus();
        retry_at_ = absl::ZeroDuration();
        backoff_.Reset();
        // Whatever changed the records: new ones visible, some released or
        // dropped (a reader may be waiting for the queue to drain).
        if (outcome.inserted > 0 || outcome.removed > 0) listener = listener_;
        drained = outcome.removed > 0 && committed_records_ == 0;
      } else {
        commit_errors_.Increment();
        last_error_ = status;
        retry_at_ = SystemClock::Get().Monotonic() + backoff_.Next();
        // Releases need no durability but should still happen: keep them.
        release_ids_.insert(release_ids_.begin(), release_ids.begin(),
                            release_ids.end());
        release_ranges_.insert(release_ranges_.begin(), release_ranges.begin(),
                               release_ranges.end());
      }
    }

    if (status.ok() && failed_in_a_row > 0) {
      spdlog::info("failure queue {}: commits succeed again after {} failed",
                   db_path_, failed_in_a_row);
      failed_in_a_row = 0;
    }
    if (!status.ok()) {
      ++failed_in_a_row;
      if (const uint64_t n = error_log_.Add(); n > 0) {
        spdlog::error("failure queue: {} commit(s) failed, the last: {}", n,
                      status.ToString());
      }
    }
    if (outcome.dropped > 0 && status.ok()) {
      if (const uint64_t n = drop_log_.Add(outcome.dropped); n > 0) {
        spdlog::warn(
            "failure queue {} full: dropped the {} oldest records since the "
            "last report to make room (limits {} records / {} bytes)",
            db_path_, n, options_.limits.max_records,
            options_.limits.max_bytes);
      }
    }
    for (PendingAppend& a : appends) {
      if (status.ok()) {
        std::vector<int64_t> ids(a.payloads.size());
        for (size_t i = 0; i < ids.size(); ++i) {
          ids[i] = a.first_id + static_cast<int64_t>(i);
        }
        a.done(std::move(ids));
      } else {
        a.done(status);
      }
    }
    if (listener) listener();
    if (drained) ShrinkAfterDrain();
  }
}

void SqliteFailureQueue::CloseConnections() {
  begin_.reset();
  commit_.reset();
  rollback_.reset();
  insert_.reset();
  delete_one_.reset();
  delete_range_.reset();
  oldest_.reset();
  set_last_id_.reset();
  fence_.reset();
  CloseDb(db_, db_path_);
  absl::MutexLock lock(&read_mu_);
  read_.reset();
  CloseDb(reader_, db_path_);
}

void SqliteFailureQueue::Close() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    // From a callback: the writer ends after this round; the teardown is
    // left to a Close on another thread (the destructor at the latest).
    if (writer_id_ == std::this_thread::get_id()) return;
  }
  absl::MutexLock close_lock(&close_mu_);
  if (closed_) return;
  closed_ = true;
  const bool started = writer_.joinable();
  if (started) writer_.join();
  CloseConnections();
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);  // Releases the flock.
    lock_fd_ = -1;
  }
  if (started) spdlog::info("failure queue: closed {}", db_path_);
}

}  // namespace qfp
