// The ReportFailures stream's messages on the wire. The tracker reads each
// request from gRPC's raw bytes itself, so that it can refuse a request
// holding more than kMaxFailuresPerRequest failures while parsing, before
// building them: an empty PollFailure takes 2 bytes on the wire and a few
// hundred in memory, and its refusal tens, so a 4 MiB request of empty items
// would otherwise cost gigabytes to parse and answer (found by a tester:
// 1.2 GB of RSS for one request).
//
// Pure functions; thread-safe.
#ifndef QFP_TRACKER_STREAM_MESSAGES_H_
#define QFP_TRACKER_STREAM_MESSAGES_H_

#include <cstddef>

#include "absl/status/status.h"
#include "failedpolls/v1/failed_polls.pb.h"
#include "grpcpp/support/byte_buffer.h"

namespace qfp::tracker {

// Parses `bytes` into `request` (cleared first). InvalidArgument when the
// bytes are not a ReportFailuresRequest (a string that is not UTF-8
// included, as protobuf requires of proto3 strings); ResourceExhausted when
// it holds more than `max_failures` failures. Fields this version does not
// know are kept, as protobuf does.
absl::Status ParseReportFailuresRequest(
    const grpc::ByteBuffer& bytes, size_t max_failures,
    failedpolls::v1::ReportFailuresRequest* request);

// `response` serialized for gRPC.
grpc::ByteBuffer SerializeReportFailuresResponse(
    const failedpolls::v1::ReportFailuresResponse& response);

}  // namespace qfp::tracker

#endif  // QFP_TRACKER_STREAM_MESSAGES_H_
