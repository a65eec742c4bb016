// qs-poller: polls Qlik Sense servers and reports every failed poll to the
// tracker (qs-error-tracker) over gRPC.
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/command_line.h"
#include "common/config_node.h"
#include "common/failure_queue.h"
#include "common/failure_queue_factory.h"
#include "common/grpc_tls.h"
#include "common/heap_trim.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/termination_signal.h"
#include "poller-service/attempt_ledger.h"
#include "poller-service/curl_transport.h"
#include "poller-service/peer_membership.h"
#include "poller-service/poll_plan.h"
#include "poller-service/poll_scheduler.h"
#include "poller-service/poller_config.h"
#include "poller-service/tracker_client.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, config, "",
          "Butler SOS config file (YAML) to read the servers to poll from. "
          "Required.");
ABSL_FLAG(std::string, tracker, "",
          "Tracker address HOST:PORT; overrides "
          "Butler-SOS.failedPolls.poller.trackerAddress (default "
          "127.0.0.1:50051).");
ABSL_FLAG(bool, check_config, false,
          "Validate the config as a start would, print the poll plan (each "
          "URL, how often, with which headers; secrets masked) and exit: 0 "
          "when valid, 2 otherwise. Changes nothing on disk.");
ABSL_FLAG(std::string, log_level, "",
          "trace, debug, info, warn or error; overrides Butler-SOS.logLevel.");
ABSL_FLAG(bool, spread_polls, true,
          "Start each target's polls at its own offset within its interval "
          "(a hash of the target), so that polls never start in bursts. "
          "false: every target is polled at start and then in rounds, all "
          "targets of an interval together (for tests and comparisons).");
ABSL_FLAG(int, shutdown_deadline_ms, 10000,
          "On SIGTERM/SIGINT, how long to keep delivering unacknowledged "
          "failures to the tracker before exiting.");

namespace qfp::poller {
namespace {

constexpr int kExitConfigError = 2;

// glibc malloc arenas (issue 10: one poller at 1000 servers within 30 MiB).
// glibc gives each new thread that allocates an arena of its own, up to 8
// per core, and each arena keeps its own free pages, which the others never
// reuse. The poller's allocations are almost all on the poll thread (libcurl
// and OpenSSL, thousands per poll); its other threads (gRPC's, the metrics
// server's, the tracker client's) allocate little and rarely, so two arenas
// leave them almost no lock contention and no dozen of partly used arenas.
constexpr int kMallocArenas = 2;

// How often the heap's free pages are given back (PeriodicHeapTrim,
// common/heap_trim.h): about 1 ms at 1000 servers, so a poll may start that
// much later; the holes the config parse's peak left are filled and emptied
// by each poll's libcurl and OpenSSL objects (measured at 1000 servers: about
// 3 MB free of a 6 MB resident heap without it).
constexpr absl::Duration kHeapTrimInterval = absl::Seconds(1);

void PrintPlan(const PollerConfig& config,
               const std::vector<PollTarget>& plan) {
  std::printf("Poll plan: %zu targets, tracker %s, poller id %s\n", plan.size(),
              config.tracker_address.c_str(), config.poller_id.c_str());
  std::printf(
      "TLS: client cert %s, key %s%s, CA %s, verify server: %s\n",
      config.tls.client_cert_file.c_str(), config.tls.client_key_file.c_str(),
      config.tls.key_passphrase.empty() ? "" : " (passphrase ********)",
      config.tls.ca_file.c_str(), config.tls.verify_server ? "yes" : "no");
  const GrpcTlsConfig& link = config.tracker_tls;
  if (link.enable) {
    std::printf(
        "Tracker link: mutual TLS, cert %s, key %s, CA %s, tracker name %s, "
        "files re-read every %d s\n",
        link.cert_file.c_str(), link.key_file.c_str(), link.ca_file.c_str(),
        link.server_name.empty() ? "from trackerAddress"
                                 : link.server_name.c_str(),
        link.refresh_interval_seconds);
  } else {
    std::printf("Tracker link: plaintext\n");
  }
  for (const PollTarget& target : plan) {
    std::printf("\n%s\n  GET %s\n  every %lld ms, timeout %lld ms\n",
                target.Key().c_str(), MaskedUrl(target).c_str(),
                static_cast<long long>(  // NOLINT(runtime/int)
                    absl::ToInt64Milliseconds(target.interval)),
                static_cast<long long>(  // NOLINT(runtime/int)
                    absl::ToInt64Milliseconds(target.timeout)));
    for (const std::string& header : target.headers) {
      std::printf("  %s\n", MaskedHeader(header).c_str());
    }
    if (!target.xrfkey_param.empty()) {
      std::printf("  X-Qlik-Xrfkey: ****************\n");
    }
  }
}

// What the shutdown line reports. Every failure found this run
// (polls.polls_failed) or reloaded from an earlier run's spool ends in one
// of: acknowledged, dropped (by reason), left.
struct ShutdownCounts {
  SchedulerStats polls;
  uint64_t reloaded = 0;      // spool records from earlier runs
  uint64_t acknowledged = 0;  // by the tracker, this run
  // The spool was full and dropped its oldest (maxPendingFailures,
  // maxSpoolBytes).
  uint64_t dropped_spool_full = 0;
  // The spool's commits failed and the failure never got in (lost()).
  uint64_t dropped_not_stored = 0;
  // The tracker refused them as malformed (REFUSAL_CODE_INVALID_ARGUMENT).
  uint64_t dropped_rejected = 0;
  uint64_t left = 0;  // unacknowledged and stored at the end
  uint64_t dropped() const {
    return dropped_spool_full + dropped_not_stored + dropped_rejected;
  }
};

// The poller's last log line: counts read from their owners, never
// assumed ("every failure acknowledged" only when none was dropped or left).
std::string ShutdownSummary(const ShutdownCounts& c,
                            const std::string& spool_description,
                            bool spool_durable,
                            const std::string& tracker_address) {
  std::string line = absl::StrCat(
      "qs-poller stopped: ", c.polls.polls_started, " polls, ",
      c.polls.polls_failed, " failed; failures: ", c.polls.polls_failed,
      " from this run and ", c.reloaded, " reloaded from earlier runs; ",
      c.acknowledged, " acknowledged by tracker ", tracker_address, ", ",
      c.dropped(), " dropped (", c.dropped_spool_full, " spool full, ",
      c.dropped_not_stored, " not stored: spool commit failed, ",
      c.dropped_rejected, " rejected by the tracker as malformed), ");
  if (c.left == 0) {
    absl::StrAppend(&line,
                    c.dropped() == 0 ? "every failure acknowledged by "
                                       "the tracker, "
                                     : "",
                    "0 failures left in spool ", spool_description);
  } else if (spool_durable) {
    absl::StrAppend(&line, c.left, " failures left in spool ",
                    spool_description, ", resent at next start");
  } else {
    absl::StrAppend(&line, c.left,
                    " failures left in the memory spool and lost (logged "
                    "above)");
  }
  return line;
}

int Main(int argc, char** argv) {
  // Before any thread starts, so that no thread has an arena of its own yet.
  mallopt(M_ARENA_MAX, kMallocArenas);
  BlockTerminationSignals();
  ParseCommandLine(
      argc, argv,
      "Polls Qlik Sense servers (engine health check, proxy sessions, QRS "
      "app list) and streams every failed poll to qs-error-tracker.\n"
      "Usage: qs-poller --config butler-sos.yaml [--tracker HOST:PORT]");

  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) {
    std::cerr << "qs-poller: --config is required (see --help)\n";
    return kExitConfigError;
  }
  absl::StatusOr<PollerConfig> loaded = LoadPollerConfig(config_path);
  if (!loaded.ok()) {
    std::cerr << "qs-poller: " << loaded.status().message() << "\n";
    return kExitConfigError;
  }
  PollerConfig& config = *loaded;
  if (!absl::GetFlag(FLAGS_tracker).empty()) {
    config.tracker_address = absl::GetFlag(FLAGS_tracker);
    if (std::optional<std::string> bad = ConfigNode::CheckHostFlag(
            "--tracker", config.tracker_address, PortRule::kRequired)) {
      std::cerr << "qs-poller: " << *bad << "\n";
      return kExitConfigError;
    }
  }
  if (!absl::GetFlag(FLAGS_log_level).empty()) {
    config.log_level = absl::GetFlag(FLAGS_log_level);
  }
  std::vector<PollTarget> plan = BuildPollPlan(config);
  if (absl::Status status = InitLogging("qs-poller", config.log_level);
      !status.ok()) {
    std::cerr << "qs-poller: " << status.message() << "\n";
    return kExitConfigError;
  }
  ForwardGrpcLogsToSpdlog();
  // Plaintext only to a loopback tracker unless consented to; checked
  // after --tracker.
  if (std::optional<std::string> refused =
          CheckPlaintextAllowed(config.tracker_tls, config.tracker_address,
                                "Butler-SOS.failedPolls.poller.trackerAddress",
                                "Butler-SOS.failedPolls.poller.tls")) {
    std::cerr << "qs-poller: " << *refused << "\n";
    return kExitConfigError;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    PrintPlan(config, plan);
    return 0;
  }
  if (plan.empty()) {
    spdlog::warn("the config enables no polls: nothing to do until restarted");
  }
  // The plan holds all the servers' data the poller needs from here on: free
  // the parsed server list, then give the parse's freed heap (the YAML tree,
  // about 15 KB per server) back to the system, which glibc's free() alone
  // does not do for memory below live allocations.
  std::vector<MonitoredServer>().swap(config.servers);
  malloc_trim(0);
  const size_t target_count = plan.size();

  MetricsRegistry metrics;
  QueueLimits limits;
  limits.max_records = config.max_pending_failures;
  limits.max_bytes = config.max_spool_bytes;
  // The newest failures say the most about the site now.
  limits.overflow = QueueLimits::Overflow::kDropOldest;
  absl::StatusOr<std::unique_ptr<FailureQueue>> opened = OpenFailureQueue(
      FailureQueueOptions{config.spool_directory, limits, "qs-poller spool",
                          &metrics, "qfp_poller_spool"});
  if (!opened.ok()) {
    std::cerr << "qs-poller: Butler-SOS.failedPolls.poller.spoolDirectory: "
              << opened.status().message() << "\n";
    return kExitConfigError;
  }
  std::unique_ptr<FailureQueue> spool = *std::move(opened);
  if (spool->durable()) {
    const QueueStats stats = spool->stats();
    spdlog::info(
        "failure spool {}: {} unacknowledged failures ({} bytes) reloaded "
        "from earlier runs, resending them with their original ids",
        spool->Describe(), stats.reloaded, stats.bytes);
  } else {
    spdlog::info(
        "failure spool in memory only (set "
        "Butler-SOS.failedPolls.poller.spoolDirectory to keep unacknowledged "
        "failures across restarts)");
  }
  const std::string spool_description = spool->Describe();
  const bool spool_durable = spool->durable();

  TrackerClientOptions client_options;
  client_options.address = config.tracker_address;
  client_options.tls = config.tracker_tls;
  if (!config.tracker_tls.enable &&
      !IsLoopbackAddress(config.tracker_address)) {
    spdlog::warn(
        "failures go to tracker {} in plaintext, unauthenticated "
        "(Butler-SOS.failedPolls.poller.tls.allowPlaintext)",
        config.tracker_address);
  }
  TrackerClient client(client_options, std::move(spool), metrics);
  client.Start();

  metrics.AddCallbackCounter(
      "qfp_poller_tls_handshakes_refused_total",
      "TLS handshakes with the tracker that failed (its certificate "
      "untrusted or not holding its name, or ours refused).",
      [] { return static_cast<double>(RefusedTlsHandshakes()); });
  MetricsServer metrics_server(metrics);
  if (!config.metrics_listen.empty()) {
    if (absl::Status status = metrics_server.Start(config.metrics_listen);
        !status.ok()) {
      spdlog::error("metrics: {}", std::string(status.message()));
      client.Shutdown(absl::ZeroDuration());
      return 1;
    }
    spdlog::info("metrics on http://{}/metrics", config.metrics_listen);
  }

  auto transport = std::make_unique<CurlTransport>(
      static_cast<size_t>(config.max_concurrent_polls));
  // Which targets are this poller's (cluster.*); with peersDns the first
  // resolution happens here, before the first poll. It keeps the targets'
  // keys, not the plan, which the scheduler then takes.
  PollerCluster cluster(config.cluster, plan, metrics);
  cluster.Start();
  spdlog::info("poll targets {}", cluster.description());
  // Heartbeats carry the scheduler's per-target counts to the tracker.
  AttemptLedger ledger;
  const absl::Duration heartbeat_interval = HeartbeatInterval(plan);
  PollScheduler scheduler(config, std::move(plan), *transport, client,
                          SystemClock::Get(), metrics, cluster.ownership(),
                          &ledger);
  if (!absl::GetFlag(FLAGS_spread_polls)) scheduler.PollInRounds();
  client.EnableHeartbeats(HeartbeatOptions{
      config.poller_id, scheduler.instance_id(), heartbeat_interval, &ledger});
  spdlog::info(
      "qs-poller started: {} poll targets, tracker {}, poller id {}, "
      "instance {}, heartbeat every {} ms",
      target_count, config.tracker_address, config.poller_id,
      scheduler.instance_id(), absl::ToInt64Milliseconds(heartbeat_interval));

  PeriodicHeapTrim heap_trim(kHeapTrimInterval);
  std::atomic<bool> stop{false};
  std::thread signal_waiter([&] {
    const int signal_number = WaitForTerminationSignal();
    spdlog::info("signal {} received: stopping polls", signal_number);
    stop.store(true);
    transport->Wakeup();
  });
  scheduler.Run(stop);
  signal_waiter.join();
  cluster.Stop();
  // Polls still running past their timeout are cancelled while the
  // scheduler (their callbacks' target) is still alive.
  transport.reset();

  const uint64_t left = client.Shutdown(
      absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_deadline_ms)));
  const QueueStats spool_stats = client.spool().stats();
  ShutdownCounts counts;
  counts.polls = scheduler.stats();
  counts.reloaded = spool_stats.reloaded;
  counts.acknowledged = client.acknowledged();
  counts.dropped_spool_full = spool_stats.dropped;
  counts.dropped_not_stored = client.lost();
  counts.dropped_rejected = client.rejected();
  counts.left = left;
  if (counts.dropped_rejected > 0) {
    spdlog::error(
        "the tracker rejected {} failures as malformed; they were dropped "
        "(qfp_poller_failures_rejected_total; the log above names the latest)",
        counts.dropped_rejected);
  }
  if (counts.dropped_not_stored > 0) {
    spdlog::error(
        "{} failures could not be stored in spool {} (its commits failed) and "
        "are lost; they are in the log above",
        counts.dropped_not_stored, spool_description);
  }
  const std::string summary = ShutdownSummary(
      counts, spool_description, spool_durable, config.tracker_address);
  if (counts.left == 0 && counts.dropped() == 0) {
    spdlog::info("{}", summary);
  } else {
    spdlog::warn("{}", summary);
  }
  return 0;
}

}  // namespace
}  // namespace qfp::poller

int main(int argc, char** argv) { return qfp::poller::Main(argc, argv); }
