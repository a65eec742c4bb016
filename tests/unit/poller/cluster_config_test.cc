// Butler-SOS.failedPolls.poller.cluster as ParsePollerConfig reads it
// (ClusterConfig in poller-service/poller_config.h).
#include <cstdlib>
#include <string>

#include "absl/strings/str_replace.h"
#include "common/config_node.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "poller-service/poller_config.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_pki.h"

namespace qfp::poller {
namespace {

using ::testing::HasSubstr;

// Sets (or, with nullptr, unsets) an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

class ClusterConfigTest : public ::testing::Test {
 protected:
  ClusterConfigTest() : pki_(testing::WriteTestPki(dir_.path())) {}

  // A valid file whose failedPolls.poller.cluster is `cluster` (lines
  // indented under it).
  absl::StatusOr<PollerConfig> Parse(const std::string& cluster) {
    std::string yaml =
        "Butler-SOS:\n"
        "  cert:\n"
        "    clientCert: __PKI__/client.pem\n"
        "    clientCertKey: __PKI__/client_key.pem\n"
        "    clientCertCA: __PKI__/root.pem\n"
        "  serversToMonitor:\n"
        "    pollingInterval: 1000\n"
        "    servers:\n"
        "      - host: sense1:4747\n"
        "        serverName: sense1\n"
        "  failedPolls:\n"
        "    poller:\n"
        "      cluster:\n" +
        cluster;
    absl::StatusOr<YAML::Node> root = ConfigNode::Parse(
        absl::StrReplaceAll(yaml, {{"__PKI__", dir_.path()}}));
    if (!root.ok()) return root.status();
    return ParsePollerConfig(*root, "test.yaml");
  }

  std::string Error(const std::string& cluster) {
    absl::StatusOr<PollerConfig> config = Parse(cluster);
    EXPECT_FALSE(config.ok()) << "accepted:\n" << cluster;
    return config.ok() ? "" : std::string(config.status().message());
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
  ScopedEnv no_pod_ip_{"QFP_POD_IP", nullptr};
  ScopedEnv pod_name_{"QFP_POLLER_ID", "qfp-poller-default-2"};
};

TEST_F(ClusterConfigTest, NoClusterKeysMeansAlone) {
  absl::StatusOr<PollerConfig> config = Parse("        {}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->cluster.peers_dns.empty());
  EXPECT_EQ(config->cluster.shard_count, 0);
  EXPECT_EQ(config->cluster.peers_refresh, absl::Seconds(5));
}

TEST_F(ClusterConfigTest, ReadsPeersDnsAndNormalisesSelf) {
  absl::StatusOr<PollerConfig> config = Parse(
      "        peersDns: pollers.ns.svc.cluster.local\n"
      "        self: fd00:0:0::5\n"
      "        peersRefreshInterval: 1000\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster.peers_dns, "pollers.ns.svc.cluster.local");
  EXPECT_EQ(config->cluster.self, "fd00::5");
  EXPECT_EQ(config->cluster.peers_refresh, absl::Seconds(1));
}

TEST_F(ClusterConfigTest, SelfDefaultsToThePodIp) {
  ScopedEnv pod_ip("QFP_POD_IP", "10.1.2.3");
  absl::StatusOr<PollerConfig> config = Parse("        peersDns: pollers\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster.self, "10.1.2.3");
}

TEST_F(ClusterConfigTest, ShardIndexDefaultsToThePodOrdinal) {
  absl::StatusOr<PollerConfig> config = Parse("        shardCount: 3\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster.shard_count, 3);
  EXPECT_EQ(config->cluster.shard_index, 2);

  config = Parse("        shardCount: 4\n        shardIndex: 0\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster.shard_index, 0);
}

TEST_F(ClusterConfigTest, BadCombinationsNameTheirKeys) {
  constexpr char kPrefix[] = "Butler-SOS.failedPolls.poller.cluster.";
  EXPECT_THAT(Error("        peersDns: pollers\n"),
              HasSubstr(std::string(kPrefix) +
                        "self: missing, and $QFP_POD_IP is not set"));
  EXPECT_THAT(Error("        shardCount: 3\n        shardIndex: 3\n"),
              HasSubstr(std::string(kPrefix) +
                        "shardIndex: is 3, not below cluster.shardCount (3)"));
  EXPECT_THAT(Error("        shardCount: 2\n"),
              HasSubstr(std::string(kPrefix) +
                        "shardIndex: is 2 (the pod name's ordinal), not below "
                        "cluster.shardCount (2)"));
  EXPECT_THAT(Error("        peersDns: pollers\n        self: 10.0.0.1\n"
                    "        shardCount: 3\n"),
              HasSubstr(std::string(kPrefix) +
                        "shardCount: set together with cluster.peersDns"));
  EXPECT_THAT(Error("        peersDns: pollers\n        self: pod-a\n"),
              HasSubstr(std::string(kPrefix) +
                        "self: \"pod-a\" is not an IPv4 or IPv6 address"));
  EXPECT_THAT(Error("        self: 10.0.0.1\n"),
              HasSubstr(std::string(kPrefix) + "self: set without"));
  EXPECT_THAT(Error("        shardIndex: 1\n"),
              HasSubstr(std::string(kPrefix) + "shardIndex: set without"));
  EXPECT_THAT(Error("        shardCount: 0\n"),
              HasSubstr(std::string(kPrefix) + "shardCount:"));
  EXPECT_THAT(Error("        peersDns: pollers\n        self: 10.0.0.1\n"
                    "        peersRefreshInterval: 10\n"),
              HasSubstr(std::string(kPrefix) + "peersRefreshInterval:"));
  EXPECT_THAT(Error("        peerDns: pollers\n"),
              HasSubstr(std::string(kPrefix) + "peerDns"));
}

// Both ways of sharing: the conflict alone, not the problems of either
// way's own keys (a pod name without an ordinal, no $QFP_POD_IP), which
// depend on the way kept.
TEST_F(ClusterConfigTest, BothWaysOfSharingGiveOnlyTheConflict) {
  ScopedEnv pod_name("QFP_POLLER_ID", "poller-a");
  ScopedEnv pod_ip("QFP_POD_IP", nullptr);
  for (const char* cluster :
       {"        peersDns: pollers\n        self: 10.0.0.1\n"
        "        shardCount: 3\n",
        "        peersDns: pollers\n        shardCount: 3\n",
        "        peersDns: pollers\n        shardCount: 3\n"
        "        shardIndex: 7\n"}) {
    EXPECT_EQ(Error(cluster),
              "invalid config test.yaml (1 problem):\n  "
              "Butler-SOS.failedPolls.poller.cluster.shardCount: set together "
              "with cluster.peersDns: use one way of sharing (peersDns for "
              "members found by DNS, shardCount for fixed shards)")
        << cluster;
  }
}

TEST_F(ClusterConfigTest, AnOrdinalIsNeededWithoutShardIndex) {
  ScopedEnv pod_name("QFP_POLLER_ID", "poller-a");
  EXPECT_THAT(Error("        shardCount: 3\n"),
              HasSubstr("cluster.shardIndex: missing, and the pod name "
                        "\"poller-a\""));
}

TEST_F(ClusterConfigTest, PodIpThatIsNoAddressNamesItsSource) {
  ScopedEnv pod_ip("QFP_POD_IP", "not-an-ip");
  EXPECT_THAT(Error("        peersDns: pollers\n"),
              HasSubstr("cluster.self: \"not-an-ip\" (from $QFP_POD_IP) is "
                        "not an IPv4 or IPv6 address"));
}

}  // namespace
}  // namespace qfp::poller
