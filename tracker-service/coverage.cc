#include "tracker-service/coverage.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/failure_names.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::APP_NAMES_EXTRACT;
using failedpolls::v1::HEALTH_API;
using failedpolls::v1::PROXY_API;

// The poller's interval and timeout bounds (poller_config.cc).
constexpr int64_t kMaxIntervalMs = 604800000;
constexpr int64_t kDefaultTimeoutMs = 5000;
constexpr int64_t kDefaultAppNamesTimeoutMs = 120000;

absl::Duration Ms(const ConfigNode& node) {
  return absl::Milliseconds(node.Int(100, kMaxIntervalMs));
}
absl::Duration Ms(const ConfigNode& node, int64_t fallback) {
  return absl::Milliseconds(node.Int(fallback, 100, kMaxIntervalMs));
}

}  // namespace

std::string ConfiguredTarget::Key() const {
  std::string key = absl::StrCat(SourceName(source), " ", server_name);
  if (source == PROXY_API) absl::StrAppend(&key, " ", virtual_proxy);
  return key;
}

std::vector<ConfiguredTarget> ReadConfiguredTargets(const ConfigNode& sos) {
  ConfigNode poller = sos["failedPolls"]["poller"];
  const int64_t shared_ms =
      poller["requestTimeout"].Int(kDefaultTimeoutMs, 100, kMaxIntervalMs);
  const absl::Duration health_timeout =
      Ms(poller["healthCheckTimeout"], shared_ms);
  const absl::Duration sessions_timeout =
      Ms(poller["userSessionsTimeout"], shared_ms);
  const absl::Duration apps_timeout =
      Ms(poller["appNamesTimeout"],
         std::max(shared_ms, kDefaultAppNamesTimeoutMs));

  ConfigNode monitor = sos["serversToMonitor"];
  const absl::Duration health_interval = Ms(monitor["pollingInterval"]);
  ConfigNode sessions = sos["userSessions"];
  const bool sessions_enabled = sessions["enableSessionExtract"].Bool(false);
  const absl::Duration sessions_interval =
      sessions_enabled ? Ms(sessions["pollingInterval"]) : absl::ZeroDuration();

  std::vector<ConfiguredTarget> targets;
  std::vector<ConfiguredTarget> session_targets;
  for (const ConfigNode& server : monitor["servers"].Items()) {
    ConfiguredTarget health;
    health.source = HEALTH_API;
    health.server_name = server["serverName"].String();
    health.host = server["host"].Host(PortRule::kOptional);
    health.interval = health_interval;
    health.timeout = health_timeout;
    ConfigNode own_sessions = server["userSessions"];
    if (sessions_enabled && own_sessions.present() &&
        own_sessions["enable"].Bool(false)) {
      const std::string host = own_sessions["host"].Host(PortRule::kOptional);
      for (const ConfigNode& item : own_sessions["virtualProxies"].Items()) {
        std::string vp = item["virtualProxy"].String();
        // The poller refuses one without "/" (its config check says so).
        if (vp.empty() || !absl::StartsWith(vp, "/")) continue;
        ConfiguredTarget target;
        target.source = PROXY_API;
        target.server_name = health.server_name;
        target.host = host;
        target.virtual_proxy = std::move(vp);
        target.interval = sessions_interval;
        target.timeout = sessions_timeout;
        session_targets.push_back(std::move(target));
      }
    }
    targets.push_back(std::move(health));
  }
  // The poller's order: health checks, then sessions, then the app list.
  for (ConfiguredTarget& target : session_targets) {
    targets.push_back(std::move(target));
  }
  ConfigNode apps = sos["appNames"];
  if (apps["enableAppNameExtract"].Bool(false)) {
    ConfiguredTarget target;
    target.source = APP_NAMES_EXTRACT;
    target.host = apps["hostIP"].Host(PortRule::kOptional);
    target.server_name = target.host;
    target.interval = Ms(apps["extractInterval"]);
    target.timeout = apps_timeout;
    targets.push_back(std::move(target));
  }
  return targets;
}

std::string Coverage::MatchKey(failedpolls::v1::PollSource source,
                               const std::string& server_name,
                               const std::string& host,
                               const std::string& virtual_proxy) {
  // Lengths first, so that no name can forge another's key.
  const std::string& vp = source == PROXY_API ? virtual_proxy : "";
  return absl::StrCat(static_cast<int>(source), ":", server_name.size(), ":",
                      host.size(), ":", vp.size(), ":", server_name, host, vp);
}

Coverage::Coverage(std::vector<ConfiguredTarget> targets, const Clock& clock)
    : targets_(std::move(targets)), clock_(clock) {
  const absl::Duration now = clock_.Monotonic();
  states_.resize(targets_.size(), State{now});
  for (size_t i = 0; i < targets_.size(); ++i) {
    const ConfiguredTarget& t = targets_[i];
    index_.emplace(MatchKey(t.source, t.server_name, t.host, t.virtual_proxy),
                   i);
  }
}

void Coverage::Attempted(failedpolls::v1::PollSource source,
                         const std::string& server_name,
                         const std::string& host,
                         const std::string& virtual_proxy) {
  auto it = index_.find(MatchKey(source, server_name, host, virtual_proxy));
  if (it == index_.end()) return;
  const absl::Duration now = clock_.Monotonic();
  absl::MutexLock lock(&mu_);
  states_[it->second].last_attempt = now;
}

std::vector<ConfiguredTarget> Coverage::Check() {
  const absl::Duration now = clock_.Monotonic();
  std::vector<ConfiguredTarget> missed;
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < targets_.size(); ++i) {
    const ConfiguredTarget& target = targets_[i];
    const absl::Duration window = 2 * std::max(target.interval, target.timeout);
    State& state = states_[i];
    if (now - state.last_attempt < window) continue;
    if (now - state.last_report < window) continue;
    state.last_report = now;
    missed.push_back(target);
  }
  return missed;
}

}  // namespace qfp::tracker
