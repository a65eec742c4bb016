#include "common/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qfp {
namespace {

// Misuse is a programming error (see the header). stderr rather than spdlog:
// the message must appear even before logging is set up.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

bool IsAsciiLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// `s` with every byte that is not part of a well-formed UTF-8 sequence
// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) replaced by
// U+FFFD. Prometheus rejects a whole scrape over one invalid label value.
std::string ValidUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto byte = [&](size_t k) {
      return static_cast<unsigned char>(s[i + k]);
    };
    const unsigned char b0 = byte(0);
    size_t len = 0;
    unsigned char lo = 0x80;  // the range allowed for the second byte
    unsigned char hi = 0xBF;
    if (b0 < 0x80) {
      len = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;  // overlong
      if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;  // overlong
      if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char b = byte(k);
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

// HELP text escapes backslash and newline; label values also escape the
// double quote that would end them.
std::string Escape(absl::string_view s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// Go's ParseFloat spellings, which Prometheus reads: NaN, +Inf, -Inf, and
// otherwise the shortest text that reads back as the same double.
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

void AppendSample(std::string* out, absl::string_view name,
                  absl::string_view suffix, absl::string_view labels,
                  absl::string_view value) {
  absl::StrAppend(out, name, suffix);
  if (!labels.empty()) absl::StrAppend(out, "{", labels, "}");
  absl::StrAppend(out, " ", value, "\n");
}

// std::atomic<double>::fetch_add is C++20.
void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta,
                                       std::memory_order_relaxed)) {
  }
}

// A gauge whose value is read when the registry renders.
// A value another component owns, read at render time: a gauge, or a
// counter when what is read only ever grows (a component's own tally).
class CallbackGauge final : public MetricFamily {
 public:
  CallbackGauge(absl::string_view name, absl::string_view help,
                std::function<double()> read, const char* type = "gauge")
      : MetricFamily(name, help, type), read_(std::move(read)) {
    if (!read_) Die(absl::StrCat("callback metric ", name, " has no callback"));
  }

 private:
  void RenderSamples(std::string* out) const override {
    double value;
    try {
      value = read_();
    } catch (...) {
      // The owner's failure must not take the page down with it.
      value = std::nan("");
    }
    AppendSample(out, name(), "", "", FormatDouble(value));
  }

  const std::function<double()> read_;
};

}  // namespace

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok =
        IsAsciiLetter(c) || c == '_' || c == ':' || (i > 0 && IsAsciiDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || absl::string_view(name).substr(0, 2) == "__") {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAsciiLetter(c) || c == '_' || (i > 0 && IsAsciiDigit(c)))) {
      return false;
    }
  }
  return true;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  if (!(start > 0) || !(factor > 1) || count < 1) {
    Die(
        absl::StrCat("ExponentialBuckets needs start > 0, factor > 1 and "
                     "count >= 1, got ",
                     start, ", ", factor, ", ", count));
  }
  std::vector<double> bounds;
  bounds.reserve(static_cast<size_t>(count));
  double bound = start;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

// ---- MetricFamily -----------------------------------------------------------

MetricFamily::MetricFamily(absl::string_view name, absl::string_view help,
                           absl::string_view type)
    : name_(name), help_(Escape(ValidUtf8(help), false)), type_(type) {
  if (!IsValidMetricName(name_)) {
    Die(absl::StrCat("invalid metric name \"", Escape(ValidUtf8(name), true),
                     "\" (must match [a-zA-Z_:][a-zA-Z0-9_:]*)"));
  }
}

void MetricFamily::Render(std::string* out) const {
  if (!help_.empty()) absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n");
  absl::StrAppend(out, "# TYPE ", name_, " ", type_, "\n");
  RenderSamples(out);
}

// ---- LabeledFamily ----------------------------------------------------------

LabeledFamily::LabeledFamily(absl::string_view name, absl::string_view help,
                             absl::string_view type,
                             std::vector<std::string> labels)
    : MetricFamily(name, help, type), label_names_(std::move(labels)) {
  for (size_t i = 0; i < label_names_.size(); ++i) {
    const std::string& label = label_names_[i];
    if (!IsValidLabelName(label)) {
      Die(absl::StrCat("metric ", name, ": invalid label name \"",
                       Escape(ValidUtf8(label), true),
                       "\" (must match [a-zA-Z_][a-zA-Z0-9_]* and not start "
                       "with __)"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names_[j] == label) {
        Die(absl::StrCat("metric ", name, ": label \"", label,
                         "\" declared twice"));
      }
    }
  }
}

LabeledFamily::SeriesBase& LabeledFamily::FindOrCreate(
    absl::Span<const absl::string_view> values) {
  if (values.size() != label_names_.size()) {
    Die(absl::StrCat("metric ", name(), ": ", values.size(),
                     " label values given for ", label_names_.size(),
                     " label names"));
  }
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = series_.find(values);
    if (it != series_.end()) return *it->second;
  }
  // Built outside the lock; a racing creator may win, and then this one is
  // discarded. Values that are not UTF-8 are stored repaired, so they miss
  // the lookup above and always come here, which only costs time.
  std::vector<std::string> key;
  key.reserve(values.size());
  for (absl::string_view v : values) key.push_back(ValidUtf8(v));
  std::unique_ptr<SeriesBase> series = NewSeries();
  for (size_t i = 0; i < key.size(); ++i) {
    absl::StrAppend(&series->rendered_labels_, i > 0 ? "," : "",
                    label_names_[i], "=\"", Escape(key[i], true), "\"");
  }
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = series_.try_emplace(std::move(key), nullptr);
  if (inserted) it->second = std::move(series);
  return *it->second;
}

LabeledFamily::SeriesBase& LabeledFamily::Unlabeled() const {
  if (unlabeled_ == nullptr) {
    Die(absl::StrCat("metric ", name(), " has ", label_names_.size(),
                     " labels: update it through WithLabels"));
  }
  return *unlabeled_;
}

void LabeledFamily::CreateUnlabeledSeries() { unlabeled_ = &FindOrCreate({}); }

void LabeledFamily::RenderSamples(std::string* out) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [values, series] : series_) RenderSeries(*series, out);
}

// ---- Counter, Gauge ---------------------------------------------------------

std::unique_ptr<LabeledFamily::SeriesBase> Counter::NewSeries() const {
  return std::make_unique<Series>();
}

void Counter::RenderSeries(const SeriesBase& series, std::string* out) const {
  const auto& s = static_cast<const Series&>(series);
  AppendSample(out, name(), "", s.rendered_labels(), absl::StrCat(s.value()));
}

void Gauge::Series::Add(double delta) { AtomicAdd(value_, delta); }

std::unique_ptr<LabeledFamily::SeriesBase> Gauge::NewSeries() const {
  return std::make_unique<Series>();
}

void Gauge::RenderSeries(const SeriesBase& series, std::string* out) const {
  const auto& s = static_cast<const Series&>(series);
  AppendSample(out, name(), "", s.rendered_labels(), FormatDouble(s.value()));
}

// ---- Histogram --------------------------------------------------------------

Histogram::Series::Series(const std::vector<double>& bounds)
    : bounds_(bounds),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {}

void Histogram::Series::Observe(double value) {
  const size_t bucket =
      std::isnan(value)
          ? bounds_.size()
          : static_cast<size_t>(
                std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                bounds_.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

std::vector<uint64_t> Histogram::Series::bucket_counts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  for (size_t i = 0; i < counts.size(); ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  return counts;
}

uint64_t Histogram::Series::count() const {
  uint64_t total = 0;
  for (uint64_t n : bucket_counts()) total += n;
  return total;
}

Histogram::Histogram(absl::string_view name, absl::string_view help,
                     std::vector<std::string> labels,
                     std::vector<double> bounds)
    : LabeledFamily(name, help, "histogram", std::move(labels)),
      bounds_(std::move(bounds)) {
  for (const std::string& label : label_names()) {
    if (label == "le") {
      Die(absl::StrCat("histogram ", name, ": \"le\" is reserved for buckets"));
    }
  }
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) ||
        (i > 0 && !(bounds_[i - 1] < bounds_[i]))) {
      Die(absl::StrCat("histogram ", name,
                       ": bucket bounds must be finite and strictly "
                       "increasing (the +Inf bucket is implicit)"));
    }
  }
}

std::unique_ptr<LabeledFamily::SeriesBase> Histogram::NewSeries() const {
  return std::make_unique<Series>(bounds_);
}

void Histogram::RenderSeries(const SeriesBase& series, std::string* out) const {
  const auto& s = static_cast<const Series&>(series);
  const std::string& labels = s.rendered_labels();
  const std::string le_prefix = labels.empty() ? "le=\"" : labels + ",le=\"";
  // One snapshot of the buckets, so the cumulative counts and _count agree.
  const std::vector<uint64_t> counts = s.bucket_counts();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::string le =
        i < bounds_.size() ? FormatDouble(bounds_[i]) : std::string("+Inf");
    AppendSample(out, name(), "_bucket", absl::StrCat(le_prefix, le, "\""),
                 absl::StrCat(cumulative));
  }
  AppendSample(out, name(), "_sum", labels, FormatDouble(s.sum()));
  AppendSample(out, name(), "_count", labels, absl::StrCat(cumulative));
}

// ---- MetricsRegistry --------------------------------------------------------

template <typename T>
T& MetricsRegistry::Register(
    std::unique_ptr<T> family,
    std::initializer_list<absl::string_view> suffixes) {
  if constexpr (std::is_base_of_v<LabeledFamily, T>) {
    if (family->label_names().empty()) family->CreateUnlabeledSeries();
  }
  T& ref = *family;
  absl::MutexLock lock(&mu_);
  for (absl::string_view suffix : suffixes) {
    const std::string sample = absl::StrCat(family->name(), suffix);
    if (names_.count(sample) > 0) {
      Die(absl::StrCat("metric name ", sample, " registered twice"));
    }
  }
  for (absl::string_view suffix : suffixes) {
    names_.insert(absl::StrCat(family->name(), suffix));
  }
  families_.push_back(std::move(family));
  return ref;
}

Counter& MetricsRegistry::AddCounter(absl::string_view name,
                                     absl::string_view help,
                                     std::vector<std::string> label_names) {
  return Register(std::unique_ptr<Counter>(
      new Counter(name, help, "counter", std::move(label_names))));
}

Gauge& MetricsRegistry::AddGauge(absl::string_view name, absl::string_view help,
                                 std::vector<std::string> label_names) {
  return Register(std::unique_ptr<Gauge>(
      new Gauge(name, help, "gauge", std::move(label_names))));
}

Histogram& MetricsRegistry::AddHistogram(absl::string_view name,
                                         absl::string_view help,
                                         std::vector<std::string> label_names,
                                         std::vector<double> bucket_bounds) {
  return Register(
      std::unique_ptr<Histogram>(new Histogram(
          name, help, std::move(label_names), std::move(bucket_bounds))),
      {"", "_bucket", "_sum", "_count"});
}

void MetricsRegistry::AddCallbackGauge(absl::string_view name,
                                       absl::string_view help,
                                       std::function<double()> read) {
  Register(std::make_unique<CallbackGauge>(name, help, std::move(read)));
}

void MetricsRegistry::AddCallbackCounter(absl::string_view name,
                                         absl::string_view help,
                                         std::function<double()> read) {
  Register(
      std::make_unique<CallbackGauge>(name, help, std::move(read), "counter"));
}

std::string MetricsRegistry::RenderText() const {
  // Rendered outside the registry lock: callbacks may take their owners'
  // locks, and those owners may be registering metrics meanwhile. Families
  // are never removed, so the pointers stay valid.
  std::vector<const MetricFamily*> families;
  {
    absl::ReaderMutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  std::string out;
  for (const MetricFamily* family : families) family->Render(&out);
  return out;
}

void LabeledFamily::ForEachSeries(
    const std::function<void(const SeriesBase&)>& visit) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [values, series] : series_) visit(*series);
}

uint64_t Counter::Sum() const {
  uint64_t sum = 0;
  ForEachSeries([&sum](const SeriesBase& series) {
    sum += static_cast<const Series&>(series).value();
  });
  return sum;
}

}  // namespace qfp
