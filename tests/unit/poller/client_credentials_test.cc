// ClientCredentials with real PEM files made by OpenSSL in the test
// (tests/testing/test_pki.h): parsed once, parsed again only when a file
// changes, a bad replacement keeps the last good objects, and the objects it
// hands to an SSL_CTX are the ones parsed (shared, not copied).
#include "poller-service/client_credentials.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_pki.h"

namespace qfp::poller {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream data;
  data << in.rdbuf();
  return data.str();
}

// Written aside, then renamed over `path` (a new inode), as Kubernetes
// updates a mounted Secret.
void Replace(const testing::TempDir& dir, const std::string& path,
             const std::string& contents) {
  const std::string aside = dir.Write("aside.tmp", contents);
  ASSERT_EQ(std::rename(aside.c_str(), path.c_str()), 0)
      << std::strerror(errno);
}

class ClientCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = testing::WriteTestPki(dir_.path());
    settings_.client_cert_file = pki_.cert_file;
    settings_.client_key_file = pki_.encrypted_key_file;
    settings_.key_passphrase = pki_.passphrase;
    settings_.ca_file = pki_.ca_file;
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
  TlsSettings settings_;
};

TEST_F(ClientCredentialsTest, ParsedOnceWhileTheFilesStayTheSame) {
  ClientCredentials credentials(settings_);
  EXPECT_EQ(credentials.parses(), 2);  // identity and trust
  const auto first = credentials.Current();
  ASSERT_NE(first, nullptr);
  EXPECT_NE(first->certificate, nullptr);
  EXPECT_NE(first->key, nullptr);
  EXPECT_NE(first->trust, nullptr);
  EXPECT_TRUE(first->identity_error.empty()) << first->identity_error;
  EXPECT_TRUE(first->trust_error.empty()) << first->trust_error;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(credentials.Current(), first);
  }
  EXPECT_EQ(credentials.parses(), 2);
}

TEST_F(ClientCredentialsTest, ApplyToSharesTheParsedObjects) {
  ClientCredentials credentials(settings_);
  const auto snapshot = credentials.Current();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  const ApplyResult applied = ApplyTo(*snapshot, ctx);
  EXPECT_EQ(applied.curl_code, CURLE_OK) << applied.error;
  EXPECT_EQ(SSL_CTX_get0_certificate(ctx), snapshot->certificate);
  EXPECT_EQ(SSL_CTX_get0_privatekey(ctx), snapshot->key);
  EXPECT_EQ(SSL_CTX_get_cert_store(ctx), snapshot->trust);
  SSL_CTX_free(ctx);
  // The snapshot's own references survive the SSL_CTX.
  EXPECT_EQ(X509_check_private_key(snapshot->certificate, snapshot->key), 1);
}

TEST_F(ClientCredentialsTest, OnlyTheChangedPartIsParsedAgain) {
  ClientCredentials credentials(settings_);
  const auto before = credentials.Current();
  testing::TempDir other_dir;
  const testing::TestPki other = testing::WriteTestPki(other_dir.path());
  Replace(dir_, settings_.ca_file, ReadAll(other.ca_file));
  const auto after = credentials.Current();
  EXPECT_EQ(credentials.parses(), 3);
  EXPECT_NE(after, before);
  EXPECT_NE(after->trust, before->trust);
  EXPECT_EQ(after->certificate, before->certificate);
  EXPECT_EQ(after->key, before->key);
  EXPECT_EQ(credentials.Current(), after);
  EXPECT_EQ(credentials.parses(), 3);

  // A new certificate and key together (a new pair, as after a renewal).
  Replace(dir_, settings_.client_cert_file, ReadAll(other.cert_file));
  Replace(dir_, settings_.client_key_file, ReadAll(other.encrypted_key_file));
  const auto renewed = credentials.Current();
  EXPECT_EQ(credentials.parses(), 4);
  EXPECT_NE(renewed->certificate, after->certificate);
  EXPECT_EQ(renewed->trust, after->trust);
  EXPECT_EQ(X509_check_private_key(renewed->certificate, renewed->key), 1);
}

TEST_F(ClientCredentialsTest, BadReplacementsKeepTheLastGoodObjects) {
  ClientCredentials credentials(settings_);
  const auto good = credentials.Current();
  const std::string cert = ReadAll(settings_.client_cert_file);
  const std::string key = ReadAll(settings_.client_key_file);
  const std::string ca = ReadAll(settings_.ca_file);
  // Half-written certificate and CA files.
  Replace(dir_, settings_.client_cert_file, cert.substr(0, cert.size() / 2));
  Replace(dir_, settings_.ca_file, ca.substr(0, ca.size() / 2));
  auto now = credentials.Current();
  EXPECT_EQ(credentials.parses(), 4);
  EXPECT_EQ(now->certificate, good->certificate);
  EXPECT_EQ(now->key, good->key);
  EXPECT_EQ(now->trust, good->trust);
  EXPECT_TRUE(now->identity_error.empty());
  EXPECT_TRUE(now->trust_error.empty());
  // Not parsed (nor logged) again until the files change again.
  credentials.Current();
  EXPECT_EQ(credentials.parses(), 4);

  // A key that does not match the certificate is bad too.
  testing::TempDir other_dir;
  const testing::TestPki other = testing::WriteTestPki(other_dir.path());
  Replace(dir_, settings_.client_cert_file, cert);
  Replace(dir_, settings_.client_key_file, ReadAll(other.encrypted_key_file));
  now = credentials.Current();
  EXPECT_EQ(now->certificate, good->certificate);
  EXPECT_EQ(now->key, good->key);

  // Good files again: loaded.
  Replace(dir_, settings_.client_key_file, key);
  Replace(dir_, settings_.ca_file, ReadAll(other.ca_file));
  now = credentials.Current();
  EXPECT_NE(now->certificate, good->certificate);
  EXPECT_NE(now->trust, good->trust);
  EXPECT_EQ(X509_check_private_key(now->certificate, now->key), 1);
}

TEST_F(ClientCredentialsTest, WithoutAGoodVersionRequestsFailAsLibcurlWould) {
  settings_.key_passphrase = "wrong";
  ClientCredentials credentials(settings_);
  auto snapshot = credentials.Current();
  EXPECT_EQ(snapshot->certificate, nullptr);
  EXPECT_TRUE(
      absl::StrContains(snapshot->identity_error, settings_.client_key_file))
      << snapshot->identity_error;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ApplyResult applied = ApplyTo(*snapshot, ctx);
  EXPECT_EQ(applied.curl_code, CURLE_SSL_CERTPROBLEM);
  EXPECT_EQ(applied.error, snapshot->identity_error);
  SSL_CTX_free(ctx);

  TlsSettings no_ca = settings_;
  no_ca.key_passphrase = pki_.passphrase;
  no_ca.ca_file = dir_.Write("empty_ca.pem", "");
  ClientCredentials bad_ca(no_ca);
  snapshot = bad_ca.Current();
  EXPECT_EQ(snapshot->trust, nullptr);
  EXPECT_FALSE(snapshot->trust_error.empty());
  // The same bad file is not parsed (nor logged) again on every request.
  const int parses = bad_ca.parses();
  for (int i = 0; i < 3; ++i) bad_ca.Current();
  EXPECT_EQ(bad_ca.parses(), parses);
  ctx = SSL_CTX_new(TLS_client_method());
  applied = ApplyTo(*snapshot, ctx);
  EXPECT_EQ(applied.curl_code, CURLE_SSL_CACERT_BADFILE);
  // Not verifying the server: the CA file does not matter (as in libcurl).
  applied = ApplyTo(*snapshot, ctx, /*with_trust=*/false);
  EXPECT_EQ(applied.curl_code, CURLE_OK) << applied.error;
  SSL_CTX_free(ctx);

  // The missing file appears: loaded from the next call.
  Replace(dir_, no_ca.ca_file, ReadAll(pki_.ca_file));
  EXPECT_NE(bad_ca.Current()->trust, nullptr);
  EXPECT_TRUE(bad_ca.Current()->trust_error.empty());
}

TEST_F(ClientCredentialsTest, AnUnencryptedKeyNeedsNoPassphrase) {
  settings_.client_key_file = pki_.key_file;
  settings_.key_passphrase.clear();
  ClientCredentials credentials(settings_);
  EXPECT_NE(credentials.Current()->key, nullptr)
      << credentials.Current()->identity_error;
  // An encrypted key without its passphrase fails, never prompts.
  settings_.client_key_file = pki_.encrypted_key_file;
  ClientCredentials no_pass(settings_);
  EXPECT_EQ(no_pass.Current()->key, nullptr);
  EXPECT_FALSE(no_pass.Current()->identity_error.empty());
}

TEST(FileStampTest, SeesARenameAndAnInPlaceRewrite) {
  testing::TempDir dir;
  const std::string path = dir.Write("f.pem", "one");
  const FileStamp first = StampOf(path);
  EXPECT_TRUE(first.exists);
  EXPECT_EQ(StampOf(path), first);
  Replace(dir, path, "one");  // same bytes, new inode
  const FileStamp renamed = StampOf(path);
  EXPECT_NE(renamed, first);
  dir.Write("f.pem", "three");  // rewritten in place, new size
  EXPECT_NE(StampOf(path), renamed);
  EXPECT_FALSE(StampOf(dir.File("missing.pem")).exists);
}

}  // namespace
}  // namespace qfp::poller
