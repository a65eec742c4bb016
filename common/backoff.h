// Exponential backoff with jitter, in the shape of gRPC's BackOff
// (src/core/lib/backoff/backoff.h): the first delay is `initial`, each next
// one is the previous times `multiplier`, capped at `max`; each delay handed
// out is spread by +-`jitter` so that many clients do not retry in step.
// Every retry loop of both services uses it: reconnects, InfluxDB write and
// setup retries, commit retries.
//
// Not thread-safe: one BackOff per retry loop.
#ifndef QFP_COMMON_BACKOFF_H_
#define QFP_COMMON_BACKOFF_H_

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace qfp {

class BackOff {
 public:
  struct Options {
    absl::Duration initial = absl::Milliseconds(100);
    double multiplier = 2.0;
    // Fraction of the delay: 0.2 gives a delay in [0.8, 1.2] * nominal.
    double jitter = 0.2;
    absl::Duration max = absl::Seconds(30);
  };

  explicit BackOff(Options options);

  // The delay before the next attempt; grows the next one.
  absl::Duration Next();
  // After a success: the next delay is `initial` again.
  void Reset();

 private:
  const Options options_;
  absl::Duration current_;
  absl::BitGen rng_;
};

}  // namespace qfp

#endif  // QFP_COMMON_BACKOFF_H_
