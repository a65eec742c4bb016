#include "common/metrics_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "spdlog/spdlog.h"

// Debian's cpp-httplib is a compiled library, and the feature macros its
// pkg-config file defines (OpenSSL, zlib, brotli) change class layouts, so
// this file is built with exactly those; see common/CMakeLists.txt. Only
// plain HTTP is used.
#include <httplib.h>

namespace qfp {
namespace {

constexpr char kExpositionType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kTextPlain[] = "text/plain; charset=utf-8";

// Scrapes are small and answered at once, so a few workers are plenty; the
// library's default would be at least 8 threads per service.
constexpr size_t kWorkers = 3;
// Bounds on each client, so an idle or stalled connection cannot hold a
// worker (or Stop) for long. Prometheus scrapes every 15 s by default, so
// keeping idle connections longer would gain nothing.
constexpr time_t kIoTimeoutSeconds = 2;
constexpr time_t kKeepAliveSeconds = 2;
// No route takes a body; this caps what a client can make a worker read
// for one anyway.
constexpr size_t kMaxPayloadBytes = 64 * 1024;

constexpr absl::Duration kStartTimeout = absl::Seconds(5);
constexpr absl::Duration kStopTimeout = absl::Seconds(5);

// The library's pool, except that whatever a connection throws stays in its
// worker: an escaping exception would terminate the process. (The socket of
// such a connection may leak; the process lives.)
class GuardedThreadPool final : public httplib::ThreadPool {
 public:
  using ThreadPool::ThreadPool;

  void enqueue(std::function<void()> fn) override {
    ThreadPool::enqueue([fn = std::move(fn)] {
      try {
        fn();
      } catch (const std::exception& e) {
        spdlog::warn("metrics server: request failed: {}", e.what());
      } catch (...) {
        spdlog::warn("metrics server: request failed");
      }
    });
  }
};

struct HostPort {
  std::string host;
  int port = 0;
};

absl::Status ParseAddress(absl::string_view address, HostPort* out) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", absl::CEscape(address), "\" ", why));
  };
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) {
    return invalid("is not host:port");
  }
  absl::string_view host = address.substr(0, colon);
  const absl::string_view port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find_first_of("[]:") != absl::string_view::npos) {
    return invalid("has a malformed host (write IPv6 as [addr]:port)");
  }
  if (host.find_first_of(" \t\r\n") != absl::string_view::npos) {
    return invalid("has whitespace in the host");
  }
  int number = -1;
  const bool all_digits = !port.empty() && port.size() <= 5 &&
                          std::all_of(port.begin(), port.end(), [](char c) {
                            return absl::ascii_isdigit(c);
                          });
  if (!all_digits || !absl::SimpleAtoi(port, &number) || number > 65535) {
    return invalid("has no port in 0..65535");
  }
  out->host = host.empty() ? "0.0.0.0" : std::string(host);
  out->port = number;
  return absl::OkStatus();
}

}  // namespace

struct MetricsServer::State {
  explicit State(const MetricsRegistry* r) : registry(r) {}

  httplib::Server http;
  // Set (and the registry revoked) by Stop; read by the listening thread to
  // tell a requested stop from a failure.
  std::atomic<bool> stopping{false};
  absl::Notification listener_done;

  // Readers render; Stop takes it exclusively to revoke the registry, which
  // waits for renders in flight and turns away later ones.
  absl::Mutex mu;
  const MetricsRegistry* registry ABSL_GUARDED_BY(mu);

  void ServeMetrics(httplib::Response& res) {
    try {
      std::string body;
      {
        absl::ReaderMutexLock lock(&mu);
        if (registry == nullptr) {
          res.status = 503;
          res.set_content("stopping\n", kTextPlain);
          return;
        }
        body = registry->RenderText();
      }
      res.set_content(body, kExpositionType);
    } catch (const std::exception& e) {
      spdlog::error("metrics server: rendering failed: {}", e.what());
      res.status = 500;
      res.set_content("internal error\n", kTextPlain);
    }
  }
};

MetricsServer::MetricsServer(const MetricsRegistry& registry)
    : registry_(registry) {}

MetricsServer::~MetricsServer() { Stop(); }

absl::Status MetricsServer::Start(absl::string_view address) {
  if (state_ != nullptr) {
    return absl::FailedPreconditionError("metrics server already started");
  }
  HostPort where;
  if (absl::Status parsed = ParseAddress(address, &where); !parsed.ok()) {
    return parsed;
  }
  // httplib reports failures by exception in places (threads, regexes,
  // allocation); none may cross this boundary.
  try {
    auto state = std::make_shared<State>(&registry_);
    State* const s = state.get();  // handlers live inside *s: no cycle
    httplib::Server& http = s->http;
    http.new_task_queue = [] { return new GuardedThreadPool(kWorkers); };
    http.set_read_timeout(kIoTimeoutSeconds, 0);
    http.set_write_timeout(kIoTimeoutSeconds, 0);
    http.set_keep_alive_timeout(kKeepAliveSeconds);
    http.set_payload_max_length(kMaxPayloadBytes);
    // The library's default sets SO_REUSEPORT, which lets a second process
    // bind the same port and silently take a share of the scrapes. Plain
    // SO_REUSEADDR still allows a quick restart over TIME_WAIT connections.
    http.set_socket_options([](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    // httplib 0.11 answers a Range of many overlapping parts with that many
    // copies of the body (an 8 KiB request can cost 100+ MiB), and no scraper
    // sends Range, so refuse it before any handler runs.
    http.set_pre_routing_handler(
        [](const httplib::Request& req, httplib::Response& res) {
          if (!req.has_header("Range")) {
            return httplib::Server::HandlerResponse::Unhandled;
          }
          res.status = 416;
          return httplib::Server::HandlerResponse::Handled;
        });
    http.Get("/metrics", [s](const httplib::Request&, httplib::Response& res) {
      s->ServeMetrics(res);
    });
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", kTextPlain);
    });

    const int bound =
        where.port == 0
            ? http.bind_to_any_port(where.host)
            : (http.bind_to_port(where.host, where.port) ? where.port : -1);
    if (bound <= 0) {
      return absl::UnavailableError(absl::StrCat(
          "metrics server cannot listen on ", absl::CEscape(address),
          " (address in use, not local, or not permitted)"));
    }

    listener_ = std::thread([state] {
      bool clean = false;
      try {
        clean = state->http.listen_after_bind();
      } catch (const std::exception& e) {
        spdlog::error("metrics server stopped: {}", e.what());
      } catch (...) {
        spdlog::error("metrics server stopped");
      }
      if (!clean && !state->stopping.load()) {
        spdlog::error("metrics server stopped accepting connections");
      }
      state->listener_done.Notify();
    });
    state_ = std::move(state);
    port_ = bound;
  } catch (const std::exception& e) {
    // Nothing was started: the thread is the last thing that can throw.
    return absl::InternalError(absl::StrCat("metrics server on ",
                                            absl::CEscape(address),
                                            " failed to start: ", e.what()));
  }

  // httplib's stop() is ignored until the accept loop runs; waiting here
  // makes Stop reliable and means the port is served when Start returns.
  const Clock& clock = SystemClock::Get();
  const absl::Duration deadline = clock.Monotonic() + kStartTimeout;
  while (!state_->http.is_running() &&
         !state_->listener_done.HasBeenNotified() &&
         clock.Monotonic() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (!state_->http.is_running() && state_->listener_done.HasBeenNotified()) {
    Stop();
    return absl::InternalError(absl::StrCat(
        "metrics server on ", absl::CEscape(address), " stopped at once"));
  }
  return absl::OkStatus();
}

void MetricsServer::Stop() {
  if (state_ == nullptr) return;
  const std::shared_ptr<State> state = std::move(state_);
  state_ = nullptr;
  port_ = 0;
  state->stopping.store(true);

  const Clock& clock = SystemClock::Get();
  const absl::Duration deadline = clock.Monotonic() + kStopTimeout;
  // Normally already running (Start waited); see there.
  while (!state->http.is_running() && !state->listener_done.HasBeenNotified() &&
         clock.Monotonic() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  // Closes the listening socket; the loop then waits for the workers, each
  // bounded by the I/O and keep-alive timeouts.
  state->http.stop();
  // Polled on the monotonic clock (a Notification's timeout is wall time).
  while (!state->listener_done.HasBeenNotified() &&
         clock.Monotonic() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (state->listener_done.HasBeenNotified()) {
    listener_.join();
  } else {
    // A client is keeping a worker busy. The thread owns `state`, so it can
    // finish on its own; the registry is revoked below, so it cannot touch
    // that after this returns.
    spdlog::warn("metrics server: a connection outlived the stop timeout");
    listener_.detach();
  }
  absl::MutexLock lock(&state->mu);
  state->registry = nullptr;
}

}  // namespace qfp
