#include "poller-service/attempt_ledger.h"

#include <utility>

namespace qfp::poller {

void AttemptLedger::Record(const PollTarget& target, bool failed) {
  std::string key = target.Key();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = index_.try_emplace(std::move(key), attempts_.size());
  if (inserted) {
    TargetAttempts& fresh = attempts_.emplace_back();
    fresh.source = target.source;
    fresh.server_name = target.server_name;
    fresh.host = target.host;
    fresh.virtual_proxy = target.virtual_proxy;
  }
  TargetAttempts& counts = attempts_[it->second];
  ++counts.attempted;
  if (failed) ++counts.failed;
}

std::vector<TargetAttempts> AttemptLedger::Take() {
  absl::MutexLock lock(&mu_);
  std::vector<TargetAttempts> taken = std::move(attempts_);
  attempts_.clear();
  index_.clear();
  return taken;
}

}  // namespace qfp::poller
