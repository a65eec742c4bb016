// Serves a MetricsRegistry over HTTP for Prometheus to scrape:
//   GET /metrics  200, text format 0.0.4
//   GET /healthz  200 "ok"
//   anything else 404
// on its own threads (cpp-httplib), so a slow scraper never touches the
// services' own work.
#ifndef QFP_COMMON_METRICS_SERVER_H_
#define QFP_COMMON_METRICS_SERVER_H_

#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/metrics.h"

namespace qfp {

// Start and Stop are called from one thread (they are not synchronised with
// each other); requests are served concurrently meanwhile.
class MetricsServer {
 public:
  // `registry` must outlive every request, i.e. stay alive until Stop returns
  // (or the destructor, which stops).
  explicit MetricsServer(const MetricsRegistry& registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Listens on `address`, "host:port" ("[::1]:9842" for IPv6; an empty host
  // means every IPv4 interface; port 0 picks a free port, see port()).
  // Returns once connections are accepted. InvalidArgument for a malformed
  // address, Unavailable (naming the address) when it cannot be bound,
  // FailedPrecondition if already started.
  absl::Status Start(absl::string_view address);

  // Stops listening and waits for requests in flight. Bounded: a client
  // that keeps its request open past the bound is left to its own worker,
  // which can no longer reach the registry. Idempotent.
  void Stop();

  // The bound port while started (the chosen one after port 0), else 0.
  int port() const { return port_; }

 private:
  struct State;  // keeps httplib.h out of every includer

  const MetricsRegistry& registry_;
  // Shared with the listening thread, so that a thread left behind by Stop
  // still has the HTTP server it runs in.
  std::shared_ptr<State> state_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace qfp

#endif  // QFP_COMMON_METRICS_SERVER_H_
