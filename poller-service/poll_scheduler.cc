#include "poller-service/poll_scheduler.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/failure_names.h"
#include "spdlog/spdlog.h"

namespace qfp::poller {

using failedpolls::v1::PollFailure;

namespace {

// Lateness spans a well-kept schedule (well under a millisecond) to a poll
// loop that falls behind by a whole interval.
std::vector<double> LatenessBuckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

// a mod n, in [0, n) for n > 0.
int64_t FloorMod(int64_t a, int64_t n) {
  const int64_t r = a % n;
  return r < 0 ? r + n : r;
}

}  // namespace

absl::Duration SpreadOffset(absl::string_view key, absl::Duration interval) {
  const int64_t interval_ns = absl::ToInt64Nanoseconds(interval);
  if (interval_ns <= 0) return absl::ZeroDuration();
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_size = 0;
  if (EVP_Digest(key.data(), key.size(), digest.data(), &digest_size,
                 EVP_sha256(), nullptr) != 1 ||
      digest_size < 8) {
    // Not expected (SHA-256 is built into OpenSSL); every target then
    // starts at its first chance, as before spreading.
    return absl::ZeroDuration();
  }
  uint64_t hash = 0;
  for (int i = 0; i < 8; ++i) hash = (hash << 8) | digest[i];
  return absl::Nanoseconds(
      static_cast<int64_t>(hash % static_cast<uint64_t>(interval_ns)));
}

absl::Duration FirstDueTime(absl::Duration offset, absl::Duration interval,
                            absl::Time wall_now, absl::Duration monotonic_now) {
  const int64_t interval_ns = absl::ToInt64Nanoseconds(interval);
  if (interval_ns <= 0) return monotonic_now;
  const int64_t phase_now = FloorMod(absl::ToUnixNanos(wall_now), interval_ns);
  const int64_t wait =
      FloorMod(absl::ToInt64Nanoseconds(offset) - phase_now, interval_ns);
  return monotonic_now + absl::Nanoseconds(wait);
}

PollScheduler::PollScheduler(const PollerConfig& config,
                             std::vector<PollTarget> plan,
                             HttpTransport& transport, FailureSink& sink,
                             const Clock& clock, MetricsRegistry& metrics,
                             const TargetOwnership* ownership,
                             AttemptLedger* ledger)
    : config_(config),
      transport_(transport),
      sink_(sink),
      clock_(clock),
      ownership_(ownership),
      ledger_(ledger),
      polls_(metrics.AddCounter("qfp_poller_polls_total",
                                "Polls started, by source.", {"source"})),
      failed_(metrics.AddCounter("qfp_poller_poll_failures_total",
                                 "Failed polls, by source and error_category.",
                                 {"source", "category"})),
      skipped_(metrics.AddCounter(
          "qfp_poller_polls_skipped_total",
          "Rounds skipped because the previous poll of the target was still "
          "running, by source.",
          {"source"})),
      poll_seconds_(metrics.AddHistogram("qfp_poller_poll_duration_seconds",
                                         "Time one poll took, by source.",
                                         {"source"}, DefaultLatencyBuckets())),
      lateness_(metrics.AddHistogram(
          "qfp_poller_poll_start_lateness_seconds",
          "How late polls began against their due time (the scheduler's "
          "delay plus the time queued in the transport), by source.",
          {"source"}, LatenessBuckets())),
      queued_(metrics.AddHistogram(
          "qfp_poller_poll_queued_seconds",
          "Time polls waited in the transport's queue (maxConcurrentPolls) "
          "before they began, by source.",
          {"source"}, LatenessBuckets())) {
  // Read both clocks once: every phase is placed against the same instant.
  const absl::Time wall_now = clock_.Now();
  const absl::Duration now = clock_.Monotonic();
  targets_.reserve(plan.size());
  std::vector<DueEntry> entries;
  entries.reserve(plan.size());
  for (PollTarget& target : plan) {
    const absl::Duration first =
        FirstDueTime(SpreadOffset(target.Key(), target.interval),
                     target.interval, wall_now, now);
    entries.emplace_back(first, targets_.size());
    TargetState state;
    state.target = std::move(target);
    state.next_due = first;
    targets_.push_back(std::move(state));
  }
  due_ = decltype(due_)(std::greater<DueEntry>(), std::move(entries));
  // 64 random bits: a restarted poller never reuses an earlier run's ids.
  instance_id_ = absl::StrFormat("%016x", absl::Uniform<uint64_t>(rng_));
}

SchedulerStats PollScheduler::stats() const {
  SchedulerStats stats;
  stats.polls_started = polls_.Sum();
  stats.polls_failed = failed_.Sum();
  stats.polls_skipped = skipped_.Sum();
  return stats;
}

void PollScheduler::PollInRounds() {
  const absl::Duration now = clock_.Monotonic();
  std::vector<DueEntry> entries;
  entries.reserve(targets_.size());
  for (size_t i = 0; i < targets_.size(); ++i) {
    targets_[i].next_due = now;
    entries.emplace_back(now, i);
  }
  due_ = decltype(due_)(std::greater<DueEntry>(), std::move(entries));
}

void PollScheduler::Step(absl::Duration max_wait) {
  const absl::Duration now = clock_.Monotonic();
  while (!due_.empty() && due_.top().first <= now) {
    const size_t index = due_.top().second;
    due_.pop();
    TargetState& state = targets_[index];
    const absl::Duration due = state.next_due;
    if (ownership_ != nullptr && !ownership_->Owns(state.target.Key())) {
      // Another poller's now; asked again at the next due time.
    } else if (state.in_flight) {
      skipped_.WithLabels({SourceName(state.target.source)}).Increment();
      spdlog::warn(
          "{}: previous poll still running at the next due time; skipping "
          "this round",
          state.target.Key());
    } else {
      StartPoll(state, due);
    }
    // Fixed rate, but never a burst of catch-up rounds after a stall: the
    // rounds missed are skipped whole, so the target keeps its phase (and
    // the targets stay spread). An interval <= 0 (not accepted by the
    // config) must not spin here.
    const absl::Duration interval =
        std::max(state.target.interval, absl::Milliseconds(1));
    state.next_due += interval;
    if (state.next_due <= now) {
      absl::Duration behind_rest;
      const int64_t missed =
          absl::IDivDuration(now - state.next_due, interval, &behind_rest);
      state.next_due += (missed + 1) * interval;
    }
    due_.emplace(state.next_due, index);
  }
  absl::Duration next_due = now + max_wait;
  if (!due_.empty()) next_due = std::min(next_due, due_.top().first);
  transport_.Run(std::max(next_due - clock_.Monotonic(), absl::ZeroDuration()));
}

void PollScheduler::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) Step(absl::Milliseconds(500));
  // No new polls; the ones running get their own timeout to finish, but
  // never more than requestTimeout: a stop must not wait the QRS's minutes
  // (the Helm chart's grace period counts on requestTimeout). A poll still
  // running then is cancelled, which is no failure.
  absl::Duration longest = absl::ZeroDuration();
  for (const TargetState& state : targets_) {
    if (state.in_flight) longest = std::max(longest, state.target.timeout);
  }
  const absl::Duration give_up = clock_.Monotonic() +
                                 std::min(longest, config_.request_timeout) +
                                 absl::Seconds(1);
  while (transport_.in_flight() > 0) {
    const absl::Duration left = give_up - clock_.Monotonic();
    if (left <= absl::ZeroDuration()) break;
    transport_.Run(std::min(left, absl::Milliseconds(200)));
  }
}

void PollScheduler::StartPoll(TargetState& state, absl::Duration due) {
  state.in_flight = true;
  state.due = due;
  polls_.WithLabels({SourceName(state.target.source)}).Increment();
  HttpRequest request = MakeRequest(state.target, config_, rng_);
  spdlog::debug("{}: GET {}", state.target.Key(), MaskedUrl(state.target));
  state.requested = clock_.Monotonic();
  transport_.Start(request, [this, &state](RequestOutcome outcome) {
    OnDone(state, outcome);
  });
}

void PollScheduler::OnDone(TargetState& state, const RequestOutcome& outcome) {
  state.in_flight = false;
  if (outcome.cancelled) {
    // Cancelled by our own shutdown: says nothing about the server.
    spdlog::info("{}: poll cancelled at shutdown", state.target.Key());
    return;
  }
  const absl::string_view source = SourceName(state.target.source);
  poll_seconds_.WithLabels({source}).Observe(outcome.elapsed);
  // The request began `elapsed` before now, by the transport's account;
  // clamped to [requested, now] since the transport reads its own clock.
  const absl::Duration now = clock_.Monotonic();
  const absl::Duration began =
      std::clamp(now - outcome.elapsed, std::min(state.requested, now), now);
  queued_.WithLabels({source}).Observe(began - state.requested);
  lateness_.WithLabels({source}).Observe(
      std::max(began - state.due, absl::ZeroDuration()));
  std::optional<Classification> failed = ClassifyOutcome(outcome);
  if (ledger_ != nullptr) ledger_->Record(state.target, failed.has_value());
  if (!failed.has_value()) {
    spdlog::debug("{}: ok (HTTP {}, {} ms)", state.target.Key(),
                  outcome.http_status,
                  absl::ToInt64Milliseconds(outcome.elapsed));
    return;
  }
  const PollTarget& target = state.target;
  failed_
      .WithLabels({SourceName(target.source), CategoryName(failed->category)})
      .Increment();
  PollFailure failure;
  failure.mutable_id()->set_poller_id(config_.poller_id);
  failure.mutable_id()->set_instance_id(instance_id_);
  failure.mutable_id()->set_sequence(next_sequence_++);
  // The wall clock, stepped or not: occurred_at is a timestamp for people
  // and InfluxDB, not an interval.
  const int64_t nanos = absl::ToUnixNanos(clock_.Now());
  failure.mutable_occurred_at()->set_seconds(nanos / 1000000000);
  failure.mutable_occurred_at()->set_nanos(
      static_cast<int32_t>(nanos % 1000000000));
  failure.set_source(target.source);
  failure.set_server_name(target.server_name);
  failure.set_host(target.host);
  failure.set_virtual_proxy(target.virtual_proxy);
  failure.mutable_server_tags()->insert(target.server_tags.begin(),
                                        target.server_tags.end());
  failure.set_error_category(failed->category);
  failure.set_error_code(failed->error_code);
  if (failed->http_status) failure.set_http_status(*failed->http_status);
  // Every failure of an HTTP request carries the URL (query removed: it
  // holds the Xrfkey) and its source's configured timeout.
  failure.set_request_url(target.url);
  failure.set_request_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(target.timeout)));
  failure.set_remote_address(failed->remote_address);
  if (failed->remote_port) failure.set_remote_port(*failed->remote_port);
  failure.set_syscall(failed->syscall);
  failure.set_message(failed->message);
  spdlog::warn("failed poll: {}", DescribeFailure(failure));
  sink_.Deliver(std::move(failure));
}

}  // namespace qfp::poller
