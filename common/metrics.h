// Prometheus metrics without prometheus-cpp (Debian does not package it): a
// registry of counters, gauges and histograms, rendered in the text
// exposition format 0.0.4 for MetricsServer to serve.
//
// Hot paths pay one relaxed atomic operation per update once they hold a
// series; finding or creating a series takes the family's mutex, so code that
// updates the same series often should keep the reference WithLabels returns.
//
// Misuse is a programming error, not a runtime condition, so it aborts with a
// message on stderr instead of returning a Status: an invalid or duplicate
// metric name, an invalid label name, histogram bounds that are not strictly
// increasing, or a number of label values that differs from the family's
// label names. All of these are fixed by the code that registers and updates
// a metric, so any test that touches it finds the mistake, and the call sites
// stay one line long.
//
// Label values are data and are never rejected: they are escaped on output,
// and bytes that are not UTF-8 become U+FFFD so one bad value cannot make the
// whole page unparseable. Every distinct value creates a series that lives as
// long as the registry, so label values must come from bounded sets (error
// types, configured sources), never from unbounded input.
#ifndef QFP_COMMON_METRICS_H_
#define QFP_COMMON_METRICS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace qfp {

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(absl::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved by Prometheus).
bool IsValidLabelName(absl::string_view name);

// The Prometheus clients' default buckets, in seconds: 5 ms to 10 s.
std::vector<double> DefaultLatencyBuckets();
// `count` bounds: start, start*factor, start*factor^2, ...
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// What every family has: a name, a help text and a type; Render appends its
// HELP, TYPE and sample lines.
class MetricFamily {
 public:
  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }
  void Render(std::string* out) const;

 protected:
  MetricFamily(absl::string_view name, absl::string_view help,
               absl::string_view type);
  virtual void RenderSamples(std::string* out) const = 0;

 private:
  const std::string name_;
  const std::string help_;
  const std::string type_;
};

// A family whose series are told apart by label values. The series of a
// family are created on first use, never removed, and rendered sorted by
// their label values.
class LabeledFamily : public MetricFamily {
 public:
  const std::vector<std::string>& label_names() const { return label_names_; }

 protected:
  // One series; the three metric kinds derive their own.
  class SeriesBase {
   public:
    virtual ~SeriesBase() = default;
    // `name="value",...` for this series' labels, escaped; empty if none.
    const std::string& rendered_labels() const { return rendered_labels_; }

   private:
    friend class LabeledFamily;
    std::string rendered_labels_;
  };

  LabeledFamily(absl::string_view name, absl::string_view help,
                absl::string_view type, std::vector<std::string> labels);

  // The series for `values` (one per label name, in order), created on first
  // use. The reference stays valid as long as the family.
  SeriesBase& FindOrCreate(absl::Span<const absl::string_view> values);
  // The one series of a family without labels.
  SeriesBase& Unlabeled() const;
  // Calls `visit` for every series, under the family's mutex.
  void ForEachSeries(const std::function<void(const SeriesBase&)>& visit) const;

  virtual std::unique_ptr<SeriesBase> NewSeries() const = 0;
  virtual void RenderSeries(const SeriesBase& series,
                            std::string* out) const = 0;
  void RenderSamples(std::string* out) const final;

 private:
  friend class MetricsRegistry;
  // Creates the one series of a family without labels, so that it renders
  // (as 0) before its first update. NewSeries is virtual, hence not done in
  // the constructor.
  void CreateUnlabeledSeries();

  // Orders label-value tuples given as std::string or absl::string_view, so
  // that lookups need not build a key.
  struct LabelValuesLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(
          a.begin(), a.end(), b.begin(), b.end(),
          [](absl::string_view x, absl::string_view y) { return x < y; });
    }
  };

  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<SeriesBase>,
           LabelValuesLess>
      series_ ABSL_GUARDED_BY(mu_);
  // Set at registration when there are no labels, before the family is
  // handed out; never changes after.
  SeriesBase* unlabeled_ = nullptr;
};

// A count that only goes up (events, points, bytes).
class Counter final : public LabeledFamily {
 public:
  class Series final : public SeriesBase {
   public:
    void Increment(uint64_t n = 1) {
      value_.fetch_add(n, std::memory_order_relaxed);
    }
    uint64_t value() const { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<uint64_t> value_{0};
  };

  Series& WithLabels(absl::Span<const absl::string_view> values) {
    return static_cast<Series&>(FindOrCreate(values));
  }
  // For a counter registered without labels.
  void Increment(uint64_t n = 1) { Self().Increment(n); }
  uint64_t value() const { return Self().value(); }
  // The sum over every series (for totals in logs: one count, kept once).
  uint64_t Sum() const;

 private:
  friend class MetricsRegistry;
  using LabeledFamily::LabeledFamily;
  Series& Self() const { return static_cast<Series&>(Unlabeled()); }
  std::unique_ptr<SeriesBase> NewSeries() const override;
  void RenderSeries(const SeriesBase& series, std::string* out) const override;
};

// A value that goes up and down (queue depth, connection state).
class Gauge final : public LabeledFamily {
 public:
  class Series final : public SeriesBase {
   public:
    void Set(double v) { value_.store(v, std::memory_order_relaxed); }
    void Add(double delta);
    double value() const { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<double> value_{0.0};
  };

  Series& WithLabels(absl::Span<const absl::string_view> values) {
    return static_cast<Series&>(FindOrCreate(values));
  }
  // For a gauge registered without labels.
  void Set(double v) { Self().Set(v); }
  void Add(double delta) { Self().Add(delta); }
  double value() const { return Self().value(); }

 private:
  friend class MetricsRegistry;
  using LabeledFamily::LabeledFamily;
  Series& Self() const { return static_cast<Series&>(Unlabeled()); }
  std::unique_ptr<SeriesBase> NewSeries() const override;
  void RenderSeries(const SeriesBase& series, std::string* out) const override;
};

// A distribution (latencies, sizes) in fixed buckets. A scrape may catch an
// observation counted in its bucket but not yet in _sum; _count is derived
// from the buckets, so _count and the +Inf bucket always agree.
class Histogram final : public LabeledFamily {
 public:
  class Series final : public SeriesBase {
   public:
    explicit Series(const std::vector<double>& bounds);
    // A NaN is counted only in the +Inf bucket (it is <= no bound), and
    // makes _sum NaN from then on, which is what Prometheus clients do.
    void Observe(double value);
    // Records the duration in seconds, the unit Prometheus expects.
    void Observe(absl::Duration elapsed) {
      Observe(absl::ToDoubleSeconds(elapsed));
    }
    uint64_t count() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }
    // Observations per bucket, not cumulative; the last one is +Inf.
    std::vector<uint64_t> bucket_counts() const;

   private:
    const std::vector<double>& bounds_;
    const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
    std::atomic<double> sum_{0.0};
  };

  Series& WithLabels(absl::Span<const absl::string_view> values) {
    return static_cast<Series&>(FindOrCreate(values));
  }
  // For a histogram registered without labels.
  void Observe(double value) { Self().Observe(value); }
  void Observe(absl::Duration elapsed) { Self().Observe(elapsed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class MetricsRegistry;
  Histogram(absl::string_view name, absl::string_view help,
            std::vector<std::string> labels, std::vector<double> bounds);
  Series& Self() const { return static_cast<Series&>(Unlabeled()); }
  std::unique_ptr<SeriesBase> NewSeries() const override;
  void RenderSeries(const SeriesBase& series, std::string* out) const override;

  const std::vector<double> bounds_;
};

// The metrics of one process. Thread-safe: families may be added and updated
// from any thread while RenderText runs. Families are never removed; the
// references Add* return stay valid as long as the registry.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& AddCounter(absl::string_view name, absl::string_view help,
                      std::vector<std::string> label_names = {});
  Gauge& AddGauge(absl::string_view name, absl::string_view help,
                  std::vector<std::string> label_names = {});
  // `bucket_bounds` are the upper bounds ("le"), strictly increasing and
  // finite; the +Inf bucket is implicit.
  Histogram& AddHistogram(absl::string_view name, absl::string_view help,
                          std::vector<std::string> label_names,
                          std::vector<double> bucket_bounds);
  // A gauge read at render time, for values another component owns (buffer
  // depth, queue length). `read` runs on the thread that renders (the HTTP
  // server's), so it must be thread-safe, and what it reads must stay alive
  // while the registry can be rendered. If it throws, the sample reads NaN.
  void AddCallbackGauge(absl::string_view name, absl::string_view help,
                        std::function<double()> read);
  // The same for a total that only grows, kept by its owner (a component's
  // stats): rendered with TYPE counter. A value that ever decreases breaks
  // Prometheus's rate(); use a gauge for those.
  void AddCallbackCounter(absl::string_view name, absl::string_view help,
                          std::function<double()> read);

  // Every family in registration order, in the text exposition format 0.0.4.
  std::string RenderText() const;

 private:
  // Takes the family's name plus each of `suffixes` (the sample names it
  // renders); aborts if any is taken.
  template <typename T>
  T& Register(std::unique_ptr<T> family,
              std::initializer_list<absl::string_view> suffixes = {""});

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_ ABSL_GUARDED_BY(mu_);
  // Every sample name taken, including a histogram's _bucket/_sum/_count.
  std::set<std::string, std::less<>> names_ ABSL_GUARDED_BY(mu_);
};

}  // namespace qfp

#endif  // QFP_COMMON_METRICS_H_
