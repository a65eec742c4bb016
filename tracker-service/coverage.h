// Coverage: which configured poll targets no poller attempts. Both services
// read the same Butler SOS file, so the tracker knows every target the
// poller plan holds (poller-service/poll_plan.h: one per server's health
// check, one per virtual proxy of each server whose sessions are polled,
// one QRS app list) and can notice one that no heartbeat mentions: a gap in
// sharding, a poller that is down or was never started, a config the
// pollers have not reloaded.
//
// A target is "not polled" when no heartbeat of any poller reported an
// attempt of it for its window: 2 of its intervals, or 2 of its timeouts
// when those are longer (a poll is counted when it completes, so a server
// that hangs for the whole timeout is still polled). It is reported at most
// once per window, and never before the tracker has been up one window.
//
// Thread-safe. Time: the tracker's monotonic clock.
#ifndef QFP_TRACKER_COVERAGE_H_
#define QFP_TRACKER_COVERAGE_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/config_node.h"
#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp::tracker {

// One target of the poll plan, as heartbeats and error points name it.
struct ConfiguredTarget {
  failedpolls::v1::PollSource source = failedpolls::v1::HEALTH_API;
  std::string server_name;
  std::string host;           // as configured
  std::string virtual_proxy;  // PROXY_API only
  absl::Duration interval;    // its source's polling interval
  absl::Duration timeout;     // its source's request timeout

  // "PROXY_API sense1 /sales": as the poller's PollTarget::Key().
  std::string Key() const;
};

// The targets of the poll plan, in the poller's order, read from the same
// keys the poller reads (poller-service/poller_config.cc; README.md "Keys
// the poller reads"): serversToMonitor.pollingInterval and .servers[]
// (host, serverName, userSessions.enable, .host, .virtualProxies),
// userSessions.enableSessionExtract and .pollingInterval,
// appNames.enableAppNameExtract, .extractInterval and .hostIP, and the
// timeouts failedPolls.poller.requestTimeout, .healthCheckTimeout,
// .userSessionsTimeout and .appNamesTimeout with the poller's defaults.
// Errors go to `sos`'s ConfigErrors with their key paths; the poller
// checks the rest of those sections (certificates, headers, tags).
std::vector<ConfiguredTarget> ReadConfiguredTargets(const ConfigNode& sos);

class Coverage {
 public:
  // Watches `targets` from now.
  Coverage(std::vector<ConfiguredTarget> targets, const Clock& clock);

  // A heartbeat reported at least one completed poll of the target; a
  // target that is not configured is ignored.
  void Attempted(failedpolls::v1::PollSource source,
                 const std::string& server_name, const std::string& host,
                 const std::string& virtual_proxy);

  // The targets not polled for their window, each at most once per window,
  // in configuration order.
  std::vector<ConfiguredTarget> Check();

  size_t size() const { return targets_.size(); }

 private:
  struct State {
    absl::Duration last_attempt;  // or the start
    absl::Duration last_report = -absl::InfiniteDuration();
  };
  static std::string MatchKey(failedpolls::v1::PollSource source,
                              const std::string& server_name,
                              const std::string& host,
                              const std::string& virtual_proxy);

  const std::vector<ConfiguredTarget> targets_;
  const Clock& clock_;
  absl::flat_hash_map<std::string, size_t> index_;  // MatchKey -> targets_
  mutable absl::Mutex mu_;
  std::vector<State> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_COVERAGE_H_
