#include "poller-service/peer_membership.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp::poller {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Keys(int servers) {
  std::vector<std::string> keys;
  for (int i = 0; i < servers; ++i) {
    keys.push_back(absl::StrCat("HEALTH_API sense", i));
  }
  return keys;
}

// A resolver whose answer the test sets; counts its calls.
class ScriptedResolver {
 public:
  void Answer(absl::StatusOr<std::vector<std::string>> answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  AddressResolver Get() {
    return [this](const std::string& name) {
      absl::MutexLock lock(&mu_);
      EXPECT_EQ(name, "pollers.test");
      ++calls_;
      return answer_;
    };
  }

 private:
  mutable absl::Mutex mu_;
  absl::StatusOr<std::vector<std::string>> answer_ =
      absl::NotFoundError("pollers.test: Name or service not known");
  int calls_ = 0;
};

class PeerMembershipTest : public ::testing::Test {
 protected:
  PeerMembershipTest()
      : cluster_metrics_(metrics_),
        ownership_("10.0.0.2"),
        membership_("pollers.test", absl::Milliseconds(10), ownership_,
                    Keys(90), cluster_metrics_, resolver_.Get()) {}

  size_t Owned() {
    size_t owned = 0;
    for (const std::string& key : Keys(90)) owned += ownership_.Owns(key);
    return owned;
  }

  MetricsRegistry metrics_;
  ClusterMetrics cluster_metrics_;
  ScriptedResolver resolver_;
  RendezvousOwnership ownership_;
  PeerMembership membership_;
};

TEST_F(PeerMembershipTest, AppliesTheResolvedMembers) {
  resolver_.Answer(
      std::vector<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"});
  membership_.Refresh();
  EXPECT_TRUE(ownership_.self_listed());
  EXPECT_THAT(ownership_.members(),
              ElementsAre("10.0.0.1", "10.0.0.2", "10.0.0.3"));
  const size_t owned = Owned();
  EXPECT_GT(owned, 10u);
  EXPECT_LT(owned, 50u);
  EXPECT_EQ(cluster_metrics_.members.value(), 3);
  EXPECT_EQ(cluster_metrics_.targets_owned.value(), static_cast<double>(owned));
  EXPECT_EQ(cluster_metrics_.resolve_failures.value(), 0u);
}

TEST_F(PeerMembershipTest, PollsEverythingWhenTheNameDoesNotResolve) {
  resolver_.Answer(std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  membership_.Refresh();
  ASSERT_LT(Owned(), 90u);
  resolver_.Answer(
      absl::NotFoundError("pollers.test: Name or service not known"));
  membership_.Refresh();
  membership_.Refresh();
  EXPECT_EQ(Owned(), 90u);
  EXPECT_EQ(cluster_metrics_.targets_owned.value(), 90);
  EXPECT_EQ(cluster_metrics_.members.value(), 1);
  EXPECT_EQ(cluster_metrics_.resolve_failures.value(), 2u);
}

TEST_F(PeerMembershipTest, PollsEverythingWhenSelfIsNotListed) {
  resolver_.Answer(std::vector<std::string>{"10.0.0.1", "10.0.0.3"});
  membership_.Refresh();
  EXPECT_FALSE(ownership_.self_listed());
  EXPECT_EQ(Owned(), 90u);
  EXPECT_EQ(cluster_metrics_.resolve_failures.value(), 1u);
  // Once listed (a pod becomes ready), it polls its share.
  resolver_.Answer(
      std::vector<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"});
  membership_.Refresh();
  EXPECT_LT(Owned(), 90u);
}

TEST_F(PeerMembershipTest, TheThreadRefreshesUntilStopped) {
  resolver_.Answer(std::vector<std::string>{"10.0.0.2"});
  membership_.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (resolver_.calls() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(resolver_.calls(), 3);
  // A change is seen by the next refresh.
  resolver_.Answer(std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  while (ownership_.members().size() != 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(ownership_.members().size(), 2u);
  membership_.Stop();
  const int calls = resolver_.calls();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(resolver_.calls(), calls);
}

TEST(ResolveAddressesTest, ResolvesLiteralsAndLocalhostOnly) {
  // Only names that never leave the host (tests talk to loopback only).
  EXPECT_THAT(*ResolveAddresses("127.0.0.1"), ElementsAre("127.0.0.1"));
  EXPECT_THAT(*ResolveAddresses("::1"), ElementsAre("::1"));
  absl::StatusOr<std::vector<std::string>> local =
      ResolveAddresses("localhost");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_THAT(*local, ::testing::Contains("127.0.0.1"));
}

TEST(PollerClusterTest, AloneOwnsEveryTarget) {
  MetricsRegistry metrics;
  PollTarget target;
  target.server_name = "sense1";
  PollerCluster cluster(ClusterConfig{}, {target, target}, metrics);
  EXPECT_TRUE(cluster.ownership()->Owns(target.Key()));
  EXPECT_EQ(cluster.description(), "alone");
  const std::string page = metrics.RenderText();
  EXPECT_THAT(page, ::testing::HasSubstr("qfp_poller_cluster_members 1\n"));
  EXPECT_THAT(page, ::testing::HasSubstr("qfp_poller_targets_owned 2\n"));
}

TEST(PollerClusterTest, StaticShardsOwnTheirShare) {
  std::vector<PollTarget> plan(60);
  for (size_t i = 0; i < plan.size(); ++i) {
    plan[i].server_name = absl::StrCat("sense", i);
  }
  double total = 0;
  for (int index = 0; index < 3; ++index) {
    MetricsRegistry metrics;
    ClusterConfig config;
    config.shard_count = 3;
    config.shard_index = index;
    PollerCluster cluster(config, plan, metrics);
    EXPECT_EQ(cluster.description(), absl::StrCat("shard ", index, " of 3"));
    const std::string page = metrics.RenderText();
    EXPECT_THAT(page, ::testing::HasSubstr("qfp_poller_cluster_members 3\n"));
    size_t owned = 0;
    for (const PollTarget& t : plan)
      owned += cluster.ownership()->Owns(t.Key());
    EXPECT_THAT(page, ::testing::HasSubstr(absl::StrCat(
                          "qfp_poller_targets_owned ", owned, "\n")));
    total += static_cast<double>(owned);
  }
  EXPECT_EQ(total, 60);
}

}  // namespace
}  // namespace qfp::poller
