// Which poll targets this poller polls. Several pollers that read the same
// config share its targets: each asks its TargetOwnership at every due time
// and polls only what it owns, so a change of members moves targets from
// the next due time on, with no coordinator.
#ifndef QFP_POLLER_TARGET_OWNERSHIP_H_
#define QFP_POLLER_TARGET_OWNERSHIP_H_

#include "absl/strings/string_view.h"

namespace qfp::poller {

class TargetOwnership {
 public:
  virtual ~TargetOwnership() = default;
  // Whether this poller polls the target whose PollTarget::Key() is
  // `target_key` now. Called on the scheduler's thread at each due time, so
  // it must be cheap; an implementation whose answer changes while it runs
  // (members from DNS) is thread-safe.
  virtual bool Owns(absl::string_view target_key) const = 0;
};

// A poller alone: every target is its own.
class OwnsEveryTarget final : public TargetOwnership {
 public:
  bool Owns(absl::string_view) const override { return true; }
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_TARGET_OWNERSHIP_H_
