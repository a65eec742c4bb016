// Which producers are alive, from their heartbeats: a poller that was
// sending heartbeats and misses `missed_heartbeats` of them in a row is
// silent (reported once per silence), and one that sends again has
// returned. Keyed by poller_id, so a poller is the same one across streams,
// reconnects and restarts (a new instance_id). A poller that said it was
// stopping (Heartbeat.stopping) is expected to be quiet: its silence is not
// reported. Producers that never sent a heartbeat (older pollers) are never
// tracked. Kept in memory: a tracker that restarts learns its pollers again
// from their next heartbeats (one that died meanwhile is not reported).
//
// Time: the tracker's monotonic clock (a heartbeat's sent_at is the
// producer's wall clock and is not trusted for this).
//
// Thread-safe.
#ifndef QFP_TRACKER_POLLER_LIVENESS_H_
#define QFP_TRACKER_POLLER_LIVENESS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace qfp::tracker {

class PollerLiveness {
 public:
  // `missed_heartbeats` >= 1; `max_pollers` bounds memory against a peer
  // inventing poller ids: beyond it, new ids are not tracked.
  PollerLiveness(int missed_heartbeats, const Clock& clock,
                 size_t max_pollers = 10000);

  enum class Beat {
    kKnown,      // an expected heartbeat
    kNew,        // the first heartbeat of this poller_id
    kReturned,   // the poller was silent (reported) and is back
    kResumed,    // the poller had said it was stopping and is back
    kUntracked,  // a new poller_id over max_pollers: ignored
  };
  struct BeatResult {
    Beat beat = Beat::kKnown;
    // kReturned, kResumed: how long since its previous heartbeat.
    absl::Duration quiet_for;
  };
  // Records a heartbeat of `poller_id` now; `interval` is when the next is
  // due, `stopping` says none will follow.
  BeatResult Heartbeat(const std::string& poller_id,
                       const std::string& instance_id, absl::Duration interval,
                       bool stopping);

  struct Silence {
    std::string poller_id;
    std::string instance_id;   // of its last heartbeat
    absl::Duration interval;   // its last announced interval
    absl::Duration quiet_for;  // since its last heartbeat
  };
  // The pollers that have become silent since the previous call: no
  // heartbeat for missed_heartbeats times their interval. Each silence is
  // returned once; a poller returns to the watch with its next heartbeat.
  std::vector<Silence> Check();

  // Pollers tracked now, and how many of them are silent.
  size_t tracked() const;
  size_t silent() const;

 private:
  struct State {
    std::string instance_id;
    absl::Duration last_beat;
    absl::Duration interval;
    bool stopping = false;
    bool silent = false;
  };

  const int missed_heartbeats_;
  const Clock& clock_;
  const size_t max_pollers_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, State> pollers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_POLLER_LIVENESS_H_
