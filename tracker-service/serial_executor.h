// One thread that runs tasks in the order they were added.
//
// The tracker concludes committed requests here (logging, counting and
// answering each failure) instead of on the store's writer thread, so that
// the next commit never waits for that work: the two run side by side.
//
// Thread-safe. Add never blocks (the queue is unbounded: each stream keeps
// at most TrackerService::kRequestsInFlightPerStream requests, so the
// number of tasks is bounded by the streams). The destructor runs every
// task already added, then joins.
#ifndef QFP_TRACKER_SERIAL_EXECUTOR_H_
#define QFP_TRACKER_SERIAL_EXECUTOR_H_

#include <deque>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace qfp::tracker {

class SerialExecutor {
 public:
  // `name`: the thread's name (at most 15 characters), for top and perf.
  explicit SerialExecutor(std::string name);
  ~SerialExecutor();

  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  void Add(absl::AnyInvocable<void() &&> task);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_SERIAL_EXECUTOR_H_
