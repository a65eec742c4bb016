#include "tracker-service/tracker_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/config_node.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace qfp::tracker {
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
  EXPECT_EQ(config->listen, "127.0.0.1:50051");
}

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name); old != nullptr) old_ = old;
    setenv(name, value, /*overwrite=*/1);
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(TrackerConfigTest, FullTemplateShapedFileLoads) {
  // Unmodified: the template targets InfluxDB 3.
  absl::StatusOr<TrackerConfig> config = Parse(FullTemplate());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->writes_points());
  EXPECT_EQ(config->influxdb_version, 3);
  EXPECT_EQ(config->max_batch_size, 1000);
  EXPECT_EQ(config->schema.measurement, "butler_sos_errors");
  EXPECT_EQ(config->v3.host, "influxdb.mycompany.com");
  EXPECT_EQ(config->v3.port, 8086);
  EXPECT_EQ(config->v3.database, "mydatabase");
  EXPECT_EQ(config->v3.token, "mytoken");
  EXPECT_EQ(config->v3.description, "Butler SOS metrics");
  EXPECT_EQ(config->v3.retention_duration, "10d");
  EXPECT_EQ(config->v3.write_timeout, absl::Seconds(10));
}

TEST(TrackerConfigTest, FullTemplateShapedFileLoadsAsV2) {
  absl::StatusOr<TrackerConfig> config = Parse(
      absl::StrReplaceAll(FullTemplate(), {{"version: 3", "version: 2"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->influxdb_version, 2);
  EXPECT_EQ(config->v2.host, "influxdb.mycompany.com");
  EXPECT_EQ(config->v2.port, 8086);
  EXPECT_EQ(config->v2.org, "myorg");
  EXPECT_EQ(config->v2.bucket, "mybucket");
  EXPECT_EQ(config->v2.token, "mytoken");
  EXPECT_EQ(config->v2.description, "Butler SOS metrics");
  EXPECT_EQ(config->v2.retention_duration, "10d");
}

TEST(TrackerConfigTest, FullTemplateShapedFileLoadsAsV1) {
  absl::StatusOr<TrackerConfig> config = Parse(
      absl::StrReplaceAll(FullTemplate(), {{"version: 3", "version: 1"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->writes_points());
  EXPECT_EQ(config->schema.measurement, "butler_sos_errors");
  EXPECT_EQ(config->v1.database, "senseops");
  EXPECT_EQ(config->v1.host, "influxdb.mycompany.com");
}

constexpr char kV2[] =
    "Butler-SOS:\n"
    "  errorTracking: {enable: true, influxdb: {enable: true}}\n"
    "  influxdbConfig:\n"
    "    enable: true\n"
    "    host: influx2.example.com\n"
    "    port: 8087\n"
    "    version: 2\n"
    "    v2Config:\n"
    "      org: qlik-org\n"
    "      bucket: senseops\n"
    "      token: file-token\n"
    "      description: Failed polls\n"
    "      retentionDuration: 30d\n";

constexpr char kV3[] =
    "Butler-SOS:\n"
    "  errorTracking: {enable: true, influxdb: {enable: true}}\n"
    "  influxdbConfig:\n"
    "    enable: true\n"
    "    host: influx3.example.com\n"
    "    port: 8181\n"
    "    version: 3\n"
    "    v3Config:\n"
    "      database: senseops\n"
    "      token: file-token\n"
    "      retentionDuration: 1h30m\n"
    "      writeTimeout: 2500\n";

TEST(TrackerConfigTest, ReadsV2Destination) {
  absl::StatusOr<TrackerConfig> config = Parse(kV2);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->influxdb_version, 2);
  EXPECT_EQ(config->v2.host, "influx2.example.com");
  EXPECT_EQ(config->v2.port, 8087);
  EXPECT_EQ(config->v2.org, "qlik-org");
  EXPECT_EQ(config->v2.bucket, "senseops");
  EXPECT_EQ(config->v2.token, "file-token");
  EXPECT_EQ(config->v2.description, "Failed polls");
  EXPECT_EQ(config->v2.retention_duration, "30d");
  // Only the chosen version's block is read.
  EXPECT_EQ(config->v1.host, "");
  EXPECT_EQ(config->v3.host, "");
}

TEST(TrackerConfigTest, ReadsV3Destination) {
  absl::StatusOr<TrackerConfig> config = Parse(kV3);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->influxdb_version, 3);
  EXPECT_EQ(config->v3.host, "influx3.example.com");
  EXPECT_EQ(config->v3.port, 8181);
  EXPECT_EQ(config->v3.database, "senseops");
  EXPECT_EQ(config->v3.token, "file-token");
  EXPECT_EQ(config->v3.description, "");
  EXPECT_EQ(config->v3.retention_duration, "1h30m");
  EXPECT_EQ(config->v3.write_timeout, absl::Milliseconds(2500));
}

// Issue 9 §1b: forms Butler SOS users write load, for every version.
TEST(TrackerConfigTest, RetentionDurationsAsUsersWriteThem) {
  // "30m" on 2.x/3.x too: Butler SOS accepts it (it never sends it); a
  // bucket the tracker creates gets InfluxDB's one-hour minimum.
  for (const char* value : {"1y", "30days", "INF", "2 weeks", "infinite"}) {
    absl::StatusOr<TrackerConfig> v2 = Parse(absl::StrReplaceAll(
        kV2, {{"retentionDuration: 30d",
               absl::StrCat("retentionDuration: ", value)}}));
    ASSERT_TRUE(v2.ok()) << value << ": " << v2.status();
    EXPECT_EQ(v2->v2.retention_duration, value);
    absl::StatusOr<TrackerConfig> v3 = Parse(absl::StrReplaceAll(
        kV3, {{"retentionDuration: 1h30m",
               absl::StrCat("retentionDuration: ", value)}}));
    ASSERT_TRUE(v3.ok()) << value << ": " << v3.status();
    absl::StatusOr<TrackerConfig> v1 = Parse(absl::StrReplaceAll(
        kV1, {{"duration: 10d", absl::StrCat("duration: ", value)}}));
    ASSERT_TRUE(v1.ok()) << value << ": " << v1.status();
    EXPECT_EQ(v1->v1.retention_policy_duration, value);
  }
  EXPECT_TRUE(Parse(absl::StrReplaceAll(kV2, {{"retentionDuration: 30d",
                                               "retentionDuration: 30m"}}))
                  .ok());
  EXPECT_TRUE(Parse(absl::StrReplaceAll(kV3, {{"retentionDuration: 1h30m",
                                               "retentionDuration: 30m"}}))
                  .ok());
}

TEST(TrackerConfigTest, V3DefaultsAndTokenlessServer) {
  absl::StatusOr<TrackerConfig> config =
      Parse(absl::StrReplaceAll(kV3, {{"      retentionDuration: 1h30m\n", ""},
                                      {"      writeTimeout: 2500\n", ""},
                                      {"token: file-token", "token: \"\""}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->v3.retention_duration, "");
  EXPECT_EQ(config->v3.write_timeout, absl::Seconds(10));
  EXPECT_EQ(config->v3.token, "");
}

TEST(TrackerConfigTest, TokenFromEnvironmentWins) {
  ScopedEnv token("QFP_INFLUXDB_TOKEN", "env-token");
  absl::StatusOr<TrackerConfig> v2 = Parse(kV2);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->v2.token, "env-token");
  absl::StatusOr<TrackerConfig> v3 = Parse(kV3);
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->v3.token, "env-token");
  // With the environment set the file needs no token at all.
  absl::StatusOr<TrackerConfig> without =
      Parse(absl::StrReplaceAll(kV2, {{"      token: file-token\n", ""}}));
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(without->v2.token, "env-token");
}

TEST(TrackerConfigTest, MissingV2BlockReportsEveryKey) {
  absl::StatusOr<TrackerConfig> config =
      Parse(absl::StrReplaceAll(kV2, {{"    v2Config:\n", ""},
                                      {"      org: qlik-org\n", ""},
                                      {"      bucket: senseops\n", ""},
                                      {"      token: file-token\n", ""},
                                      {"      description: Failed polls\n", ""},
                                      {"      retentionDuration: 30d\n", ""}}));
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  for (const char* key : {"org", "bucket", "token"}) {
    EXPECT_THAT(message,
                HasSubstr(absl::StrCat("Butler-SOS.influxdbConfig.v2Config.",
                                       key, ": missing")))
        << key;
  }
}

TEST(TrackerConfigTest, DefaultsWriteNothing) {
  absl::StatusOr<TrackerConfig> config =
      Parse("Butler-SOS: {logLevel: info}\n");
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
  absl::StatusOr<TrackerConfig> config =
      Parse(std::string(kV1) +
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

TEST(TrackerConfigTest, DefaultsAreTheStructsInitialisers) {
  // Defaults live in TrackerConfig's initialisers only.
  absl::StatusOr<TrackerConfig> config =
      Parse(std::string(kV1) + "  failedPolls: {tracker: {}}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  const TrackerConfig defaults;
  EXPECT_EQ(config->listen, defaults.listen);
  EXPECT_EQ(config->flush_interval, defaults.flush_interval);
  EXPECT_EQ(config->max_buffered_points, defaults.max_buffered_points);
  EXPECT_EQ(config->dedupe_window, defaults.dedupe_window);
  EXPECT_EQ(config->wal_directory, defaults.wal_directory);
  EXPECT_EQ(config->wal_max_bytes, defaults.wal_max_bytes);
  EXPECT_EQ(config->metrics_listen, defaults.metrics_listen);
  EXPECT_EQ(config->schema.include_server_tags,
            defaults.schema.include_server_tags);

  absl::StatusOr<TrackerConfig> empty = Parse("Butler-SOS: {}\n");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->tracking_enabled, defaults.tracking_enabled);
  EXPECT_EQ(empty->log_summary, defaults.log_summary);
  EXPECT_EQ(empty->influx_points_enabled, defaults.influx_points_enabled);
  EXPECT_EQ(empty->influxdb_enabled, defaults.influxdb_enabled);
  EXPECT_EQ(empty->log_level, defaults.log_level);
  EXPECT_EQ(empty->schema.measurement, defaults.schema.measurement);

  absl::StatusOr<TrackerConfig> no_batch =
      Parse(absl::StrReplaceAll(kV1, {{"    maxBatchSize: 500\n", ""}}));
  ASSERT_TRUE(no_batch.ok()) << no_batch.status();
  EXPECT_EQ(no_batch->max_batch_size, defaults.max_batch_size);
}

TEST(TrackerConfigTest, WalDirectoryIsCheckedNotCreated) {
  testing::TempDir dir;
  absl::StatusOr<TrackerConfig> config =
      Parse(std::string(kV1) + "  failedPolls:\n    tracker:\n" +
            "      walDirectory: " + dir.File("wal/tracker") + "\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->wal_directory, dir.File("wal/tracker"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("wal")));

  const std::string file = dir.Write("file", "x");
  config = Parse(std::string(kV1) + "  failedPolls:\n    tracker:\n" +
                 "      walDirectory: " + file + "/wal\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("Butler-SOS.failedPolls.tracker.walDirectory: cannot "
                        "create directory \"" +
                        file + "/wal\""));
}

TEST(TrackerConfigTest, ProductionTemplateLoads) {
  // Butler SOS's own template: every key the tracker reads there is valid
  // (its placeholders are in keys the poller reads).
  std::ifstream in(QFP_SOURCE_DIR
                   "/tests/data/butler-sos-production_template.yaml");
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<TrackerConfig> config = Parse(text.str());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->writes_points());
  EXPECT_EQ(config->influxdb_version, 3);
  EXPECT_EQ(config->v3.host, "influxdb.mycompany.com");
}

// Static and server tag keys the tracker writes: the same key in both (the
// server's value wins), keys that would clash only if server tags were
// written, `Time` (InfluxDB's keys are case-sensitive), server tags `host`
// and `server_name` (Butler SOS lets them replace its own tags; ours keep
// the failure's).
TEST(TrackerConfigTest, TagKeysTheTrackerWritesAreAccepted) {
  const std::string with_server_tags = absl::StrReplaceAll(
      kV1, {{"Butler-SOS:\n",
             "Butler-SOS:\n"
             "  serversToMonitor:\n"
             "    serverTagsDefinition: [site, 'dc\\', host, server_name]\n"
             "  failedPolls:\n"
             "    tracker:\n"
             "      includeServerTags: true\n"
             "      tags: {site: a, Time: b}\n"}});
  absl::StatusOr<TrackerConfig> config = Parse(with_server_tags);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->schema.include_server_tags);
  EXPECT_EQ(config->schema.static_tags.size(), 2u);

  const std::string without =
      absl::StrReplaceAll(kV1, {{"Butler-SOS:\n",
                                 "Butler-SOS:\n"
                                 "  serversToMonitor:\n"
                                 "    serverTagsDefinition: ['dc\\']\n"
                                 "  failedPolls:\n"
                                 "    tracker:\n"
                                 "      tags: {dc: a}\n"}});
  config = Parse(without);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->schema.static_tags.at("dc"), "a");
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
  // Cases name the version they break by their prefix.
  const char* base = kV1;
  if (absl::StartsWith(c.name, "V2")) base = kV2;
  if (absl::StartsWith(c.name, "V3")) base = kV3;
  absl::StatusOr<TrackerConfig> config =
      Parse(absl::StrReplaceAll(base, {{c.from, c.to}}));
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
                   "Butler-SOS.influxdbConfig.host: missing (expected a host "
                   "name or IP address)"},
        BrokenCase{"VersionOutOfRange", "version: 1", "version: 4",
                   "Butler-SOS.influxdbConfig.version: expected an integer "
                   "from 1 to 3, got 4"},
        BrokenCase{"BatchTooLarge", "maxBatchSize: 500", "maxBatchSize: 20000",
                   "Butler-SOS.influxdbConfig.maxBatchSize: expected an "
                   "integer from 1 to 10000, got 20000"},
        BrokenCase{"MissingDbName", "      dbName: senseops\n", "",
                   "Butler-SOS.influxdbConfig.v1Config.dbName: missing"},
        BrokenCase{"AuthWithoutUser", "username: u, ", "",
                   "Butler-SOS.influxdbConfig.v1Config.auth.username: "
                   "missing"},
        // InfluxDB would not store such a measurement as written.
        BrokenCase{"MeasurementWithBackslashBeforeSpace",
                   "measurementName: my_errors",
                   "measurementName: 'my\\ errors'",
                   "Butler-SOS.errorTracking.influxdb.measurementName: line "
                   "protocol: measurement \"my\\ errors\" has a backslash"},
        // The encoder would write another name: refused here, where the
        // user can fix it (the encoder's cleaning is for producers' names).
        BrokenCase{"MeasurementWithLineBreak", "measurementName: my_errors",
                   "measurementName: \"my\\nerrors\"",
                   "Butler-SOS.errorTracking.influxdb.measurementName: holds "
                   "the control character 0x0a, which line protocol cannot "
                   "carry as written"},
        BrokenCase{"MeasurementWithTab", "measurementName: my_errors",
                   "measurementName: \"my\\terrors\"",
                   "Butler-SOS.errorTracking.influxdb.measurementName: holds "
                   "the control character 0x09"},
        BrokenCase{"MeasurementWithDelete", "measurementName: my_errors",
                   "measurementName: \"my\\x7Ferrors\"",
                   "Butler-SOS.errorTracking.influxdb.measurementName: holds "
                   "the control character 0x7f"},
        BrokenCase{"MeasurementEndingInBackslash", "measurementName: my_errors",
                   "measurementName: 'my_errors\\'",
                   "Butler-SOS.errorTracking.influxdb.measurementName: ends in "
                   "a backslash, which line protocol cannot carry: it would be "
                   "written as \"my_errors\""},
        BrokenCase{"MeasurementStartingWithHash", "measurementName: my_errors",
                   "measurementName: '#errors'",
                   "Butler-SOS.errorTracking.influxdb.measurementName: line "
                   "protocol: measurement \"#errors\" starts with '#'"},
        BrokenCase{"EnableNotBool", "    enable: true\n    logSummary",
                   "    enable: often\n    logSummary",
                   "Butler-SOS.errorTracking.enable: expected true or false, "
                   "got \"often\""},
        BrokenCase{"V2OrgNotAString", "org: qlik-org", "org: [a, b]",
                   "Butler-SOS.influxdbConfig.v2Config.org: expected a "
                   "string, got a list"},
        BrokenCase{"V2EmptyBucket", "bucket: senseops", "bucket: \"\"",
                   "Butler-SOS.influxdbConfig.v2Config.bucket: must not be "
                   "empty"},
        BrokenCase{"V2EmptyToken", "token: file-token", "token: \"\"",
                   "Butler-SOS.influxdbConfig.v2Config.token: must not be "
                   "empty (or set QFP_INFLUXDB_TOKEN)"},
        BrokenCase{"V2RetentionNotADuration", "retentionDuration: 30d",
                   "retentionDuration: 30 dayz",
                   "Butler-SOS.influxdbConfig.v2Config.retentionDuration: "
                   "\"30 dayz\" is not a retention duration"},
        // Issue 9 §1 (c): refused at load, not by a running tracker.
        BrokenCase{"V1RetentionBelowOneHour", "duration: 10d", "duration: 30m",
                   "Butler-SOS.influxdbConfig.v1Config.retentionPolicy."
                   "duration: \"30m\" is shorter than one hour"},
        BrokenCase{"V1RetentionNotADuration", "duration: 10d", "duration: soon",
                   "Butler-SOS.influxdbConfig.v1Config.retentionPolicy."
                   "duration: \"soon\" is not a retention duration"},
        BrokenCase{"V3MissingDatabase", "      database: senseops\n", "",
                   "Butler-SOS.influxdbConfig.v3Config.database: missing "
                   "(expected a string)"},
        BrokenCase{"V3MissingToken", "      token: file-token\n", "",
                   "Butler-SOS.influxdbConfig.v3Config.token: missing"},
        BrokenCase{"V3WriteTimeoutNotANumber", "writeTimeout: 2500",
                   "writeTimeout: soon",
                   "Butler-SOS.influxdbConfig.v3Config.writeTimeout: expected "
                   "an integer from 1 to 3600000, got \"soon\""},
        BrokenCase{"V3RetentionNotADuration", "retentionDuration: 1h30m",
                   "retentionDuration: {days: 3}",
                   "Butler-SOS.influxdbConfig.v3Config.retentionDuration: "
                   "expected a string, got a map"},
        BrokenCase{"HostIsUrl", "host: 127.0.0.1", "host: http://influx",
                   "Butler-SOS.influxdbConfig.host: expected a host name or IP "
                   "address, got \"http://influx\": a URL is not a host: write "
                   "the host name or address only"},
        BrokenCase{"HostIsPath", "host: 127.0.0.1", "host: influx/",
                   "Butler-SOS.influxdbConfig.host: expected a host name or IP "
                   "address, got \"influx/\": a path is not a host"},
        BrokenCase{"HostWithPort", "host: 127.0.0.1", "host: influx:8086",
                   "Butler-SOS.influxdbConfig.host: expected a host name or IP "
                   "address, got \"influx:8086\": takes no port (the port is "
                   "a key of its own)"},
        BrokenCase{"HostPlaceholder", "host: 127.0.0.1", "host: <IP or FQDN>",
                   "Butler-SOS.influxdbConfig.host: expected a host name or IP "
                   "address, got \"<IP or FQDN>\": not a host name or IP "
                   "address"},
        BrokenCase{"TrackerKeyTypo", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      walDirectry: /var/wal\n",
                   "Butler-SOS.failedPolls.tracker.walDirectry: unknown key "
                   "(did you mean walDirectory?); known here: listen, tags, "
                   "includeServerTags, flushIntervalMs, maxBufferedPoints, "
                   "dedupeWindow, walDirectory, walMaxBytes, metricsListen"},
        BrokenCase{"PollerKeyTypoSeenByTracker", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      spoolDirectry: /var/spool\n",
                   "Butler-SOS.failedPolls.poller.spoolDirectry: unknown key "
                   "(did you mean spoolDirectory?)"},
        BrokenCase{"KeyFromANewerVersion", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      compressionLevel: 9\n",
                   "Butler-SOS.failedPolls.tracker.compressionLevel: unknown "
                   "key; known here: "},
        BrokenCase{"FailedPollsNotAMap", "duration: 10d}\n",
                   "duration: 10d}\n  failedPolls: yes\n",
                   "Butler-SOS.failedPolls: expected a map, got \"yes\""},
        BrokenCase{"ListenWithoutPort", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      listen: 0.0.0.0\n",
                   "Butler-SOS.failedPolls.tracker.listen: expected HOST:PORT, "
                   "got \"0.0.0.0\": the port is missing"},
        BrokenCase{"MetricsListenIsUrl", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      metricsListen: http://0.0.0.0:9090/metrics\n",
                   "Butler-SOS.failedPolls.tracker.metricsListen: expected "
                   "HOST:PORT, got \"http://0.0.0.0:9090/metrics\": a URL is "
                   "not a host"},
        // Tag keys the tracker cannot write (CheckTagKey): a server tag key
        // it would refuse on every failure, a static one InfluxDB refuses
        // or that would pose as a failure's tag, two that would be one.
        BrokenCase{"ServerTagKeyThatWouldBeHost", "Butler-SOS:\n",
                   "Butler-SOS:\n"
                   "  serversToMonitor:\n"
                   "    serverTagsDefinition: ['host\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"host\\\" ends in a backslash and would be written as "
                   "the tag host"},
        BrokenCase{"ServerTagKeyTime", "Butler-SOS:\n",
                   "Butler-SOS:\n"
                   "  serversToMonitor:\n"
                   "    serverTagsDefinition: [site, 'time\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[1]: tag "
                   "\"time\\\" ends in a backslash and would be written as "
                   "\"time\", which InfluxDB refuses as a tag key"},
        BrokenCase{"StaticTagKeyTime", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {time: x}\n",
                   "Butler-SOS.failedPolls.tracker.tags.time: tag \"time\" is "
                   "\"time\", which InfluxDB refuses as a tag key"},
        BrokenCase{"StaticTagKeyThatWouldBeServerName", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {'server_name\\': x}\n",
                   "Butler-SOS.failedPolls.tracker.tags.server_name\\: tag "
                   "\"server_name\\\" ends in a backslash and would be "
                   "written as the tag server_name"},
        // Exactly one of our own tags, or one once cleaned: poller_id is a
        // tag of the poll attempts points.
        BrokenCase{"ServerTagKeyErrorType", "Butler-SOS:\n",
                   "Butler-SOS:\n"
                   "  serversToMonitor:\n"
                   "    serverTagsDefinition: [site, error_type]\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[1]: tag "
                   "\"error_type\" is the tag error_type the tracker writes "
                   "itself, which a server or static tag never replaces"},
        BrokenCase{"ServerTagKeyPollerId", "Butler-SOS:\n",
                   "Butler-SOS:\n"
                   "  serversToMonitor:\n"
                   "    serverTagsDefinition: [poller_id]\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"poller_id\" is the tag poller_id the tracker writes "
                   "itself"},
        BrokenCase{"ServerTagKeyThatWouldBePollerId", "Butler-SOS:\n",
                   "Butler-SOS:\n"
                   "  serversToMonitor:\n"
                   "    serverTagsDefinition: ['poller_id\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"poller_id\\\" ends in a backslash and would be written "
                   "as the tag poller_id"},
        BrokenCase{"StaticTagKeyThatWouldBePollerId", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {'poller_id\\': x}\n",
                   "Butler-SOS.failedPolls.tracker.tags.poller_id\\: tag "
                   "\"poller_id\\\" ends in a backslash and would be written "
                   "as the tag poller_id"},
        BrokenCase{"StaticTagKeyPollerId", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {poller_id: x}\n",
                   "Butler-SOS.failedPolls.tracker.tags.poller_id: tag "
                   "\"poller_id\" is the tag poller_id the tracker writes "
                   "itself"},
        // A static tag is ours: even `host`, which a Butler SOS server tag
        // may be, is refused rather than left off every point.
        BrokenCase{"StaticTagKeyHost", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {host: x}\n",
                   "Butler-SOS.failedPolls.tracker.tags.host: tag \"host\" is "
                   "the tag host the tracker writes itself, which a static "
                   "tag never replaces"},
        BrokenCase{"StaticTagKeysThatWouldBeOne", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {site: a, 'site\\': b}\n",
                   "tag \"site\\\" and tag \"site\" would be written as the "
                   "one tag key \"site\""},
        BrokenCase{"StaticAndServerTagKeysThatWouldBeOne", "Butler-SOS:\n",
                   "Butler-SOS:\n"
                   "  serversToMonitor:\n"
                   "    serverTagsDefinition: [site]\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      includeServerTags: true\n"
                   "      tags: {'site\\': b}\n",
                   "tag \"site\\\" and tag \"site\" would be written as the "
                   "one tag key \"site\""},
        BrokenCase{"EmptyTagName", "duration: 10d}\n",
                   "duration: 10d}\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      tags: {'': x}\n",
                   "Butler-SOS.failedPolls.tracker.tags: a tag name must not "
                   "be empty"},
        BrokenCase{"LogLevelUnknown", "Butler-SOS:\n",
                   "Butler-SOS:\n  logLevel: chatty\n",
                   "Butler-SOS.logLevel: expected one of silly, trace, debug, "
                   "verbose, info, warn, warning, error, got \"chatty\""},
        BrokenCase{"AuthUserEmpty", "username: u, ", "username: '', ",
                   "Butler-SOS.influxdbConfig.v1Config.auth.username: must "
                   "not be empty"},
        BrokenCase{"DuplicateKey", "    port: 8086\n",
                   "    port: 8086\n    port: 8087\n",
                   "Butler-SOS.influxdbConfig.port: key given twice in one "
                   "mapping (lines 9 and 10); Butler SOS refuses a repeated "
                   "key"}),
    [](const ::testing::TestParamInfo<BrokenCase>& param_info) {
      return param_info.param.name;
    });

TEST(TrackerConfigTest, HeartbeatKeysDefaults) {
  absl::StatusOr<TrackerConfig> config = Parse(kV1);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->missed_heartbeats, 3);
  EXPECT_FALSE(config->poll_attempts_enabled);
  EXPECT_EQ(config->poll_attempts_measurement, "butler_sos_poll_attempts");
  EXPECT_FALSE(config->coverage_enabled);
}

TEST(TrackerConfigTest, HeartbeatKeysRead) {
  absl::StatusOr<TrackerConfig> config = Parse(absl::StrCat(
      kV1,
      "  failedPolls:\n"
      "    tracker:\n"
      "      missedHeartbeats: 5\n"
      "      pollAttempts: {enable: true, measurementName: attempts}\n"
      "      coverage: {enable: true}\n"
      "  serversToMonitor:\n"
      "    pollingInterval: 30000\n"
      "    servers:\n"
      "      - {host: \"sense1:4747\", serverName: sense1}\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->coverage_targets.size(), 1u);
  EXPECT_EQ(config->coverage_targets[0].Key(), "HEALTH_API sense1");
  EXPECT_EQ(config->coverage_targets[0].interval, absl::Seconds(30));
  EXPECT_EQ(config->missed_heartbeats, 5);
  EXPECT_TRUE(config->poll_attempts_enabled);
  EXPECT_EQ(config->poll_attempts_measurement, "attempts");
  EXPECT_TRUE(config->coverage_enabled);
}

// Off, the attempts measurement may share the errors one's name (nothing
// is written to it); letters, digits, '_', '-' and '.' are taken.
TEST(TrackerConfigTest, PollAttemptsMeasurementNamesTaken) {
  for (const char* yaml :
       {"      pollAttempts: {enable: false, measurementName: "
        "my_errors}\n",
        "      pollAttempts: {enable: true, measurementName: "
        "qlik.poll-attempts_2}\n"}) {
    absl::StatusOr<TrackerConfig> config =
        Parse(absl::StrCat(kV1, "  failedPolls:\n    tracker:\n", yaml));
    EXPECT_TRUE(config.ok()) << yaml << config.status();
  }
}

TEST(TrackerConfigTest, HeartbeatKeysErrorsNameTheKey) {
  const struct {
    const char* yaml;
    const char* path;
  } cases[] = {
      {"      missedHeartbeats: -1\n",
       "Butler-SOS.failedPolls.tracker.missedHeartbeats"},
      {"      pollAttempts: {enable: yes please}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.enable"},
      {"      pollAttempts: {measurementName: \"\"}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName"},
      {"      pollAttempts: {measurementName: \"poll attempts\"}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName: may "
       "hold only ASCII letters, digits, '_', '-' and '.' (found ' ')"},
      {"      pollAttempts: {measurementName: \"attempts,x=1\"}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName: may "
       "hold only ASCII letters, digits, '_', '-' and '.' (found ',')"},
      {"      pollAttempts: {measurementName: \"a\\tb\"}\n",
       "(found byte 0x09)"},
      {"      pollAttempts: {measurementName: \"a\\nb\"}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName: may "
       "hold only ASCII letters, digits, '_', '-' and '.' (found byte 0x0a)"},
      {"      pollAttempts: {measurementName: 'attempts\\'}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName: may "
       "hold only ASCII letters, digits, '_', '-' and '.' (found '\\')"},
      {"      pollAttempts: {measurementName: _attempts}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName: must "
       "not start with '_'"},
      // The errors measurement (my_errors in kV1).
      {"      pollAttempts: {enable: true, measurementName: "
       "my_errors}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.measurementName: must "
       "differ from the errors measurement \"my_errors\""},
      {"      pollAttempts: {enabel: true}\n",
       "Butler-SOS.failedPolls.tracker.pollAttempts.enabel"},
      {"      coverage: {enable: true, every: 1}\n",
       "Butler-SOS.failedPolls.tracker.coverage.every"},
      // Coverage needs the plan: the poller's required keys are required.
      {"      coverage: {enable: true}\n",
       "Butler-SOS.serversToMonitor.pollingInterval"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<TrackerConfig> config =
        Parse(absl::StrCat(kV1, "  failedPolls:\n    tracker:\n", c.yaml));
    ASSERT_FALSE(config.ok()) << c.yaml;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.path))
        << c.yaml;
  }
}

}  // namespace
}  // namespace qfp::tracker
