// Builds a PollFailure from fuzz input: every field, enums including numbers
// no version knows, optional numbers set or not, any timestamp.
#ifndef QFP_TESTS_FUZZ_FUZZ_FAILURE_H_
#define QFP_TESTS_FUZZ_FUZZ_FAILURE_H_

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>

#include "failedpolls/v1/failed_polls.pb.h"

namespace qfp::fuzz {

inline failedpolls::v1::PollFailure ConsumeFailure(FuzzedDataProvider& in) {
  failedpolls::v1::PollFailure f;
  f.mutable_id()->set_poller_id(in.ConsumeRandomLengthString(32));
  f.mutable_id()->set_instance_id(in.ConsumeRandomLengthString(32));
  f.mutable_id()->set_sequence(in.ConsumeIntegral<uint64_t>());
  if (in.ConsumeBool()) {
    f.mutable_occurred_at()->set_seconds(in.ConsumeIntegral<int64_t>());
    f.mutable_occurred_at()->set_nanos(in.ConsumeIntegral<int32_t>());
  }
  // proto3 enums are open: any number arrives from the wire.
  f.set_source(static_cast<failedpolls::v1::PollSource>(
      in.ConsumeIntegralInRange<int32_t>(-1, 5)));
  f.set_error_category(static_cast<failedpolls::v1::ErrorCategory>(
      in.ConsumeIntegralInRange<int32_t>(-1, 14)));
  f.set_server_name(in.ConsumeRandomLengthString(48));
  f.set_host(in.ConsumeRandomLengthString(48));
  f.set_virtual_proxy(in.ConsumeRandomLengthString(24));
  const int tags = in.ConsumeIntegralInRange(0, 5);
  for (int i = 0; i < tags; ++i) {
    std::string key = in.ConsumeRandomLengthString(24);
    (*f.mutable_server_tags())[key] = in.ConsumeRandomLengthString(24);
  }
  f.set_error_code(in.ConsumeRandomLengthString(24));
  if (in.ConsumeBool()) f.set_http_status(in.ConsumeIntegral<uint32_t>());
  f.set_request_url(in.ConsumeRandomLengthString(64));
  if (in.ConsumeBool())
    f.set_request_timeout_ms(in.ConsumeIntegral<uint32_t>());
  f.set_remote_address(in.ConsumeRandomLengthString(24));
  if (in.ConsumeBool()) f.set_remote_port(in.ConsumeIntegral<uint32_t>());
  f.set_syscall(in.ConsumeRandomLengthString(16));
  f.set_message(in.ConsumeRandomLengthString(96));
  return f;
}

}  // namespace qfp::fuzz

#endif  // QFP_TESTS_FUZZ_FUZZ_FAILURE_H_
