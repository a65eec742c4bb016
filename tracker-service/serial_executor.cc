#include "tracker-service/serial_executor.h"

#include <pthread.h>

#include <utility>

namespace qfp::tracker {

SerialExecutor::SerialExecutor(std::string name)
    : thread_([this, name = std::move(name)] {
        pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
        Loop();
      }) {}

SerialExecutor::~SerialExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void SerialExecutor::Add(absl::AnyInvocable<void() &&> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void SerialExecutor::Loop() {
  while (true) {
    std::deque<absl::AnyInvocable<void() &&>> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !tasks_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // stopping, and nothing left
      batch.swap(tasks_);
    }
    for (auto& task : batch) std::move(task)();
  }
}

}  // namespace qfp::tracker
