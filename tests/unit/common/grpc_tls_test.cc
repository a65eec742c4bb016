#include "common/grpc_tls.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_pki.h"

namespace qfp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;

// Parses `yaml` and reads its `tls` section for `side`; the errors recorded
// (paths start at `tls`) land in `errors`.
GrpcTlsConfig Read(const std::string& yaml, GrpcTlsSide side,
                   ConfigErrors& errors) {
  absl::StatusOr<YAML::Node> parsed = ConfigNode::Parse(yaml);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  YAML::Node doc = *parsed;
  return ReadGrpcTls(ConfigNode(doc, "", &errors)["tls"], side);
}

std::string TlsYaml(const std::string& cert, const std::string& key,
                    const std::string& ca) {
  return absl::StrCat("tls:\n  enable: true\n  certFile: ", cert,
                      "\n  keyFile: ", key, "\n  caFile: ", ca, "\n");
}

TEST(GrpcTlsTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("127.8.9.10:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:50051"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackAddress("LocalHost:50051"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:50051"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackAddress("tracker.monitoring.svc:50051"));
  EXPECT_FALSE(IsLoopbackAddress("localhost.example.com:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::ffff:10.0.0.1]:50051"));
}

TEST(GrpcTlsTest, PlaintextOnlyOnLoopbackOrWithConsent) {
  GrpcTlsConfig tls;
  EXPECT_EQ(CheckPlaintextAllowed(tls, "127.0.0.1:50051", "a.listen", "a.tls"),
            std::nullopt);
  EXPECT_THAT(
      CheckPlaintextAllowed(tls, "0.0.0.0:50051", "a.listen", "a.tls"),
      Optional(AllOf(HasSubstr("a.listen: \"0.0.0.0:50051\" is not a loopback "
                               "address"),
                     HasSubstr("a.tls.enable: true"),
                     HasSubstr("a.tls.allowPlaintext: true"))));
  tls.allow_plaintext = true;
  EXPECT_EQ(CheckPlaintextAllowed(tls, "0.0.0.0:50051", "a.listen", "a.tls"),
            std::nullopt);
  tls.allow_plaintext = false;
  tls.enable = true;
  EXPECT_EQ(CheckPlaintextAllowed(tls, "0.0.0.0:50051", "a.listen", "a.tls"),
            std::nullopt);
}

TEST(GrpcTlsTest, DefaultsWhenNotSet) {
  ConfigErrors errors;
  GrpcTlsConfig tls = Read("other: 1\n", GrpcTlsSide::kServer, errors);
  EXPECT_FALSE(tls.enable);
  EXPECT_FALSE(tls.allow_plaintext);
  EXPECT_EQ(tls.refresh_interval_seconds, 5);
  EXPECT_TRUE(errors.empty());
}

TEST(GrpcTlsTest, ReadsAndChecksTheFiles) {
  testing::TempDir dir;
  const testing::TestPki pki = testing::WriteTestPki(dir.path());
  ConfigErrors errors;
  GrpcTlsConfig tls = Read(TlsYaml(pki.cert_file, pki.key_file, pki.ca_file) +
                               "  serverName: tracker.example.com\n"
                               "  refreshIntervalSeconds: 2\n",
                           GrpcTlsSide::kClient, errors);
  EXPECT_THAT(errors.errors(), IsEmpty());
  EXPECT_TRUE(tls.enable);
  EXPECT_EQ(tls.cert_file, pki.cert_file);
  EXPECT_EQ(tls.key_file, pki.key_file);
  EXPECT_EQ(tls.ca_file, pki.ca_file);
  EXPECT_EQ(tls.server_name, "tracker.example.com");
  EXPECT_EQ(tls.refresh_interval_seconds, 2);
}

TEST(GrpcTlsTest, EachBadFileIsNamedByItsKey) {
  testing::TempDir dir;
  const testing::TestPki pki = testing::WriteTestPki(dir.path());
  const std::string missing = dir.File("missing.pem");
  const std::string other_key = dir.Write("other_key.pem",
                                          "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                          "-----END PRIVATE KEY-----\n");
  ConfigErrors errors;
  Read(TlsYaml(missing, pki.encrypted_key_file, pki.key_file),
       GrpcTlsSide::kServer, errors);
  EXPECT_THAT(
      errors.errors(),
      ElementsAre(
          HasSubstr(absl::StrCat("tls.certFile: cannot read certificate file "
                                 "\"",
                                 missing, "\"")),
          HasSubstr("tls.keyFile: cannot open the private key in "),
          HasSubstr("tls.caFile: ")));
  ConfigErrors garbage;
  Read(TlsYaml(pki.cert_file, other_key, pki.ca_file), GrpcTlsSide::kServer,
       garbage);
  EXPECT_THAT(garbage.errors(), ElementsAre(HasSubstr("tls.keyFile: ")));
}

TEST(GrpcTlsTest, KeyMustMatchTheCertificate) {
  testing::TempDir dir;
  const testing::TestPki pki = testing::WriteTestPki(dir.path());
  testing::TempDir other_dir;
  const testing::TestPki other = testing::WriteTestPki(other_dir.path());
  ConfigErrors errors;
  Read(TlsYaml(pki.cert_file, other.key_file, pki.ca_file),
       GrpcTlsSide::kServer, errors);
  EXPECT_THAT(errors.errors(),
              ElementsAre(HasSubstr("tls.keyFile: the key in ")));
}

TEST(GrpcTlsTest, EnabledNeedsAllThreeFilesAndRangesAreChecked) {
  ConfigErrors errors;
  Read("tls:\n  enable: true\n  refreshIntervalSeconds: 0\n",
       GrpcTlsSide::kServer, errors);
  const std::string all = absl::StrJoin(errors.errors(), "\n");
  EXPECT_THAT(all, HasSubstr("tls.certFile"));
  EXPECT_THAT(all, HasSubstr("tls.keyFile"));
  EXPECT_THAT(all, HasSubstr("tls.caFile"));
  EXPECT_THAT(all, HasSubstr("tls.refreshIntervalSeconds"));
}

TEST(GrpcTlsTest, ServerNameIsAHost) {
  ConfigErrors errors;
  Read("tls:\n  serverName: https://tracker\n", GrpcTlsSide::kClient, errors);
  EXPECT_THAT(errors.errors(), ElementsAre(HasSubstr("tls.serverName")));
}

TEST(GrpcTlsTest, KeyNamesPerSide) {
  EXPECT_THAT(GrpcTlsKeys(GrpcTlsSide::kServer),
              ::testing::Not(::testing::Contains("serverName")));
  EXPECT_THAT(GrpcTlsKeys(GrpcTlsSide::kClient),
              ::testing::Contains("serverName"));
}

}  // namespace
}  // namespace qfp
