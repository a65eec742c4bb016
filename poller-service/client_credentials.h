// The poller's TLS credentials (Butler SOS's `cert`: client certificate, its
// key and the CA file servers must chain to), parsed once and shared by every
// connection, and parsed again only when a file changes on disk.
//
// Why: the curl transport used to hand libcurl the three file names, so every
// poll re-read and re-parsed them (the key decrypted with its passphrase, the
// CA file turned into a new X509_STORE): about half the poller's CPU per poll
// (issue 10). Here the parsed objects are refcounted OpenSSL objects that each
// connection's SSL_CTX takes a reference to (ApplyTo).
#ifndef QFP_POLLER_CLIENT_CREDENTIALS_H_
#define QFP_POLLER_CLIENT_CREDENTIALS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "poller-service/http_transport.h"

// OpenSSL's types, declared here so that users need no OpenSSL headers.
typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct x509_store_st X509_STORE;

namespace qfp::poller {

// What stat() says about one file, enough to see that it was replaced or
// rewritten: a new inode (written aside and renamed, as Kubernetes does for
// mounted Secrets), a new size or a new modification or change time
// (nanoseconds). All zero for a file that could not be stat'ed.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  long mtime_ns = 0;  // NOLINT(runtime/int): from timespec
  long mtime_s = 0;   // NOLINT(runtime/int)
  long ctime_ns = 0;  // NOLINT(runtime/int)
  long ctime_s = 0;   // NOLINT(runtime/int)
  bool exists = false;

  bool operator==(const FileStamp& other) const;
  bool operator!=(const FileStamp& other) const { return !(*this == other); }
};

// `path` stat()ed now.
FileStamp StampOf(const std::string& path);

// One parse of the files: immutable once made, so that a snapshot can be
// used from any thread while a newer one replaces it. Holds one reference on
// each OpenSSL object and drops it when destroyed; an SSL_CTX that took the
// objects (ApplyTo) holds its own references.
class CredentialSnapshot {
 public:
  CredentialSnapshot() = default;
  ~CredentialSnapshot();
  CredentialSnapshot(const CredentialSnapshot&) = delete;
  CredentialSnapshot& operator=(const CredentialSnapshot&) = delete;

  // The client certificate (first PEM certificate of the cert file), the
  // certificates after it (sent as its chain) and its private key; null
  // (empty chain) when no client certificate is configured or none ever
  // loaded.
  X509* certificate = nullptr;
  std::vector<X509*> chain;
  EVP_PKEY* key = nullptr;
  // Why the client certificate or key is unusable, when no good one was
  // ever loaded (a request then fails as libcurl would:
  // CURLE_SSL_CERTPROBLEM); "" otherwise.
  std::string identity_error;

  // Every certificate (and CRL) of the CA file; null when no CA file is
  // configured (libcurl's default bundle then applies) or none ever loaded.
  X509_STORE* trust = nullptr;
  // Why the CA file is unusable, when no good one was ever loaded
  // (CURLE_SSL_CACERT_BADFILE); "" otherwise.
  std::string trust_error;
};

// The result of ApplyTo: a libcurl CURLcode (0 is CURLE_OK) and, on
// failure, why.
struct ApplyResult {
  int curl_code = 0;
  std::string error;
};

// Gives `ctx` (a fresh SSL_CTX of one connection) the snapshot's client
// certificate, chain and key, and, `with_trust`, its CA store as the store
// verification uses (SSL_CTX_set1_cert_store: shared, refcounted, never
// copied). Verify mode and flags are the caller's. A missing part is left as
// `ctx` has it. Fails with CURLE_SSL_CERTPROBLEM (identity_error) or, only
// `with_trust`, CURLE_SSL_CACERT_BADFILE (trust_error), as libcurl reports
// the same problems when it reads the files itself (it ignores an unusable
// CA file when not verifying). Thread-safe for distinct `ctx`.
ApplyResult ApplyTo(const CredentialSnapshot& snapshot, SSL_CTX* ctx,
                    bool with_trust = true);

// The credentials of one TlsSettings, reloaded when their files change.
//
// Current() stat()s the configured files (at most three stat calls, about a
// microsecond each, against about a millisecond of CPU for the handshake
// itself, so every request checks rather than a timer; see the benchmark in
// tests/bench/README.md). A file whose FileStamp changed, or that was
// modified within a second of its last read (timestamps are coarser than a
// quick rewrite, and inodes are reused), is read again and its bytes
// compared; only a part whose bytes changed is parsed again: the client
// certificate and key together, the CA file alone. A part that fails to parse
// (a half-written or corrupt replacement, a key that does not match the
// certificate) keeps the last good objects and is logged once per change on
// disk (warning); it is tried again when its files change again. With no good
// objects ever, the snapshot carries the error and requests fail as they would
// have with libcurl reading the files.
//
// Not thread-safe: one owner (the transport's thread) calls Current(); the
// snapshots it returns are safe anywhere.
class ClientCredentials {
 public:
  // Loads the files at once (see Current()).
  explicit ClientCredentials(TlsSettings settings);

  ClientCredentials(const ClientCredentials&) = delete;
  ClientCredentials& operator=(const ClientCredentials&) = delete;

  // The credentials as the files are now (reloaded if they changed).
  std::shared_ptr<const CredentialSnapshot> Current();

  // How many times a part was parsed (successfully or not), for tests and
  // benchmarks: 2 after construction when both parts are configured.
  int parses() const { return parses_; }

 private:
  // Re-stats the files and parses the parts that changed (all when
  // `force`), replacing current_ when anything was parsed.
  void Refresh(bool force);

  // One configured file: its stamp and bytes as last read.
  struct WatchedFile {
    std::string path;
    FileStamp stamp;
    std::string bytes;
    std::string read_error;  // why the last read failed; "" if it did not
    // Modified less than kRacyWindow before it was read: a later rewrite
    // might leave the same stamp (coarse timestamps, a reused inode), so
    // its bytes are compared until a read sees it older ("racy git").
    bool racy = true;
  };
  // Whether `file`'s bytes differ from the last read (always on the first
  // call); reads it only when its stamp changed or it is racy.
  static bool Changed(WatchedFile& file);

  const TlsSettings settings_;
  WatchedFile cert_;
  WatchedFile key_;  // unused (cert_ holds the key) without a key file
  WatchedFile ca_;
  std::shared_ptr<const CredentialSnapshot> current_;
  int parses_ = 0;
};

}  // namespace qfp::poller

#endif  // QFP_POLLER_CLIENT_CREDENTIALS_H_
