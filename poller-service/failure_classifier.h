// Turns the outcome of one poll request into a failed-poll classification
// (Butler SOS's error taxonomy, §4 of the compatibility reference), or
// nothing when the poll succeeded.
#ifndef QFP_POLLER_FAILURE_CLASSIFIER_H_
#define QFP_POLLER_FAILURE_CLASSIFIER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "failedpolls/v1/failed_polls.pb.h"
#include "poller-service/http_transport.h"

namespace qfp::poller {

struct Classification {
  failedpolls::v1::ErrorCategory category =
      failedpolls::v1::ERROR_CATEGORY_UNKNOWN;
  std::string error_code;               // "" when there is none
  std::optional<uint32_t> http_status;  // a status line arrived
  // Set for a refused connect: the address and port dialled.
  std::string remote_address;
  std::optional<uint32_t> remote_port;
  std::string syscall;  // "connect", "getaddrinfo", "read", "write" or ""
  std::string message;  // human-readable, for logs
};

// Returns nullopt when `outcome` is a successful poll: a 2xx status whose
// body was read to its end, decoded, and passed the request's BodyCheck
// (RequestOutcome::body_problem empty). Never throws; any input is
// classified. The mapping is the table "Classification table" in
// docs/compatibility.md §4, which failure_classifier_test reads and checks
// row by row: the category follows from the error (TransportError and
// errno), never from the phase it happened in.
std::optional<Classification> ClassifyOutcome(const RequestOutcome& outcome);

// The OpenSSL verify error's name without "X509_V_ERR_" (10 gives
// "CERT_HAS_EXPIRED"); "UNKNOWN_VERIFY_ERROR_<n>" for codes it doesn't know.
std::string VerifyErrorName(long verify_result);  // NOLINT(runtime/int)

}  // namespace qfp::poller

#endif  // QFP_POLLER_FAILURE_CLASSIFIER_H_
