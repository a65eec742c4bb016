// Where the poll scheduler hands failed polls: the tracker client in the
// service, a vector in tests. A header of its own so that a sink need not
// know the scheduler, nor the scheduler the sink.
#ifndef QFP_POLLER_FAILURE_SINK_H_
#define QFP_POLLER_FAILURE_SINK_H_

#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp::poller {

class FailureSink {
 public:
  virtual ~FailureSink() = default;
  // Takes one failure. Called on the scheduler's thread, one call at a time;
  // an implementation shared with other threads brings its own locking. Must
  // not block long: polls are not started while it runs.
  virtual void Deliver(failedpolls::v1::PollFailure failure) = 0;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_FAILURE_SINK_H_
