#include "tracker-service/tracker_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "common/config_node.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<TrackerConfig> Parse(const std::string& yaml) {
  absl::StatusOr<YAML::Node> root = ConfigNode::Parse(yaml);
  if (!root.ok()) return root.status();
  return ParseTrackerConfig(*root, "test.yaml");
}

std::string FullTemplate() {
  std::ifstream in(QFP_SOURCE_DIR "/tests/data/butler-sos-full.yaml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr char kV1[] =
    "Butler-SOS:\n"
    "  errorTracking:\n"
    "    enable: true\n"
    "    logSummary: {enable: true}\n"
    "    influxdb: {enable: true, measurementName: my_errors}\n"
    "  influxdbConfig:\n"
    "    enable: true\n"
    "    host: 127.0.0.1\n"
    "    port: 8086\n"
    "    version: 1\n"
    "    maxBatchSize: 500\n"
    "    v1Config:\n"
    "      auth: {enable: true, username: u, password: p}\n"
    "      dbName: senseops\n"
    "      retentionPolicy: {name: 10d, duration: 10d}\n";

TEST(TrackerConfigTest, ReadsV1Destination) {
  absl::StatusOr<TrackerConfig> config = Parse(kV1);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->writes_points());
  EXPECT_TRUE(config->log_summary);
  EXPECT_EQ(config->schema.measurement, "my_errors");
  EXPECT_EQ(config->max_batch_size, 500);
  EXPECT_EQ(config->v1.host, "127.0.0.1");
  EXPECT_EQ(config->v1.port, 8086);
  EXPECT_EQ(config->v1.database, "senseops");
  EXPECT_TRUE(config->v1.auth_enable);
  EXPECT_EQ(config->v1.username, "u");
  EXPECT_EQ(config->v1.password, "p");
  EXPECT_EQ(config->v1.retention_policy_name, "10d");
  EXPECT_EQ(config->v1.retention_policy_duration, "10d");
  EXPECT_EQ(config->listen, "0.0.0.0:50051");
}

TEST(TrackerConfigTest, FullTemplateShapedFileLoads) {
  // The template targets InfluxDB 3; this build writes 1.x.
  absl::StatusOr<TrackerConfig> config = Parse(
      absl::StrReplaceAll(FullTemplate(), {{"version: 3", "version: 1"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->writes_points());
  EXPECT_EQ(config->schema.measurement, "butler_sos_errors");
  EXPECT_EQ(config->v1.database, "senseops");
  EXPECT_EQ(config->v1.host, "influxdb.mycompany.com");
}

TEST(TrackerConfigTest, DefaultsWriteNothing) {
  absl::StatusOr<TrackerConfig> config = Parse("Butler-SOS: {logLevel: info}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->writes_points());
  EXPECT_EQ(config->schema.measurement, "butler_sos_errors");
}

TEST(TrackerConfigTest, SwitchesOffNeedNoDestination) {
  absl::StatusOr<TrackerConfig> config = Parse(
      "Butler-SOS:\n"
      "  errorTracking: {enable: true, influxdb: {enable: false}}\n"
      "  influxdbConfig: {enable: true}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tracking_enabled);
  EXPECT_FALSE(config->writes_points());
}

TEST(TrackerConfigTest, OwnSection) {
  absl::StatusOr<TrackerConfig> config = Parse(
      std::string(kV1) +
      "  failedPolls:\n"
      "    tracker:\n"
      "      listen: 127.0.0.1:6001\n"
      "      tags: {env: prod, region: eu}\n"
      "      includeServerTags: true\n"
      "      flushIntervalMs: 250\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "127.0.0.1:6001");
  EXPECT_EQ(config->schema.static_tags.at("env"), "prod");
  EXPECT_TRUE(config->schema.include_server_tags);
  EXPECT_EQ(config->flush_interval, absl::Milliseconds(250));
}

struct BrokenCase {
  std::string name;
  std::string from;
  std::string to;
  std::string expected;
};

class TrackerConfigBrokenTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(TrackerConfigBrokenTest, ReportsKeyPathAndProblem) {
  const BrokenCase& c = GetParam();
  absl::StatusOr<TrackerConfig> config =
      Parse(absl::StrReplaceAll(kV1, {{c.from, c.to}}));
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected));
}

INSTANTIATE_TEST_SUITE_P(
    Table, TrackerConfigBrokenTest,
    ::testing::Values(
        BrokenCase{"PortNotANumber", "port: 8086", "port: eighty",
                   "Butler-SOS.influxdbConfig.port: expected an integer from "
                   "1 to 65535, got \"eighty\""},
        BrokenCase{"MissingHost", "    host: 127.0.0.1\n", "",
                   "Butler-SOS.influxdbConfig.host: missing (expected a "
                   "string)"},
        BrokenCase{"VersionOutOfRange", "version: 1", "version: 4",
                   "Butler-SOS.influxdbConfig.version: expected an integer "
                   "from 1 to 3, got 4"},
        BrokenCase{"BatchTooLarge", "maxBatchSize: 500",
                   "maxBatchSize: 20000",
                   "Butler-SOS.influxdbConfig.maxBatchSize: expected an "
                   "integer from 1 to 10000, got 20000"},
        BrokenCase{"MissingDbName", "      dbName: senseops\n", "",
                   "Butler-SOS.influxdbConfig.v1Config.dbName: missing"},
        BrokenCase{"AuthWithoutUser", "username: u, ", "",
                   "Butler-SOS.influxdbConfig.v1Config.auth.username: "
                   "missing"},
        BrokenCase{"EnableNotBool", "    enable: true\n    logSummary",
                   "    enable: often\n    logSummary",
                   "Butler-SOS.errorTracking.enable: expected true or false, "
                   "got \"often\""}),
    [](const ::testing::TestParamInfo<BrokenCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace qfp
