// Per-target counts of completed polls, attempted and failed, kept between
// two reads: what a poller's heartbeat reports, so that the tracker can show
// a failure ratio and notice targets nobody polls.
#ifndef QFP_POLLER_ATTEMPT_LEDGER_H_
#define QFP_POLLER_ATTEMPT_LEDGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "failedpolls/v1/failed_polls.pb.h"
#include "poller-service/poll_plan.h"

namespace qfp::poller {

// One target's counts since the previous Take().
struct TargetAttempts {
  failedpolls::v1::PollSource source = failedpolls::v1::HEALTH_API;
  std::string server_name;
  std::string host;
  std::string virtual_proxy;  // PROXY_API only
  // Polls that completed (a cancelled poll is not an attempt: it says
  // nothing about the server).
  uint64_t attempted = 0;
  // Of those, the ones reported as failed polls.
  uint64_t failed = 0;
};

// Thread-safe: the scheduler records on its thread, the tracker client takes
// on its own.
class AttemptLedger {
 public:
  // Counts one completed poll of `target`.
  void Record(const PollTarget& target, bool failed) ABSL_LOCKS_EXCLUDED(mu_);

  // The counts recorded since the previous call, one entry per target
  // recorded at least once, in the order targets were first recorded; the
  // ledger starts again from zero.
  std::vector<TargetAttempts> Take() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  // Key() -> index into attempts_.
  absl::flat_hash_map<std::string, size_t> index_ ABSL_GUARDED_BY(mu_);
  std::vector<TargetAttempts> attempts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_ATTEMPT_LEDGER_H_
