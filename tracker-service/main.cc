// qs-error-tracker: receives failed polls over gRPC, counts them and writes
// them to InfluxDB as Butler SOS's error points.
#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/command_line.h"
#include "common/logging.h"
#include "common/termination_signal.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "spdlog/spdlog.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "tracker-service/error_counter.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/influx_writers.h"
#include "tracker-service/tracker_config.h"
#include "tracker-service/tracker_service.h"
#include "tracker-service/write_ahead_log.h"
#include "tracker-service/write_pipeline.h"

ABSL_FLAG(std::string, config, "",
          "Butler SOS config file (YAML) with errorTracking, influxdbConfig "
          "and failedPolls.tracker. Required.");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address HOST:PORT; overrides "
          "Butler-SOS.failedPolls.tracker.listen (default 0.0.0.0:50051).");
ABSL_FLAG(std::string, log_level, "",
          "trace, debug, info, warn or error; overrides Butler-SOS.logLevel.");
ABSL_FLAG(int, shutdown_deadline_ms, 10000,
          "On SIGTERM/SIGINT, how long to keep writing buffered points to "
          "InfluxDB before exiting.");

namespace qfp {
namespace {

constexpr int kExitConfigError = 2;
constexpr int kExitRuntimeError = 1;

// Queues what the write-ahead log held at start (failures acknowledged but
// not confirmed by InfluxDB before the last stop or crash).
void ReplayIntoPipeline(const std::vector<WalRecord>& replay,
                        const PointSchema& schema, WriteAheadLog& wal,
                        WritePipeline& pipeline) {
  std::vector<PendingPoint> points;
  std::vector<uint64_t> unusable;
  points.reserve(replay.size());
  for (const WalRecord& record : replay) {
    failedpolls::v1::PollFailure failure;
    absl::StatusOr<std::string> line =
        failure.ParseFromString(record.payload)
            ? EncodeLine(FailureToPoint(failure, schema))
            : absl::StatusOr<std::string>(
                  absl::DataLossError("unparseable record"));
    if (!line.ok()) {
      unusable.push_back(record.lsn);
      continue;
    }
    points.push_back(PendingPoint{*std::move(line), record.lsn});
  }
  if (!unusable.empty()) {
    spdlog::warn("write-ahead log: {} records could not be decoded; dropped",
                 unusable.size());
    wal.Release(unusable);
  }
  spdlog::info(
      "write-ahead log: replaying {} failures not yet confirmed by InfluxDB",
      points.size());
  pipeline.EnqueueReplay(std::move(points));
}

int Main(int argc, char** argv) {
  BlockTerminationSignals();
  ParseCommandLine(
      argc, argv,
      "Receives failed polls from qs-poller (or any FailedPollTracker "
      "client) over gRPC, counts them and writes one InfluxDB point per "
      "failure.\nUsage: qs-error-tracker --config butler-sos.yaml "
      "[--listen HOST:PORT]");

  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) {
    std::cerr << "qs-error-tracker: --config is required (see --help)\n";
    return kExitConfigError;
  }
  absl::StatusOr<TrackerConfig> loaded = LoadTrackerConfig(config_path);
  if (!loaded.ok()) {
    std::cerr << "qs-error-tracker: " << loaded.status().message() << "\n";
    return kExitConfigError;
  }
  TrackerConfig& config = *loaded;
  if (!absl::GetFlag(FLAGS_listen).empty()) {
    config.listen = absl::GetFlag(FLAGS_listen);
  }
  if (!absl::GetFlag(FLAGS_log_level).empty()) {
    config.log_level = absl::GetFlag(FLAGS_log_level);
  }
  if (absl::Status status = InitLogging("qs-error-tracker", config.log_level);
      !status.ok()) {
    std::cerr << "qs-error-tracker: " << status.message() << "\n";
    return kExitConfigError;
  }

  MetricsRegistry metrics;
  std::unique_ptr<InfluxWriter> writer;
  std::unique_ptr<WriteAheadLog> wal;
  std::unique_ptr<WritePipeline> pipeline;
  if (config.writes_points()) {
    absl::StatusOr<std::unique_ptr<InfluxWriter>> made =
        MakeInfluxWriter(config);
    if (!made.ok()) {
      std::cerr << "qs-error-tracker: " << made.status().message() << "\n";
      return kExitConfigError;
    }
    writer = *std::move(made);
    config.schema.integer_numbers = writer->integer_numbers();
    WritePipelineOptions options;
    options.max_batch = static_cast<size_t>(config.max_batch_size);
    options.flush_interval = config.flush_interval;
    options.max_buffered = config.max_buffered_points;
    options.metrics = &metrics;
    std::vector<WalRecord> replay;
    if (!config.wal_directory.empty()) {
      WriteAheadLogOptions wal_options;
      wal_options.directory = config.wal_directory;
      wal_options.max_bytes = config.wal_max_bytes;
      absl::StatusOr<std::unique_ptr<WriteAheadLog>> opened =
          WriteAheadLog::Open(wal_options, &replay);
      if (!opened.ok()) {
        // Without its log the tracker would acknowledge what it cannot keep;
        // better not to start (producers keep their failures meanwhile).
        spdlog::error("write-ahead log unusable: {}",
                      std::string(opened.status().message()));
        return kExitRuntimeError;
      }
      wal = *std::move(opened);
      options.on_settled = [&wal](const std::vector<uint64_t>& lsns) {
        wal->Release(lsns);
      };
      metrics.AddCallbackGauge(
          "qfp_tracker_wal_bytes", "Bytes in the write-ahead log.",
          [&wal] { return static_cast<double>(wal->stats().bytes); });
      metrics.AddCallbackGauge(
          "qfp_tracker_wal_records",
          "Failures in the write-ahead log not yet confirmed by InfluxDB.",
          [&wal] { return static_cast<double>(wal->stats().live_records); });
    }
    pipeline = std::make_unique<WritePipeline>(*writer, options);
    if (!replay.empty()) {
      ReplayIntoPipeline(replay, config.schema, *wal, *pipeline);
    }
    pipeline->Start();
    spdlog::info("writing failed-poll points to {} as measurement {}{}",
                 writer->Describe(), config.schema.measurement,
                 wal ? absl::StrCat("; write-ahead log in ", config.wal_directory)
                     : std::string("; no write-ahead log (walDirectory unset)"));
  } else {
    spdlog::info(
        "InfluxDB points are off (errorTracking.enable={}, "
        "errorTracking.influxdb.enable={}, influxdbConfig.enable={}): "
        "failures are only logged{}",
        config.tracking_enabled, config.influx_points_enabled,
        config.influxdb_enabled, config.tracking_enabled ? " and counted" : "");
  }
  std::unique_ptr<ErrorCounter> counter;
  if (config.tracking_enabled) {
    counter = std::make_unique<ErrorCounter>(SystemClock::Get());
  }

  MetricsServer metrics_server(metrics);
  if (!config.metrics_listen.empty()) {
    if (absl::Status status = metrics_server.Start(config.metrics_listen);
        !status.ok()) {
      spdlog::error("metrics: {}", std::string(status.message()));
      if (pipeline) pipeline->Stop(absl::ZeroDuration());
      return kExitRuntimeError;
    }
    spdlog::info("metrics on http://{}/metrics", config.metrics_listen);
  }

  TrackerService service(config, counter.get(), pipeline.get(), wal.get(),
                         &metrics);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    spdlog::error("cannot listen on {} (address in use or invalid?)",
                  config.listen);
    if (pipeline) pipeline->Stop(absl::ZeroDuration());
    return kExitRuntimeError;
  }
  spdlog::info("qs-error-tracker listening on {} (port {})", config.listen,
               bound_port);

  // Every second: roll the daily counters over at midnight UTC even when no
  // failure arrives to trigger it, and tell health checkers whether the
  // destination is usable.
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  absl::Notification stop_housekeeping;
  std::thread housekeeping([&] {
    bool last_serving = true;
    do {
      if (counter) {
        if (std::optional<std::string> ended = counter->RollOver()) {
          spdlog::info("{}", *ended);
        }
      }
      const bool serving = pipeline == nullptr || pipeline->healthy();
      if (health != nullptr && serving != last_serving) {
        health->SetServingStatus(serving);
        last_serving = serving;
      }
    } while (!stop_housekeeping.WaitForNotificationWithTimeout(
        absl::Seconds(1)));
  });

  const int signal_number = WaitForTerminationSignal();
  const absl::Duration deadline =
      absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_deadline_ms));
  spdlog::info("signal {} received: no new failures accepted; flushing",
               signal_number);
  // Streams get a moment to finish; then they are cancelled.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  stop_housekeeping.Notify();
  housekeeping.join();
  const TrackerServiceStats stats = service.stats();
  size_t left = 0;
  if (pipeline) left = pipeline->Stop(deadline);
  metrics_server.Stop();
  if (left == 0) {
    spdlog::info(
        "qs-error-tracker stopped: {} failures accepted, every point written",
        stats.accepted);
  } else if (wal) {
    spdlog::info(
        "qs-error-tracker stopped: {} failures accepted; {} points not yet "
        "written to {} stay in the write-ahead log {} and are written at the "
        "next start",
        stats.accepted, left, writer->Describe(), config.wal_directory);
  } else {
    spdlog::warn(
        "qs-error-tracker stopped: {} failures accepted; {} points could not "
        "be written to {} within {} ms and are lost",
        stats.accepted, left, writer->Describe(),
        absl::ToInt64Milliseconds(deadline));
  }
  return 0;
}

}  // namespace
}  // namespace qfp

int main(int argc, char** argv) { return qfp::Main(argc, argv); }
