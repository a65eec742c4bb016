// qs-poller: polls Qlik Sense servers and reports every failed poll to the
// tracker (qs-error-tracker) over gRPC.
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/command_line.h"
#include "common/config_node.h"
#include "common/failure_queue.h"
#include "common/failure_queue_factory.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/termination_signal.h"
#include "poller-service/curl_transport.h"
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
ABSL_FLAG(int, shutdown_deadline_ms, 10000,
          "On SIGTERM/SIGINT, how long to keep delivering unacknowledged "
          "failures to the tracker before exiting.");

namespace qfp::poller {
namespace {

constexpr int kExitConfigError = 2;

void PrintPlan(const PollerConfig& config,
               const std::vector<PollTarget>& plan) {
  std::printf("Poll plan: %zu targets, tracker %s, poller id %s\n", plan.size(),
              config.tracker_address.c_str(), config.poller_id.c_str());
  std::printf(
      "TLS: client cert %s, key %s%s, CA %s, verify server: %s\n",
      config.tls.client_cert_file.c_str(), config.tls.client_key_file.c_str(),
      config.tls.key_passphrase.empty() ? "" : " (passphrase ********)",
      config.tls.ca_file.c_str(), config.tls.verify_server ? "yes" : "no");
  for (const PollTarget& target : plan) {
    std::printf("\n%s\n  GET %s\n  every %lld ms, timeout %lld ms\n",
                target.Key().c_str(), MaskedUrl(target).c_str(),
                static_cast<long long>(  // NOLINT(runtime/int)
                    absl::ToInt64Milliseconds(target.interval)),
                static_cast<long long>(  // NOLINT(runtime/int)
                    absl::ToInt64Milliseconds(config.request_timeout)));
    for (const std::string& header : target.headers) {
      std::printf("  %s\n", MaskedHeader(header).c_str());
    }
    if (!target.xrfkey_param.empty()) {
      std::printf("  X-Qlik-Xrfkey: ****************\n");
    }
  }
}

int Main(int argc, char** argv) {
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
  if (absl::GetFlag(FLAGS_check_config)) {
    PrintPlan(config, plan);
    return 0;
  }
  if (plan.empty()) {
    spdlog::warn("the config enables no polls: nothing to do until restarted");
  }

  MetricsRegistry metrics;
  QueueLimits limits;
  limits.max_records = config.max_pending_failures;
  limits.max_bytes = config.max_spool_bytes;
  // The newest failures say the most about the site now.
  limits.overflow = QueueLimits::Overflow::kDropOldest;
  absl::StatusOr<std::unique_ptr<FailureQueue>> opened =
      OpenFailureQueue(FailureQueueOptions{config.spool_directory, limits,
                                           "qs-poller spool", &metrics,
                                           "qfp_poller_spool"});
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
  TrackerClient client(client_options, std::move(spool), metrics);
  client.Start();

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
  PollScheduler scheduler(config, plan, *transport, client, SystemClock::Get(),
                          metrics);
  spdlog::info(
      "qs-poller started: {} poll targets, tracker {}, poller id {}, "
      "instance {}",
      plan.size(), config.tracker_address, config.poller_id,
      scheduler.instance_id());

  std::atomic<bool> stop{false};
  std::thread signal_waiter([&] {
    const int signal_number = WaitForTerminationSignal();
    spdlog::info("signal {} received: stopping polls", signal_number);
    stop.store(true);
    transport->Wakeup();
  });
  scheduler.Run(stop);
  signal_waiter.join();
  // Polls still running past their timeout are cancelled while the
  // scheduler (their callbacks' target) is still alive.
  transport.reset();

  const uint64_t left = client.Shutdown(
      absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_deadline_ms)));
  const uint64_t dropped = client.spool().stats().dropped;
  if (const uint64_t lost = client.lost(); lost > 0) {
    spdlog::error(
        "{} failures could not be stored in spool {} (its commits failed) and "
        "are lost; they are in the log above",
        lost, spool_description);
  }
  const SchedulerStats polls = scheduler.stats();
  const std::string overflow =
      dropped == 0
          ? std::string()
          : absl::StrCat("; ", dropped,
                         " dropped earlier because the spool was full");
  if (left == 0) {
    spdlog::info(
        "qs-poller stopped: {} polls, {} failed, every failure acknowledged "
        "by the tracker, 0 failures left in spool {}{}",
        polls.polls_started, polls.polls_failed, spool_description, overflow);
  } else if (spool_durable) {
    spdlog::warn(
        "qs-poller stopped: {} polls, {} failed; {} failures not yet "
        "acknowledged by tracker {} left in spool {}, resent at next "
        "start{}",
        polls.polls_started, polls.polls_failed, left, config.tracker_address,
        spool_description, overflow);
  } else {
    spdlog::warn(
        "qs-poller stopped: {} polls, {} failed; {} failures not "
        "acknowledged by tracker {} were in the memory spool and are lost "
        "(logged above){}",
        polls.polls_started, polls.polls_failed, left, config.tracker_address,
        overflow);
  }
  return 0;
}

}  // namespace
}  // namespace qfp::poller

int main(int argc, char** argv) { return qfp::poller::Main(argc, argv); }
