// Time as a seam: production code asks a Clock, tests pass a FakeClock.
//
// Two readings, as in Envoy's TimeSource:
//   * Now(): wall-clock time. Only for timestamps that leave the process
//     (a failure's occurred_at) and for the UTC day of the daily counters.
//     It can step backwards or forwards (NTP, a VM resumed, an operator).
//   * Monotonic(): time since an arbitrary fixed point, never stepping. Every
//     interval, deadline, timeout, backoff and reconnect is measured on it,
//     so that a wall-clock step changes no cadence.
#ifndef QFP_COMMON_CLOCK_H_
#define QFP_COMMON_CLOCK_H_

#include <chrono>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace qfp {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (see above).
  virtual absl::Time Now() const = 0;
  // Monotonic time since an unspecified epoch fixed for the process.
  virtual absl::Duration Monotonic() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Duration Monotonic() const override {
    return absl::FromChrono(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  // The process-wide instance.
  static const Clock& Get() {
    static const SystemClock clock;
    return clock;
  }
};

// A clock that only moves when told to. Thread-safe. Advance moves both
// readings, as real time passing does; StepWall moves the wall clock alone,
// as an NTP correction does.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  absl::Duration Monotonic() const override {
    absl::MutexLock lock(&mu_);
    return monotonic_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
    monotonic_ += d;
  }
  void StepWall(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  // Sets the wall clock only (monotonic time does not jump).
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
  absl::Duration monotonic_ = absl::Hours(1);
};

// Waits on `mu`, which the caller holds, until `cond` holds or `clock`'s
// monotonic reading reaches `deadline` (absl::InfiniteDuration(): no
// deadline); returns whether `cond` holds. Woken at once by the state change
// `cond` reads, as absl::Mutex::Await is.
//
// Why not Mutex::AwaitWithTimeout: abseil 20220623 turns every timeout into
// an absolute CLOCK_REALTIME deadline, so a wall clock stepped back during
// the wait stretches it by the whole step. Here the deadline is kept by one
// process-wide timer thread on std::chrono::steady_clock, which wakes the
// waiter through `mu`; a wall-clock step changes nothing. `mu` may be
// released and taken again inside (as Await does).
bool AwaitUntil(absl::Mutex& mu, const absl::Condition& cond,
                const Clock& clock, absl::Duration deadline)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

}  // namespace qfp

#endif  // QFP_COMMON_CLOCK_H_
