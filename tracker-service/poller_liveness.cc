#include "tracker-service/poller_liveness.h"

#include <algorithm>

namespace qfp::tracker {

PollerLiveness::PollerLiveness(int missed_heartbeats, const Clock& clock,
                               size_t max_pollers)
    : missed_heartbeats_(std::max(missed_heartbeats, 1)),
      clock_(clock),
      max_pollers_(max_pollers) {}

PollerLiveness::BeatResult PollerLiveness::Heartbeat(
    const std::string& poller_id, const std::string& instance_id,
    absl::Duration interval, bool stopping) {
  const absl::Duration now = clock_.Monotonic();
  absl::MutexLock lock(&mu_);
  BeatResult result;
  auto it = pollers_.find(poller_id);
  if (it == pollers_.end()) {
    if (pollers_.size() >= max_pollers_) {
      result.beat = Beat::kUntracked;
      return result;
    }
    it = pollers_.emplace(poller_id, State{}).first;
    result.beat = Beat::kNew;
  } else if (it->second.silent) {
    result.beat = Beat::kReturned;
    result.quiet_for = now - it->second.last_beat;
  } else if (it->second.stopping && !stopping) {
    result.beat = Beat::kResumed;
    result.quiet_for = now - it->second.last_beat;
  }
  State& state = it->second;
  state.instance_id = instance_id;
  state.last_beat = now;
  state.interval = interval;
  state.stopping = stopping;
  state.silent = false;
  return result;
}

std::vector<PollerLiveness::Silence> PollerLiveness::Check() {
  const absl::Duration now = clock_.Monotonic();
  std::vector<Silence> silences;
  absl::MutexLock lock(&mu_);
  for (auto& [poller_id, state] : pollers_) {
    if (state.silent || state.stopping) continue;
    const absl::Duration quiet = now - state.last_beat;
    if (quiet < missed_heartbeats_ * state.interval) continue;
    state.silent = true;
    silences.push_back(
        Silence{poller_id, state.instance_id, state.interval, quiet});
  }
  // Stable order for logs and tests.
  std::sort(silences.begin(), silences.end(),
            [](const Silence& a, const Silence& b) {
              return a.poller_id < b.poller_id;
            });
  return silences;
}

size_t PollerLiveness::tracked() const {
  absl::MutexLock lock(&mu_);
  return pollers_.size();
}

size_t PollerLiveness::silent() const {
  absl::MutexLock lock(&mu_);
  return static_cast<size_t>(
      std::count_if(pollers_.begin(), pollers_.end(),
                    [](const auto& entry) { return entry.second.silent; }));
}

}  // namespace qfp::tracker
