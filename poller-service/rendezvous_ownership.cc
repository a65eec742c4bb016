#include "poller-service/rendezvous_ownership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qfp::poller {
namespace {

// FNV-1a, 64-bit (offset basis and prime from the FNV specification,
// draft-eastlake-fnv).
constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

uint64_t FnvAppend(uint64_t hash, absl::string_view bytes) {
  for (const char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

// MurmurHash3's fmix64: a bijection that spreads every input bit.
uint64_t Fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

uint64_t RendezvousWeight(absl::string_view member, absl::string_view key) {
  uint64_t hash = FnvAppend(kFnvOffsetBasis, member);
  hash = FnvAppend(hash, absl::string_view("\xff", 1));
  hash = FnvAppend(hash, key);
  return Fmix64(hash);
}

size_t RendezvousOwner(absl::Span<const std::string> members,
                       absl::string_view key) {
  size_t best = 0;
  uint64_t best_weight = RendezvousWeight(members[0], key);
  for (size_t i = 1; i < members.size(); ++i) {
    const uint64_t weight = RendezvousWeight(members[i], key);
    if (weight > best_weight ||
        (weight == best_weight && members[i] < members[best])) {
      best = i;
      best_weight = weight;
    }
  }
  return best;
}

StaticShardOwnership::StaticShardOwnership(int shard_count, int shard_index)
    : self_(static_cast<size_t>(shard_index)) {
  for (int i = 0; i < shard_count; ++i) members_.push_back(absl::StrCat(i));
}

bool StaticShardOwnership::Owns(absl::string_view target_key) const {
  return RendezvousOwner(members_, target_key) == self_;
}

RendezvousOwnership::RendezvousOwnership(std::string self)
    : self_(std::move(self)) {}

void RendezvousOwnership::SetMembers(std::vector<std::string> members) {
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  const auto it = std::lower_bound(members.begin(), members.end(), self_);
  const bool listed = it != members.end() && *it == self_;
  const size_t index = static_cast<size_t>(it - members.begin());
  absl::MutexLock lock(&mu_);
  members_ = std::move(members);
  self_listed_ = listed;
  self_index_ = index;
}

bool RendezvousOwnership::Owns(absl::string_view target_key) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!self_listed_) return true;
  return RendezvousOwner(members_, target_key) == self_index_;
}

bool RendezvousOwnership::self_listed() const {
  absl::ReaderMutexLock lock(&mu_);
  return self_listed_;
}

std::vector<std::string> RendezvousOwnership::members() const {
  absl::ReaderMutexLock lock(&mu_);
  return members_;
}

}  // namespace qfp::poller
