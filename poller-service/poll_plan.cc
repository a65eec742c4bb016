#include "poller-service/poll_plan.h"

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/failure_names.h"

namespace qfp::poller {
namespace {

using failedpolls::v1::APP_NAMES_EXTRACT;
using failedpolls::v1::HEALTH_API;
using failedpolls::v1::PROXY_API;

constexpr char kQrsPort[] = "4242";
constexpr char kUserAgent[] = "User-Agent: qlik-failed-polls-qs-poller";
constexpr char kQrsUser[] =
    "X-Qlik-User: UserDirectory=Internal; UserId=sa_repository";

// True when `host` already names a port ("qrs:4242", "[::1]:4242"). A bare
// IPv6 address ("::1") has colons but no port.
bool HasPort(const std::string& host) {
  if (!host.empty() && host[0] == '[') {
    return host.find("]:") != std::string::npos;
  }
  return std::count(host.begin(), host.end(), ':') == 1;
}

// The headers every Qlik Sense poll sends (Butler SOS's axios defaults,
// compatibility reference §2). Accept-Encoding is libcurl's (the transport
// advertises what it decodes). User-Agent names us rather than imitating
// axios's versioned one: libcurl sends none by default, and some proxies
// and firewalls refuse a request without one.
std::vector<std::string> CommonHeaders() {
  return {"Accept: application/json, text/plain, */*",
          "Content-Type: application/json", "Cache-Control: no-cache",
          kUserAgent};
}

// "Name: value" -> "name", for comparing header names.
std::string HeaderName(absl::string_view header) {
  return absl::AsciiStrToLower(header.substr(0, header.find(':')));
}

// Adds `name: value`, replacing a header of the same name (as axios merges
// a request's headers over its defaults): a server's `headers` map may
// replace a common header, never send it twice.
void SetHeader(std::vector<std::string>& headers, const std::string& name,
               const std::string& value) {
  const std::string line = absl::StrCat(name, ": ", value);
  const std::string lower = absl::AsciiStrToLower(name);
  for (std::string& header : headers) {
    if (HeaderName(header) == lower) {
      header = line;
      return;
    }
  }
  headers.push_back(line);
}

}  // namespace

std::string PollTarget::Key() const {
  std::string key = absl::StrCat(SourceName(source), " ", server_name);
  if (!virtual_proxy.empty()) absl::StrAppend(&key, " ", virtual_proxy);
  return key;
}

std::vector<PollTarget> BuildPollPlan(const PollerConfig& config) {
  std::vector<PollTarget> plan;
  for (const MonitoredServer& server : config.servers) {
    PollTarget health;
    health.source = HEALTH_API;
    health.server_name = server.server_name;
    health.host = server.host;
    health.server_tags = server.server_tags;
    health.url = absl::StrCat("https://", server.host, "/engine/healthcheck");
    health.headers = CommonHeaders();
    for (const auto& [name, value] : server.headers) {
      SetHeader(health.headers, name, value);
    }
    health.expected_body = ExpectedBody::kJsonObject;
    health.interval = config.health_interval;
    health.timeout = config.health_timeout;
    plan.push_back(std::move(health));
  }
  if (config.sessions_enabled) {
    for (const MonitoredServer& server : config.servers) {
      if (!server.sessions_enabled) continue;
      for (const std::string& vp : server.virtual_proxies) {
        PollTarget sessions;
        sessions.source = PROXY_API;
        sessions.server_name = server.server_name;
        sessions.host = server.sessions_host;
        sessions.virtual_proxy = vp;
        sessions.server_tags = server.server_tags;
        // The default virtual proxy "/" has no prefix: /qps/session.
        const std::string prefix = vp == "/" ? "" : vp;
        sessions.url = absl::StrCat("https://", server.sessions_host, "/qps",
                                    prefix, "/session");
        sessions.xrfkey_param = "Xrfkey";
        sessions.headers = CommonHeaders();
        sessions.headers.push_back(absl::StrCat("XVirtualProxy: ", vp));
        sessions.expected_body = ExpectedBody::kJsonArray;
        sessions.interval = config.sessions_interval;
        sessions.timeout = config.sessions_timeout;
        plan.push_back(std::move(sessions));
      }
    }
  }
  if (config.app_names_enabled) {
    PollTarget apps;
    apps.source = APP_NAMES_EXTRACT;
    apps.server_name = config.app_names_host;
    apps.host = config.app_names_host;
    // Butler SOS always adds the QRS port; a hostIP that names its own port
    // (a proxy, a test site) is used as written.
    apps.url = HasPort(config.app_names_host)
                   ? absl::StrCat("https://", config.app_names_host, "/qrs/app")
                   : absl::StrCat("https://", config.app_names_host, ":",
                                  kQrsPort, "/qrs/app");
    apps.xrfkey_param = "xrfkey";
    apps.headers = CommonHeaders();
    apps.headers.push_back(kQrsUser);
    apps.expected_body = ExpectedBody::kJsonArray;
    apps.interval = config.app_names_interval;
    apps.timeout = config.app_names_timeout;
    plan.push_back(std::move(apps));
  }
  return plan;
}

std::string NewXrfkey(absl::BitGen& rng) {
  static constexpr char kAlphabet[] =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string key(16, '0');
  for (char& c : key) {
    c = kAlphabet[absl::Uniform<size_t>(rng, 0, sizeof(kAlphabet) - 1)];
  }
  return key;
}

HttpRequest MakeRequest(const PollTarget& target, const PollerConfig& config,
                        absl::BitGen& rng) {
  HttpRequest request;
  request.url = target.url;
  request.headers = target.headers;
  if (!target.xrfkey_param.empty()) {
    const std::string key = NewXrfkey(rng);
    absl::StrAppend(&request.url, "?", target.xrfkey_param, "=", key);
    request.headers.push_back(absl::StrCat("X-Qlik-Xrfkey: ", key));
  }
  request.timeout = target.timeout;
  request.tls = &config.tls;
  request.max_body_bytes = config.max_response_bytes;
  request.body_check = std::make_shared<JsonShapeCheck>(target.expected_body);
  return request;
}

std::string MaskedUrl(const PollTarget& target) {
  if (target.xrfkey_param.empty()) return target.url;
  return absl::StrCat(target.url, "?", target.xrfkey_param,
                      "=****************");
}

}  // namespace qfp::poller

namespace qfp::poller {

std::string MaskedHeader(absl::string_view header) {
  const size_t colon = header.find(':');
  if (colon == absl::string_view::npos) return std::string(header);
  const std::string name = absl::AsciiStrToLower(header.substr(0, colon));
  for (absl::string_view secret : {"authorization", "cookie", "token", "secret",
                                   "key", "password", "session"}) {
    if (absl::StrContains(name, secret)) {
      return absl::StrCat(header.substr(0, colon), ": ********");
    }
  }
  return std::string(header);
}

}  // namespace qfp::poller
