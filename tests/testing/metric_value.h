// Reads one sample from a MetricsRegistry the way a scraper would: from its
// rendered text. Tests read the registry, the one place a count is kept.
#ifndef QFP_TESTS_TESTING_METRIC_VALUE_H_
#define QFP_TESTS_TESTING_METRIC_VALUE_H_

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/metrics.h"

namespace qfp::testing {

// The value of the sample written exactly as `sample` (the metric name and,
// if any, its rendered labels: `name{label="value"}`), or -1 if absent.
inline double MetricValue(const MetricsRegistry& registry,
                          absl::string_view sample) {
  const std::string text = registry.RenderText();
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, sample)) continue;
    absl::string_view rest = line.substr(sample.size());
    if (rest.empty() || rest[0] != ' ') continue;
    return std::strtod(std::string(rest.substr(1)).c_str(), nullptr);
  }
  return -1;
}

}  // namespace qfp::testing

#endif  // QFP_TESTS_TESTING_METRIC_VALUE_H_
