// Graceful shutdown on SIGTERM/SIGINT without async-signal-safety traps: the
// signals are blocked in every thread and one thread waits for them.
#ifndef QFP_COMMON_TERMINATION_SIGNAL_H_
#define QFP_COMMON_TERMINATION_SIGNAL_H_

namespace qfp {

// Blocks SIGTERM and SIGINT in the calling thread and in every thread it
// starts afterwards. Call first thing in main().
void BlockTerminationSignals();

// Blocks until SIGTERM or SIGINT arrives; returns its number.
int WaitForTerminationSignal();

// Makes a thread blocked in WaitForTerminationSignal() return (used when a
// service stops for another reason).
void RaiseTerminationSignal();

}  // namespace qfp

#endif  // QFP_COMMON_TERMINATION_SIGNAL_H_
