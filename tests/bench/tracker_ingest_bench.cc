// Tracker ingest benchmarks against a real, private influxd. Each mode
// prints its figure and the ratio to a baseline measured in the same run.
//
//   tracker_ingest_bench --mode=ingest   failures/s from a gRPC client
//       through the tracker into influxd, vs. Butler SOS's way of writing
//       (one HTTP write per point).
//   tracker_ingest_bench --mode=durable  failures/s acknowledged with the
//       write-ahead log on vs. off.
//   tracker_ingest_bench --mode=drain    time to drain a backlog of
//       --failures failures from the write-ahead log into influxd, vs.
//       influxd's own bulk-write rate (5000-line bodies, no tracker).
//
// The tracker runs in this process (service, pipeline, WAL, writer: the
// same objects qs-error-tracker builds); the client talks to it over real
// gRPC on loopback.
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
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "tests/testing/influxd_process.h"
#include "tests/testing/temp_dir.h"
#include "tracker-service/error_counter.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/influx_v1_writer.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/tracker_service.h"
#include "tracker-service/write_ahead_log.h"
#include "tracker-service/write_pipeline.h"

ABSL_FLAG(std::string, mode, "ingest", "ingest, durable or drain");
ABSL_FLAG(int, failures, 200000, "failures sent (ingest, durable, drain)");
ABSL_FLAG(int, baseline_points, 3000,
          "points written one HTTP request each for the ingest baseline");
ABSL_FLAG(int, batch, 500, "failures per gRPC request");

namespace qfp::tracker {
namespace {

using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

PollFailure MakeFailure(uint64_t sequence, int64_t base_seconds) {
  PollFailure f;
  f.mutable_id()->set_poller_id("bench");
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
  absl::StatusOr<std::string> answer = influx.Query(
      "SELECT count(error_count) FROM butler_sos_errors", db);
  if (!answer.ok()) return -1;
  nlohmann::json json = nlohmann::json::parse(*answer, nullptr, false);
  try {
    return json["results"][0]["series"][0]["values"][0][1].get<int64_t>();
  } catch (const nlohmann::json::exception&) {
    return 0;  // no series yet
  }
}

bool WaitForPoints(const testing::InfluxdProcess& influx,
                   const std::string& db, int64_t n, absl::Duration limit) {
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
  std::unique_ptr<InfluxWriter> writer;
  std::unique_ptr<WriteAheadLog> wal;
  std::unique_ptr<WritePipeline> pipeline;
  std::unique_ptr<ErrorCounter> counter;
  std::unique_ptr<TrackerService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  Tracker(const testing::InfluxdProcess& influx, const std::string& db,
          const std::string& wal_dir, std::vector<WalRecord>* replay) {
    config.max_batch_size = 5000;
    config.dedupe_window = 0;  // every id is new here
    writer = MakeInfluxV1Writer(Settings(influx, db));
    WritePipelineOptions options;
    options.max_batch = 5000;
    options.flush_interval = absl::Milliseconds(100);
    options.max_buffered = 10000000;
    if (!wal_dir.empty()) {
      WriteAheadLogOptions wal_options;
      wal_options.directory = wal_dir;
      wal_options.max_bytes = uint64_t{8} << 30;
      std::vector<WalRecord> ignored;
      auto opened = WriteAheadLog::Open(wal_options,
                                        replay ? replay : &ignored);
      if (!opened.ok()) {
        std::fprintf(stderr, "WAL: %s\n",
                     std::string(opened.status().message()).c_str());
        std::exit(1);
      }
      wal = *std::move(opened);
      options.on_settled = [this](const std::vector<uint64_t>& lsns) {
        wal->Release(lsns);
      };
    }
    pipeline = std::make_unique<WritePipeline>(*writer, options);
    counter = std::make_unique<ErrorCounter>(SystemClock::Get());
    pipeline->Start();
    service = std::make_unique<TrackerService>(config, counter.get(),
                                               pipeline.get(), wal.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
  }
  ~Tracker() {
    server->Shutdown(std::chrono::system_clock::now());
    pipeline->Stop(absl::Seconds(30));
  }
};

// Streams `n` failures and waits for every acknowledgement; returns the time
// from the first send to the last acknowledgement.
absl::Duration SendAll(int port, int n, int batch, int64_t base_seconds) {
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
          MakeFailure(static_cast<uint64_t>(sent) + 1, base_seconds);
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

double PerSecond(int64_t n, absl::Duration d) {
  return static_cast<double>(n) / absl::ToDoubleSeconds(d);
}

int Ingest(const testing::InfluxdProcess& influx) {
  const int n = absl::GetFlag(FLAGS_failures);
  const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86400;
  double ours = 0;
  {
    Tracker tracker(influx, "bench_ours", "", nullptr);
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
  const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86400;
  testing::TempDir dir;
  double with_wal = 0;
  double without_wal = 0;
  {
    Tracker tracker(influx, "bench_nowal", "", nullptr);
    without_wal =
        PerSecond(n, SendAll(tracker.port, n, absl::GetFlag(FLAGS_batch),
                             base));
  }
  {
    Tracker tracker(influx, "bench_wal", dir.File("wal"), nullptr);
    with_wal = PerSecond(
        n, SendAll(tracker.port, n, absl::GetFlag(FLAGS_batch), base));
    std::printf("WAL: %llu appends in %llu fsyncs (group commit)\n",
                static_cast<unsigned long long>(  // NOLINT
                    tracker.wal->stats().appended),
                static_cast<unsigned long long>(  // NOLINT
                    tracker.wal->stats().syncs));
  }
  std::printf(
      "durable ingest: %d failures acknowledged, WAL on: %.0f failures/s\n"
      "baseline (WAL off, acknowledged once queued in memory): %.0f "
      "failures/s\n"
      "ratio (WAL on / off): %.2f\n",
      n, with_wal, without_wal, with_wal / without_wal);
  return 0;
}

int Drain(const testing::InfluxdProcess& influx) {
  const int n = absl::GetFlag(FLAGS_failures);
  const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86400;
  testing::TempDir dir;
  {
    // The backlog an outage leaves: n failures in the log, none written.
    WriteAheadLogOptions options;
    options.directory = dir.File("wal");
    options.max_bytes = uint64_t{8} << 30;
    std::vector<WalRecord> none;
    auto wal = WriteAheadLog::Open(options, &none);
    if (!wal.ok()) return 1;
    std::vector<std::string> payloads;
    for (int i = 1; i <= n; ++i) {
      payloads.push_back(
          MakeFailure(static_cast<uint64_t>(i), base).SerializeAsString());
      if (payloads.size() == 5000 || i == n) {
        if (!(*wal)->Append(payloads).ok()) return 1;
        payloads.clear();
      }
    }
  }
  double drain = 0;
  {
    const absl::Time start = absl::Now();
    std::vector<WalRecord> replay;
    Tracker tracker(influx, "bench_drain", dir.File("wal"), &replay);
    PointSchema schema;
    std::vector<PendingPoint> points;
    points.reserve(replay.size());
    for (WalRecord& record : replay) {
      PollFailure failure;
      if (!failure.ParseFromString(record.payload)) return 1;
      absl::StatusOr<std::string> line =
          EncodeLine(FailureToPoint(failure, schema));
      if (!line.ok()) return 1;
      points.push_back(PendingPoint{*std::move(line), record.lsn});
    }
    tracker.pipeline->EnqueueReplay(std::move(points));
    if (!WaitForPoints(influx, "bench_drain", n, absl::Minutes(20))) {
      std::fprintf(stderr, "backlog not drained\n");
      return 1;
    }
    drain = absl::ToDoubleSeconds(absl::Now() - start);
  }
  // influxd's own bulk rate: the same points, 5000-line bodies, no tracker.
  std::unique_ptr<InfluxWriter> writer =
      MakeInfluxV1Writer(Settings(influx, "bench_bulk"));
  if (!writer->Prepare().ok()) return 1;
  PointSchema schema;
  std::vector<std::string> lines;
  for (int i = 1; i <= n; ++i) {
    lines.push_back(*EncodeLine(
        FailureToPoint(MakeFailure(static_cast<uint64_t>(i), base), schema)));
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
  const double bulk = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf(
      "drain: backlog of %d failures from the WAL into influxd in %.1f s "
      "(%.0f points/s)\n"
      "baseline (influxd bulk write, 5000-line bodies): %.1f s (%.0f "
      "points/s)\n"
      "ratio (drain rate / bulk rate): %.2f\n",
      n, drain, n / drain, bulk, n / bulk, bulk / drain);
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
