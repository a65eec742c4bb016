// Mutual TLS on the gRPC link between qs-poller and qs-error-tracker: the
// `tls` keys of Butler-SOS.failedPolls.poller and .tracker, the loopback
// rule for plaintext, and gRPC credentials that re-read their files.
//
// Both sides use gRPC's FileWatcherCertificateProvider (grpcpp/security/
// tls_certificate_provider.h, experimental in gRPC 1.51, exported by
// Debian's libgrpc++1.51): it re-reads the certificate, key and CA files
// every `refreshIntervalSeconds` and new handshakes use what it read, so a
// certificate rotated by cert-manager (an atomic swap of the secret volume)
// is used without a restart. Established connections keep the certificates
// they were made with. gRPC 1.51 takes the files as it reads them: a key read
// with the certificate it does not belong to (files replaced one by one)
// makes handshakes fail ("grpc: Invalid private key" in the log) until a
// later read finds the pair matching again; replace them together by a
// rename, as Kubernetes does a Secret volume.
#ifndef QFP_COMMON_GRPC_TLS_H_
#define QFP_COMMON_GRPC_TLS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/config_node.h"
#include "grpcpp/grpcpp.h"

namespace qfp {

// Which end of the link a `tls` section configures.
enum class GrpcTlsSide {
  kServer,  // qs-error-tracker: Butler-SOS.failedPolls.tracker.tls
  kClient,  // qs-poller: Butler-SOS.failedPolls.poller.tls
};

// The keys of a `tls` section; defaults are the initialisers.
struct GrpcTlsConfig {
  bool enable = false;  // enable
  // certFile: this side's certificate chain (PEM, leaf first). keyFile: its
  // private key (PEM, unencrypted: gRPC's file watcher takes no passphrase;
  // cert-manager writes it so). caFile: the CA certificate(s) (PEM) the
  // peer's certificate must chain to. All three required when enable.
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  // serverName (client only): the name the tracker's certificate must hold
  // (DNS or IP subjectAltName); empty: the host of trackerAddress.
  std::string server_name;
  // allowPlaintext: explicit consent to plaintext on a non-loopback address
  // (a warning is logged). Ignored when enable.
  bool allow_plaintext = false;
  // refreshIntervalSeconds: how often the files are read again, 1 to 3600.
  int refresh_interval_seconds = 5;
};

// The key names under `tls` for `side` (common/config_schema.cc checks
// them in both services).
const std::vector<absl::string_view>& GrpcTlsKeys(GrpcTlsSide side);

// Reads the `tls` section at `node` (not set: the defaults). When enable,
// checks what a start needs, recording each problem at its key path: the
// three files set, readable, PEM (certFile and caFile hold certificates,
// keyFile an unencrypted private key) and the key matching the certificate.
// Reads files, writes nothing: safe for --check-config.
GrpcTlsConfig ReadGrpcTls(const ConfigNode& node, GrpcTlsSide side);

// True when the host of `address` (HOST:PORT or HOST, IPv6 in brackets with
// a port) is a loopback one: 127.0.0.0/8, ::1 or "localhost". 0.0.0.0, ::
// and every other name are not.
bool IsLoopbackAddress(absl::string_view address);

// The loopback rule. nullopt when `address` may carry this link: TLS on, or
// a loopback address, or allowPlaintext; else the error to print (exit 2),
// naming `address_key` (the key holding the address, e.g.
// "Butler-SOS.failedPolls.tracker.listen") and `tls_path` (the section,
// e.g. "Butler-SOS.failedPolls.tracker.tls").
std::optional<std::string> CheckPlaintextAllowed(const GrpcTlsConfig& tls,
                                                 absl::string_view address,
                                                 absl::string_view address_key,
                                                 absl::string_view tls_path);

// The tracker's server credentials: insecure when !tls.enable; else TLS
// with certFile/keyFile, requiring a client certificate that chains to
// caFile (a client without one, or with another CA's, fails the handshake).
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const GrpcTlsConfig& tls);

// The poller's channel credentials: insecure when !tls.enable; else TLS
// presenting certFile/keyFile, verifying the tracker's certificate against
// caFile and its name (serverName or the channel target's host).
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const GrpcTlsConfig& tls);

// Sets the name checked in the tracker's certificate (and sent as SNI and
// :authority) to tls.server_name when TLS is on and it is set.
void ApplyServerNameOverride(const GrpcTlsConfig& tls,
                             grpc::ChannelArguments* args);

// Sends gRPC's own log lines (gpr_log: a refused TLS handshake, a key that
// does not match its certificate after a rotation, ...) to spdlog as
// "grpc: ..." at the same level, so they appear in the service's log format.
// Lines of one kind are rate-limited (the first at once, then at most one
// per 10 s carrying how many were held back), so a port scanner cannot
// flood the log. Call once, after InitLogging.
void ForwardGrpcLogsToSpdlog();

// TLS handshakes this process refused or that failed, on either side, since
// start: those gRPC logs as "Handshake failed ..." (a plaintext client, no
// client certificate, an untrusted CA, an expired certificate; counted only
// while ForwardGrpcLogsToSpdlog is on and GRPC_VERBOSITY admits errors, its
// default) plus, on the poller, tracker certificates refused for their name.
// Thread-safe. Exported as qfp_tracker_tls_handshakes_refused_total and
// qfp_poller_tls_handshakes_refused_total.
uint64_t RefusedTlsHandshakes();

}  // namespace qfp

#endif  // QFP_COMMON_GRPC_TLS_H_
