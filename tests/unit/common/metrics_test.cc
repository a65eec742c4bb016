// MetricsRegistry's text format (golden), its misuse checks and its
// thread-safety; MetricsServer over real loopback HTTP, including hostile
// requests and a stop that clients cannot hold up. Every wait is bounded; no
// assertion depends on how fast anything runs.
#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics_server.h"
#include "gtest/gtest.h"

namespace qfp {
namespace {

// The bound on any wait in this file; generous, it only stops a hang.
constexpr absl::Duration kHangGuard = absl::Seconds(30);

// ---- Registry ---------------------------------------------------------------

TEST(MetricsRegistryTest, RendersTheTextFormatInRegistrationOrder) {
  MetricsRegistry registry;
  Counter& polls = registry.AddCounter("qfp_polls_total", "Polls attempted.");
  Counter& failed = registry.AddCounter(
      "qfp_poll_failures_total",
      "Failed polls.\nBy source; a \\ and a \"quote\" stay in HELP.",
      {"source", "server"});
  registry.AddCounter("qfp_unused_total", "Labeled, no series yet.", {"x"});
  Gauge& depth = registry.AddGauge("qfp_buffer_points", "Points waiting.");
  Gauge& state = registry.AddGauge("qfp_stream_up", "1 when up.", {"peer"});
  Histogram& latency = registry.AddHistogram(
      "qfp_write_seconds", "Write latency.", {"outcome"}, {0.25, 1, 2.5});
  Histogram& sizes = registry.AddHistogram("qfp_batch_points", "", {}, {});
  registry.AddCallbackGauge("qfp_depth", "Read at render time.",
                            [] { return 42.5; });

  polls.Increment();
  polls.Increment(2);
  failed.WithLabels({"PROXY_API", "sense1"}).Increment();
  failed.WithLabels({"HEALTH_API", "a \"q\" \\ b\nc"}).Increment(5);
  depth.Set(7);
  depth.Add(-2.5);
  state.WithLabels({"tracker"}).Set(1);
  Histogram::Series& ok = latency.WithLabels({"ok"});
  ok.Observe(0.125);
  ok.Observe(0.25);  // on a bound: counts in that bucket ("le")
  ok.Observe(absl::Milliseconds(1500));
  ok.Observe(32);
  latency.WithLabels({"error"});  // exists from now on, all zero
  sizes.Observe(3);

  EXPECT_EQ(
      registry.RenderText(),
      "# HELP qfp_polls_total Polls attempted.\n"
      "# TYPE qfp_polls_total counter\n"
      "qfp_polls_total 3\n"
      "# HELP qfp_poll_failures_total Failed polls.\\nBy source; a \\\\ and "
      "a \"quote\" stay in HELP.\n"
      "# TYPE qfp_poll_failures_total counter\n"
      "qfp_poll_failures_total{source=\"HEALTH_API\","
      "server=\"a \\\"q\\\" \\\\ b\\nc\"} 5\n"
      "qfp_poll_failures_total{source=\"PROXY_API\",server=\"sense1\"} 1\n"
      "# HELP qfp_unused_total Labeled, no series yet.\n"
      "# TYPE qfp_unused_total counter\n"
      "# HELP qfp_buffer_points Points waiting.\n"
      "# TYPE qfp_buffer_points gauge\n"
      "qfp_buffer_points 4.5\n"
      "# HELP qfp_stream_up 1 when up.\n"
      "# TYPE qfp_stream_up gauge\n"
      "qfp_stream_up{peer=\"tracker\"} 1\n"
      "# HELP qfp_write_seconds Write latency.\n"
      "# TYPE qfp_write_seconds histogram\n"
      "qfp_write_seconds_bucket{outcome=\"error\",le=\"0.25\"} 0\n"
      "qfp_write_seconds_bucket{outcome=\"error\",le=\"1\"} 0\n"
      "qfp_write_seconds_bucket{outcome=\"error\",le=\"2.5\"} 0\n"
      "qfp_write_seconds_bucket{outcome=\"error\",le=\"+Inf\"} 0\n"
      "qfp_write_seconds_sum{outcome=\"error\"} 0\n"
      "qfp_write_seconds_count{outcome=\"error\"} 0\n"
      "qfp_write_seconds_bucket{outcome=\"ok\",le=\"0.25\"} 2\n"
      "qfp_write_seconds_bucket{outcome=\"ok\",le=\"1\"} 2\n"
      "qfp_write_seconds_bucket{outcome=\"ok\",le=\"2.5\"} 3\n"
      "qfp_write_seconds_bucket{outcome=\"ok\",le=\"+Inf\"} 4\n"
      "qfp_write_seconds_sum{outcome=\"ok\"} 33.875\n"
      "qfp_write_seconds_count{outcome=\"ok\"} 4\n"
      "# TYPE qfp_batch_points histogram\n"
      "qfp_batch_points_bucket{le=\"+Inf\"} 1\n"
      "qfp_batch_points_sum 3\n"
      "qfp_batch_points_count 1\n"
      "# HELP qfp_depth Read at render time.\n"
      "# TYPE qfp_depth gauge\n"
      "qfp_depth 42.5\n");
}

TEST(MetricsRegistryTest, UnlabeledSeriesRenderAsZeroBeforeFirstUse) {
  MetricsRegistry registry;
  registry.AddCounter("c_total", "c");
  registry.AddGauge("g", "g");
  EXPECT_EQ(registry.RenderText(),
            "# HELP c_total c\n# TYPE c_total counter\nc_total 0\n"
            "# HELP g g\n# TYPE g gauge\ng 0\n");
}

TEST(MetricsRegistryTest, SpecialValuesUseThePrometheusSpellings) {
  MetricsRegistry registry;
  Gauge& g = registry.AddGauge("g", "", {"k"});
  g.WithLabels({"nan"}).Set(std::nan(""));
  g.WithLabels({"pinf"}).Set(std::numeric_limits<double>::infinity());
  g.WithLabels({"ninf"}).Set(-std::numeric_limits<double>::infinity());
  g.WithLabels({"small"}).Set(1e-9);
  g.WithLabels({"third"}).Set(1.0 / 3);
  Histogram& h = registry.AddHistogram("h", "", {}, {1});
  h.Observe(std::nan(""));
  EXPECT_EQ(registry.RenderText(),
            "# TYPE g gauge\n"
            "g{k=\"nan\"} NaN\n"
            "g{k=\"ninf\"} -Inf\n"
            "g{k=\"pinf\"} +Inf\n"
            "g{k=\"small\"} 1e-09\n"
            "g{k=\"third\"} 0.3333333333333333\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\n"
            "h_bucket{le=\"+Inf\"} 1\n"
            "h_sum NaN\n"
            "h_count 1\n");
}

TEST(MetricsRegistryTest, LabelValuesThatAreNotUtf8AreRepaired) {
  MetricsRegistry registry;
  Counter& c = registry.AddCounter("c_total", "", {"v"});
  const std::string bad("bad\xff", 4);
  c.WithLabels({bad}).Increment();
  c.WithLabels({bad}).Increment();              // the same series again
  c.WithLabels({"Z\xC3\xBCrich"}).Increment();  // valid: unchanged
  c.WithLabels({std::string("\xE2\x82", 2)}).Increment();  // truncated
  c.WithLabels({"\xC0\xAF"}).Increment();                  // overlong
  c.WithLabels({"\xED\xA0\x80"}).Increment();              // surrogate
  // U+FFFD is EF BF BD.
  EXPECT_EQ(registry.RenderText(),
            "# TYPE c_total counter\n"
            "c_total{v=\"Z\xC3\xBCrich\"} 1\n"
            "c_total{v=\"bad\xEF\xBF\xBD\"} 2\n"
            "c_total{v=\"\xEF\xBF\xBD\xEF\xBF\xBD\"} 2\n"
            "c_total{v=\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"} 1\n");
}

TEST(MetricsRegistryTest, ACallbackThatThrowsReadsNaN) {
  MetricsRegistry registry;
  registry.AddCallbackGauge(
      "depth", "", []() -> double { throw std::runtime_error("owner gone"); });
  EXPECT_EQ(registry.RenderText(), "# TYPE depth gauge\ndepth NaN\n");
}

TEST(MetricsRegistryTest, NameRules) {
  EXPECT_TRUE(IsValidMetricName("qfp_polls_total"));
  EXPECT_TRUE(IsValidMetricName(":ns:x_1"));
  EXPECT_TRUE(IsValidMetricName("_"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1x"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_FALSE(IsValidMetricName("caf\xC3\xA9"));
  EXPECT_TRUE(IsValidLabelName("source"));
  EXPECT_TRUE(IsValidLabelName("_x9"));
  EXPECT_FALSE(IsValidLabelName(""));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("9a"));
}

TEST(MetricsRegistryTest, BucketHelpers) {
  EXPECT_EQ(ExponentialBuckets(0.001, 10, 4),
            (std::vector<double>{0.001, 0.01, 0.1, 1.0}));
  const std::vector<double> latency = DefaultLatencyBuckets();
  ASSERT_FALSE(latency.empty());
  EXPECT_EQ(latency.front(), 0.005);
  EXPECT_EQ(latency.back(), 10);
}

// Misuse aborts (see metrics.h for why); each message names the problem.
using MetricsRegistryDeathTest = ::testing::Test;

TEST_F(MetricsRegistryDeathTest, InvalidNamesAbort) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.AddCounter("1polls", "h"), "invalid metric name");
  EXPECT_DEATH(registry.AddGauge("g", "h", {"__x"}), "invalid label name");
  EXPECT_DEATH(registry.AddGauge("g", "h", {"a", "a"}), "declared twice");
  EXPECT_DEATH(registry.AddHistogram("h", "h", {"le"}, {1}), "reserved");
}

TEST_F(MetricsRegistryDeathTest, DuplicateNamesAbort) {
  MetricsRegistry registry;
  registry.AddCounter("x_total", "h");
  registry.AddHistogram("lat", "h", {}, {1});
  EXPECT_DEATH(registry.AddGauge("x_total", "h"), "registered twice");
  // A histogram's samples take three more names.
  EXPECT_DEATH(registry.AddCounter("lat_count", "h"), "registered twice");
  registry.AddGauge("y_sum", "h");
  EXPECT_DEATH(registry.AddHistogram("y", "h", {}, {1}), "y_sum registered");
}

TEST_F(MetricsRegistryDeathTest, HistogramBoundsMustIncrease) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.AddHistogram("h", "", {}, {1, 1}), "strictly");
  EXPECT_DEATH(registry.AddHistogram("h", "", {}, {2, 1}), "strictly");
  EXPECT_DEATH(registry.AddHistogram(
                   "h", "", {}, {1, std::numeric_limits<double>::infinity()}),
               "finite");
  EXPECT_DEATH(ExponentialBuckets(0, 2, 3), "start > 0");
}

TEST_F(MetricsRegistryDeathTest, WrongNumberOfLabelValuesAborts) {
  MetricsRegistry registry;
  Counter& labeled = registry.AddCounter("a_total", "", {"source"});
  Counter& plain = registry.AddCounter("b_total", "");
  EXPECT_DEATH(labeled.WithLabels({"x", "y"}), "2 label values given for 1");
  EXPECT_DEATH(labeled.Increment(), "update it through WithLabels");
  EXPECT_DEATH(plain.WithLabels({"x"}), "1 label values given for 0");
}

TEST(MetricsRegistryTest, ConcurrentUpdatesSumExactly) {
  MetricsRegistry registry;
  Counter& counter = registry.AddCounter("events_total", "", {"who"});
  Gauge& gauge = registry.AddGauge("level", "");
  Histogram& histogram = registry.AddHistogram("lat", "", {"who"}, {0.25, 1});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;

  std::atomic<bool> done{false};
  std::thread renderer([&] {
    // Rendering while series are created and updated must be safe.
    while (!done.load()) {
      const std::string text = registry.RenderText();
      EXPECT_TRUE(absl::StartsWith(text, "# TYPE events_total counter\n"));
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter::Series& shared = counter.WithLabels({"shared"});
      const std::string own = absl::StrCat("t", t % 2);
      for (int i = 0; i < kPerThread; ++i) {
        shared.Increment();
        counter.WithLabels({own}).Increment(2);  // looked up every time
        gauge.Add(1);
        histogram.WithLabels({"all"}).Observe(0.5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  done.store(true);
  renderer.join();

  const uint64_t total = uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(counter.WithLabels({"shared"}).value(), total);
  EXPECT_EQ(
      counter.WithLabels({"t0"}).value() + counter.WithLabels({"t1"}).value(),
      2 * total);
  EXPECT_EQ(gauge.value(), static_cast<double>(total));
  Histogram::Series& all = histogram.WithLabels({"all"});
  EXPECT_EQ(all.count(), total);
  EXPECT_EQ(all.sum(), 0.5 * static_cast<double>(total));
  EXPECT_EQ(all.bucket_counts(), (std::vector<uint64_t>{0, total, 0}));
}

// ---- Server -----------------------------------------------------------------

// One TCP connection to 127.0.0.1, closed on destruction.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr),
                                     sizeof(addr)) == 0;
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool connected() const { return connected_; }

  bool Send(absl::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response: up to the end of its body as Content-Length says, or
  // until the peer closes (or kHangGuard passes). Stopping at the body's end
  // keeps keep-alive connections from waiting for the server's idle timeout.
  std::string ReadResponse() {
    std::string out;
    const absl::Time deadline = absl::Now() + kHangGuard;
    char buf[4096];
    while (absl::Now() < deadline && !Complete(out)) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  static bool Complete(const std::string& raw) {
    const size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const absl::string_view head = absl::string_view(raw).substr(0, end);
    constexpr absl::string_view kLength = "\r\nContent-Length: ";
    const size_t at = head.find(kLength);
    if (at == absl::string_view::npos) return false;  // read to the close
    size_t length = 0;
    const absl::string_view rest = head.substr(at + kLength.size());
    if (!absl::SimpleAtoi(rest.substr(0, rest.find("\r\n")), &length)) {
      return false;
    }
    return raw.size() >= end + 4 + length;
  }

  int fd_ = -1;
  bool connected_ = false;
};

struct HttpReply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

HttpReply Parse(const std::string& raw) {
  HttpReply reply;
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return reply;
  reply.head = raw.substr(0, end);
  reply.body = raw.substr(end + 4);
  const size_t space = reply.head.find(' ');
  if (space != std::string::npos) {
    absl::SimpleAtoi(absl::string_view(reply.head).substr(space + 1, 3),
                     &reply.status);
  }
  return reply;
}

// Sends `request` as is on a new connection and reads one answer.
HttpReply Exchange(int port, absl::string_view request) {
  Conn conn(port);
  EXPECT_TRUE(conn.connected());
  if (!conn.connected() || !conn.Send(request)) return {};
  return Parse(conn.ReadResponse());
}

HttpReply Get(int port, absl::string_view path,
              const std::vector<std::string>& headers = {}) {
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n");
  for (const std::string& header : headers) {
    absl::StrAppend(&request, header, "\r\n");
  }
  absl::StrAppend(&request, "Connection: close\r\n\r\n");
  return Exchange(port, request);
}

class MetricsServerTest : public ::testing::Test {
 protected:
  MetricsServerTest() {
    registry_.AddCounter("qfp_polls_total", "Polls.", {"source"})
        .WithLabels({"HEALTH_API"})
        .Increment(3);
  }

  MetricsRegistry registry_;
};

TEST_F(MetricsServerTest, ServesMetricsAndHealthOverLoopback) {
  MetricsServer server(registry_);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  ASSERT_GT(server.port(), 0);

  const HttpReply metrics = Get(server.port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_TRUE(absl::StrContains(
      metrics.head, "Content-Type: text/plain; version=0.0.4; charset=utf-8"))
      << metrics.head;
  EXPECT_EQ(metrics.body, registry_.RenderText());
  EXPECT_TRUE(absl::StrContains(metrics.body,
                                "qfp_polls_total{source=\"HEALTH_API\"} 3\n"));

  // Rendered per request, not cached.
  registry_.AddGauge("qfp_later", "Registered after Start.").Set(2);
  EXPECT_TRUE(absl::StrContains(Get(server.port(), "/metrics?x=1").body,
                                "qfp_later 2\n"));

  const HttpReply health = Get(server.port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok");
}

TEST_F(MetricsServerTest, EveryOtherPathIs404) {
  MetricsServer server(registry_);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  for (const char* path : {"/", "/metric", "/metrics/", "/metricsx",
                           "/healthz/x", "/%2e%2e/etc/passwd"}) {
    EXPECT_EQ(Get(server.port(), path).status, 404) << path;
  }
  EXPECT_EQ(Exchange(server.port(),
                     "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n")
                .status,
            404);
}

TEST_F(MetricsServerTest, HostileRequestsNeverBringItDown) {
  MetricsServer server(registry_);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  const int port = server.port();
  const std::vector<std::string> hostile = {
      "garbage\r\n\r\n",
      std::string("\0\0\0\xff\xfe\r\n\r\n", 9),
      "GET\r\n\r\n",
      "GET /metrics\r\n\r\n",
      "BREW /metrics HTTP/1.1\r\n\r\n",
      "GET /metrics HTTP/9.9\r\n\r\n",
      absl::StrCat("GET /", std::string(100000, 'a'), " HTTP/1.1\r\n\r\n"),
      absl::StrCat("GET /metrics HTTP/1.1\r\nX: ", std::string(100000, 'b'),
                   "\r\n\r\n"),
      "GET /metrics HTTP/1.1\r\nRange: bytes=99999999999999999999999-1\r\n"
      "Connection: close\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nRange: bytes=0-0,0-0,0-0,5-1,-1,-99999999\r\n"
      "Connection: close\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n"
      "Connection: close\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n"
      "Connection: close\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\nzzzz\r\n",
      "GET /%zz%00%ff HTTP/1.1\r\nConnection: close\r\n\r\n",
  };
  for (const std::string& request : hostile) {
    Conn conn(port);
    ASSERT_TRUE(conn.connected());
    conn.Send(request);  // the server may close before reading it all
    const HttpReply reply = Parse(conn.ReadResponse());
    // Whatever it answered, it must still answer properly afterwards.
    EXPECT_EQ(Get(port, "/healthz").status, 200)
        << "after " << request.substr(0, 60);
    if (reply.status == 200) {
      EXPECT_EQ(reply.body, registry_.RenderText());
    }
  }
  // Many overlapping ranges would make the body many times over; refused.
  std::string ranges = "bytes=0-";
  for (int i = 0; i < 1000; ++i) ranges += ",0-";
  const HttpReply ranged = Get(port, "/metrics", {"Range: " + ranges});
  EXPECT_EQ(ranged.status, 416);
  EXPECT_LT(ranged.body.size(), 1000u);
  EXPECT_EQ(Get(port, "/metrics", {"Range: bytes=0-10"}).status, 416);
  // As long as a header line may be: httplib parses Range with std::regex,
  // which recurses per character.
  std::string longest = "bytes=0-";
  while (longest.size() < 8150) longest += ",0-";
  EXPECT_NE(Get(port, "/metrics", {"Range: " + longest}).status, 200);
  EXPECT_EQ(Get(port, "/healthz").status, 200);

  // A peer that connects and leaves at once.
  { Conn gone(port); }
  EXPECT_EQ(Get(port, "/metrics").status, 200);
}

TEST_F(MetricsServerTest, ATakenPortFailsNamingTheAddress) {
  MetricsServer first(registry_);
  ASSERT_TRUE(first.Start("127.0.0.1:0").ok());
  const std::string address = absl::StrCat("127.0.0.1:", first.port());

  MetricsServer second(registry_);
  const absl::Status status = second.Start(address);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(status.message(), address)) << status.message();
  EXPECT_EQ(second.port(), 0);
  // The first one is unaffected.
  EXPECT_EQ(Get(first.port(), "/healthz").status, 200);
}

TEST_F(MetricsServerTest, MalformedAddressesAreInvalidArguments) {
  MetricsServer server(registry_);
  for (const char* address :
       {"", "9090", "localhost", "127.0.0.1:", "127.0.0.1:99999",
        "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80x", "::1:9090",
        "[::1:9090", "bad host:80"}) {
    const absl::Status status = server.Start(address);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_TRUE(absl::StrContains(status.message(), "metrics address"))
        << status.message();
  }
  EXPECT_EQ(server.port(), 0);
}

TEST_F(MetricsServerTest, StartTwiceFailsAndStopIsIdempotentAndRestartable) {
  MetricsServer server(registry_);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  EXPECT_EQ(server.Start("127.0.0.1:0").code(),
            absl::StatusCode::kFailedPrecondition);
  const int port = server.port();
  server.Stop();
  server.Stop();
  EXPECT_EQ(server.port(), 0);
  EXPECT_FALSE(Conn(port).connected());  // no longer listening

  ASSERT_TRUE(server.Start(absl::StrCat("127.0.0.1:", port)).ok());
  EXPECT_EQ(server.port(), port);  // the port was released
  EXPECT_EQ(Get(server.port(), "/healthz").status, 200);
}

TEST_F(MetricsServerTest, EmptyHostListensOnEveryInterface) {
  MetricsServer server(registry_);
  ASSERT_TRUE(server.Start(":0").ok());
  EXPECT_EQ(Get(server.port(), "/healthz").status, 200);
}

// Runs server->Stop() on another thread; true if it returned within the guard.
bool StopReturns(MetricsServer* server) {
  absl::Notification stopped;
  std::thread stopper([&] {
    server->Stop();
    stopped.Notify();
  });
  const bool returned = stopped.WaitForNotificationWithTimeout(kHangGuard);
  if (returned) {
    stopper.join();
  } else {
    stopper.detach();  // the test fails; do not hang it as well
  }
  return returned;
}

TEST_F(MetricsServerTest, StopReturnsDespiteIdleAndHalfSentConnections) {
  MetricsServer server(registry_);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  const int port = server.port();
  Conn idle(port);
  Conn half(port);
  Conn kept_alive(port);
  ASSERT_TRUE(idle.connected() && half.connected() && kept_alive.connected());
  half.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n");
  // A finished request on a keep-alive connection, which then stays open.
  kept_alive.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Parse(kept_alive.ReadResponse()).status, 200);

  EXPECT_TRUE(StopReturns(&server));
  EXPECT_FALSE(Conn(port).connected());
}

TEST_F(MetricsServerTest, AClientThatNeverFinishesCannotHoldStopOrTheRegistry) {
  auto registry = std::make_unique<MetricsRegistry>();
  registry->AddCounter("c_total", "");
  MetricsServer server(*registry);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  Conn slow(server.port());
  ASSERT_TRUE(slow.connected());
  // A first request answered means a worker owns the connection; a
  // connection still queued when Stop comes would just be closed.
  ASSERT_TRUE(slow.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(Parse(slow.ReadResponse()).status, 200);
  ASSERT_TRUE(slow.Send("GET /metrics HTTP/1.1\r\n"));

  // Keeps the second request alive with a header line now and then, well
  // inside the server's per-read timeout, until Stop has returned.
  std::atomic<bool> stop_dribbling{false};
  std::atomic<bool> dribbled_throughout{true};
  std::thread dribbler([&] {
    const absl::Time deadline = absl::Now() + kHangGuard;
    while (!stop_dribbling.load() && absl::Now() < deadline) {
      if (!slow.Send("X-Slow: 1\r\n")) {
        dribbled_throughout.store(false);
        break;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  });
  EXPECT_TRUE(StopReturns(&server));
  stop_dribbling.store(true);
  dribbler.join();
  if (!dribbled_throughout.load()) {
    // The server closed the connection before Stop returned (it can, when
    // the keep-alive socket was back in the accept queue): then there is no
    // late request to check. Seen under parallel ctest on 2 cores.
    GTEST_SKIP() << "connection closed at Stop; nothing left to check";
  }

  // The registry may go now; the request, finished late, must not reach it.
  registry.reset();
  // Under load the server may drop the straggler instead of answering it;
  // either is fine, as long as it never reaches the freed registry (which
  // would be a crash here, or an ASan report).
  const bool sent = slow.Send("Connection: close\r\n\r\n");
  const std::string raw = sent ? slow.ReadResponse() : std::string();
  if (raw.empty()) {
    GTEST_SKIP() << "connection closed after Stop; nothing left to check";
  }
  const HttpReply reply = Parse(raw);
  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(reply.body, "stopping\n");
}

TEST_F(MetricsServerTest, DestructorStops) {
  int port = 0;
  {
    MetricsServer server(registry_);
    ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
    port = server.port();
    EXPECT_EQ(Get(port, "/healthz").status, 200);
  }
  EXPECT_FALSE(Conn(port).connected());
}

TEST(CounterTest, SumAddsEverySeries) {
  MetricsRegistry registry;
  Counter& c = registry.AddCounter("qfp_sum_total", "Sum.", {"source", "kind"});
  EXPECT_EQ(c.Sum(), 0u);
  c.WithLabels({"a", "x"}).Increment(3);
  c.WithLabels({"b", "x"}).Increment(4);
  c.WithLabels({"a", "y"}).Increment();
  EXPECT_EQ(c.Sum(), 8u);
  Counter& plain = registry.AddCounter("qfp_plain_total", "Plain.");
  plain.Increment(5);
  EXPECT_EQ(plain.Sum(), 5u);
}

}  // namespace
}  // namespace qfp
