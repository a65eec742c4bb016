// Tracker ingest benchmarks against a real, private influxd. Each mode
// prints its figure and the ratio to a baseline measured in the same run.
//
//   tracker_ingest_bench --mode=ingest   failures/s from a gRPC client
//       through the tracker into influxd, vs. Butler SOS's way of writing
//       (one HTTP write per point).
//   tracker_ingest_bench --mode=durable  failures/s acknowledged with the
//       SQLite queue on (walDirectory set) vs. off (memory queue), with 1
//       and with 8 concurrent producer streams. The two sides alternate
//       which goes first; --runs runs, reported as min/median/max.
//   tracker_ingest_bench --mode=drain    time to drain a backlog of
//       --failures failures from the SQLite queue into influxd, vs.
//       influxd's own bulk-write rate (5000-line bodies, no tracker), in
//       alternating order; --runs runs, reported as min/median/max.
//
// The tracker runs in this process (service, durable queue, pipeline,
// writer: the same objects qs-error-tracker builds); the clients talk to it
// over real gRPC on loopback.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sqlite_failure_queue.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "tests/bench/spread.h"
#include "tests/testing/influxd_process.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/temp_dir.h"
#include "tracker-service/durable_queue.h"
#include "tracker-service/error_counter.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/tracker_service.h"

ABSL_FLAG(std::string, mode, "ingest", "ingest, durable or drain");
ABSL_FLAG(int, failures, 200000, "failures sent (ingest, durable, drain)");
ABSL_FLAG(int, baseline_points, 3000,
          "points written one HTTP request each for the ingest baseline");
ABSL_FLAG(int, batch, 500, "failures per gRPC request");
ABSL_FLAG(int, runs, 3, "runs of durable and drain (min/median/max)");

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

PollFailure MakeFailure(uint64_t sequence, int64_t base_seconds,
                        const std::string& producer = "bench") {
  PollFailure f;
  f.mutable_id()->set_poller_id(producer);
  f.mutable_id()->set_instance_id("run");
  f.mutable_id()->set_sequence(sequence);
  // Distinct timestamps: every failure is its own point.
  f.mutable_occurred_at()->set_seconds(base_seconds +
                                       static_cast<int64_t>(sequence / 1000));
  f.mutable_occurred_at()->set_nanos(static_cast<int32_t>(sequence % 1000));
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name(absl::StrCat("sense", sequence % 50));
  f.set_host(absl::StrCat("sense", sequence % 50, ":4747"));
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_CONNECTION_REFUSED);
  f.set_error_code("ECONNREFUSED");
  f.set_request_url("https://sense:4747/engine/healthcheck");
  f.set_request_timeout_ms(5000);
  f.set_remote_address("10.0.0.5");
  f.set_remote_port(4747);
  f.set_syscall("connect");
  return f;
}

// Points stored in `db` (SELECT count), -1 on error.
int64_t CountPoints(const testing::InfluxdProcess& influx,
                    const std::string& db) {
  absl::StatusOr<std::string> answer =
      influx.Query("SELECT count(error_count) FROM butler_sos_errors", db);
  if (!answer.ok()) return -1;
  nlohmann::json json = nlohmann::json::parse(*answer, nullptr, false);
  try {
    return json["results"][0]["series"][0]["values"][0][1].get<int64_t>();
  } catch (const nlohmann::json::exception&) {
    return 0;  // no series yet
  }
}

bool WaitForPoints(const testing::InfluxdProcess& influx, const std::string& db,
                   int64_t n, absl::Duration limit) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (CountPoints(influx, db) >= n) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

InfluxV1Settings Settings(const testing::InfluxdProcess& influx,
                          const std::string& db) {
  InfluxV1Settings s;
  s.host = influx.host();
  s.port = influx.http_port();
  s.database = db;
  return s;
}

// The tracker, in this process, listening on a loopback port.
struct Tracker {
  TrackerConfig config;
  MetricsRegistry metrics;
  std::unique_ptr<InfluxWriter> writer;
  std::unique_ptr<DurableQueue> queue;
  std::unique_ptr<ErrorCounter> counter;
  std::unique_ptr<TrackerService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  // `queue_dir` empty: the memory queue. `reachable` false: the writer
  // points at a loopback port where nothing listens (InfluxDB down, or on
  // another machine as far as this machine's CPU is concerned).
  Tracker(const testing::InfluxdProcess& influx, const std::string& db,
          const std::string& queue_dir, bool reachable = true) {
    config.max_batch_size = 5000;
    config.dedupe_window = 0;  // every id is new here
    InfluxV1Settings settings = Settings(influx, db);
    if (!reachable) settings.port = 9;  // discard: nothing listens here
    writer = MakeInfluxV1Writer(settings);
    DurableQueueOptions options;
    options.directory = queue_dir;
    options.max_records = 100000000;
    options.max_bytes = uint64_t{16} << 30;
    options.pipeline.max_batch = 5000;
    options.pipeline.flush_interval = absl::Milliseconds(100);
    auto opened = DurableQueue::Open(options, *writer, metrics);
    if (!opened.ok()) {
      std::fprintf(stderr, "queue: %s\n",
                   std::string(opened.status().message()).c_str());
      std::exit(1);
    }
    queue = *std::move(opened);
    counter = std::make_unique<ErrorCounter>(SystemClock::Get());
    queue->Start();
    service = std::make_unique<TrackerService>(config, counter.get(),
                                               queue.get(), metrics);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
  }
  ~Tracker() {
    server->Shutdown(std::chrono::system_clock::now());
    queue->Stop(absl::Seconds(60));
  }
};

// Streams `n` failures from `producer` and waits for every acknowledgement;
// returns the time from the first send to the last acknowledgement.
absl::Duration SendAll(int port, int n, int batch, int64_t base_seconds,
                       const std::string& producer = "bench") {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto stub = failedpolls::v1::FailedPollTracker::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->ReportFailures(&context);
  std::atomic<int64_t> acked{0};
  std::thread reader([&] {
    ReportFailuresResponse response;
    while (stream->Read(&response)) acked += response.accepted_size();
  });
  const absl::Time start = absl::Now();
  for (int sent = 0; sent < n;) {
    ReportFailuresRequest request;
    for (int i = 0; i < batch && sent < n; ++i, ++sent) {
      *request.add_failures() =
          MakeFailure(static_cast<uint64_t>(sent) + 1, base_seconds, producer);
    }
    if (!stream->Write(request)) break;
  }
  stream->WritesDone();
  reader.join();
  const absl::Duration took = absl::Now() - start;
  grpc::Status status = stream->Finish();
  if (!status.ok() || acked.load() != n) {
    std::fprintf(stderr, "stream ended: %s, %lld of %d acknowledged\n",
                 status.error_message().c_str(),
                 static_cast<long long>(acked.load()), n);  // NOLINT
    std::exit(1);
  }
  return took;
}

// `producers` concurrent streams of n / producers failures each; returns the
// time until the last acknowledgement.
absl::Duration SendConcurrently(int port, int n, int producers, int batch,
                                int64_t base_seconds) {
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([=] {
      SendAll(port, n / producers, batch, base_seconds,
              absl::StrCat("bench-", p));
    });
  }
  for (std::thread& thread : threads) thread.join();
  return absl::Now() - start;
}

using bench::Spread;
using bench::SpreadOf;

double PerSecond(int64_t n, absl::Duration d) {
  return static_cast<double>(n) / absl::ToDoubleSeconds(d);
}

int Ingest(const testing::InfluxdProcess& influx) {
  const int n = absl::GetFlag(FLAGS_failures);
  const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86400;
  double ours = 0;
  {
    Tracker tracker(influx, "bench_ours", "");
    const absl::Time start = absl::Now();
    SendAll(tracker.port, n, absl::GetFlag(FLAGS_batch), base);
    if (!WaitForPoints(influx, "bench_ours", n, absl::Minutes(10))) {
      std::fprintf(stderr, "not every point reached influxd\n");
      return 1;
    }
    ours = PerSecond(n, absl::Now() - start);
  }
  // Butler SOS's way: one HTTP write per error point, one after another.
  const int m = absl::GetFlag(FLAGS_baseline_points);
  std::unique_ptr<InfluxWriter> writer =
      MakeInfluxV1Writer(Settings(influx, "bench_baseline"));
  if (!writer->Prepare().ok()) return 1;
  PointSchema schema;
  const absl::Time start = absl::Now();
  for (int i = 1; i <= m; ++i) {
    absl::StatusOr<std::string> line = EncodeLine(
        FailureToPoint(MakeFailure(static_cast<uint64_t>(i), base), schema));
    if (!line.ok() || writer->Write(*line).kind != WriteResult::Kind::kOk) {
      return 1;
    }
  }
  const double baseline = PerSecond(m, absl::Now() - start);
  std::printf(
      "ingest: %d failures gRPC client -> tracker -> influxd: %.0f "
      "failures/s\n"
      "baseline (Butler SOS: one HTTP write per point, %d points): %.0f "
      "points/s\n"
      "ratio: %.1fx\n",
      n, ours, m, baseline, ours / baseline);
  return 0;
}

int Durable(const testing::InfluxdProcess& influx) {
  const int n = absl::GetFlag(FLAGS_failures);
  const int runs = absl::GetFlag(FLAGS_runs);
  const int batch = absl::GetFlag(FLAGS_batch);
  // First what the store costs the front door alone (the points wait, as
  // during an InfluxDB outage, or with InfluxDB on its own machine); then
  // with this machine's influxd taking the points at the same time, which
  // on 2 cores takes most of the CPU from both sides.
  int block = 0;
  for (const bool reachable : {false, true}) {
    for (const int producers : {1, 8}) {
      ++block;
      std::vector<double> on_rates, off_rates, ratios;
      for (int run = 0; run < runs; ++run) {
        const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86400 -
                             (block * runs + run) * 3600;
        double on = 0, off = 0;
        // Alternate which side goes first: whatever the machine does
        // during the run (influxd compacting, page cache) falls on both.
        for (int side = 0; side < 2; ++side) {
          const bool queue_on = (side + run) % 2 == 0;
          testing::TempDir dir;
          const std::string db =
              absl::StrCat("bench_", queue_on ? "on" : "off", block, "_", run);
          Tracker tracker(influx, db, queue_on ? dir.File("queue") : "",
                          reachable);
          const double rate = PerSecond(
              n, SendConcurrently(tracker.port, n, producers, batch, base));
          (queue_on ? on : off) = rate;
          if (queue_on) {
            const double commits = testing::MetricValue(
                tracker.metrics, "qfp_tracker_queue_commits_total");
            std::printf(
                "  run %d, %d producer(s), queue on: %.0f failures/s, %.0f "
                "commits, %.2f ms per commit (BEGIN to COMMIT)\n",
                run + 1, producers, rate, commits,
                1000 *
                    testing::MetricValue(
                        tracker.metrics,
                        "qfp_tracker_queue_commit_duration_seconds_sum") /
                    commits);
          } else {
            std::printf(
                "  run %d, %d producer(s), queue off: %.0f failures/s\n",
                run + 1, producers, rate);
          }
        }
        on_rates.push_back(on);
        off_rates.push_back(off);
        ratios.push_back(on / off);
      }
      const Spread on = SpreadOf(on_rates), off = SpreadOf(off_rates),
                   ratio = SpreadOf(ratios);
      std::printf(
          "durable ingest, %s, %d producer stream(s), %d failures per side, "
          "%d runs (min/median/max):\n"
          "  SQLite queue on (acknowledged after COMMIT): %.0f / %.0f / %.0f "
          "failures/s\n"
          "  baseline, queue off (memory): %.0f / %.0f / %.0f failures/s\n"
          "  ratio on/off: %.2f / %.2f / %.2f\n",
          reachable ? "influxd on this machine writing the points"
                    : "InfluxDB unreachable (points wait)",
          producers, n, runs, on.min, on.median, on.max, off.min, off.median,
          off.max, ratio.min, ratio.median, ratio.max);
    }
  }
  return 0;
}

// Fills `directory`'s queue with n encoded failures, none written: the
// backlog an InfluxDB outage leaves.
bool FillBacklog(const std::string& directory, int n, int64_t base) {
  SqliteQueueOptions options;
  options.directory = directory;
  options.purpose = "qs-error-tracker queue";
  options.limits.max_records = 100000000;
  options.limits.max_bytes = uint64_t{16} << 30;
  auto queue = OpenSqliteFailureQueue(options);
  if (!queue.ok()) return false;
  PointSchema schema;
  std::vector<std::string> lines;
  for (int i = 1; i <= n; ++i) {
    lines.push_back(*EncodeLine(
        FailureToPoint(MakeFailure(static_cast<uint64_t>(i), base), schema)));
    if (lines.size() == 5000 || i == n) {
      if (!(*queue)->AppendAndWait(std::move(lines)).ok()) return false;
      lines.clear();
    }
  }
  return true;
}

int Drain(const testing::InfluxdProcess& influx) {
  const int n = absl::GetFlag(FLAGS_failures);
  const int runs = absl::GetFlag(FLAGS_runs);
  std::vector<double> drain_rates, bulk_rates, ratios;
  for (int run = 0; run < runs; ++run) {
    const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86400 - run * 3600;
    double drain = 0, bulk = 0;
    for (int side = 0; side < 2; ++side) {
      if ((side + run) % 2 == 0) {
        testing::TempDir dir;
        if (!FillBacklog(dir.File("queue"), n, base)) return 1;
        const std::string db = absl::StrCat("bench_drain_", run);
        const absl::Time start = absl::Now();
        Tracker tracker(influx, db, dir.File("queue"));
        const absl::Time give_up = start + absl::Minutes(20);
        while (tracker.queue->backlog() > 0 && absl::Now() < give_up) {
          absl::SleepFor(absl::Milliseconds(20));
        }
        if (tracker.queue->backlog() > 0) {
          std::fprintf(stderr, "backlog not drained\n");
          return 1;
        }
        drain = n / absl::ToDoubleSeconds(absl::Now() - start);
        if (CountPoints(influx, db) != n) {
          std::fprintf(
              stderr, "drained, but influxd holds %lld of %d\n",
              static_cast<long long>(CountPoints(influx, db)),  // NOLINT
              n);
          return 1;
        }
      } else {
        // influxd's own bulk rate: the same points, 5000-line bodies.
        std::unique_ptr<InfluxWriter> writer = MakeInfluxV1Writer(
            Settings(influx, absl::StrCat("bench_bulk_", run)));
        if (!writer->Prepare().ok()) return 1;
        PointSchema schema;
        std::vector<std::string> lines;
        for (int i = 1; i <= n; ++i) {
          lines.push_back(*EncodeLine(FailureToPoint(
              MakeFailure(static_cast<uint64_t>(i), base), schema)));
        }
        const absl::Time start = absl::Now();
        for (size_t i = 0; i < lines.size(); i += 5000) {
          std::string body;
          for (size_t j = i; j < std::min(lines.size(), i + 5000); ++j) {
            if (j > i) body.push_back('\n');
            body.append(lines[j]);
          }
          if (writer->Write(body).kind != WriteResult::Kind::kOk) return 1;
        }
        bulk = n / absl::ToDoubleSeconds(absl::Now() - start);
      }
    }
    std::printf("  run %d: drain %.0f points/s, bulk %.0f points/s\n", run + 1,
                drain, bulk);
    drain_rates.push_back(drain);
    bulk_rates.push_back(bulk);
    ratios.push_back(drain / bulk);
  }
  const Spread drain = SpreadOf(drain_rates), bulk = SpreadOf(bulk_rates),
               ratio = SpreadOf(ratios);
  std::printf(
      "drain: backlog of %d failures from the SQLite queue into influxd, %d "
      "runs (min/median/max):\n"
      "  drain: %.0f / %.0f / %.0f points/s\n"
      "  baseline (influxd bulk write, 5000-line bodies): %.0f / %.0f / %.0f "
      "points/s\n"
      "  ratio drain/bulk: %.2f / %.2f / %.2f\n",
      n, runs, drain.min, drain.median, drain.max, bulk.min, bulk.median,
      bulk.max, ratio.min, ratio.median, ratio.max);
  return 0;
}

}  // namespace
}  // namespace qfp::tracker

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(spdlog::level::err);
  auto influx = qfp::testing::InfluxdProcess::Start();
  if (!influx.ok()) {
    std::fprintf(stderr, "influxd: %s\n",
                 std::string(influx.status().message()).c_str());
    return 1;
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "ingest") return qfp::tracker::Ingest(**influx);
  if (mode == "durable") return qfp::tracker::Durable(**influx);
  if (mode == "drain") return qfp::tracker::Drain(**influx);
  std::fprintf(stderr, "unknown --mode %s\n", mode.c_str());
  return 2;
}
