// How long handing a failure to the poller's spool holds up the poll loop.
// TrackerClient::Deliver runs on the thread that drives every libcurl
// transfer, so whatever it waits for delays the start of the next poll.
//
//   export LD_PRELOAD=build-bench/tests/libqfp_fault_shim.so
//   QFP_FSYNC_DELAY_MS=20 build-bench/tests/bench/spool_deliver_bench
//
// delivers --failures failures, one every --gap_us microseconds, to a client
// whose spool is SQLite (every commit's fsync slowed down by the shim) and,
// as the baseline in the same run, to one whose spool is in memory, in
// alternating order for --runs runs. No tracker listens: everything stays
// spooled, as during a tracker outage. Prints the largest and the 99th
// percentile Deliver duration of each side, min/median/max over the runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/memory_failure_queue.h"
#include "common/metrics.h"
#include "common/sqlite_failure_queue.h"
#include "poller-service/tracker_client.h"
#include "spdlog/spdlog.h"
#include "tests/bench/spread.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(int, failures, 20000, "failures delivered per side and run");
ABSL_FLAG(int, gap_us, 100, "pause between two deliveries, microseconds");
ABSL_FLAG(int, runs, 3, "runs (min/median/max)");

namespace qfp::poller {
namespace {

using failedpolls::v1::PollFailure;

PollFailure MakeFailure(uint64_t sequence) {
  PollFailure f;
  f.mutable_id()->set_poller_id("bench");
  f.mutable_id()->set_instance_id("run");
  f.mutable_id()->set_sequence(sequence);
  f.mutable_occurred_at()->set_seconds(1764000000);
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name(absl::StrCat("sense", sequence % 50));
  f.set_host(absl::StrCat("sense", sequence % 50, ":4747"));
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_TIMEOUT);
  f.set_error_code("ETIMEDOUT");
  f.set_request_url("https://sense:4747/engine/healthcheck");
  f.set_request_timeout_ms(5000);
  f.set_message("Timeout was reached");
  return f;
}

struct Latency {
  double max_ms = 0;
  double p999_ms = 0;
  double p99_ms = 0;
};

// Delivers the failures and returns Deliver's duration, largest and p99.
Latency Measure(std::unique_ptr<FailureQueue> spool) {
  MetricsRegistry metrics;
  TrackerClientOptions options;
  options.address = "127.0.0.1:9";  // nothing listens: all stays spooled
  TrackerClient client(options, std::move(spool), metrics);
  client.Start();
  const int n = absl::GetFlag(FLAGS_failures);
  std::vector<double> took_ms;
  took_ms.reserve(static_cast<size_t>(n));
  for (int i = 1; i <= n; ++i) {
    PollFailure failure = MakeFailure(static_cast<uint64_t>(i));
    const auto start = std::chrono::steady_clock::now();
    client.Deliver(std::move(failure));
    const auto end = std::chrono::steady_clock::now();
    took_ms.push_back(
        std::chrono::duration<double, std::milli>(end - start).count());
    // Polls finish spread out in time, not all at once. A sleep, not a
    // spin: on 2 cores a spinning loop gets preempted, which would be
    // measured as Deliver's time.
    absl::SleepFor(absl::Microseconds(absl::GetFlag(FLAGS_gap_us)));
  }
  client.Shutdown(absl::ZeroDuration());
  std::sort(took_ms.begin(), took_ms.end());
  return Latency{took_ms.back(), took_ms[took_ms.size() * 999 / 1000],
                 took_ms[took_ms.size() * 99 / 100]};
}

int Main() {
  const char* delay = std::getenv("QFP_FSYNC_DELAY_MS");
  std::printf("fsync delay from the shim: %s ms\n",
              delay != nullptr ? delay : "none (run with the shim preloaded)");
  std::vector<double> sqlite_max, sqlite_p999, sqlite_p99, memory_max,
      memory_p999, memory_p99;
  const int runs = absl::GetFlag(FLAGS_runs);
  for (int run = 0; run < runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      if ((side + run) % 2 == 0) {
        testing::TempDir dir;
        SqliteQueueOptions options;
        options.directory = dir.File("spool");
        options.purpose = "qs-poller spool";
        options.limits.overflow = QueueLimits::Overflow::kDropOldest;
        auto spool = OpenSqliteFailureQueue(options);
        if (!spool.ok()) {
          std::fprintf(stderr, "spool: %s\n",
                       std::string(spool.status().message()).c_str());
          return 1;
        }
        const Latency l = Measure(*std::move(spool));
        sqlite_max.push_back(l.max_ms);
        sqlite_p999.push_back(l.p999_ms);
        sqlite_p99.push_back(l.p99_ms);
        std::printf(
            "  run %d, SQLite spool: max %.3f ms, p99.9 %.3f ms, p99 %.3f ms\n",
            run + 1, l.max_ms, l.p999_ms, l.p99_ms);
      } else {
        MemoryQueueOptions options;
        options.limits.overflow = QueueLimits::Overflow::kDropOldest;
        const Latency l =
            Measure(std::make_unique<MemoryFailureQueue>(options));
        memory_max.push_back(l.max_ms);
        memory_p999.push_back(l.p999_ms);
        memory_p99.push_back(l.p99_ms);
        std::printf(
            "  run %d, memory spool: max %.3f ms, p99.9 %.3f ms, p99 %.3f ms\n",
            run + 1, l.max_ms, l.p999_ms, l.p99_ms);
      }
    }
  }
  auto spread = [](const std::vector<double>& v) {
    return bench::SpreadOf(v).ToString();
  };
  auto median = [](const std::vector<double>& v) {
    return bench::SpreadOf(v).median;
  };
  std::printf(
      "Deliver on the poll loop, %d failures per side, %d runs "
      "(min/median/max):\n"
      "  SQLite spool, largest: %s ms; p99.9: %s ms; p99: %s ms\n"
      "  baseline, memory spool, largest: %s ms; p99.9: %s ms; p99: %s ms\n"
      "  ratio of medians (SQLite/memory): largest %.2f, p99.9 %.2f\n",
      absl::GetFlag(FLAGS_failures), runs, spread(sqlite_max).c_str(),
      spread(sqlite_p999).c_str(), spread(sqlite_p99).c_str(),
      spread(memory_max).c_str(), spread(memory_p999).c_str(),
      spread(memory_p99).c_str(), median(sqlite_max) / median(memory_max),
      median(sqlite_p999) / median(memory_p999));
  return 0;
}

}  // namespace
}  // namespace qfp::poller

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(spdlog::level::err);
  return qfp::poller::Main();
}
