// Sharing one config's poll targets among several pollers with no
// coordinator: rendezvous (highest-random-weight) hashing, as in Thaler and
// Ravishankar, "Using name-based mappings to increase hit rates" (1998).
// Every poller weighs each target key against each member and the member
// with the highest weight owns the target. Each poller computes this alone
// from the same member list, so all agree; a member that leaves gives up only
// its own targets, spread over the others, and one that joins takes about
// 1/N of them from the others and nothing else moves.
#ifndef QFP_POLLER_RENDEZVOUS_OWNERSHIP_H_
#define QFP_POLLER_RENDEZVOUS_OWNERSHIP_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "poller-service/target_ownership.h"

namespace qfp::poller {

// The weight of `key` (a PollTarget::Key()) on `member` (a poller's address,
// or a static shard's index in decimal). Stable across builds, platforms and
// versions, since every poller of a cluster must agree (so never std::hash):
// 64-bit FNV-1a over the bytes of `member`, one 0xFF byte (never part of
// UTF-8, so "a"+"bc" and "ab"+"c" differ) and the bytes of `key`, then
// MurmurHash3's 64-bit finalizer (fmix64) so every input bit moves the high
// bits that the comparison looks at. Changing it moves targets between
// pollers of mixed versions: a compatibility change.
uint64_t RendezvousWeight(absl::string_view member, absl::string_view key);

// The index in `members` (not empty) of the member that owns `key`: the
// highest RendezvousWeight, ties (1 in 2^64) to the smaller member string.
// The order of `members` does not matter. O(members.size()).
size_t RendezvousOwner(absl::Span<const std::string> members,
                       absl::string_view key);

// Fixed shards (cluster.shardCount, cluster.shardIndex): the members are the
// shard indexes "0" ... "shardCount-1", so every key has exactly one owner
// among the shards, and a change of shardCount from N to N+1 moves only
// about 1/(N+1) of the targets. Immutable, hence thread-safe.
class StaticShardOwnership final : public TargetOwnership {
 public:
  // 0 <= shard_index < shard_count (checked by the config parser).
  StaticShardOwnership(int shard_count, int shard_index);
  bool Owns(absl::string_view target_key) const override;

 private:
  std::vector<std::string> members_;
  size_t self_;
};

// Members given from outside (PeerMembership, from DNS). Thread-safe:
// SetMembers on one thread, Owns on others.
//
// When the member list is empty, or does not hold `self`, this poller owns
// every target: it cannot know its share, and polling a target twice is
// better than leaving it unpolled (a gap looks like a healthy site).
class RendezvousOwnership final : public TargetOwnership {
 public:
  // `self`: this poller's member name as the list will spell it (an address
  // in inet_ntop's form: "10.1.2.3", "fd00::5").
  explicit RendezvousOwnership(std::string self);

  // Replaces the members (duplicates ignored, any order). Takes effect at
  // each target's next due time.
  void SetMembers(std::vector<std::string> members) ABSL_LOCKS_EXCLUDED(mu_);

  bool Owns(absl::string_view target_key) const override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether the current list holds `self` (false: owns every target).
  bool self_listed() const ABSL_LOCKS_EXCLUDED(mu_);
  // The current members, sorted, without duplicates.
  std::vector<std::string> members() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& self() const { return self_; }

 private:
  const std::string self_;
  mutable absl::Mutex mu_;
  std::vector<std::string> members_ ABSL_GUARDED_BY(mu_);
  size_t self_index_ ABSL_GUARDED_BY(mu_) = 0;
  bool self_listed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_RENDEZVOUS_OWNERSHIP_H_
