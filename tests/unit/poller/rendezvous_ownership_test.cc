#include "poller-service/rendezvous_ownership.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp::poller {
namespace {

// Keys shaped as PollTarget::Key() gives them.
std::vector<std::string> Keys(int servers) {
  std::vector<std::string> keys;
  for (int i = 0; i < servers; ++i) {
    keys.push_back(absl::StrCat("HEALTH_API sense", i));
    keys.push_back(absl::StrCat("PROXY_API sense", i, " /"));
    keys.push_back(absl::StrCat("PROXY_API sense", i, " /sales"));
  }
  return keys;
}

std::vector<std::string> Members(int n) {
  std::vector<std::string> members;
  for (int i = 1; i <= n; ++i) members.push_back(absl::StrCat("10.0.0.", i));
  return members;
}

std::map<std::string, std::string> Owners(
    const std::vector<std::string>& members,
    const std::vector<std::string>& keys) {
  std::map<std::string, std::string> owners;
  for (const std::string& key : keys) {
    owners[key] = members[RendezvousOwner(members, key)];
  }
  return owners;
}

TEST(RendezvousWeightTest, IsPinnedAcrossBuilds) {
  // Every poller of a cluster must compute the same weights, whatever its
  // build: these values were computed by an independent implementation (in
  // Python) of FNV-1a 64 + fmix64 as the header documents; a change here is
  // a compatibility change.
  EXPECT_EQ(RendezvousWeight("", ""), 0x1bbd5c813c69a8d7ULL);
  EXPECT_EQ(RendezvousWeight("10.0.0.1", "HEALTH_API sense1"),
            0x7199bcf67e1dd902ULL);
}

TEST(RendezvousWeightTest, SeparatesMemberFromKey) {
  EXPECT_NE(RendezvousWeight("a", "bc"), RendezvousWeight("ab", "c"));
  EXPECT_NE(RendezvousWeight("10.0.0.1", "k"),
            RendezvousWeight("10.0.0.2", "k"));
}

TEST(RendezvousOwnerTest, DoesNotDependOnMemberOrder) {
  std::vector<std::string> members = Members(5);
  const std::vector<std::string> keys = Keys(200);
  const auto before = Owners(members, keys);
  std::reverse(members.begin(), members.end());
  std::rotate(members.begin(), members.begin() + 2, members.end());
  EXPECT_EQ(Owners(members, keys), before);
}

TEST(RendezvousOwnerTest, SpreadsTargetsRoughlyEvenly) {
  const std::vector<std::string> members = Members(5);
  const std::vector<std::string> keys = Keys(1000);  // 3000 targets
  std::map<std::string, int> counts;
  for (const auto& [key, owner] : Owners(members, keys)) ++counts[owner];
  ASSERT_EQ(counts.size(), 5u);
  // 600 each on average; a binomial standard deviation is about 22, so
  // +-15% (90) is four of them and more.
  for (const auto& [member, count] : counts) {
    EXPECT_GT(count, 510) << member;
    EXPECT_LT(count, 690) << member;
  }
}

TEST(RendezvousOwnerTest, RemovingAMemberMovesOnlyItsTargets) {
  const std::vector<std::string> members = Members(4);
  const std::vector<std::string> keys = Keys(500);
  const auto before = Owners(members, keys);
  std::vector<std::string> fewer = members;
  fewer.erase(fewer.begin() + 1);  // 10.0.0.2 leaves
  const auto after = Owners(fewer, keys);
  std::map<std::string, int> inherited;
  for (const std::string& key : keys) {
    if (before.at(key) == "10.0.0.2") {
      EXPECT_NE(after.at(key), "10.0.0.2");
      ++inherited[after.at(key)];
    } else {
      EXPECT_EQ(after.at(key), before.at(key)) << key;
    }
  }
  // Its targets spread over every other member, not onto one.
  EXPECT_EQ(inherited.size(), 3u);
}

TEST(RendezvousOwnerTest, AJoiningMemberTakesAboutOneNthAndNothingElseMoves) {
  const std::vector<std::string> members = Members(3);
  const std::vector<std::string> keys = Keys(1000);
  const auto before = Owners(members, keys);
  std::vector<std::string> more = members;
  more.push_back("10.0.0.99");
  const auto after = Owners(more, keys);
  int moved = 0;
  for (const std::string& key : keys) {
    if (after.at(key) != before.at(key)) {
      EXPECT_EQ(after.at(key), "10.0.0.99") << key;
      ++moved;
    }
  }
  // 3000 targets, 1/4 expected: 750.
  EXPECT_GT(moved, 650);
  EXPECT_LT(moved, 850);
}

TEST(StaticShardOwnershipTest, ShardsPartitionTheTargetsExactly) {
  const std::vector<std::string> keys = Keys(300);
  for (int count = 1; count <= 7; ++count) {
    std::vector<StaticShardOwnership> shards;
    for (int i = 0; i < count; ++i) shards.emplace_back(count, i);
    std::vector<int> per_shard(count, 0);
    for (const std::string& key : keys) {
      int owners = 0;
      for (int i = 0; i < count; ++i) {
        if (shards[i].Owns(key)) {
          ++owners;
          ++per_shard[i];
        }
      }
      EXPECT_EQ(owners, 1) << key << " with " << count << " shards";
    }
    for (int i = 0; i < count; ++i) {
      EXPECT_GT(per_shard[i], 0) << "shard " << i << " of " << count;
    }
  }
}

TEST(RendezvousOwnershipTest, OwnsEveryTargetUntilListed) {
  RendezvousOwnership ownership("10.0.0.2");
  const std::vector<std::string> keys = Keys(50);
  for (const std::string& key : keys) EXPECT_TRUE(ownership.Owns(key));
  EXPECT_FALSE(ownership.self_listed());

  ownership.SetMembers({"10.0.0.1", "10.0.0.3"});  // not among them
  EXPECT_FALSE(ownership.self_listed());
  for (const std::string& key : keys) EXPECT_TRUE(ownership.Owns(key));

  ownership.SetMembers({"10.0.0.3", "10.0.0.2", "10.0.0.1", "10.0.0.2"});
  EXPECT_TRUE(ownership.self_listed());
  EXPECT_THAT(ownership.members(),
              ::testing::ElementsAre("10.0.0.1", "10.0.0.2", "10.0.0.3"));
  const std::vector<std::string> members = Members(3);
  int owned = 0;
  for (const std::string& key : keys) {
    const bool expected = members[RendezvousOwner(members, key)] == "10.0.0.2";
    EXPECT_EQ(ownership.Owns(key), expected) << key;
    owned += expected ? 1 : 0;
  }
  EXPECT_GT(owned, 0);
  EXPECT_LT(owned, static_cast<int>(keys.size()));

  ownership.SetMembers({});
  for (const std::string& key : keys) EXPECT_TRUE(ownership.Owns(key));
}

TEST(RendezvousOwnershipTest, PollersWithTheSameListPartitionExactly) {
  const std::vector<std::string> members = Members(3);
  std::vector<std::unique_ptr<RendezvousOwnership>> pollers;
  for (const std::string& self : members) {
    pollers.push_back(std::make_unique<RendezvousOwnership>(self));
    pollers.back()->SetMembers(members);
  }
  for (const std::string& key : Keys(300)) {
    int owners = 0;
    for (const auto& poller : pollers) owners += poller->Owns(key) ? 1 : 0;
    EXPECT_EQ(owners, 1) << key;
  }
}

TEST(RendezvousOwnershipTest, OwnsIsSafeWhileMembersChange) {
  RendezvousOwnership ownership("10.0.0.1");
  const std::vector<std::string> keys = Keys(100);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      ownership.SetMembers(i % 2 == 0 ? Members(3) : Members(1));
    }
    done.store(true);
  });
  // With one member (itself) or three, some key is always owned: a torn
  // read could make none owned.
  size_t rounds = 0;
  while (!done.load() && rounds < 100000) {
    size_t owned = 0;
    for (const std::string& key : keys) owned += ownership.Owns(key) ? 1 : 0;
    EXPECT_GT(owned, 0u);
    ++rounds;
  }
  writer.join();
}

}  // namespace
}  // namespace qfp::poller
