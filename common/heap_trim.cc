#include "common/heap_trim.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

namespace qfp {

std::optional<uint64_t> ResidentBytes() {
  // statm: "size resident shared text lib data dt", in pages.
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return std::nullopt;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int read = std::fscanf(file, "%llu %llu", &size, &resident);
  std::fclose(file);
  const long page = sysconf(_SC_PAGESIZE);
  if (read != 2 || page <= 0) return std::nullopt;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(page);
}

HeapTrimResult TrimHeap(const Clock& clock) {
  HeapTrimResult result;
  result.resident_before = ResidentBytes();
  const absl::Duration start = clock.Monotonic();
  malloc_trim(0);
  result.duration = clock.Monotonic() - start;
  result.resident_after = ResidentBytes();
  return result;
}

bool HeapTrimPolicy::ShouldTrim(bool busy, absl::Duration now) {
  if (busy) {
    if (!interval_start_.has_value()) {
      interval_start_ = now;  // the first busy tick starts the interval
      return false;
    }
    if (now - *interval_start_ < options_.busy_interval) return false;
  }
  interval_start_ = now;
  return true;
}

PeriodicHeapTrim::PeriodicHeapTrim(absl::Duration interval)
    : thread_([this, interval] {
        while (true) {
          {
            absl::MutexLock lock(&mu_);
            if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval)) {
              return;
            }
          }
          malloc_trim(0);
        }
      }) {}

PeriodicHeapTrim::~PeriodicHeapTrim() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

}  // namespace qfp
