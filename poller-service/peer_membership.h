// Which pollers share this poller's targets now: the addresses of
// cluster.peersDns, resolved again every cluster.peersRefreshInterval on a
// thread of their own, handed to a RendezvousOwnership. A Kubernetes
// headless Service (publishNotReadyAddresses: false) lists the ready pods,
// so a poller that dies or stops being ready leaves the list, and the
// others take its targets at their next due times.
#ifndef QFP_POLLER_PEER_MEMBERSHIP_H_
#define QFP_POLLER_PEER_MEMBERSHIP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "poller-service/poll_plan.h"
#include "poller-service/poller_config.h"
#include "poller-service/rendezvous_ownership.h"
#include "poller-service/target_ownership.h"

namespace qfp::poller {

// The addresses (A and AAAA records, or the address itself when `name` is
// an address literal) of `name`, in inet_ntop's form, sorted, without
// duplicates, by getaddrinfo. Blocks for as long as the system resolver
// takes: at most its resolv.conf `timeout` x `attempts` per nameserver
// (glibc's defaults: 5 s x 2). An error (NXDOMAIN, no records, no answer)
// is kNotFound or kUnavailable with getaddrinfo's message.
absl::StatusOr<std::vector<std::string>> ResolveAddresses(
    const std::string& name);

using AddressResolver =
    std::function<absl::StatusOr<std::vector<std::string>>(const std::string&)>;

// The cluster's gauges, registered once per poller (common/metrics.h).
struct ClusterMetrics {
  explicit ClusterMetrics(MetricsRegistry& metrics);
  // qfp_poller_cluster_members: pollers sharing the targets, this one
  // included (1 when alone, or when it polls everything as a fallback).
  Gauge& members;
  // qfp_poller_targets_owned: poll targets this poller polls now.
  Gauge& targets_owned;
  // qfp_poller_cluster_resolve_failures_total: resolutions of
  // cluster.peersDns that failed or did not list cluster.self.
  Counter& resolve_failures;
};

// Resolves cluster.peersDns and updates a RendezvousOwnership. Start runs
// Refresh every `refresh` on a thread of its own, so that a slow resolver
// never delays a poll; Stop (or the destructor) ends it, waiting for a
// resolution in progress (bounded as ResolveAddresses says).
//
// A failed resolution, or records without `ownership.self()`, makes this
// poller poll every target (RendezvousOwnership), with a warning logged at
// once and then at most once a minute while it lasts. Every change of
// members is logged at info with the counts.
class PeerMembership {
 public:
  // `ownership`, `metrics` and `target_keys` (every PollTarget::Key() of the
  // plan, to count the owned ones) are kept by reference or copied as noted;
  // `ownership` and `metrics` must outlive this.
  PeerMembership(std::string peers_dns, absl::Duration refresh,
                 RendezvousOwnership& ownership,
                 std::vector<std::string> target_keys, ClusterMetrics& metrics,
                 AddressResolver resolver = ResolveAddresses);
  ~PeerMembership();
  PeerMembership(const PeerMembership&) = delete;
  PeerMembership& operator=(const PeerMembership&) = delete;

  // Resolves once and applies the result, on the caller's thread. Main calls
  // it before the first poll, so a poller that starts into a running cluster
  // polls only its share from the start.
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);

  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  size_t CountOwned() const;

  const std::string peers_dns_;
  const absl::Duration refresh_;
  RendezvousOwnership& ownership_;
  const std::vector<std::string> target_keys_;
  ClusterMetrics& metrics_;
  const AddressResolver resolver_;
  // Touched by Refresh only (one thread at a time: Main before Start, then
  // the loop).
  bool applied_once_ = false;
  bool was_fallback_ = false;
  uint64_t failed_since_line_ = 0;     // failed refreshes not yet logged
  absl::Duration last_fallback_line_;  // monotonic

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// This poller's share of the targets, from its ClusterConfig: every target
// (no cluster keys), fixed shards (shardCount) or members from DNS
// (peersDns). Sets the ClusterMetrics; Start/Stop run the DNS refresh when
// there is one. Construct, Start and Stop on one thread (main);
// ownership()'s Owns may be called from any thread meanwhile.
class PollerCluster {
 public:
  PollerCluster(const ClusterConfig& config,
                const std::vector<PollTarget>& plan, MetricsRegistry& metrics);
  ~PollerCluster();

  const TargetOwnership* ownership() const { return ownership_.get(); }
  // "alone", "shard 2 of 3", "peers from DNS name X as 10.0.0.5".
  const std::string& description() const { return description_; }

  // With peersDns: resolves once on this thread, then starts the refresh
  // thread. Otherwise nothing.
  void Start();
  void Stop();

 private:
  ClusterMetrics metrics_;
  std::unique_ptr<TargetOwnership> ownership_;
  std::unique_ptr<PeerMembership> membership_;
  std::string description_;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_PEER_MEMBERSHIP_H_
