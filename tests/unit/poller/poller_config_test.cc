#include "poller-service/poller_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "common/config_node.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_pki.h"

namespace qfp::poller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class PollerConfigTest : public ::testing::Test {
 protected:
  PollerConfigTest() : pki_(testing::WriteTestPki(dir_.path())) {}

  absl::StatusOr<PollerConfig> Parse(const std::string& yaml) {
    absl::StatusOr<YAML::Node> root = ConfigNode::Parse(
        absl::StrReplaceAll(yaml, {{"__PKI__", dir_.path()}}));
    if (!root.ok()) return root.status();
    return ParsePollerConfig(*root, "test.yaml");
  }

  // A small valid file; `extra` lines are appended under Butler-SOS.
  std::string Minimal(const std::string& server_extra = "") {
    return "Butler-SOS:\n"
           "  cert:\n"
           "    clientCert: __PKI__/client.pem\n"
           "    clientCertKey: __PKI__/client_key.pem\n"
           "    clientCertCA: __PKI__/root.pem\n"
           "  serversToMonitor:\n"
           "    pollingInterval: 1000\n"
           "    servers:\n"
           "      - host: sense1:4747\n"
           "        serverName: sense1\n" +
           server_extra;
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
};

TEST_F(PollerConfigTest, FullButlerSosTemplateShapedFileLoads) {
  absl::StatusOr<PollerConfig> config =
      Parse(ReadFile(QFP_SOURCE_DIR "/tests/data/butler-sos-full.yaml"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->health_interval, absl::Milliseconds(30000));
  EXPECT_TRUE(config->tls.verify_server);
  ASSERT_EQ(config->servers.size(), 2u);
  EXPECT_EQ(config->servers[0].host, "sense1.example.com:4747");
  EXPECT_EQ(config->servers[0].server_name, "sense1");
  EXPECT_EQ(config->servers[0].sessions_host, "sense1.example.com:4243");
  EXPECT_THAT(config->servers[0].virtual_proxies,
              ElementsAre("/", "/hdr", "/sales"));
  EXPECT_THAT(config->servers[1].virtual_proxies, ElementsAre("/finance"));
  EXPECT_TRUE(config->sessions_enabled);
  EXPECT_EQ(config->sessions_interval, absl::Milliseconds(30000));
  EXPECT_TRUE(config->app_names_enabled);
  EXPECT_EQ(config->app_names_host, "qrs.example.com");
  EXPECT_EQ(config->tracker_address, "127.0.0.1:50051");
  EXPECT_FALSE(config->poller_id.empty());
}

TEST_F(PollerConfigTest, ReadsOwnSectionAndHeadersInFileOrder) {
  absl::StatusOr<PollerConfig> config =
      Parse(Minimal("        headers:\n"
                    "          X-Zeta: 1\n"
                    "          X-Alpha: two words\n") +
            "  failedPolls:\n"
            "    poller:\n"
            "      trackerAddress: tracker.local:6000\n"
            "      pollerId: poller-7\n"
            "      requestTimeout: 2500\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tracker_address, "tracker.local:6000");
  EXPECT_EQ(config->poller_id, "poller-7");
  EXPECT_EQ(config->request_timeout, absl::Milliseconds(2500));
  EXPECT_FALSE(config->sessions_enabled);
  EXPECT_FALSE(config->app_names_enabled);
  // yaml-cpp iterates maps in file order; headers go out in that order.
  EXPECT_THAT(config->servers[0].headers,
              ElementsAre(Pair("X-Zeta", "1"), Pair("X-Alpha", "two words")));
}

TEST_F(PollerConfigTest, SpoolIsInMemoryByDefault) {
  absl::StatusOr<PollerConfig> config = Parse(Minimal());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->spool_directory, "");
  EXPECT_EQ(config->max_spool_bytes, uint64_t{256} << 20);
  EXPECT_EQ(config->max_pending_failures, 100000u);
}

TEST_F(PollerConfigTest, ReadsSpoolKeysWithoutCreatingTheDirectory) {
  absl::StatusOr<PollerConfig> config =
      Parse(Minimal() +
            "  failedPolls:\n"
            "    poller:\n"
            "      spoolDirectory: __PKI__/spool/poller-1\n"
            "      maxSpoolBytes: 1048576\n"
            "      maxPendingFailures: 5000\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->spool_directory, dir_.File("spool/poller-1"));
  EXPECT_EQ(config->max_spool_bytes, 1048576u);
  EXPECT_EQ(config->max_pending_failures, 5000u);
  // --check-config parses too: the spool creates its directory at start.
  EXPECT_FALSE(std::filesystem::exists(dir_.File("spool")));
}

TEST_F(PollerConfigTest, DefaultsAreTheStructsInitialisers) {
  absl::StatusOr<PollerConfig> config = Parse(Minimal());
  ASSERT_TRUE(config.ok()) << config.status();
  const PollerConfig defaults;
  EXPECT_EQ(config->tracker_address, defaults.tracker_address);
  EXPECT_EQ(config->max_concurrent_polls, defaults.max_concurrent_polls);
  EXPECT_EQ(config->request_timeout, defaults.request_timeout);
  EXPECT_EQ(config->max_pending_failures, defaults.max_pending_failures);
  EXPECT_EQ(config->max_spool_bytes, defaults.max_spool_bytes);
  EXPECT_EQ(config->spool_directory, defaults.spool_directory);
  EXPECT_EQ(config->metrics_listen, defaults.metrics_listen);
  EXPECT_EQ(config->log_level, defaults.log_level);
  EXPECT_EQ(config->sessions_enabled, defaults.sessions_enabled);
  EXPECT_EQ(config->app_names_enabled, defaults.app_names_enabled);
  EXPECT_EQ(config->tls.verify_server, defaults.tls.verify_server);
  EXPECT_EQ(config->servers[0].sessions_enabled,
            MonitoredServer().sessions_enabled);
}

TEST_F(PollerConfigTest, NullListsAreEmptyLists) {
  // Butler SOS reads a list left empty as an empty list; a site may use it
  // for app names only.
  absl::StatusOr<PollerConfig> config = Parse(
      "Butler-SOS:\n"
      "  cert:\n"
      "    clientCert: __PKI__/client.pem\n"
      "    clientCertKey: __PKI__/client_key.pem\n"
      "    clientCertCA: __PKI__/root.pem\n"
      "  appNames:\n"
      "    enableAppNameExtract: true\n"
      "    extractInterval: 60000\n"
      "    hostIP: qrs.example.com\n"
      "  serversToMonitor:\n"
      "    pollingInterval: 1000\n"
      "    serverTagsDefinition:\n"
      "    servers:\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->servers.empty());
  EXPECT_EQ(config->app_names_host, "qrs.example.com");
}

TEST_F(PollerConfigTest, NullListsInAServerAreEmpty) {
  absl::StatusOr<PollerConfig> config =
      Parse(Minimal("        serverTags:\n"
                    "        headers:\n"
                    "        userSessions:\n"
                    "          enable: true\n"
                    "          host: sense1:4243\n"
                    "          virtualProxies:\n") +
            "  userSessions:\n"
            "    enableSessionExtract: true\n"
            "    pollingInterval: 1000\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->servers.size(), 1u);
  EXPECT_TRUE(config->servers[0].server_tags.empty());
  EXPECT_TRUE(config->servers[0].headers.empty());
  EXPECT_TRUE(config->servers[0].virtual_proxies.empty());
  EXPECT_EQ(config->servers[0].sessions_host, "sense1:4243");
}

TEST_F(PollerConfigTest, MergeKeysGiveEachServerItsSharedSettings) {
  // The shape: one server's PROXY_API polls came from a merge key.
  absl::StatusOr<PollerConfig> config = Parse(
      "x-defaults: &sense_defaults\n"
      "  serverDescription: shared\n"
      "  headers: {X-Site: east}\n"
      "  userSessions:\n"
      "    enable: true\n"
      "    host: proxy.example.com:4243\n"
      "    virtualProxies: [{virtualProxy: /}, {virtualProxy: /sales}]\n"
      "Butler-SOS:\n"
      "  cert:\n"
      "    clientCert: __PKI__/client.pem\n"
      "    clientCertKey: __PKI__/client_key.pem\n"
      "    clientCertCA: __PKI__/root.pem\n"
      "  userSessions: {enableSessionExtract: true, pollingInterval: 1000}\n"
      "  serversToMonitor:\n"
      "    pollingInterval: 1000\n"
      "    servers:\n"
      "      - <<: *sense_defaults\n"
      "        host: sense1:4747\n"
      "        serverName: sense1\n"
      "      - <<: *sense_defaults\n"
      "        host: sense2:4747\n"
      "        serverName: sense2\n"
      "        serverDescription: own\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->servers.size(), 2u);
  for (const MonitoredServer& server : config->servers) {
    EXPECT_TRUE(server.sessions_enabled);
    EXPECT_EQ(server.sessions_host, "proxy.example.com:4243");
    EXPECT_THAT(server.virtual_proxies, ElementsAre("/", "/sales"));
    EXPECT_THAT(server.headers, ElementsAre(Pair("X-Site", "east")));
  }
  EXPECT_EQ(config->servers[0].description, "shared");
  EXPECT_EQ(config->servers[1].description, "own");
  EXPECT_EQ(config->servers[1].host, "sense2:4747");
}

TEST_F(PollerConfigTest, ProductionTemplateNamesEveryPlaceholderHost) {
  // Butler SOS's own template, placeholders and all.
  absl::StatusOr<PollerConfig> config = Parse(ReadFile(
      QFP_SOURCE_DIR "/tests/data/butler-sos-production_template.yaml"));
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  for (const char* expected :
       {"Butler-SOS.cert.clientCert: cannot read certificate file "
        "\"<path/to/cert/client.pem>\"",
        "Butler-SOS.appNames.hostIP: expected a host name or IP address, "
        "optionally with :PORT, got \"<IP or FQDN>\": not a host name or "
        "IP address",
        "Butler-SOS.serversToMonitor.servers[0].host: expected a host name "
        "or IP address, optionally with :PORT, got "
        "\"<server1.my.domain>:4747\"",
        "Butler-SOS.serversToMonitor.servers[0].userSessions.host: "
        "expected a host name or IP address, optionally with :PORT, got "
        "\"<server1.my.domain>:4243\"",
        "Butler-SOS.serversToMonitor.servers[1].host: ",
        "Butler-SOS.serversToMonitor.servers[1].userSessions.host: "}) {
    EXPECT_THAT(message, HasSubstr(expected));
  }
}

// Issue 9 §5: per-source request timeouts and the body cap.
TEST_F(PollerConfigTest, RequestLimitsDefaultToButlerSosAndALongQrsTimeout) {
  absl::StatusOr<PollerConfig> config = Parse(Minimal());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->health_timeout, absl::Milliseconds(5000));
  EXPECT_EQ(config->sessions_timeout, absl::Milliseconds(5000));
  EXPECT_EQ(config->app_names_timeout, absl::Milliseconds(120000));
  EXPECT_EQ(config->max_response_bytes, uint64_t{1} << 30);
}

TEST_F(PollerConfigTest, RequestLimitsFollowRequestTimeoutThenTheirOwnKeys) {
  absl::StatusOr<PollerConfig> shared =
      Parse(Minimal() +
            "  failedPolls:\n    poller:\n      requestTimeout: 200000\n");
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(shared->health_timeout, absl::Milliseconds(200000));
  EXPECT_EQ(shared->sessions_timeout, absl::Milliseconds(200000));
  // Never shorter than requestTimeout unless set itself.
  EXPECT_EQ(shared->app_names_timeout, absl::Milliseconds(200000));

  absl::StatusOr<PollerConfig> own = Parse(Minimal() +
                                           "  failedPolls:\n"
                                           "    poller:\n"
                                           "      requestTimeout: 4000\n"
                                           "      healthCheckTimeout: 3000\n"
                                           "      userSessionsTimeout: 7000\n"
                                           "      appNamesTimeout: 1000\n"
                                           "      maxResponseBytes: 2097152\n");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->health_timeout, absl::Milliseconds(3000));
  EXPECT_EQ(own->sessions_timeout, absl::Milliseconds(7000));
  EXPECT_EQ(own->app_names_timeout, absl::Milliseconds(1000));
  EXPECT_EQ(own->max_response_bytes, 2097152u);
}

TEST_F(PollerConfigTest, RequestLimitsOutOfRangeNameTheirKeys) {
  absl::StatusOr<PollerConfig> config =
      Parse(Minimal() +
            "  failedPolls:\n"
            "    poller:\n"
            "      appNamesTimeout: 50\n"
            "      maxResponseBytes: 1000\n"
            "      userSessionsTimeout: soon\n");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message,
              HasSubstr("Butler-SOS.failedPolls.poller.appNamesTimeout: "
                        "expected an integer from 100 to 604800000, got 50"));
  EXPECT_THAT(message, HasSubstr("Butler-SOS.failedPolls.poller."
                                 "maxResponseBytes: expected an integer from "
                                 "1048576 to 1099511627776, got 1000"));
  EXPECT_THAT(message,
              HasSubstr("Butler-SOS.failedPolls.poller.userSessionsTimeout: "));
}

TEST_F(PollerConfigTest, EncryptedKeyOpensWithPassphrase) {
  std::string yaml = absl::StrReplaceAll(
      Minimal(), {{"client_key.pem", "client_key_encrypted.pem"}});
  yaml = absl::StrReplaceAll(yaml, {{"    clientCertCA:",
                                     "    clientCertPassphrase: correct horse\n"
                                     "    clientCertCA:"}});
  absl::StatusOr<PollerConfig> config = Parse(yaml);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls.key_passphrase, "correct horse");
}

// Keys the tracker writes: one that only loses a trailing backslash, `host`
// and `server_name` (Butler SOS lets a server tag replace those on its own
// points; the failure's own tag wins on ours), `time` in another case
// (InfluxDB's keys are case-sensitive).
TEST_F(PollerConfigTest, ServerTagKeysTheTrackerWritesAreAccepted) {
  std::string yaml = absl::StrReplaceAll(
      Minimal("        serverTags: {'dc\\': a, host: b, Time: c, "
              "server_name: d}\n"),
      {{"    pollingInterval: 1000\n",
        "    pollingInterval: 1000\n"
        "    serverTagsDefinition: ['dc\\', host, Time, server_name]\n"}});
  absl::StatusOr<PollerConfig> config = Parse(yaml);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->servers.size(), 1u);
  EXPECT_EQ(config->servers[0].server_tags.size(), 4u);
  EXPECT_EQ(config->servers[0].server_tags.at("dc\\"), "a");
}

struct BrokenCase {
  std::string name;
  // Replacements applied to Minimal() (or a whole file when `from` is "*").
  std::string from;
  std::string to;
  std::string expected;  // a substring of the error
};

class PollerConfigBrokenTest
    : public PollerConfigTest,
      public ::testing::WithParamInterface<BrokenCase> {};

TEST_P(PollerConfigBrokenTest, ReportsKeyPathAndProblem) {
  const BrokenCase& c = GetParam();
  std::string yaml =
      c.from == "*" ? c.to : absl::StrReplaceAll(Minimal(), {{c.from, c.to}});
  absl::StatusOr<PollerConfig> config = Parse(yaml);
  ASSERT_FALSE(config.ok()) << "accepted:\n" << yaml;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected));
}

INSTANTIATE_TEST_SUITE_P(
    Table, PollerConfigBrokenTest,
    ::testing::Values(
        BrokenCase{"NoRoot", "*", "Other: {}\n",
                   "Butler-SOS: missing (the file's root key must be "
                   "Butler-SOS)"},
        BrokenCase{"MissingInterval", "    pollingInterval: 1000\n", "",
                   "Butler-SOS.serversToMonitor.pollingInterval: missing "
                   "(expected an integer from 100 to 604800000)"},
        BrokenCase{"MistypedInterval", "pollingInterval: 1000",
                   "pollingInterval: often",
                   "Butler-SOS.serversToMonitor.pollingInterval: expected an "
                   "integer from 100 to 604800000, got \"often\""},
        BrokenCase{"MissingServerName", "        serverName: sense1\n", "",
                   "Butler-SOS.serversToMonitor.servers[0].serverName: "
                   "missing (expected a string)"},
        // Names the tracker would refuse in every failure of the server.
        BrokenCase{"ServerNameWithATab", "        serverName: sense1\n",
                   "        serverName: \"sense\\t1\"\n",
                   "Butler-SOS.serversToMonitor.servers[0].serverName: holds "
                   "a control character (tab, line break, ...), which the "
                   "tracker refuses in a failure"},
        BrokenCase{"ServerNameTooLong", "        serverName: sense1\n",
                   "        serverName: " + std::string(1025, 's') + "\n",
                   "Butler-SOS.serversToMonitor.servers[0].serverName: is "
                   "1025 bytes; the tracker takes at most 1024"},
        BrokenCase{"ServersNotAList", "    servers:\n      - host",
                   "    servers: none\n    x:\n      - host",
                   "Butler-SOS.serversToMonitor.servers: expected a list, "
                   "got \"none\""},
        BrokenCase{"UnreadableCert", "__PKI__/client.pem", "/nonexistent/c.pem",
                   "Butler-SOS.cert.clientCert: cannot read certificate file "
                   "\"/nonexistent/c.pem\""},
        BrokenCase{"CaIsNotACertificate", "__PKI__/root.pem",
                   "__PKI__/client_key.pem",
                   "Butler-SOS.cert.clientCertCA: \""},
        BrokenCase{"EncryptedKeyWithoutPassphrase", "client_key.pem",
                   "client_key_encrypted.pem",
                   "Butler-SOS.cert.clientCertKey: cannot open the private "
                   "key"},
        BrokenCase{"RejectUnauthorizedNotBool", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n    rejectUnauthorized: "
                   "maybe\n",
                   "Butler-SOS.serversToMonitor.rejectUnauthorized: expected "
                   "true or false, got \"maybe\""},
        BrokenCase{"VirtualProxyWithoutSlash", "        serverName: sense1\n",
                   "        serverName: sense1\n"
                   "        userSessions:\n"
                   "          enable: true\n"
                   "          host: sense1:4243\n"
                   "          virtualProxies:\n"
                   "            - virtualProxy: sales\n"
                   "  userSessions:\n"
                   "    enableSessionExtract: true\n"
                   "    pollingInterval: 1000\n",
                   "Butler-SOS.serversToMonitor.servers[0].userSessions."
                   "virtualProxies[0].virtualProxy: expected a virtual proxy "
                   "starting with \"/\", got \"sales\""},
        BrokenCase{"ServerTagNotDefined", "        serverName: sense1\n",
                   "        serverName: sense1\n"
                   "        serverTags:\n"
                   "          site: east\n",
                   "Butler-SOS.serversToMonitor.servers[0].serverTags: tag "
                   "\"site\" is not listed in serversToMonitor."
                   "serverTagsDefinition"},
        BrokenCase{"ServerTagMissing", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: [site]\n",
                   "Butler-SOS.serversToMonitor.servers[0].serverTags: "
                   "missing tag \"site\""},
        // Keys the tracker would refuse on every failure (CheckTagKey):
        // refused at load, where the tracker would refuse every failure.
        BrokenCase{"ServerTagKeyThatWouldBeHost", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: ['host\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"host\\\" ends in a backslash and would be written as "
                   "the tag host"},
        // Exactly one of our own tags, or one once cleaned (poller_id is a
        // tag of the poll attempts points).
        BrokenCase{"ServerTagKeyErrorType", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: [error_type]\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"error_type\" is the tag error_type the tracker writes "
                   "itself, which a server or static tag never replaces"},
        BrokenCase{"ServerTagKeyVirtualProxy", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: [site, virtual_proxy]\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[1]: tag "
                   "\"virtual_proxy\" is the tag virtual_proxy the tracker "
                   "writes itself"},
        BrokenCase{"ServerTagKeyThatWouldBePollerId",
                   "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: ['poller_id\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"poller_id\\\" ends in a backslash and would be written "
                   "as the tag poller_id"},
        BrokenCase{"ServerTagKeyTime", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: [site, time]\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[1]: tag "
                   "\"time\" is \"time\", which InfluxDB refuses as a tag "
                   "key"},
        BrokenCase{"ServerTagKeyOfBackslashesOnly",
                   "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: ['\\\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[0]: tag "
                   "\"\\\\\" is only backslashes, which line protocol "
                   "cannot carry"},
        BrokenCase{"ServerTagKeysThatWouldBeOne", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "    serverTagsDefinition: [site, 'site\\']\n",
                   "Butler-SOS.serversToMonitor.serverTagsDefinition[1]: tag "
                   "\"site\\\" and tag \"site\" would be written as the one "
                   "tag key \"site\""},
        BrokenCase{
            "AppNamesWithoutHost", "    pollingInterval: 1000\n",
            "    pollingInterval: 1000\n"
            "  appNames:\n"
            "    enableAppNameExtract: true\n"
            "    extractInterval: 60000\n",
            "Butler-SOS.appNames.hostIP: missing (expected a host name or "
            "IP address, optionally with :PORT)"},
        BrokenCase{"TrackerAddressNotString", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      trackerAddress: [a, b]\n",
                   "Butler-SOS.failedPolls.poller.trackerAddress: expected "
                   "HOST:PORT, got a list"},
        BrokenCase{"SpoolDirectoryNotCreatable", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      spoolDirectory: __PKI__/root.pem/spool\n",
                   "Butler-SOS.failedPolls.poller.spoolDirectory: cannot "
                   "create directory \""},
        BrokenCase{"SpoolDirectoryEmpty", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      spoolDirectory: \"\"\n",
                   "Butler-SOS.failedPolls.poller.spoolDirectory: must not be "
                   "empty"},
        BrokenCase{"SpoolDirectoryIsAFile", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      spoolDirectory: __PKI__/root.pem\n",
                   "Butler-SOS.failedPolls.poller.spoolDirectory: "},
        BrokenCase{"MaxSpoolBytesTooSmall", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      maxSpoolBytes: 1000\n",
                   "Butler-SOS.failedPolls.poller.maxSpoolBytes: expected an "
                   "integer from 1048576 to 1099511627776, got 1000"},
        BrokenCase{"PollerKeyTypo", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      spoolDirectry: /var/spool\n",
                   "Butler-SOS.failedPolls.poller.spoolDirectry: unknown key "
                   "(did you mean spoolDirectory?)"},
        BrokenCase{"TrackerKeyTypoSeenByPoller", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    tracker:\n"
                   "      walDirectry: /var/wal\n",
                   "Butler-SOS.failedPolls.tracker.walDirectry: unknown key "
                   "(did you mean walDirectory?)"},
        BrokenCase{"UnknownPart", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poler: {}\n",
                   "Butler-SOS.failedPolls.poler: unknown key (did you mean "
                   "poller?); known here: poller, tracker"},
        BrokenCase{"ServersMissing",
                   "    servers:\n      - host: sense1:4747\n"
                   "        serverName: sense1\n",
                   "",
                   "Butler-SOS.serversToMonitor.servers: missing (expected a "
                   "list of servers)"},
        BrokenCase{"ServerHostIsUrl", "- host: sense1:4747",
                   "- host: https://sense1:4747",
                   "Butler-SOS.serversToMonitor.servers[0].host: expected a "
                   "host name or IP address, optionally with :PORT, got "
                   "\"https://sense1:4747\": a URL is not a host"},
        BrokenCase{"SessionHostPlaceholder", "        serverName: sense1\n",
                   "        serverName: sense1\n"
                   "        userSessions:\n"
                   "          enable: true\n"
                   "          host: <server1.my.domain>:4243\n"
                   "          virtualProxies: [{virtualProxy: /}]\n"
                   "  userSessions:\n"
                   "    enableSessionExtract: true\n"
                   "    pollingInterval: 1000\n",
                   "Butler-SOS.serversToMonitor.servers[0].userSessions.host: "
                   "expected a host name or IP address, optionally with "
                   ":PORT, got \"<server1.my.domain>:4243\""},
        BrokenCase{"SessionsWithoutVirtualProxiesKey",
                   "        serverName: sense1\n",
                   "        serverName: sense1\n"
                   "        userSessions:\n"
                   "          enable: true\n"
                   "          host: sense1:4243\n"
                   "  userSessions:\n"
                   "    enableSessionExtract: true\n"
                   "    pollingInterval: 1000\n",
                   "Butler-SOS.serversToMonitor.servers[0].userSessions."
                   "virtualProxies: missing"},
        BrokenCase{"AppNamesHostPlaceholder", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  appNames:\n"
                   "    enableAppNameExtract: true\n"
                   "    extractInterval: 60000\n"
                   "    hostIP: <IP or FQDN>\n",
                   "Butler-SOS.appNames.hostIP: expected a host name or IP "
                   "address, optionally with :PORT, got \"<IP or FQDN>\": not "
                   "a host name or IP address"},
        BrokenCase{"TrackerAddressWithoutPort", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      trackerAddress: tracker.local\n",
                   "Butler-SOS.failedPolls.poller.trackerAddress: expected "
                   "HOST:PORT, got \"tracker.local\": the port is missing"},
        BrokenCase{"MetricsListenIsUrl", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      metricsListen: http://0.0.0.0:9090\n",
                   "Butler-SOS.failedPolls.poller.metricsListen: expected "
                   "HOST:PORT, got \"http://0.0.0.0:9090\": a URL is not a "
                   "host"},
        BrokenCase{"PollerIdEmpty", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n"
                   "  failedPolls:\n"
                   "    poller:\n"
                   "      pollerId: ''\n",
                   "Butler-SOS.failedPolls.poller.pollerId: must not be "
                   "empty"},
        BrokenCase{"HeaderNameNotAToken", "        serverName: sense1\n",
                   "        serverName: sense1\n"
                   "        headers:\n"
                   "          'X Bad': 1\n",
                   "Butler-SOS.serversToMonitor.servers[0].headers.X Bad: not "
                   "an HTTP header name"},
        BrokenCase{"HeaderValueWithLineBreak", "        serverName: sense1\n",
                   "        serverName: sense1\n"
                   "        headers:\n"
                   "          X-Ok: \"a\\r\\nX-Injected: 1\"\n",
                   "Butler-SOS.serversToMonitor.servers[0].headers.X-Ok: a "
                   "header value must not hold a line break or NUL"},
        BrokenCase{"LogLevelUnknown", "Butler-SOS:\n",
                   "Butler-SOS:\n  logLevel: loud\n",
                   "Butler-SOS.logLevel: expected one of silly, trace, debug, "
                   "verbose, info, warn, warning, error, got \"loud\""},
        BrokenCase{"DuplicateKey", "    pollingInterval: 1000\n",
                   "    pollingInterval: 1000\n    pollingInterval: 5000\n",
                   "Butler-SOS.serversToMonitor.pollingInterval: key given "
                   "twice in one mapping (lines 7 and 8)"},
        BrokenCase{"MergeOfScalar", "        serverName: sense1\n",
                   "        serverName: sense1\n        <<: base\n",
                   "Butler-SOS.serversToMonitor.servers[0].<<: a merge key "
                   "takes a mapping or a list of mappings"}),
    [](const ::testing::TestParamInfo<BrokenCase>& param_info) {
      return param_info.param.name;
    });

TEST_F(PollerConfigTest, ReportsEveryProblemAtOnce) {
  absl::StatusOr<PollerConfig> config = Parse(
      "Butler-SOS:\n"
      "  cert: {}\n"
      "  serversToMonitor:\n"
      "    pollingInterval: x\n"
      "    servers:\n"
      "      - {}\n");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("Butler-SOS.cert.clientCert: missing"));
  EXPECT_THAT(message, HasSubstr("Butler-SOS.cert.clientCertKey: missing"));
  EXPECT_THAT(message, HasSubstr("Butler-SOS.cert.clientCertCA: missing"));
  EXPECT_THAT(message,
              HasSubstr("Butler-SOS.serversToMonitor.pollingInterval: "));
  EXPECT_THAT(message,
              HasSubstr("Butler-SOS.serversToMonitor.servers[0].host: "));
  EXPECT_THAT(message, HasSubstr("(6 problems)"));
}

TEST_F(PollerConfigTest, MissingFileNamesIt) {
  absl::StatusOr<PollerConfig> config =
      LoadPollerConfig(dir_.File("absent.yaml"));
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("absent.yaml"));
}

}  // namespace
}  // namespace qfp::poller
