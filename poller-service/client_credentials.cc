#include "poller-service/client_credentials.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

namespace {

// Far above any real PEM file (a CA bundle of every public root is ~200 KB);
// a larger file is refused rather than read into memory.
constexpr off_t kMaxPemBytes = off_t{16} << 20;

// How long after its modification a file's stamp is not trusted alone (see
// ClientCredentials::WatchedFile::racy): above the kernel's timestamp
// granularity (a jiffy, 1-10 ms) with a wide margin.
constexpr int64_t kRacyWindowNs = 1000000000;

FileStamp StampOfStat(const struct stat& st) {
  FileStamp stamp;
  stamp.exists = true;
  stamp.device = st.st_dev;
  stamp.inode = st.st_ino;
  stamp.size = st.st_size;
  stamp.mtime_s = st.st_mtim.tv_sec;
  stamp.mtime_ns = st.st_mtim.tv_nsec;
  stamp.ctime_s = st.st_ctim.tv_sec;
  stamp.ctime_ns = st.st_ctim.tv_nsec;
  return stamp;
}

// The whole of `path`, and the stamp of what was read (fstat of the same
// descriptor, so that a file replaced between stat and read is seen as
// changed on the next check). Returns "" on success, else why not.
std::string ReadPem(const std::string& path, std::string* bytes,
                    FileStamp* stamp) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::StrCat("cannot open ", path, ": ", strerror(errno));
  struct stat st {};
  std::string why;
  if (fstat(fd, &st) != 0) {
    why = absl::StrCat("cannot stat ", path, ": ", strerror(errno));
  } else if (st.st_size > kMaxPemBytes) {
    why = absl::StrCat(path, " is larger than ", kMaxPemBytes, " bytes");
  } else {
    *stamp = StampOfStat(st);
    bytes->clear();
    char buffer[16384];
    for (;;) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        why = absl::StrCat("cannot read ", path, ": ", strerror(errno));
        break;
      }
      if (n == 0) break;
      bytes->append(buffer, static_cast<size_t>(n));
      if (bytes->size() > static_cast<size_t>(kMaxPemBytes)) {
        why = absl::StrCat(path, " is larger than ", kMaxPemBytes, " bytes");
        break;
      }
    }
  }
  close(fd);
  return why;
}

// OpenSSL's queued errors as text ("" when none), and the queue emptied, so
// that a failure here never shows up in a later, unrelated TLS call.
std::string TakeOpenSslErrors() {
  std::string text;
  unsigned long code = 0;  // NOLINT(runtime/int): OpenSSL's type
  while ((code = ERR_get_error()) != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text;
}

std::string WithOpenSsl(std::string why) {
  const std::string detail = TakeOpenSslErrors();
  if (!detail.empty()) absl::StrAppend(&why, " (", detail, ")");
  return why;
}

// pem_password_cb: the configured passphrase, never a terminal prompt (which
// OpenSSL's default callback would do for an encrypted key).
int GivePassphrase(char* buffer, int size, int /*rwflag*/, void* user) {
  const auto* passphrase = static_cast<const std::string*>(user);
  if (passphrase == nullptr || passphrase->empty() || size <= 0) return 0;
  const size_t n = std::min(passphrase->size(), static_cast<size_t>(size));
  std::memcpy(buffer, passphrase->data(), n);
  return static_cast<int>(n);
}

struct Identity {
  X509* certificate = nullptr;
  std::vector<X509*> chain;
  EVP_PKEY* key = nullptr;

  void Free() {
    X509_free(certificate);
    certificate = nullptr;
    for (X509* c : chain) X509_free(c);
    chain.clear();
    EVP_PKEY_free(key);
    key = nullptr;
  }
};

// Parses the client certificate (and the chain after it) and the key;
// returns "" on success.
std::string ParseIdentity(const TlsSettings& settings,
                          const std::string& cert_pem,
                          const std::string& key_pem, Identity* out) {
  ERR_clear_error();
  BIO* bio =
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  if (bio == nullptr) return WithOpenSsl("BIO_new_mem_buf failed");
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (out->certificate == nullptr) {
      out->certificate = cert;
    } else {
      out->chain.push_back(cert);
    }
  }
  BIO_free(bio);
  // The loop ends on "no start line" at the end of the data; anything else
  // (a truncated or corrupt block) makes the file bad.
  const unsigned long last = ERR_peek_last_error();  // NOLINT(runtime/int)
  if (out->certificate == nullptr ||
      (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE)) {
    out->Free();
    return WithOpenSsl(absl::StrCat("could not load the client certificate ",
                                    settings.client_cert_file,
                                    " (a PEM certificate)"));
  }
  ERR_clear_error();

  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  if (bio == nullptr) {
    out->Free();
    return WithOpenSsl("BIO_new_mem_buf failed");
  }
  std::string passphrase = settings.key_passphrase;
  out->key = PEM_read_bio_PrivateKey(bio, nullptr, GivePassphrase, &passphrase);
  BIO_free(bio);
  const std::string& key_file = settings.client_key_file.empty()
                                    ? settings.client_cert_file
                                    : settings.client_key_file;
  if (out->key == nullptr) {
    out->Free();
    return WithOpenSsl(absl::StrCat("could not load the client key ", key_file,
                                    " (a PEM key; wrong passphrase?)"));
  }
  if (X509_check_private_key(out->certificate, out->key) != 1) {
    out->Free();
    return WithOpenSsl(absl::StrCat("the client key ", key_file,
                                    " does not match the certificate ",
                                    settings.client_cert_file));
  }
  return "";
}

// Parses every certificate and CRL of the CA file into a new store; returns
// "" on success.
std::string ParseTrust(const TlsSettings& settings, const std::string& pem,
                       X509_STORE** out) {
  ERR_clear_error();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return WithOpenSsl("BIO_new_mem_buf failed");
  STACK_OF(X509_INFO)* infos =
      PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (infos == nullptr) {
    return WithOpenSsl(
        absl::StrCat("could not read the CA file ", settings.ca_file));
  }
  X509_STORE* store = X509_STORE_new();
  int certificates = 0;
  bool ok = store != nullptr;
  for (int i = 0; ok && i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 != nullptr) {
      ok = X509_STORE_add_cert(store, info->x509) == 1;
      ++certificates;
    }
    if (ok && info->crl != nullptr) {
      ok = X509_STORE_add_crl(store, info->crl) == 1;
    }
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  if (!ok || certificates == 0) {
    X509_STORE_free(store);
    return WithOpenSsl(absl::StrCat(
        "could not load the CA file ", settings.ca_file,
        certificates == 0 && ok ? ": no PEM certificate in it" : ""));
  }
  // What libcurl sets on its own store with peer verification (OpenSSL 3's
  // default anyway); never X509_V_FLAG_PARTIAL_CHAIN (Node.js trusts only
  // complete chains; see curl_transport.h).
  X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST);
  *out = store;
  return "";
}

}  // namespace

bool FileStamp::operator==(const FileStamp& other) const {
  return exists == other.exists && device == other.device &&
         inode == other.inode && size == other.size &&
         mtime_s == other.mtime_s && mtime_ns == other.mtime_ns &&
         ctime_s == other.ctime_s && ctime_ns == other.ctime_ns;
}

FileStamp StampOf(const std::string& path) {
  struct stat st {};
  if (path.empty() || stat(path.c_str(), &st) != 0) return FileStamp{};
  return StampOfStat(st);
}

CredentialSnapshot::~CredentialSnapshot() {
  X509_free(certificate);
  for (X509* c : chain) X509_free(c);
  EVP_PKEY_free(key);
  X509_STORE_free(trust);
}

ApplyResult ApplyTo(const CredentialSnapshot& snapshot, SSL_CTX* ctx,
                    bool with_trust) {
  ApplyResult result;
  if (!snapshot.identity_error.empty()) {
    return {CURLE_SSL_CERTPROBLEM, snapshot.identity_error};
  }
  if (with_trust && !snapshot.trust_error.empty()) {
    return {CURLE_SSL_CACERT_BADFILE, snapshot.trust_error};
  }
  if (snapshot.certificate != nullptr) {
    // Each call takes its own reference (use_certificate, add1, use_PrivateKey
    // up-ref; nothing is copied or parsed).
    bool ok = SSL_CTX_use_certificate(ctx, snapshot.certificate) == 1 &&
              SSL_CTX_clear_chain_certs(ctx) == 1;
    for (X509* c : snapshot.chain) {
      ok = ok && SSL_CTX_add1_chain_cert(ctx, c) == 1;
    }
    ok = ok && SSL_CTX_use_PrivateKey(ctx, snapshot.key) == 1;
    if (!ok) {
      return {CURLE_SSL_CERTPROBLEM,
              WithOpenSsl("could not use the client certificate and key")};
    }
  }
  if (with_trust && snapshot.trust != nullptr) {
    SSL_CTX_set1_cert_store(ctx, snapshot.trust);
  }
  return result;
}

ClientCredentials::ClientCredentials(TlsSettings settings)
    : settings_(std::move(settings)) {
  cert_.path = settings_.client_cert_file;
  key_.path = settings_.client_key_file;
  ca_.path = settings_.ca_file;
  Refresh(/*force=*/true);
}

std::shared_ptr<const CredentialSnapshot> ClientCredentials::Current() {
  Refresh(/*force=*/false);
  return current_;
}

bool ClientCredentials::Changed(WatchedFile& file) {
  if (!file.racy && StampOf(file.path) == file.stamp) return false;
  std::string bytes;
  FileStamp stamp;
  std::string error = ReadPem(file.path, &bytes, &stamp);
  if (!error.empty()) stamp = StampOf(file.path);
  // Racy while the read came less than a window after the modification (or
  // the file could not be read: no stamp to trust).
  const int64_t modified_ns =
      int64_t{stamp.mtime_s} * 1000000000 + stamp.mtime_ns;
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  file.racy = !error.empty() || now_ns - modified_ns < kRacyWindowNs;
  file.stamp = stamp;
  // The first read counts as a change through Refresh's `force`.
  const bool changed = bytes != file.bytes || error != file.read_error;
  file.bytes = std::move(bytes);
  file.read_error = std::move(error);
  return changed;
}

void ClientCredentials::Refresh(bool force) {
  const bool has_identity = !settings_.client_cert_file.empty();
  const bool has_trust = !settings_.ca_file.empty();
  const bool separate_key = !settings_.client_key_file.empty();
  const std::string& key_file =
      separate_key ? settings_.client_key_file : settings_.client_cert_file;
  bool identity_changed = false;
  if (has_identity) {
    // Both checked (no short cut), so that both stamps stay current.
    const bool cert_changed = Changed(cert_);
    const bool key_changed = separate_key && Changed(key_);
    identity_changed = force || cert_changed || key_changed;
  }
  const bool trust_changed = has_trust && (Changed(ca_) || force);
  if (!identity_changed && !trust_changed) return;

  auto next = std::make_shared<CredentialSnapshot>();
  const CredentialSnapshot* last = current_.get();
  // Starts as the last snapshot's objects (own references), replaced below
  // by what parses.
  if (last != nullptr) {
    if (last->certificate != nullptr) {
      X509_up_ref(last->certificate);
      next->certificate = last->certificate;
      for (X509* c : last->chain) {
        X509_up_ref(c);
        next->chain.push_back(c);
      }
      EVP_PKEY_up_ref(last->key);
      next->key = last->key;
    }
    next->identity_error = last->identity_error;
    if (last->trust != nullptr) {
      X509_STORE_up_ref(last->trust);
      next->trust = last->trust;
    }
    next->trust_error = last->trust_error;
  }

  if (identity_changed) {
    ++parses_;
    const WatchedFile& key = separate_key ? key_ : cert_;
    std::string why = cert_.read_error;
    if (why.empty()) why = key.read_error;
    Identity parsed;
    if (why.empty()) {
      why = ParseIdentity(settings_, cert_.bytes, key.bytes, &parsed);
    }
    if (why.empty()) {
      X509_free(next->certificate);
      for (X509* c : next->chain) X509_free(c);
      EVP_PKEY_free(next->key);
      next->certificate = parsed.certificate;
      next->chain = std::move(parsed.chain);
      next->key = parsed.key;
      next->identity_error.clear();
      if (!force) {
        spdlog::info("client certificate {} and key {} changed on disk: loaded",
                     settings_.client_cert_file, key_file);
      }
    } else if (next->certificate != nullptr) {
      // Logged once: the same bytes are not parsed again.
      spdlog::warn("{}; keeping the client certificate loaded before", why);
    } else {
      spdlog::error("{}", why);
      next->identity_error = why;
    }
  }

  if (trust_changed) {
    ++parses_;
    X509_STORE* store = nullptr;
    std::string why = ca_.read_error;
    if (why.empty()) why = ParseTrust(settings_, ca_.bytes, &store);
    if (why.empty()) {
      X509_STORE_free(next->trust);
      next->trust = store;
      next->trust_error.clear();
      if (!force) {
        spdlog::info("CA file {} changed on disk: loaded", settings_.ca_file);
      }
    } else if (next->trust != nullptr) {
      spdlog::warn("{}; keeping the CA certificates loaded before", why);
    } else {
      spdlog::error("{}", why);
      next->trust_error = why;
    }
  }
  current_ = std::move(next);
}

}  // namespace qfp::poller
