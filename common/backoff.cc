#include "common/backoff.h"

#include <algorithm>

namespace qfp {

BackOff::BackOff(Options options)
    : options_(options), current_(options.initial) {}

absl::Duration BackOff::Next() {
  const absl::Duration nominal = current_;
  current_ = std::min(current_ * options_.multiplier, options_.max);
  if (options_.jitter <= 0) return nominal;
  return nominal *
         absl::Uniform(rng_, 1.0 - options_.jitter, 1.0 + options_.jitter);
}

void BackOff::Reset() { current_ = options_.initial; }

}  // namespace qfp
