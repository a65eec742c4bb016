// qs-error-tracker: receives failed polls over gRPC, counts them and writes
// them to InfluxDB as Butler SOS's error points.
#include <malloc.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/command_line.h"
#include "common/config_node.h"
#include "common/grpc_tls.h"
#include "common/heap_trim.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/termination_signal.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "spdlog/spdlog.h"
#include "tracker-service/durable_queue.h"
#include "tracker-service/error_counter.h"
#include "tracker-service/failure_point.h"
#include "tracker-service/line_protocol.h"
#include "tracker-service/tracker_config.h"
#include "tracker-service/tracker_service.h"
#include "tracker-service/write_pipeline.h"
#include "tracker-service/writer_factory.h"

ABSL_FLAG(std::string, config, "",
          "Butler SOS config file (YAML) with errorTracking, influxdbConfig "
          "and failedPolls.tracker. Required.");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address HOST:PORT; overrides "
          "Butler-SOS.failedPolls.tracker.listen (default 127.0.0.1:50051).");
ABSL_FLAG(bool, check_config, false,
          "Validate the config as a start would (every key, the InfluxDB "
          "settings), print where points would go and exit: 0 when valid, 2 "
          "otherwise. Connects to nothing and changes nothing on disk.");
ABSL_FLAG(std::string, log_level, "",
          "trace, debug, info, warn or error; overrides Butler-SOS.logLevel.");
ABSL_FLAG(int, shutdown_deadline_ms, 10000,
          "On SIGTERM/SIGINT, how long to keep writing buffered points to "
          "InfluxDB before exiting.");

namespace qfp::tracker {
namespace {

constexpr int kExitConfigError = 2;
constexpr int kExitRuntimeError = 1;
// errorTracking.logSummary: the running totals, at most this often.
constexpr absl::Duration kSummaryInterval = absl::Seconds(5);

// How the gRPC port is served, for the start line and --check-config.
std::string TransportDescription(const TrackerConfig& config) {
  if (config.tls.enable) {
    return absl::StrCat("mutual TLS: certificate ", config.tls.cert_file,
                        ", client certificates from CA ", config.tls.ca_file,
                        ", files re-read every ",
                        config.tls.refresh_interval_seconds, " s");
  }
  return "plaintext";
}

// What the tracker makes of the pollers' heartbeats, for --check-config:
// missedHeartbeats, pollAttempts and coverage (failedPolls.tracker.*).
std::string WatchDescription(const TrackerConfig& config) {
  std::string text =
      config.missed_heartbeats > 0
          ? absl::StrCat("a poller is silent after ", config.missed_heartbeats,
                         " missed heartbeats")
          : std::string("silent pollers not watched (missedHeartbeats 0)");
  absl::StrAppend(
      &text, "; poll attempts points ",
      config.poll_attempts_enabled
          ? absl::StrCat("on, measurement ", config.poll_attempts_measurement)
          : std::string("off"));
  absl::StrAppend(&text, "; coverage ",
                  config.coverage_enabled
                      ? absl::StrCat("on, ", config.coverage_targets.size(),
                                     " configured targets")
                      : std::string("off"));
  return text;
}

// --check-config: what a start would check before it opens anything.
int CheckConfig(const TrackerConfig& config) {
  std::string destination = "InfluxDB points off: failures are only logged";
  if (config.writes_points()) {
    absl::StatusOr<std::unique_ptr<InfluxWriter>> writer =
        MakeInfluxWriter(config);
    if (!writer.ok()) {
      std::cerr << "qs-error-tracker: " << writer.status().message() << "\n";
      return kExitConfigError;
    }
    destination =
        absl::StrCat("points to ", (*writer)->Describe(), " as measurement ",
                     config.schema.measurement, "; queue ",
                     config.wal_directory.empty() ? std::string("in memory")
                                                  : config.wal_directory);
  }
  std::cout << "Config valid: listen " << config.listen << ", " << destination
            << "; gRPC " << TransportDescription(config) << "; "
            << WatchDescription(config) << "\n";
  return 0;
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
  // The parse's YAML tree is freed, but glibc keeps its memory (about 15 KB
  // per configured server, all below live allocations): give it back.
  malloc_trim(0);
  if (!absl::GetFlag(FLAGS_listen).empty()) {
    config.listen = absl::GetFlag(FLAGS_listen);
    if (std::optional<std::string> bad = ConfigNode::CheckHostFlag(
            "--listen", config.listen, PortRule::kListen)) {
      std::cerr << "qs-error-tracker: " << *bad << "\n";
      return kExitConfigError;
    }
  }
  if (!absl::GetFlag(FLAGS_log_level).empty()) {
    config.log_level = absl::GetFlag(FLAGS_log_level);
  }
  if (absl::Status status = InitLogging("qs-error-tracker", config.log_level);
      !status.ok()) {
    std::cerr << "qs-error-tracker: " << status.message() << "\n";
    return kExitConfigError;
  }
  ForwardGrpcLogsToSpdlog();
  // Plaintext only on loopback unless consented to; checked after --listen.
  if (std::optional<std::string> refused = CheckPlaintextAllowed(
          config.tls, config.listen, "Butler-SOS.failedPolls.tracker.listen",
          "Butler-SOS.failedPolls.tracker.tls")) {
    std::cerr << "qs-error-tracker: " << *refused << "\n";
    return kExitConfigError;
  }
  if (absl::GetFlag(FLAGS_check_config)) return CheckConfig(config);
  if (!config.tls.enable && !IsLoopbackAddress(config.listen)) {
    spdlog::warn(
        "gRPC on {} is plaintext and unauthenticated "
        "(Butler-SOS.failedPolls.tracker.tls.allowPlaintext): whoever reaches "
        "it can write failures into InfluxDB",
        config.listen);
  }

  MetricsRegistry metrics;
  WriteTotals totals;
  bool pipeline_prepared = false;
  std::unique_ptr<InfluxWriter> writer;
  std::unique_ptr<DurableQueue> queue;
  if (config.writes_points()) {
    absl::StatusOr<std::unique_ptr<InfluxWriter>> made =
        MakeInfluxWriter(config);
    if (!made.ok()) {
      std::cerr << "qs-error-tracker: " << made.status().message() << "\n";
      return kExitConfigError;
    }
    writer = *std::move(made);
    config.schema.integer_numbers = writer->integer_numbers();
    // Set the destination up before accepting failures. What no retry can
    // fix stops the tracker now, with its key path, rather than failing
    // forever in the background; what can pass (InfluxDB down or
    // unreachable) is retried by the pipeline while failures are accepted.
    if (absl::Status prepared = writer->Prepare(); prepared.ok()) {
      pipeline_prepared = true;
    } else if (absl::IsInvalidArgument(prepared) ||
               absl::IsFailedPrecondition(prepared)) {
      spdlog::error("{}: {}", writer->Describe(),
                    std::string(prepared.message()));
      std::cerr << "qs-error-tracker: " << prepared.message() << "\n";
      return kExitConfigError;
    } else {
      spdlog::warn(
          "{}: {}; retrying in the background (failures are accepted and "
          "kept meanwhile)",
          writer->Describe(), std::string(prepared.message()));
    }
    DurableQueueOptions options;
    options.directory = config.wal_directory;
    options.max_records = config.max_buffered_points;
    options.max_bytes = config.wal_max_bytes;
    options.pipeline.max_batch = static_cast<size_t>(config.max_batch_size);
    options.pipeline.flush_interval = config.flush_interval;
    options.pipeline.prepared = pipeline_prepared;
    options.pipeline.totals = &totals;
    absl::StatusOr<std::unique_ptr<DurableQueue>> opened =
        DurableQueue::Open(options, *writer, metrics);
    if (!opened.ok()) {
      // Without its store the tracker would acknowledge what it cannot
      // keep; better not to start (producers keep their failures meanwhile).
      spdlog::error("Butler-SOS.failedPolls.tracker.walDirectory: {}",
                    std::string(opened.status().message()));
      return kExitRuntimeError;
    }
    queue = *std::move(opened);
    if (queue->reloaded() > 0) {
      spdlog::info(
          "{}: {} failures accepted earlier and not yet confirmed "
          "by InfluxDB are written first",
          queue->Describe(), queue->reloaded());
    }
    queue->Start();
    spdlog::info(
        "writing failed-poll points to {} as measurement {}; queue: {}",
        writer->Describe(), config.schema.measurement,
        queue->durable() ? queue->Describe()
                         : std::string("memory only (walDirectory unset: "
                                       "unwritten points are lost at exit)"));
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

  metrics.AddCallbackCounter(
      "qfp_tracker_tls_handshakes_refused_total",
      "TLS handshakes on the gRPC port that failed: plaintext clients, "
      "clients without a certificate or with one of another CA.",
      [] { return static_cast<double>(RefusedTlsHandshakes()); });
  MetricsServer metrics_server(metrics);
  if (!config.metrics_listen.empty()) {
    if (absl::Status status = metrics_server.Start(config.metrics_listen);
        !status.ok()) {
      spdlog::error("metrics: {}", std::string(status.message()));
      return kExitRuntimeError;
    }
    spdlog::info("metrics on http://{}/metrics", config.metrics_listen);
  }

  TrackerService service(config, counter.get(), queue.get(), metrics);
  if (config.missed_heartbeats > 0) {
    spdlog::info(
        "pollers that send heartbeats are reported silent after {} missed",
        config.missed_heartbeats);
  }
  if (config.coverage_enabled) {
    spdlog::info(
        "coverage: {} configured targets, each reported when no poller "
        "attempts it within 2 of its intervals",
        config.coverage_targets.size());
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(config.listen, MakeServerCredentials(config.tls),
                           &bound_port);
  TrackerService::ApplyLimits(builder);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    spdlog::error("cannot listen on {} (address in use or invalid?)",
                  config.listen);
    return kExitRuntimeError;
  }
  spdlog::info("qs-error-tracker listening on {} (port {}, {})", config.listen,
               bound_port, TransportDescription(config));

  // Every second: roll the daily counters over at midnight UTC even when no
  // failure arrives to trigger it, and tell health checkers whether the
  // destination is usable.
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  absl::Mutex housekeeping_mu;
  bool stop_housekeeping = false;  // guarded by housekeeping_mu
  std::thread housekeeping([&] {
    const Clock& clock = SystemClock::Get();
    bool last_serving = true;
    uint64_t last_accepted = 0;
    uint64_t last_backlog = 0;
    HeapTrimPolicy heap_trim;
    absl::Duration next_summary = clock.Monotonic();
    do {
      // glibc keeps what a burst of failures, a flood of connections or
      // stream churn freed (tens of MiB): give it back on every tick that
      // saw no failure accepted and no backlog move, and every 30 s while
      // they keep coming (common/heap_trim.h).
      const uint64_t accepted = service.accepted();
      const uint64_t backlog = queue == nullptr ? 0 : queue->backlog();
      const bool busy = accepted != last_accepted || backlog != last_backlog;
      last_accepted = accepted;
      last_backlog = backlog;
      if (heap_trim.ShouldTrim(busy, clock.Monotonic())) {
        const HeapTrimResult trim = TrimHeap(clock);
        if (trim.resident_before && trim.resident_after &&
            *trim.resident_before >= *trim.resident_after + (1 << 20)) {
          spdlog::debug("heap trim: resident {} -> {} MiB in {:.1f} ms",
                        *trim.resident_before >> 20, *trim.resident_after >> 20,
                        absl::ToDoubleMilliseconds(trim.duration));
        }
      }
      if (counter) {
        if (std::optional<std::string> ended = counter->RollOver()) {
          spdlog::info("{}", *ended);
        }
        // Butler SOS logs the totals after every failure; the same line at
        // most every kSummaryInterval carries the same news without costing
        // O(servers) per failure on the acknowledgement path.
        if (config.log_summary && clock.Monotonic() >= next_summary) {
          if (std::optional<std::string> summary =
                  counter->SummaryIfChanged()) {
            spdlog::info("{}", *summary);
          }
          next_summary = clock.Monotonic() + kSummaryInterval;
        }
      }
      service.CheckLiveness();  // silent pollers
      std::string why;
      const bool serving = queue == nullptr || queue->healthy(&why);
      if (health != nullptr && serving != last_serving) {
        health->SetServingStatus(serving);
        last_serving = serving;
        if (serving) {
          spdlog::info("health: SERVING again");
        } else {
          spdlog::warn("health: NOT_SERVING: {}", why);
        }
      }
      absl::MutexLock lock(&housekeeping_mu);
      if (AwaitUntil(housekeeping_mu, absl::Condition(&stop_housekeeping),
                     clock, clock.Monotonic() + absl::Seconds(1))) {
        break;
      }
    } while (true);
  });

  const int signal_number = WaitForTerminationSignal();
  const absl::Duration deadline =
      absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_deadline_ms));
  spdlog::info("signal {} received: no new failures accepted; flushing",
               signal_number);
  // Streams get a moment to finish; then they are cancelled.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  {
    absl::MutexLock lock(&housekeeping_mu);
    stop_housekeeping = true;
  }
  housekeeping.join();
  // The streams are closed: the last totals, if they changed since the
  // last summary line.
  if (counter && config.log_summary) {
    if (std::optional<std::string> summary = counter->SummaryIfChanged()) {
      spdlog::info("{}", *summary);
    }
  }
  uint64_t left = 0;
  if (queue) left = queue->Stop(deadline);
  metrics_server.Stop();
  const uint64_t accepted = service.accepted();
  if (!queue) {
    spdlog::info("qs-error-tracker stopped: {} failures accepted", accepted);
    return 0;
  }
  // Every count as it is: written, dropped (by reason) and left.
  const uint64_t bad = totals.dropped_bad_point.load();
  const uint64_t too_large = totals.dropped_too_large.load();
  const std::string counts = absl::StrCat(
      accepted, " failures accepted; ", totals.written.load(),
      " points written to ", writer->Describe(), "; ", bad + too_large,
      " dropped (", bad, " refused by InfluxDB as bad points, ", too_large,
      " too large for InfluxDB's max-body-size alone); ", left, " left");
  if (left == 0) {
    if (bad + too_large == 0) {
      spdlog::info("qs-error-tracker stopped: every point written: {}", counts);
    } else {
      spdlog::warn("qs-error-tracker stopped: {}", counts);
    }
  } else if (const absl::Status store = queue->store_error(); !store.ok()) {
    spdlog::warn(
        "qs-error-tracker stopped: {}: they stay in {}, which could not "
        "commit at the end ({}): some of them may already be in InfluxDB "
        "(written, not yet removed); the next start writes them again, which "
        "InfluxDB stores once",
        counts, queue->Describe(), std::string(store.message()));
  } else if (queue->durable()) {
    spdlog::info(
        "qs-error-tracker stopped: {}: they stay in {} and are written at the "
        "next start",
        counts, queue->Describe());
  } else {
    spdlog::warn(
        "qs-error-tracker stopped: {}: not written within {} ms, they are "
        "lost",
        counts, absl::ToInt64Milliseconds(deadline));
  }
  return 0;
}

}  // namespace
}  // namespace qfp::tracker

int main(int argc, char** argv) { return qfp::tracker::Main(argc, argv); }
