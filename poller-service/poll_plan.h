// The poll plan: every request the poller makes, derived once from the
// config. One PollTarget per (source, server, virtual proxy).
#ifndef QFP_POLLER_POLL_PLAN_H_
#define QFP_POLLER_POLL_PLAN_H_

#include <map>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "failedpolls/v1/failed_polls.pb.h"
#include "poller-service/failure_classifier.h"
#include "poller-service/http_transport.h"
#include "poller-service/json_shape_check.h"
#include "poller-service/poller_config.h"

namespace qfp::poller {

struct PollTarget {
  failedpolls::v1::PollSource source = failedpolls::v1::HEALTH_API;
  std::string server_name;    // tag server_name
  std::string host;           // tag host, as configured
  std::string virtual_proxy;  // tag virtual_proxy (PROXY_API only)
  std::map<std::string, std::string> server_tags;

  // scheme://host:port/path, without query: what request_url reports.
  std::string url;
  // Name of the Xrfkey query parameter ("Xrfkey", "xrfkey"); empty when the
  // request carries none. A fresh key is drawn for every request.
  std::string xrfkey_param;
  // Headers before the Xrfkey header, in order, "Name: value".
  std::vector<std::string> headers;
  ExpectedBody expected_body = ExpectedBody::kJsonObject;
  absl::Duration interval;
  // The whole request's timeout: the source's (healthCheckTimeout,
  // userSessionsTimeout, appNamesTimeout).
  absl::Duration timeout;

  // "PROXY_API sense1 /sales": unique within a plan, for logs and for
  // skipping a target still in flight.
  std::string Key() const;
};

// All targets the config enables: a health check per server; a session poll
// per virtual proxy of each server with sessions enabled (when
// enableSessionExtract); the QRS app list (when enableAppNameExtract).
std::vector<PollTarget> BuildPollPlan(const PollerConfig& config);

// 16 characters of [0-9a-zA-Z], as Qlik's cross-site request forgery
// protection expects.
std::string NewXrfkey(absl::BitGen& rng);

// The request for one poll of `target`, with a fresh Xrfkey in both the query
// and the X-Qlik-Xrfkey header when the target uses one, the target's
// timeout, the config's body cap and a fresh JsonShapeCheck for the body.
HttpRequest MakeRequest(const PollTarget& target, const PollerConfig& config,
                        absl::BitGen& rng);

// "Authorization: Bearer x" -> "Authorization: ********": a header whose
// name suggests a credential (authorization, cookie, token, secret, key,
// password, session) keeps only its name; others are returned unchanged.
// For logs and --check-config.
std::string MaskedHeader(absl::string_view header);

// "https://h:1/p?xrfkey=abcd..." -> "https://h:1/p?xrfkey=****************":
// for logs and --check-config, which must not show a usable key.
std::string MaskedUrl(const PollTarget& target);

}  // namespace qfp::poller

#endif  // QFP_POLLER_POLL_PLAN_H_
