#include "tracker-service/error_counter.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace qfp::tracker {
namespace {
absl::CivilDay UtcDay(absl::Time t) {
  return absl::ToCivilDay(t, absl::UTCTimeZone());
}
}  // namespace

ErrorCounter::ErrorCounter(const Clock& clock)
    : clock_(clock), day_(UtcDay(clock.Now())) {}

std::optional<std::string> ErrorCounter::Count(absl::string_view error_type,
                                               absl::string_view server_name) {
  absl::MutexLock lock(&mu_);
  std::optional<std::string> ended = RollOverLocked();
  ++total_;
  ++changes_;
  auto [it, inserted] = index_.try_emplace(
      std::make_pair(std::string(error_type), std::string(server_name)));
  if (inserted) {
    size_t t = 0;
    while (t < types_.size() && types_[t].error_type != error_type) ++t;
    if (t == types_.size()) {
      types_.push_back(TypeCount{std::string(error_type), 0, {}});
    }
    types_[t].servers.emplace_back(std::string(server_name), 0);
    it->second = {t, types_[t].servers.size() - 1};
  }
  TypeCount& type = types_[it->second.first];
  ++type.total;
  ++type.servers[it->second.second].second;
  return ended;
}

std::optional<std::string> ErrorCounter::RollOver() {
  absl::MutexLock lock(&mu_);
  return RollOverLocked();
}

std::optional<std::string> ErrorCounter::RollOverLocked() {
  const absl::CivilDay today = UtcDay(clock_.Now());
  if (today <= day_) return std::nullopt;
  std::string summary = SummaryLocked(absl::StrCat(
      "Final error counts for ", absl::FormatCivilTime(day_), " (UTC): "));
  day_ = today;
  total_ = 0;
  types_.clear();
  index_.clear();
  ++changes_;
  return summary;
}

std::string ErrorCounter::Summary() const {
  absl::MutexLock lock(&mu_);
  return SummaryLocked("Error counts today (UTC): ");
}

std::optional<std::string> ErrorCounter::SummaryIfChanged() {
  absl::MutexLock lock(&mu_);
  if (changes_ == summarized_changes_) return std::nullopt;
  summarized_changes_ = changes_;
  return SummaryLocked("Error counts today (UTC): ");
}

std::string ErrorCounter::SummaryLocked(absl::string_view prefix) const {
  // ordered_json keeps first-seen order, as Butler SOS's JS objects do.
  nlohmann::ordered_json details = nlohmann::ordered_json::object();
  for (const TypeCount& type : types_) {
    nlohmann::ordered_json servers = nlohmann::ordered_json::object();
    for (const auto& [server, count] : type.servers) servers[server] = count;
    details[type.error_type] = {{"total", type.total}, {"servers", servers}};
  }
  // Replace invalid UTF-8 rather than throw: names come from peers.
  return absl::StrCat(
      prefix, "Total=", total_, ", Details=",
      details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

uint64_t ErrorCounter::total() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

std::vector<ErrorCounter::TypeCount> ErrorCounter::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return types_;
}

}  // namespace qfp::tracker

namespace qfp::tracker {
absl::CivilDay ErrorCounter::day() const {
  absl::MutexLock lock(&mu_);
  return day_;
}
}  // namespace qfp::tracker
