#include "common/clock.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace qfp {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// One thread that runs callbacks at steady-clock deadlines. Lives for the
// whole process (never destroyed, so no waiter can outlive it).
class DeadlineTimer {
 public:
  static DeadlineTimer& Get() {
    // A child of fork() has no timer thread (only the forking thread is
    // copied) and perhaps a copy of a locked mutex: it gets its own timer.
    static std::mutex mu;
    static DeadlineTimer* timer = nullptr;
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lock(mu);
    if (timer == nullptr || owner != getpid()) {
      timer = new DeadlineTimer();  // never deleted: waiters may outlive main
      owner = getpid();
    }
    return *timer;
  }

  uint64_t Schedule(SteadyTime when, std::function<void()> fire) {
    std::lock_guard<std::mutex> lock(m_);
    const uint64_t id = ++next_id_;
    due_.emplace(std::make_pair(when, id), std::move(fire));
    cv_.notify_one();
    return id;
  }
  // True if the callback was removed before it ran; false if it has run or
  // is running.
  bool Cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(m_);
    for (auto it = due_.begin(); it != due_.end(); ++it) {
      if (it->first.second == id) {
        due_.erase(it);
        return true;
      }
    }
    return false;
  }

 private:
  DeadlineTimer() {
    std::thread([this] { Loop(); }).detach();
  }
  void Loop() {
    std::unique_lock<std::mutex> lock(m_);
    while (true) {
      if (due_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const SteadyTime when = due_.begin()->first.first;
      if (std::chrono::steady_clock::now() < when) {
        cv_.wait_until(lock, when);
        continue;
      }
      std::function<void()> fire = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      lock.unlock();
      fire();
      lock.lock();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::map<std::pair<SteadyTime, uint64_t>, std::function<void()>> due_;
  uint64_t next_id_ = 0;
};

// What a waiter and its timer callback share. The callback may run after
// the waiter returned (it was already running when the waiter gave up on
// it), so it must not touch `mu` then: `state` says whether it still may.
struct WaitState {
  std::mutex m;
  std::condition_variable cv;
  enum { kWaiting, kFiring, kDone, kAbandoned } phase = kWaiting;
};

}  // namespace

bool AwaitUntil(absl::Mutex& mu, const absl::Condition& cond,
                const Clock& clock, absl::Duration deadline) {
  if (cond.Eval()) return true;
  if (deadline == absl::InfiniteDuration()) {
    mu.Await(cond);
    return true;
  }
  const absl::Duration left = deadline - clock.Monotonic();
  if (left <= absl::ZeroDuration()) return false;

  bool fired = false;  // guarded by mu
  auto state = std::make_shared<WaitState>();
  const uint64_t id = DeadlineTimer::Get().Schedule(
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(left),
      [state, &mu, &fired] {
        {
          std::lock_guard<std::mutex> lock(state->m);
          if (state->phase != WaitState::kWaiting) return;  // abandoned
          state->phase = WaitState::kFiring;
        }
        {
          absl::MutexLock lock(&mu);
          fired = true;
        }
        std::lock_guard<std::mutex> lock(state->m);
        state->phase = WaitState::kDone;
        state->cv.notify_all();
      });
  struct Args {
    const absl::Condition* cond;
    const bool* fired;
  } args{&cond, &fired};
  mu.Await(absl::Condition(
      +[](Args* a) { return *a->fired || a->cond->Eval(); }, &args));
  if (!fired && !DeadlineTimer::Get().Cancel(id)) {
    // The callback was taken off the timer but has not set `fired` yet: it
    // is running. Either it has not reached `mu` (then it must not: mark it
    // abandoned) or it is waiting for `mu`, which we hold: let it finish.
    std::unique_lock<std::mutex> lock(state->m);
    if (state->phase == WaitState::kWaiting) {
      state->phase = WaitState::kAbandoned;
    } else if (state->phase == WaitState::kFiring) {
      mu.Unlock();
      state->cv.wait(lock, [&] { return state->phase == WaitState::kDone; });
      lock.unlock();
      mu.Lock();
    }
  }
  return cond.Eval();
}

}  // namespace qfp
