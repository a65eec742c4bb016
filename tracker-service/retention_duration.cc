#include "tracker-service/retention_duration.h"

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace qfp::tracker {
namespace {

struct Unit {
  absl::string_view name;
  absl::Duration size;
};

constexpr absl::Duration kDay = absl::Hours(24);

// Longest names first, so that "ms" is not read as "m" then "s", "mins" not
// as "min" then "s", and so on: the first prefix that matches wins.
const Unit kUnits[] = {
    {"nanoseconds", absl::Nanoseconds(1)},
    {"nanosecond", absl::Nanoseconds(1)},
    {"microseconds", absl::Microseconds(1)},
    {"microsecond", absl::Microseconds(1)},
    {"milliseconds", absl::Milliseconds(1)},
    {"millisecond", absl::Milliseconds(1)},
    {"seconds", absl::Seconds(1)},
    {"second", absl::Seconds(1)},
    {"minutes", absl::Minutes(1)},
    {"minute", absl::Minutes(1)},
    {"months", 30 * kDay},
    {"month", 30 * kDay},
    {"hours", absl::Hours(1)},
    {"weeks", 7 * kDay},
    {"years", 365 * kDay},
    {"hour", absl::Hours(1)},
    {"days", kDay},
    {"week", 7 * kDay},
    {"year", 365 * kDay},
    {"secs", absl::Seconds(1)},
    {"mins", absl::Minutes(1)},
    {"hrs", absl::Hours(1)},
    {"day", kDay},
    {"sec", absl::Seconds(1)},
    {"min", absl::Minutes(1)},
    {"hr", absl::Hours(1)},
    {"yr", 365 * kDay},
    {"ns", absl::Nanoseconds(1)},
    {"us", absl::Microseconds(1)},
    {"\xC2\xB5s", absl::Microseconds(1)},  // µs
    {"ms", absl::Milliseconds(1)},
    {"mo", 30 * kDay},
    {"\xC2\xB5", absl::Microseconds(1)},  // µ (InfluxQL)
    {"u", absl::Microseconds(1)},         // InfluxQL
    {"s", absl::Seconds(1)},
    {"m", absl::Minutes(1)},
    {"h", absl::Hours(1)},
    {"d", kDay},
    {"w", 7 * kDay},
    {"y", 365 * kDay},
};

bool IsInfiniteWord(absl::string_view text) {
  for (absl::string_view word :
       {"0", "inf", "infinite", "infinity", "forever", "never"}) {
    if (absl::EqualsIgnoreCase(text, word)) return true;
  }
  return false;
}

}  // namespace

std::string RetentionDuration::InfluxQl() const {
  if (infinite) return "INF";
  // Whole days, else whole hours, else whole minutes, else seconds: every
  // form InfluxQL reads, without a year unit (it has none).
  if (duration % kDay == absl::ZeroDuration()) {
    return absl::StrCat(duration / kDay, "d");
  }
  if (duration % absl::Hours(1) == absl::ZeroDuration()) {
    return absl::StrCat(duration / absl::Hours(1), "h");
  }
  if (duration % absl::Minutes(1) == absl::ZeroDuration()) {
    return absl::StrCat(duration / absl::Minutes(1), "m");
  }
  if (duration % absl::Seconds(1) == absl::ZeroDuration()) {
    return absl::StrCat(duration / absl::Seconds(1), "s");
  }
  return absl::StrCat(absl::ToInt64Nanoseconds(duration), "ns");
}

int64_t RetentionDuration::Seconds() const {
  return infinite ? 0 : absl::ToInt64Seconds(duration);
}

std::string RetentionDuration::ToString() const {
  return infinite ? std::string("infinite") : absl::FormatDuration(duration);
}

absl::StatusOr<RetentionDuration> ParseRetentionDuration(
    absl::string_view text) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  RetentionDuration result;
  if (trimmed.empty() || IsInfiniteWord(trimmed)) return result;
  auto bad = [&text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a retention duration (", why,
        "; e.g. 30d, 1h30m, 30days, 1y, or INF to keep data forever)"));
  };
  // Words are read in any case, but a bare "M" would silently be minutes
  // where many people mean months (InfluxDB has no M unit): refused.
  for (size_t at = trimmed.find('M'); at != absl::string_view::npos;
       at = trimmed.find('M', at + 1)) {
    const bool after_number =
        at > 0 &&
        (absl::ascii_isdigit(static_cast<unsigned char>(trimmed[at - 1])) ||
         trimmed[at - 1] == ' ');
    const bool alone =
        at + 1 == trimmed.size() ||
        !absl::ascii_isalpha(static_cast<unsigned char>(trimmed[at + 1]));
    if (after_number && alone) {
      return bad(
          "\"M\" could mean minutes or months; write m or minutes, "
          "mo or months");
    }
  }
  const std::string lower = absl::AsciiStrToLower(trimmed);
  const absl::string_view rest_all = lower;
  absl::Duration total;
  size_t i = 0;
  while (i < rest_all.size()) {
    while (i < rest_all.size() && rest_all[i] == ' ') ++i;
    const size_t digits_start = i;
    while (i < rest_all.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(rest_all[i]))) {
      ++i;
    }
    if (i == digits_start) {
      return bad(i < rest_all.size() && rest_all[i] == '.'
                     ? "a fraction; write 36h rather than 1.5d"
                     : "expected a whole number");
    }
    if (i < rest_all.size() && rest_all[i] == '.') {
      return bad("a fraction; write 36h rather than 1.5d");
    }
    int64_t count = 0;
    if (!absl::SimpleAtoi(rest_all.substr(digits_start, i - digits_start),
                          &count)) {
      return bad("number too large");
    }
    while (i < rest_all.size() && rest_all[i] == ' ') ++i;
    const absl::string_view rest = rest_all.substr(i);
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (absl::StartsWith(rest, candidate.name)) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) {
      return bad(rest.empty() ? "a number needs a unit"
                              : "unknown unit; use ns, us, ms, s, m, h, d, "
                                "w, y or a word such as days");
    }
    i += unit->name.size();
    total += count * unit->size;
    // absl durations saturate instead of overflowing; 10000 years is far
    // beyond what any server keeps.
    if (total == absl::InfiniteDuration() || total > 10000 * 365 * kDay) {
      return bad("too long; use INF to keep data forever");
    }
  }
  if (total == absl::ZeroDuration()) return result;  // "0d": forever
  result.infinite = false;
  result.duration = total;
  return result;
}

absl::StatusOr<RetentionDuration> ValidateRetentionDuration(
    absl::string_view key_path, absl::string_view text,
    BelowMinimum below_minimum) {
  const std::string prefix =
      key_path.empty() ? std::string() : absl::StrCat(key_path, ": ");
  absl::StatusOr<RetentionDuration> parsed = ParseRetentionDuration(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, parsed.status().message()));
  }
  if (!parsed->infinite && parsed->duration < kMinRetention &&
      below_minimum == BelowMinimum::kRaise) {
    parsed->duration = kMinRetention;
    parsed->raised_to_minimum = true;
    return parsed;
  }
  if (!parsed->infinite && parsed->duration < kMinRetention) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "\"", text, "\" is shorter than one hour, which InfluxDB ",
        "refuses (\"retention policy duration must be at least 1h0m0s\"); use ",
        "1h or more, or INF to keep data forever"));
  }
  return parsed;
}

}  // namespace qfp::tracker
