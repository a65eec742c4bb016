#include "tracker-service/stream_messages.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/slice.h"

namespace qfp::tracker {

using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;
using google::protobuf::internal::WireFormatLite;

absl::Status ParseReportFailuresRequest(const grpc::ByteBuffer& bytes,
                                        size_t max_failures,
                                        ReportFailuresRequest* request) {
  request->Clear();
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) {
    return absl::InvalidArgumentError("unreadable request bytes");
  }
  std::string flat;
  flat.reserve(bytes.Length());
  for (const grpc::Slice& slice : slices) {
    flat.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  // First count the failures without building them (skipping over each is
  // cheap), then parse the whole request in one go, as gRPC would.
  {
    google::protobuf::io::CodedInputStream in(
        reinterpret_cast<const uint8_t*>(flat.data()),
        static_cast<int>(flat.size()));
    // Field 1, `repeated PollFailure failures`, length-delimited.
    constexpr uint32_t kFailuresTag =
        WireFormatLite::MakeTag(ReportFailuresRequest::kFailuresFieldNumber,
                                WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
    size_t failures = 0;
    while (const uint32_t tag = in.ReadTag()) {
      if (tag == kFailuresTag && ++failures > max_failures) {
        return absl::ResourceExhaustedError(
            absl::StrCat("a request holds at most ", max_failures,
                         " failures; send them in several requests"));
      }
      if (!WireFormatLite::SkipField(&in, tag)) {
        return absl::InvalidArgumentError("not a ReportFailuresRequest");
      }
    }
    if (!in.ConsumedEntireMessage()) {
      return absl::InvalidArgumentError("not a ReportFailuresRequest");
    }
  }
  if (!request->ParseFromString(flat)) {
    return absl::InvalidArgumentError(
        "not a ReportFailuresRequest (a failure in it is malformed, or holds "
        "a string that is not UTF-8)");
  }
  return absl::OkStatus();
}

grpc::ByteBuffer SerializeReportFailuresResponse(
    const ReportFailuresResponse& response) {
  std::string bytes = response.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace qfp::tracker
