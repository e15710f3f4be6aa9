#pragma once
// Metrics in the Prometheus text exposition format 0.0.4: counters, gauges and histograms,
// each a family with fixed label names and one child per combination of label values.
//
// Updating is cheap from any reactor thread: a counter or histogram child keeps one
// cache-line-sized cell per shard (the thread picks its shard once) updated with relaxed
// atomics; Render() sums the shards. Gauges are one relaxed atomic (Set needs one value).
// Children are created under the family's lock, once: callers keep the pointer (stable for
// the registry's lifetime) and update it without any lock.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace xr::metrics {

inline constexpr size_t kShards = 16;

// A thread's shard, assigned round-robin on its first update.
size_t ThisThreadShard();

struct alignas(64) CounterCell {
  std::atomic<uint64_t> value{0};
};

class Counter {
 public:
  void Inc(uint64_t n = 1) { cells_[ThisThreadShard()].value.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const;  // the sum over shards

 private:
  std::array<CounterCell, kShards> cells_;
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double v);
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (= count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Take() const;

 private:
  struct alignas(64) Shard {
    std::unique_ptr<std::atomic<uint64_t>[]> buckets;  // per bound, then +Inf (not cumulative)
    std::atomic<double> sum{0};
  };
  const std::vector<double>* bounds_;
  std::array<Shard, kShards> shards_;
};

enum class Type { kCounter, kGauge, kHistogram };

// One metric name with its help text, label names and children.
template <typename Child>
class Family {
 public:
  // The child for these label values (as many as label names), created on first use.
  // kMalformed when the count is wrong.
  Expected<Child*> With(const std::vector<std::string>& label_values);
  // The child of a family without labels.
  Child* Get() { return *With({}); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> labels, Type type, std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), type_(type),
        bounds_(std::move(bounds)) {}
  void Render(std::string& out) const;

  std::string name_, help_;
  std::vector<std::string> labels_;
  Type type_;
  std::vector<double> bounds_;  // histograms: ascending upper bounds, without +Inf
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Seconds: 1 ms to 30 s, for login and server-handshake latency.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not "__..."
  // and not "le" on histograms), each name registered once, histogram bounds ascending and
  // finite. Errors say which rule is broken.
  Expected<CounterFamily*> AddCounter(std::string name, std::string help, std::vector<std::string> labels = {});
  Expected<GaugeFamily*> AddGauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Expected<HistogramFamily*> AddHistogram(std::string name, std::string help, std::vector<std::string> labels,
                                          std::vector<double> bounds);

  // Every family in registration order, children in label order:
  //   # HELP name help   (backslash and newline escaped)
  //   # TYPE name counter|gauge|histogram
  //   name{label="value"} 42   (backslash, double quote and newline escaped in values)
  // histograms as name_bucket{...,le="0.005"} (cumulative, ending with le="+Inf"), name_sum, name_count.
  std::string Render() const;

  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  Status CheckNew(const std::string& name, const std::vector<std::string>& labels, bool histogram);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<CounterFamily>> counters_;
  std::vector<std::unique_ptr<GaugeFamily>> gauges_;
  std::vector<std::unique_ptr<HistogramFamily>> histograms_;
  std::vector<std::pair<Type, size_t>> order_;  // registration order
};

// The relay's own metrics (issue 19's list), registered on one registry. The engine keeps a
// pointer to each child it updates.
struct RelayMetrics {
  GaugeFamily* connections = nullptr;           // {state, transport}
  CounterFamily* logins = nullptr;              // {result, reason}
  CounterFamily* bytes = nullptr;               // {direction, path}
  HistogramFamily* login_seconds = nullptr;     // {transport}
  HistogramFamily* server_handshake_seconds = nullptr;
  GaugeFamily* backoff_addresses = nullptr;
  GaugeFamily* prelogin_memory_bytes = nullptr;
  GaugeFamily* backend = nullptr;               // {backend}: 1 for the one in use

  static Expected<RelayMetrics> Register(Registry& r);
};

// Text-format helpers (exposed for tests).
std::string EscapeLabelValue(std::string_view v);
std::string EscapeHelp(std::string_view v);
std::string FormatValue(double v);  // "+Inf", "-Inf", "NaN", or the shortest round-trip form

}  // namespace xr::metrics
