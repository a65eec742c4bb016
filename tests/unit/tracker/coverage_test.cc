// Coverage: the tracker's reading of the poll plan, checked against the
// poller's own (BuildPollPlan on ParsePollerConfig of the same file), and
// the not-polled timing on a fake clock.
#include "tracker-service/coverage.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "common/config_node.h"
#include "gtest/gtest.h"
#include "poller-service/poll_plan.h"
#include "poller-service/poller_config.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_pki.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::HEALTH_API;
using failedpolls::v1::PROXY_API;

std::string FullTemplate(const std::string& pki_dir) {
  std::ifstream in(QFP_SOURCE_DIR "/tests/data/butler-sos-full.yaml");
  std::stringstream text;
  text << in.rdbuf();
  return absl::StrReplaceAll(text.str(), {{"__PKI__", pki_dir}});
}

std::vector<ConfiguredTarget> Read(const std::string& yaml) {
  absl::StatusOr<YAML::Node> root = ConfigNode::Parse(yaml);
  EXPECT_TRUE(root.ok()) << root.status();
  if (!root.ok()) return {};
  ConfigErrors errors;
  std::optional<ConfigNode> sos = ConfigNode::ButlerSos(*root, &errors);
  EXPECT_TRUE(sos.has_value());
  if (!sos) return {};
  std::vector<ConfiguredTarget> targets = ReadConfiguredTargets(*sos);
  EXPECT_TRUE(errors.empty()) << errors.ToStatus("test.yaml");
  return targets;
}

// The same targets, in the same order, with the same tags and timing as the
// plan the poller builds from the same file.
void ExpectSameAsPoller(const std::string& yaml) {
  absl::StatusOr<YAML::Node> root = ConfigNode::Parse(yaml);
  ASSERT_TRUE(root.ok());
  absl::StatusOr<poller::PollerConfig> config =
      poller::ParsePollerConfig(*root, "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<poller::PollTarget> plan = poller::BuildPollPlan(*config);
  const std::vector<ConfiguredTarget> targets = Read(yaml);
  ASSERT_EQ(targets.size(), plan.size());
  ASSERT_FALSE(plan.empty());
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(targets[i].Key(), plan[i].Key()) << i;
    EXPECT_EQ(targets[i].source, plan[i].source) << i;
    EXPECT_EQ(targets[i].server_name, plan[i].server_name) << i;
    EXPECT_EQ(targets[i].host, plan[i].host) << i;
    EXPECT_EQ(targets[i].virtual_proxy, plan[i].virtual_proxy) << i;
    EXPECT_EQ(targets[i].interval, plan[i].interval) << i;
    EXPECT_EQ(targets[i].timeout, plan[i].timeout) << i;
  }
}

TEST(CoverageTest, ReadsThePollersPlanFromTheFullTemplate) {
  testing::TempDir dir;
  testing::WriteTestPki(dir.path());
  const std::string yaml = FullTemplate(dir.path());
  ExpectSameAsPoller(yaml);
  // Timeouts of our own section and switches off.
  ExpectSameAsPoller(
      absl::StrReplaceAll(yaml, {{"enableSessionExtract: true",
                                  "enableSessionExtract: false"}}) +
      "    failedPolls:\n"
      "        poller:\n"
      "            requestTimeout: 7000\n"
      "            appNamesTimeout: 9000\n");
}

ConfiguredTarget Target(failedpolls::v1::PollSource source,
                        const std::string& name, absl::Duration interval,
                        const std::string& vp = "") {
  ConfiguredTarget t;
  t.source = source;
  t.server_name = name;
  t.host = name + ":4747";
  t.virtual_proxy = vp;
  t.interval = interval;
  t.timeout = absl::Seconds(5);
  return t;
}

class CoverageTimingTest : public ::testing::Test {
 protected:
  FakeClock clock_{absl::FromUnixSeconds(1764000000)};
};

TEST_F(CoverageTimingTest, NotPolledAfterTwoIntervalsOncePerTwoIntervals) {
  Coverage coverage({Target(HEALTH_API, "a", absl::Seconds(30)),
                     Target(HEALTH_API, "b", absl::Seconds(30))},
                    clock_);
  // Not before the tracker has been up two intervals.
  clock_.Advance(absl::Seconds(59));
  EXPECT_TRUE(coverage.Check().empty());
  coverage.Attempted(HEALTH_API, "a", "a:4747", "");
  clock_.Advance(absl::Seconds(1));
  std::vector<ConfiguredTarget> missed = coverage.Check();
  ASSERT_EQ(missed.size(), 1u);
  EXPECT_EQ(missed[0].server_name, "b");
  // At most once per two intervals ("a" keeps being polled).
  coverage.Attempted(HEALTH_API, "a", "a:4747", "");
  clock_.Advance(absl::Seconds(59));
  EXPECT_TRUE(coverage.Check().empty());
  coverage.Attempted(HEALTH_API, "a", "a:4747", "");
  clock_.Advance(absl::Seconds(1));
  missed = coverage.Check();
  ASSERT_EQ(missed.size(), 1u);
  EXPECT_EQ(missed[0].server_name, "b");
  // Polled again: no more reports.
  coverage.Attempted(HEALTH_API, "b", "b:4747", "");
  coverage.Attempted(HEALTH_API, "a", "a:4747", "");
  clock_.Advance(absl::Seconds(59));
  EXPECT_TRUE(coverage.Check().empty());
}

TEST_F(CoverageTimingTest, ATimeoutLongerThanTheIntervalWidensTheWindow) {
  ConfiguredTarget slow = Target(HEALTH_API, "a", absl::Seconds(1));
  slow.timeout = absl::Seconds(10);
  Coverage coverage({slow}, clock_);
  clock_.Advance(absl::Seconds(19));
  EXPECT_TRUE(coverage.Check().empty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(coverage.Check().size(), 1u);
}

TEST_F(CoverageTimingTest, MatchesEveryTagOfTheTarget) {
  Coverage coverage({Target(PROXY_API, "a", absl::Seconds(10), "/sales")},
                    clock_);
  coverage.Attempted(PROXY_API, "a", "a:4747", "/");           // other vp
  coverage.Attempted(PROXY_API, "a", "other:4243", "/sales");  // other host
  coverage.Attempted(HEALTH_API, "a", "a:4747", "/sales");     // other source
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(coverage.Check().size(), 1u);
  coverage.Attempted(PROXY_API, "a", "a:4747", "/sales");
  clock_.Advance(absl::Seconds(19));
  EXPECT_TRUE(coverage.Check().empty());
}

TEST_F(CoverageTimingTest, NamesCannotForgeAnotherTargetsKey) {
  ConfiguredTarget t = Target(HEALTH_API, "ab", absl::Seconds(10));
  t.host = "c";
  Coverage coverage({t}, clock_);
  coverage.Attempted(HEALTH_API, "a", "bc", "");
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(coverage.Check().size(), 1u);
}

}  // namespace
}  // namespace qfp::tracker
