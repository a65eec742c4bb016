// Real X.509 material for unit tests, made with OpenSSL at test time: a CA,
// a client certificate it signed, the client key in clear and encrypted.
#ifndef QFP_TESTS_TESTING_TEST_PKI_H_
#define QFP_TESTS_TESTING_TEST_PKI_H_

#include <string>

namespace qfp::testing {

struct TestPki {
  std::string ca_file;             // root.pem
  std::string cert_file;           // client.pem
  std::string key_file;            // client_key.pem (clear)
  std::string encrypted_key_file;  // client_key_encrypted.pem
  std::string passphrase;          // of encrypted_key_file
};

// Writes the files into `directory`. Aborts the test binary on failure
// (OpenSSL failing to make a key here is an environment problem).
TestPki WriteTestPki(const std::string& directory);

}  // namespace qfp::testing

#endif  // QFP_TESTS_TESTING_TEST_PKI_H_
