#include "poller-service/peer_membership.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

absl::StatusOr<std::vector<std::string>> ResolveAddresses(
    const std::string& name) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  // One entry per address, not one per socket type.
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(name.c_str(), nullptr, &hints, &result);
  if (rc != 0) {
    const std::string message = absl::StrCat(name, ": ", gai_strerror(rc));
    return rc == EAI_NONAME || rc == EAI_NODATA
               ? absl::NotFoundError(message)
               : absl::UnavailableError(message);
  }
  std::vector<std::string> addresses;
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* bytes = nullptr;
    if (ai->ai_family == AF_INET) {
      bytes = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      bytes = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(ai->ai_family, bytes, text, sizeof(text)) != nullptr) {
      addresses.emplace_back(text);
    }
  }
  freeaddrinfo(result);
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()),
                  addresses.end());
  if (addresses.empty()) {
    return absl::NotFoundError(absl::StrCat(name, ": no IPv4 or IPv6 address"));
  }
  return addresses;
}

ClusterMetrics::ClusterMetrics(MetricsRegistry& metrics)
    : members(metrics.AddGauge(
          "qfp_poller_cluster_members",
          "Pollers sharing this poller's targets, itself included (1 when "
          "alone or when polling every target as a fallback).")),
      targets_owned(metrics.AddGauge(
          "qfp_poller_targets_owned",
          "Poll targets this poller polls now (its share of the config's).")),
      resolve_failures(metrics.AddCounter(
          "qfp_poller_cluster_resolve_failures_total",
          "Resolutions of cluster.peersDns that failed or did not list "
          "cluster.self; each makes this poller poll every target.")) {}

PeerMembership::PeerMembership(std::string peers_dns, absl::Duration refresh,
                               RendezvousOwnership& ownership,
                               std::vector<std::string> target_keys,
                               ClusterMetrics& metrics,
                               AddressResolver resolver)
    : peers_dns_(std::move(peers_dns)),
      refresh_(refresh),
      ownership_(ownership),
      target_keys_(std::move(target_keys)),
      metrics_(metrics),
      resolver_(std::move(resolver)) {}

PeerMembership::~PeerMembership() { Stop(); }

size_t PeerMembership::CountOwned() const {
  return static_cast<size_t>(std::count_if(
      target_keys_.begin(), target_keys_.end(),
      [&](const std::string& key) { return ownership_.Owns(key); }));
}

void PeerMembership::Refresh() {
  absl::StatusOr<std::vector<std::string>> resolved = resolver_(peers_dns_);
  const std::vector<std::string> before = ownership_.members();
  const bool was_listed = ownership_.self_listed();
  std::string problem;
  if (resolved.ok()) {
    ownership_.SetMembers(*resolved);
    if (!ownership_.self_listed()) {
      problem = absl::StrCat(peers_dns_, " lists ", resolved->size(),
                             resolved->size() == 1 ? " address" : " addresses",
                             ", not this poller's (cluster.self ",
                             ownership_.self(), ")");
    }
  } else {
    ownership_.SetMembers({});
    problem = std::string(resolved.status().message());
  }
  const std::vector<std::string> after = ownership_.members();
  const bool listed = ownership_.self_listed();
  const size_t owned = CountOwned();
  metrics_.members.Set(listed ? static_cast<double>(after.size()) : 1.0);
  metrics_.targets_owned.Set(static_cast<double>(owned));

  if (!problem.empty()) {
    metrics_.resolve_failures.Increment();
    // Entering the fallback is logged at once; while it lasts, at most once
    // a minute with the true count of failed refreshes since the last line.
    ++failed_since_line_;
    const absl::Duration now = SystemClock::Get().Monotonic();
    if (!applied_once_ || !was_fallback_) {
      spdlog::warn(
          "cluster: {}; polling every target ({} of {}) rather than none "
          "until this poller is listed",
          problem, owned, target_keys_.size());
      failed_since_line_ = 0;
      last_fallback_line_ = now;
    } else if (now - last_fallback_line_ >= absl::Minutes(1)) {
      spdlog::warn(
          "cluster: {}; still polling every target ({} failed refreshes "
          "since the previous line)",
          problem, failed_since_line_);
      failed_since_line_ = 0;
      last_fallback_line_ = now;
    }
    was_fallback_ = true;
    applied_once_ = true;
    return;
  }
  if (!applied_once_ || was_fallback_ || !was_listed || before != after) {
    std::vector<std::string> joined;
    std::vector<std::string> left;
    std::set_difference(after.begin(), after.end(), before.begin(),
                        before.end(), std::back_inserter(joined));
    std::set_difference(before.begin(), before.end(), after.begin(),
                        after.end(), std::back_inserter(left));
    spdlog::info(
        "cluster {}: {} pollers ({} joined, {} left); this poller ({}) "
        "polls {} of {} targets",
        peers_dns_, after.size(), joined.size(), left.size(), ownership_.self(),
        owned, target_keys_.size());
  }
  was_fallback_ = false;
  applied_once_ = true;
}

void PeerMembership::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void PeerMembership::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void PeerMembership::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), refresh_);
      if (stop_) return;
    }
    Refresh();
  }
}

PollerCluster::PollerCluster(const ClusterConfig& config,
                             const std::vector<PollTarget>& plan,
                             MetricsRegistry& metrics)
    : metrics_(metrics) {
  std::vector<std::string> keys;
  keys.reserve(plan.size());
  for (const PollTarget& target : plan) keys.push_back(target.Key());
  if (!config.peers_dns.empty()) {
    auto ownership = std::make_unique<RendezvousOwnership>(config.self);
    membership_ =
        std::make_unique<PeerMembership>(config.peers_dns, config.peers_refresh,
                                         *ownership, std::move(keys), metrics_);
    ownership_ = std::move(ownership);
    description_ = absl::StrCat("shared with the pollers of DNS name ",
                                config.peers_dns, " as ", config.self);
    metrics_.members.Set(1);
    metrics_.targets_owned.Set(static_cast<double>(plan.size()));
    return;
  }
  if (config.shard_count > 0) {
    ownership_ = std::make_unique<StaticShardOwnership>(config.shard_count,
                                                        config.shard_index);
    description_ =
        absl::StrCat("shard ", config.shard_index, " of ", config.shard_count);
    metrics_.members.Set(config.shard_count);
  } else {
    ownership_ = std::make_unique<OwnsEveryTarget>();
    description_ = "alone";
    metrics_.members.Set(1);
  }
  metrics_.targets_owned.Set(static_cast<double>(std::count_if(
      keys.begin(), keys.end(),
      [&](const std::string& key) { return ownership_->Owns(key); })));
}

PollerCluster::~PollerCluster() { Stop(); }

void PollerCluster::Start() {
  if (membership_ == nullptr) return;
  membership_->Refresh();
  membership_->Start();
}

void PollerCluster::Stop() {
  if (membership_ != nullptr) membership_->Stop();
}

}  // namespace qfp::poller
