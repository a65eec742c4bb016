// The mapping follows what Butler SOS (Node.js + axios) would report for the
// same failure, because existing dashboards and alerts key on its words:
// categories and codes from §4 of the compatibility reference, Node's errno
// names (ECONNREFUSED), axios's codes (ECONNABORTED for its own timeout,
// ERR_BAD_REQUEST / ERR_BAD_RESPONSE for 4xx / 5xx, ERR_CANCELED), and Node's
// TLS codes (the OpenSSL verify error's name, ERR_TLS_CERT_ALTNAME_INVALID).
//
// Decisions where the reference is silent (Butler SOS's own rules: a code of
// ETIMEDOUT means timeout, ECONNRESET means connection_reset, a status of 500
// and above http_5xx, 400 and above http_4xx, a message about TLS or
// certificates certificate_error, everything else unknown):
// - A final 1xx or 3xx answer (a redirect without Location, or the last of
//   too many redirects) is unknown with its status; axios gives no code for
//   it (its code table covers 4xx and 5xx only), so neither do we, except
//   for too many redirects: ERR_FR_TOO_MANY_REDIRECTS (follow-redirects).
//   A status of 600 and above is http_5xx without a code, as in Butler SOS.
// - The category follows from the error, whatever the phase (connect, TLS,
//   send, receive) it happened in: errno ECONNRESET is connection_reset
//   (ECONNRESET, syscall "read", as Node reports a reset, and no address:
//   Butler SOS writes the address only for a refused connect), ECONNREFUSED
//   connection_refused, ETIMEDOUT timeout (code ETIMEDOUT). A connect that
//   fails otherwise (EHOSTUNREACH, ENETUNREACH, ...) is unknown. Connect
//   errors carry the errno's name, syscall "connect" and the address
//   dialled, as Node's connect errors do.
// - The server closing without answering (kEmptyReply, Node's "socket
//   hang up") or during the TLS handshake (Node's "Client network socket
//   disconnected before secure TLS connection was established") is
//   connection_reset, ECONNRESET, with no syscall: Node's errors have none.
//   A broken pipe on send is unknown, EPIPE, syscall "write".
// - Any other failure of the TLS handshake (the peer speaks no TLS, sends a
//   TLS alert such as a rejected client certificate) is certificate_error,
//   EPROTO, syscall "write": Node reports handshake errors from the socket
//   write that drives the handshake ("write EPROTO ..."). A TLS alert after
//   the handshake (TLS 1.3 sends "certificate required" then) is
//   certificate_error with Node's code for an OpenSSL error,
//   ERR_SSL_<REASON> (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED).
// - Our own client certificate, key or CA file being unusable, and the other
//   TLS setup problems (kTlsSetup) are certificate_error with the
//   transport's name for it (the curl transport's CURLE_SSL_CERTPROBLEM,
//   CURLE_SSL_CACERT_BADFILE, ...): a certificate problem an operator must
//   fix.
// - A 2xx answer whose body is cut (over the size cap, counted decoded, or
//   shorter than its Content-Length), cannot be decoded (Content-Encoding),
//   or is not the expected JSON is invalid_response, ERR_INVALID_RESPONSE
//   (our category; Butler SOS counts it as a success).
// - A redirect to another origin, which the transport does not follow, is
//   unknown, ERR_REDIRECT_TO_OTHER_ORIGIN, with its 3xx status (our code:
//   Butler SOS follows it and reports the other server's health).
// - Cancellation (the transport shutting down) is unknown, ERR_CANCELED
//   (axios's code for a cancelled request).
// - Anything else is unknown with the transport's name for it
//   (RequestOutcome::error_name: the curl transport's CURLE_SEND_ERROR, or
//   CURLE_<n> for codes it does not name).
//
// The outcome is transport-neutral (TransportError); only the words of the
// libraries under the transport are read from error_text where the neutral
// terms are too coarse (OpenSSL's reason for a TLS alert, a reset that the
// saved errno no longer shows).
#include "poller-service/failure_classifier.h"

#include <openssl/x509_vfy.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace qfp::poller {

namespace {

using failedpolls::v1::ErrorCategory;
namespace v1 = failedpolls::v1;

Classification Make(ErrorCategory category, std::string code,
                    std::string message) {
  Classification c;
  c.category = category;
  c.error_code = std::move(code);
  c.message = std::move(message);
  return c;
}

// Node's name for an errno value ("ECONNREFUSED").
std::string ErrnoName(int value) {
  const char* name = strerrorname_np(value);
  return name != nullptr ? std::string(name) : absl::StrCat("ERRNO_", value);
}

// The transport's account of the failure, for the message: its own words,
// else its name for the failure.
std::string TransportSays(const RequestOutcome& outcome) {
  if (!outcome.error_text.empty()) return outcome.error_text;
  if (!outcome.error_name.empty()) return outcome.error_name;
  return "the transport gave no details";
}

// The transport's name for the failure, as the code of last resort.
std::string TransportCode(const RequestOutcome& outcome) {
  return outcome.error_name.empty() ? "ERR_TRANSPORT" : outcome.error_name;
}

// Up to 40 bytes of a body for a log line, non-printable bytes as '?'.
std::string BodyPreview(const std::string& body) {
  constexpr size_t kMax = 40;
  std::string preview;
  for (size_t i = 0; i < body.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(body[i]);
    preview.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (body.size() > kMax) preview += "...";
  return preview;
}

Classification InvalidResponse(const RequestOutcome& outcome,
                               const std::string& why) {
  Classification c =
      Make(v1::ERROR_CATEGORY_INVALID_RESPONSE, "ERR_INVALID_RESPONSE",
           absl::StrCat("HTTP ", outcome.http_status, " but ", why));
  c.http_status = static_cast<uint32_t>(outcome.http_status);
  return c;
}

// A response with a status line arrived and was read to its end, or was
// stopped early (`body_cut`: over the cap, cut short, refused by the check,
// undecodable); judged like axios's validateStatus plus our body check.
std::optional<Classification> ClassifyResponse(const RequestOutcome& outcome,
                                               bool body_cut) {
  const int status = outcome.http_status;
  if (status >= 200 && status < 300) {
    const std::string seen = absl::StrCat(outcome.body_bytes, " bytes: \"",
                                          BodyPreview(outcome.body_head), "\"");
    switch (outcome.error) {
      case TransportError::kBodyTooLarge:
        return InvalidResponse(
            outcome, absl::StrCat("the body (decoded) is larger than the "
                                  "cap; stopped after ",
                                  outcome.body_bytes, " bytes"));
      case TransportError::kBodyCutShort:
        return InvalidResponse(outcome, absl::StrCat("the body was cut short: ",
                                                     TransportSays(outcome)));
      case TransportError::kBadEncoding:
        return InvalidResponse(outcome,
                               absl::StrCat("the body could not be decoded: ",
                                            TransportSays(outcome)));
      default:
        break;
    }
    // A body the check refused always fails, even without its words.
    if (outcome.body_problem.empty() &&
        outcome.error != TransportError::kBodyRejected) {
      return std::nullopt;
    }
    return InvalidResponse(outcome,
                           absl::StrCat(outcome.body_problem.empty()
                                            ? "the body check refused the body"
                                            : outcome.body_problem,
                                        " (", seen, ")"));
  }

  Classification c;
  const std::string message =
      absl::StrCat("Request failed with status code ", status,
                   body_cut ? " (body not read to its end)" : "");
  if (status == 401 || status == 403) {
    c = Make(v1::ERROR_CATEGORY_AUTH_ERROR, "ERR_BAD_REQUEST", message);
  } else if (status == 404) {
    c = Make(v1::ERROR_CATEGORY_NOT_FOUND, "ERR_BAD_REQUEST", message);
  } else if (status == 429) {
    c = Make(v1::ERROR_CATEGORY_RATE_LIMITED, "ERR_BAD_REQUEST", message);
  } else if (status >= 400 && status < 500) {
    c = Make(v1::ERROR_CATEGORY_HTTP_4XX, "ERR_BAD_REQUEST", message);
  } else if (status >= 500 && status < 600) {
    c = Make(v1::ERROR_CATEGORY_HTTP_5XX, "ERR_BAD_RESPONSE", message);
  } else if (status >= 600) {
    c = Make(v1::ERROR_CATEGORY_HTTP_5XX, "", message);
  } else {
    // 1xx or 3xx as the final answer.
    c = Make(v1::ERROR_CATEGORY_UNKNOWN, "", message);
  }
  c.http_status = static_cast<uint32_t>(status);
  return c;
}

void SetDialled(const RequestOutcome& outcome, Classification& c) {
  if (outcome.remote_address.empty()) return;
  c.remote_address = outcome.remote_address;
  if (outcome.remote_port > 0) {
    c.remote_port = static_cast<uint32_t>(outcome.remote_port);
  }
}

// A reset, whatever the phase: Node reports it from the socket read
// ("read ECONNRESET"), without an address.
Classification Reset(const RequestOutcome& outcome) {
  Classification c = Make(v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET",
                          TransportSays(outcome));
  c.syscall = "read";
  return c;
}

// errno after a failed system call, the same in every phase. libcurl's saved
// errno can be overwritten while it tears the TLS session down after a reset
// (EPIPE from the close_notify write); its error text still carries the
// reset it saw first.
int SeenErrno(const RequestOutcome& outcome) {
  if (absl::StrContains(outcome.error_text, "Connection reset by peer")) {
    return ECONNRESET;
  }
  return outcome.os_errno;
}

Classification ConnectFailure(const RequestOutcome& outcome) {
  const int err = SeenErrno(outcome);
  if (err == ECONNRESET) return Reset(outcome);
  Classification c;
  if (err == ECONNREFUSED) {
    c = Make(v1::ERROR_CATEGORY_CONNECTION_REFUSED, "ECONNREFUSED",
             TransportSays(outcome));
  } else if (err == ETIMEDOUT) {
    c = Make(v1::ERROR_CATEGORY_TIMEOUT, "ETIMEDOUT", TransportSays(outcome));
  } else if (err != 0) {
    c = Make(v1::ERROR_CATEGORY_UNKNOWN, ErrnoName(err),
             TransportSays(outcome));
  } else {
    c = Make(v1::ERROR_CATEGORY_UNKNOWN, TransportCode(outcome),
             TransportSays(outcome));
  }
  c.syscall = "connect";
  SetDialled(outcome, c);
  return c;
}

// Send or receive failed after the connection was up.
Classification IoFailure(const RequestOutcome& outcome, const char* syscall) {
  const int err = SeenErrno(outcome);
  if (err == ECONNRESET) return Reset(outcome);
  Classification c;
  if (err == ETIMEDOUT) {
    c = Make(v1::ERROR_CATEGORY_TIMEOUT, "ETIMEDOUT", TransportSays(outcome));
  } else if (err == ECONNREFUSED) {
    c = Make(v1::ERROR_CATEGORY_CONNECTION_REFUSED, "ECONNREFUSED",
             TransportSays(outcome));
  } else if (err != 0) {
    c = Make(v1::ERROR_CATEGORY_UNKNOWN, ErrnoName(err),
             TransportSays(outcome));
  } else {
    return Make(v1::ERROR_CATEGORY_UNKNOWN, TransportCode(outcome),
                TransportSays(outcome));
  }
  c.syscall = syscall;
  return c;
}

// The reason of an OpenSSL error in libcurl's text, as Node spells it in an
// error code: "...:SSL routines::tlsv13 alert certificate required, errno 0"
// gives "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"; "" when there is none.
std::string NodeSslCode(absl::string_view text) {
  constexpr absl::string_view kLibrary = "SSL routines:";
  const size_t at = text.find(kLibrary);
  if (at == absl::string_view::npos) return "";
  absl::string_view reason = text.substr(at + kLibrary.size());
  // OpenSSL 3 leaves the function name empty ("SSL routines::reason").
  const size_t colon = reason.rfind(':');
  if (colon != absl::string_view::npos) reason = reason.substr(colon + 1);
  const size_t comma = reason.find(',');
  if (comma != absl::string_view::npos) reason = reason.substr(0, comma);
  reason = absl::StripAsciiWhitespace(reason);
  if (reason.empty()) return "";
  std::string code = "ERR_SSL_";
  for (const char ch : reason) {
    const unsigned char u = static_cast<unsigned char>(ch);
    code.push_back(std::isalnum(u) ? static_cast<char>(std::toupper(u)) : '_');
  }
  return code;
}

// kTlsHandshake: the TLS handshake did not complete.
Classification HandshakeFailure(const RequestOutcome& outcome) {
  // A reset; one that arrives before the ClientHello is written leaves a
  // broken pipe (EPIPE) or a socket no longer connected (ENOTCONN: libcurl's
  // getpeername() fails first), never a word about certificates.
  const int err = SeenErrno(outcome);
  if (err == ECONNRESET || err == EPIPE || err == ENOTCONN) {
    return Reset(outcome);
  }
  // libcurl 7.88's words for the peer closing mid-handshake (OpenSSL 3 says
  // SSL_ERROR_SYSCALL with no errno, or "unexpected eof while reading").
  if (absl::StrContains(outcome.error_text, "SSL_ERROR_SYSCALL") ||
      absl::StrContains(outcome.error_text, "unexpected eof")) {
    return Make(v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET",
                absl::StrCat("Client network socket disconnected before "
                             "secure TLS connection was established: ",
                             TransportSays(outcome)));
  }
  Classification c = Make(v1::ERROR_CATEGORY_CERTIFICATE_ERROR, "EPROTO",
                          TransportSays(outcome));
  c.syscall = "write";
  return c;
}

// kTlsVerify: the chain or the host name did not check.
Classification VerificationFailure(const RequestOutcome& outcome) {
  const long result = outcome.tls_verify_result;  // NOLINT(runtime/int)
  // libcurl 7.88 checks the host name itself, after the handshake; when that
  // fails the verify result is 0 or its "not verified" placeholder 1
  // (!X509_V_OK). OpenSSL's own host checks give 62 and 64.
  if (result == X509_V_OK || result == X509_V_ERR_UNSPECIFIED ||
      result == X509_V_ERR_HOSTNAME_MISMATCH ||
      result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    return Make(v1::ERROR_CATEGORY_CERTIFICATE_ERROR,
                "ERR_TLS_CERT_ALTNAME_INVALID", TransportSays(outcome));
  }
  return Make(v1::ERROR_CATEGORY_CERTIFICATE_ERROR, VerifyErrorName(result),
              TransportSays(outcome));
}

Classification TransportFailure(const RequestOutcome& outcome) {
  switch (outcome.error) {
    case TransportError::kTimeout:
      return Make(v1::ERROR_CATEGORY_TIMEOUT, "ECONNABORTED",
                  TransportSays(outcome));
    case TransportError::kResolve: {
      Classification c = Make(v1::ERROR_CATEGORY_HOST_NOT_FOUND, "ENOTFOUND",
                              TransportSays(outcome));
      c.syscall = "getaddrinfo";
      return c;
    }
    case TransportError::kConnect:
      return ConnectFailure(outcome);
    case TransportError::kReceive: {
      // A TLS alert after the handshake (TLS 1.3's "certificate required")
      // arrives as a failed read with no errno.
      const std::string ssl_code = NodeSslCode(outcome.error_text);
      if (outcome.os_errno == 0 && !ssl_code.empty()) {
        return Make(v1::ERROR_CATEGORY_CERTIFICATE_ERROR, ssl_code,
                    TransportSays(outcome));
      }
      return IoFailure(outcome, "read");
    }
    case TransportError::kSend:
      return IoFailure(outcome, "write");
    case TransportError::kEmptyReply:
      return Make(v1::ERROR_CATEGORY_CONNECTION_RESET, "ECONNRESET",
                  absl::StrCat("socket hang up: ", TransportSays(outcome)));
    case TransportError::kTlsHandshake:
      return HandshakeFailure(outcome);
    case TransportError::kTlsVerify:
      return VerificationFailure(outcome);
    case TransportError::kTlsSetup:
      return Make(v1::ERROR_CATEGORY_CERTIFICATE_ERROR, TransportCode(outcome),
                  TransportSays(outcome));
    case TransportError::kCancelled:
      return Make(v1::ERROR_CATEGORY_UNKNOWN, "ERR_CANCELED",
                  absl::StrCat("canceled: ", TransportSays(outcome)));
    case TransportError::kBadUrl:
      return Make(v1::ERROR_CATEGORY_UNKNOWN, "ERR_INVALID_URL",
                  TransportSays(outcome));
    case TransportError::kTooManyRedirects:
      // No response reaches Butler SOS's code: no http_status.
      return Make(v1::ERROR_CATEGORY_UNKNOWN, "ERR_FR_TOO_MANY_REDIRECTS",
                  absl::StrCat("Maximum number of redirects exceeded: ",
                               TransportSays(outcome)));
    case TransportError::kRedirectRefused: {
      // Ours alone (Butler SOS's client follows any https redirect): the
      // 3xx is the answer, as for a redirect to plain http.
      Classification c =
          Make(v1::ERROR_CATEGORY_UNKNOWN, "ERR_REDIRECT_TO_OTHER_ORIGIN",
               TransportSays(outcome));
      if (outcome.http_status > 0) {
        c.http_status = static_cast<uint32_t>(outcome.http_status);
      }
      return c;
    }
    case TransportError::kNone:  // without a status line (see ClassifyOutcome)
    case TransportError::kBodyTooLarge:
    case TransportError::kBodyRejected:
    case TransportError::kBodyCutShort:
    case TransportError::kBadEncoding:
    case TransportError::kOther:
      break;
  }
  Classification c = Make(v1::ERROR_CATEGORY_UNKNOWN, TransportCode(outcome),
                          TransportSays(outcome));
  // A redirect to a scheme other than https ends here with the 3xx.
  if (outcome.http_status > 0) {
    c.http_status = static_cast<uint32_t>(outcome.http_status);
  }
  return c;
}

}  // namespace

std::optional<Classification> ClassifyOutcome(const RequestOutcome& outcome) {
  // A body cut by our cap, refused by the check, undecodable or cut by the
  // server closing early still came with a status, which decides first: a
  // 500 with a huge page is http_5xx.
  const bool body_cut = outcome.error == TransportError::kBodyTooLarge ||
                        outcome.error == TransportError::kBodyRejected ||
                        outcome.error == TransportError::kBodyCutShort ||
                        outcome.error == TransportError::kBadEncoding;
  if (outcome.http_status > 0 &&
      (outcome.error == TransportError::kNone || body_cut)) {
    return ClassifyResponse(outcome, body_cut);
  }
  if (outcome.error == TransportError::kNone) {
    // Cannot happen over HTTP; kept so that every input is classified.
    return Make(v1::ERROR_CATEGORY_UNKNOWN, "",
                "the transfer completed without an HTTP status");
  }
  return TransportFailure(outcome);
}

std::string VerifyErrorName(long verify_result) {  // NOLINT(runtime/int)
  struct Entry {
    long code;  // NOLINT(runtime/int)
    const char* name;
  };
  // OpenSSL 3.0's X509_V_ERR_* codes, without the prefix.
  static constexpr Entry kNames[] = {
      {X509_V_OK, "OK"},
      {X509_V_ERR_UNSPECIFIED, "UNSPECIFIED"},
      {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, "UNABLE_TO_GET_ISSUER_CERT"},
      {X509_V_ERR_UNABLE_TO_GET_CRL, "UNABLE_TO_GET_CRL"},
      {X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE,
       "UNABLE_TO_DECRYPT_CERT_SIGNATURE"},
      {X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE,
       "UNABLE_TO_DECRYPT_CRL_SIGNATURE"},
      {X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY,
       "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY"},
      {X509_V_ERR_CERT_SIGNATURE_FAILURE, "CERT_SIGNATURE_FAILURE"},
      {X509_V_ERR_CRL_SIGNATURE_FAILURE, "CRL_SIGNATURE_FAILURE"},
      {X509_V_ERR_CERT_NOT_YET_VALID, "CERT_NOT_YET_VALID"},
      {X509_V_ERR_CERT_HAS_EXPIRED, "CERT_HAS_EXPIRED"},
      {X509_V_ERR_CRL_NOT_YET_VALID, "CRL_NOT_YET_VALID"},
      {X509_V_ERR_CRL_HAS_EXPIRED, "CRL_HAS_EXPIRED"},
      {X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD,
       "ERROR_IN_CERT_NOT_BEFORE_FIELD"},
      {X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD,
       "ERROR_IN_CERT_NOT_AFTER_FIELD"},
      {X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD,
       "ERROR_IN_CRL_LAST_UPDATE_FIELD"},
      {X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD,
       "ERROR_IN_CRL_NEXT_UPDATE_FIELD"},
      {X509_V_ERR_OUT_OF_MEM, "OUT_OF_MEM"},
      {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "DEPTH_ZERO_SELF_SIGNED_CERT"},
      {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "SELF_SIGNED_CERT_IN_CHAIN"},
      {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
       "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"},
      {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
       "UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
      {X509_V_ERR_CERT_CHAIN_TOO_LONG, "CERT_CHAIN_TOO_LONG"},
      {X509_V_ERR_CERT_REVOKED, "CERT_REVOKED"},
      {X509_V_ERR_NO_ISSUER_PUBLIC_KEY, "NO_ISSUER_PUBLIC_KEY"},
      {X509_V_ERR_PATH_LENGTH_EXCEEDED, "PATH_LENGTH_EXCEEDED"},
      {X509_V_ERR_INVALID_PURPOSE, "INVALID_PURPOSE"},
      {X509_V_ERR_CERT_UNTRUSTED, "CERT_UNTRUSTED"},
      {X509_V_ERR_CERT_REJECTED, "CERT_REJECTED"},
      {X509_V_ERR_SUBJECT_ISSUER_MISMATCH, "SUBJECT_ISSUER_MISMATCH"},
      {X509_V_ERR_AKID_SKID_MISMATCH, "AKID_SKID_MISMATCH"},
      {X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH, "AKID_ISSUER_SERIAL_MISMATCH"},
      {X509_V_ERR_KEYUSAGE_NO_CERTSIGN, "KEYUSAGE_NO_CERTSIGN"},
      {X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER, "UNABLE_TO_GET_CRL_ISSUER"},
      {X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION, "UNHANDLED_CRITICAL_EXTENSION"},
      {X509_V_ERR_KEYUSAGE_NO_CRL_SIGN, "KEYUSAGE_NO_CRL_SIGN"},
      {X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION,
       "UNHANDLED_CRITICAL_CRL_EXTENSION"},
      {X509_V_ERR_INVALID_NON_CA, "INVALID_NON_CA"},
      {X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED, "PROXY_PATH_LENGTH_EXCEEDED"},
      {X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE,
       "KEYUSAGE_NO_DIGITAL_SIGNATURE"},
      {X509_V_ERR_PROXY_CERTIFICATES_NOT_ALLOWED,
       "PROXY_CERTIFICATES_NOT_ALLOWED"},
      {X509_V_ERR_INVALID_EXTENSION, "INVALID_EXTENSION"},
      {X509_V_ERR_INVALID_POLICY_EXTENSION, "INVALID_POLICY_EXTENSION"},
      {X509_V_ERR_NO_EXPLICIT_POLICY, "NO_EXPLICIT_POLICY"},
      {X509_V_ERR_DIFFERENT_CRL_SCOPE, "DIFFERENT_CRL_SCOPE"},
      {X509_V_ERR_UNSUPPORTED_EXTENSION_FEATURE,
       "UNSUPPORTED_EXTENSION_FEATURE"},
      {X509_V_ERR_UNNESTED_RESOURCE, "UNNESTED_RESOURCE"},
      {X509_V_ERR_PERMITTED_VIOLATION, "PERMITTED_VIOLATION"},
      {X509_V_ERR_EXCLUDED_VIOLATION, "EXCLUDED_VIOLATION"},
      {X509_V_ERR_SUBTREE_MINMAX, "SUBTREE_MINMAX"},
      {X509_V_ERR_APPLICATION_VERIFICATION, "APPLICATION_VERIFICATION"},
      {X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE, "UNSUPPORTED_CONSTRAINT_TYPE"},
      {X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX,
       "UNSUPPORTED_CONSTRAINT_SYNTAX"},
      {X509_V_ERR_UNSUPPORTED_NAME_SYNTAX, "UNSUPPORTED_NAME_SYNTAX"},
      {X509_V_ERR_CRL_PATH_VALIDATION_ERROR, "CRL_PATH_VALIDATION_ERROR"},
      {X509_V_ERR_PATH_LOOP, "PATH_LOOP"},
      {X509_V_ERR_SUITE_B_INVALID_VERSION, "SUITE_B_INVALID_VERSION"},
      {X509_V_ERR_SUITE_B_INVALID_ALGORITHM, "SUITE_B_INVALID_ALGORITHM"},
      {X509_V_ERR_SUITE_B_INVALID_CURVE, "SUITE_B_INVALID_CURVE"},
      {X509_V_ERR_SUITE_B_INVALID_SIGNATURE_ALGORITHM,
       "SUITE_B_INVALID_SIGNATURE_ALGORITHM"},
      {X509_V_ERR_SUITE_B_LOS_NOT_ALLOWED, "SUITE_B_LOS_NOT_ALLOWED"},
      {X509_V_ERR_SUITE_B_CANNOT_SIGN_P_384_WITH_P_256,
       "SUITE_B_CANNOT_SIGN_P_384_WITH_P_256"},
      {X509_V_ERR_HOSTNAME_MISMATCH, "HOSTNAME_MISMATCH"},
      {X509_V_ERR_EMAIL_MISMATCH, "EMAIL_MISMATCH"},
      {X509_V_ERR_IP_ADDRESS_MISMATCH, "IP_ADDRESS_MISMATCH"},
      {X509_V_ERR_DANE_NO_MATCH, "DANE_NO_MATCH"},
      {X509_V_ERR_EE_KEY_TOO_SMALL, "EE_KEY_TOO_SMALL"},
      {X509_V_ERR_CA_KEY_TOO_SMALL, "CA_KEY_TOO_SMALL"},
      {X509_V_ERR_CA_MD_TOO_WEAK, "CA_MD_TOO_WEAK"},
      {X509_V_ERR_INVALID_CALL, "INVALID_CALL"},
      {X509_V_ERR_STORE_LOOKUP, "STORE_LOOKUP"},
      {X509_V_ERR_NO_VALID_SCTS, "NO_VALID_SCTS"},
      {X509_V_ERR_PROXY_SUBJECT_NAME_VIOLATION, "PROXY_SUBJECT_NAME_VIOLATION"},
      {X509_V_ERR_OCSP_VERIFY_NEEDED, "OCSP_VERIFY_NEEDED"},
      {X509_V_ERR_OCSP_VERIFY_FAILED, "OCSP_VERIFY_FAILED"},
      {X509_V_ERR_OCSP_CERT_UNKNOWN, "OCSP_CERT_UNKNOWN"},
      {X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM,
       "UNSUPPORTED_SIGNATURE_ALGORITHM"},
      {X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH, "SIGNATURE_ALGORITHM_MISMATCH"},
      {X509_V_ERR_SIGNATURE_ALGORITHM_INCONSISTENCY,
       "SIGNATURE_ALGORITHM_INCONSISTENCY"},
      {X509_V_ERR_INVALID_CA, "INVALID_CA"},
      {X509_V_ERR_PATHLEN_INVALID_FOR_NON_CA, "PATHLEN_INVALID_FOR_NON_CA"},
      {X509_V_ERR_PATHLEN_WITHOUT_KU_KEY_CERT_SIGN,
       "PATHLEN_WITHOUT_KU_KEY_CERT_SIGN"},
      {X509_V_ERR_KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA,
       "KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA"},
      {X509_V_ERR_ISSUER_NAME_EMPTY, "ISSUER_NAME_EMPTY"},
      {X509_V_ERR_SUBJECT_NAME_EMPTY, "SUBJECT_NAME_EMPTY"},
      {X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER,
       "MISSING_AUTHORITY_KEY_IDENTIFIER"},
      {X509_V_ERR_MISSING_SUBJECT_KEY_IDENTIFIER,
       "MISSING_SUBJECT_KEY_IDENTIFIER"},
      {X509_V_ERR_EMPTY_SUBJECT_ALT_NAME, "EMPTY_SUBJECT_ALT_NAME"},
      {X509_V_ERR_EMPTY_SUBJECT_SAN_NOT_CRITICAL,
       "EMPTY_SUBJECT_SAN_NOT_CRITICAL"},
      {X509_V_ERR_CA_BCONS_NOT_CRITICAL, "CA_BCONS_NOT_CRITICAL"},
      {X509_V_ERR_AUTHORITY_KEY_IDENTIFIER_CRITICAL,
       "AUTHORITY_KEY_IDENTIFIER_CRITICAL"},
      {X509_V_ERR_SUBJECT_KEY_IDENTIFIER_CRITICAL,
       "SUBJECT_KEY_IDENTIFIER_CRITICAL"},
      {X509_V_ERR_CA_CERT_MISSING_KEY_USAGE, "CA_CERT_MISSING_KEY_USAGE"},
      {X509_V_ERR_EXTENSIONS_REQUIRE_VERSION_3, "EXTENSIONS_REQUIRE_VERSION_3"},
      {X509_V_ERR_EC_KEY_EXPLICIT_PARAMS, "EC_KEY_EXPLICIT_PARAMS"},
  };
  for (const Entry& entry : kNames) {
    if (entry.code == verify_result) return entry.name;
  }
  return absl::StrCat("UNKNOWN_VERIFY_ERROR_", verify_result);
}

}  // namespace qfp::poller
