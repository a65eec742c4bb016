// The min / median / max of a benchmark's runs, as every benchmark here
// reports its figures.
#ifndef QFP_TESTS_BENCH_SPREAD_H_
#define QFP_TESTS_BENCH_SPREAD_H_

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace qfp::bench {

struct Spread {
  double min, median, max;
  // "min / median / max".
  std::string ToString() const {
    return absl::StrCat(min, " / ", median, " / ", max);
  }
};

// `values` must not be empty (one per run).
inline Spread SpreadOf(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return Spread{values.front(), values[values.size() / 2], values.back()};
}

}  // namespace qfp::bench

#endif  // QFP_TESTS_BENCH_SPREAD_H_
