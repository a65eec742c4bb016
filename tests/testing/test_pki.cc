#include "tests/testing/test_pki.h"

#include <cstdio>
#include <cstdlib>

#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/x509.h"

namespace qfp::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "test PKI: %s failed\n", what);
    std::abort();
  }
}

X509* MakeCert(EVP_PKEY* key, const char* cn, X509* issuer,
               EVP_PKEY* issuer_key, long serial) {  // NOLINT(runtime/int)
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 30);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1,
                             -1, 0);
  X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer)
                                               : name);
  Check(X509_sign(cert, issuer_key != nullptr ? issuer_key : key,
                  EVP_sha256()) > 0,
        "X509_sign");
  return cert;
}

void WriteCert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  Check(f != nullptr, "fopen");
  Check(PEM_write_X509(f, cert) == 1, "PEM_write_X509");
  std::fclose(f);
}

void WriteKey(const std::string& path, EVP_PKEY* key, const char* pass) {
  FILE* f = std::fopen(path.c_str(), "w");
  Check(f != nullptr, "fopen");
  const EVP_CIPHER* cipher = pass != nullptr ? EVP_aes_256_cbc() : nullptr;
  Check(PEM_write_PrivateKey(
            f, key, cipher,
            reinterpret_cast<const unsigned char*>(pass),
            pass != nullptr ? static_cast<int>(std::char_traits<char>::length(pass))
                            : 0,
            nullptr, nullptr) == 1,
        "PEM_write_PrivateKey");
  std::fclose(f);
}

}  // namespace

TestPki WriteTestPki(const std::string& directory) {
  TestPki pki;
  pki.ca_file = directory + "/root.pem";
  pki.cert_file = directory + "/client.pem";
  pki.key_file = directory + "/client_key.pem";
  pki.encrypted_key_file = directory + "/client_key_encrypted.pem";
  pki.passphrase = "correct horse";

  EVP_PKEY* ca_key = EVP_EC_gen("P-256");
  EVP_PKEY* client_key = EVP_EC_gen("P-256");
  Check(ca_key != nullptr && client_key != nullptr, "EVP_EC_gen");
  X509* ca = MakeCert(ca_key, "Test Qlik CA", nullptr, nullptr, 1);
  X509* client = MakeCert(client_key, "QlikClient", ca, ca_key, 2);
  WriteCert(pki.ca_file, ca);
  WriteCert(pki.cert_file, client);
  WriteKey(pki.key_file, client_key, nullptr);
  WriteKey(pki.encrypted_key_file, client_key, pki.passphrase.c_str());
  X509_free(client);
  X509_free(ca);
  EVP_PKEY_free(client_key);
  EVP_PKEY_free(ca_key);
  return pki;
}

}  // namespace qfp::testing
