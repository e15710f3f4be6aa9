#include "engine/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace xr::metrics {
namespace {

bool ValidName(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    out += out.empty() ? "{" : ",";
    out += std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
  }
  if (!out.empty()) out += "}";
  return out;
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

std::atomic<size_t> next_shard{0};

// Backslash and newline escaped; double quotes too inside label values.
std::string Escape(std::string_view v, bool quotes) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quotes) out += "\\\"";
    else out += c;
  }
  return out;
}

}  // namespace

size_t ThisThreadShard() {
  thread_local size_t shard = next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}

std::string EscapeLabelValue(std::string_view v) { return Escape(v, true); }

std::string EscapeHelp(std::string_view v) { return Escape(v, false); }

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

uint64_t Counter::Value() const {
  uint64_t sum = 0;
  for (const auto& c : cells_) sum += c.value.load(std::memory_order_relaxed);
  return sum;
}

Histogram::Histogram(const std::vector<double>* bounds) : bounds_(bounds) {
  for (auto& s : shards_) {
    s.buckets = std::make_unique<std::atomic<uint64_t>[]>(bounds_->size() + 1);
    for (size_t i = 0; i <= bounds_->size(); ++i) s.buckets[i].store(0, std::memory_order_relaxed);
  }
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;  // no bucket holds NaN; dropping it keeps sum and count meaningful
  size_t i = static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  Shard& s = shards_[ThisThreadShard()];
  s.buckets[i].fetch_add(1, std::memory_order_relaxed);
  s.sum.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot snap;
  std::vector<uint64_t> counts(bounds_->size() + 1, 0);
  for (const auto& s : shards_) {
    for (size_t i = 0; i <= bounds_->size(); ++i) counts[i] += s.buckets[i].load(std::memory_order_relaxed);
    snap.sum += s.sum.load(std::memory_order_relaxed);
  }
  uint64_t running = 0;
  for (uint64_t c : counts) {
    running += c;
    snap.cumulative.push_back(running);
  }
  snap.count = running;
  return snap;
}

template <typename Child>
Expected<Child*> Family<Child>::With(const std::vector<std::string>& label_values) {
  if (label_values.size() != labels_.size()) {
    return MakeError(ErrorCode::kMalformed, fmt::format("metric {}: {} label values for {} labels", name_,
                                                        label_values.size(), labels_.size()));
  }
  std::lock_guard lock(mu_);
  auto& child = children_[label_values];
  if (!child) {
    if constexpr (std::is_same_v<Child, Histogram>) {
      child = std::make_unique<Histogram>(&bounds_);
    } else {
      child = std::make_unique<Child>();
    }
  }
  return child.get();
}

template <typename Child>
void Family<Child>::Render(std::string& out) const {
  out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  out += "# TYPE " + name_ + " " + TypeName(type_) + "\n";
  std::lock_guard lock(mu_);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<Child, Histogram>) {
      Histogram::Snapshot s = child->Take();
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        std::string le = i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf";
        out += name_ + "_bucket" + LabelSet(labels_, values, "le", le) + " " + std::to_string(s.cumulative[i]) + "\n";
      }
      out += name_ + "_sum" + LabelSet(labels_, values) + " " + FormatValue(s.sum) + "\n";
      out += name_ + "_count" + LabelSet(labels_, values) + " " + std::to_string(s.count) + "\n";
    } else {
      out += name_ + LabelSet(labels_, values) + " " + std::to_string(child->Value()) + "\n";
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

Status Registry::CheckNew(const std::string& name, const std::vector<std::string>& labels, bool histogram) {
  if (!ValidName(name, true)) return MakeError(ErrorCode::kMalformed, "metric name '" + name + "' is not valid");
  for (const auto& l : labels) {
    if (!ValidName(l, false) || l.starts_with("__")) {
      return MakeError(ErrorCode::kMalformed, "metric " + name + ": label name '" + l + "' is not valid");
    }
    if (histogram && l == "le") return MakeError(ErrorCode::kMalformed, "metric " + name + ": 'le' is reserved");
    if (std::count(labels.begin(), labels.end(), l) > 1) {
      return MakeError(ErrorCode::kMalformed, "metric " + name + ": label '" + l + "' given twice");
    }
  }
  auto taken = [&](const auto& families) {
    return std::any_of(families.begin(), families.end(), [&](const auto& f) { return f->name_ == name; });
  };
  if (taken(counters_) || taken(gauges_) || taken(histograms_)) {
    return MakeError(ErrorCode::kMalformed, "metric " + name + " registered twice");
  }
  return Status::Ok();
}

Expected<CounterFamily*> Registry::AddCounter(std::string name, std::string help, std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  if (Status s = CheckNew(name, labels, false); !s.ok()) return s.error();
  counters_.emplace_back(new CounterFamily(std::move(name), std::move(help), std::move(labels), Type::kCounter));
  order_.emplace_back(Type::kCounter, counters_.size() - 1);
  return counters_.back().get();
}

Expected<GaugeFamily*> Registry::AddGauge(std::string name, std::string help, std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  if (Status s = CheckNew(name, labels, false); !s.ok()) return s.error();
  gauges_.emplace_back(new GaugeFamily(std::move(name), std::move(help), std::move(labels), Type::kGauge));
  order_.emplace_back(Type::kGauge, gauges_.size() - 1);
  return gauges_.back().get();
}

Expected<HistogramFamily*> Registry::AddHistogram(std::string name, std::string help, std::vector<std::string> labels,
                                                  std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  if (Status s = CheckNew(name, labels, true); !s.ok()) return s.error();
  if (bounds.empty()) return MakeError(ErrorCode::kMalformed, "histogram " + name + ": no buckets");
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      return MakeError(ErrorCode::kMalformed, "histogram " + name + ": bucket bounds must be finite and ascending");
    }
  }
  histograms_.emplace_back(
      new HistogramFamily(std::move(name), std::move(help), std::move(labels), Type::kHistogram, std::move(bounds)));
  order_.emplace_back(Type::kHistogram, histograms_.size() - 1);
  return histograms_.back().get();
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [type, i] : order_) {
    switch (type) {
      case Type::kCounter: counters_[i]->Render(out); break;
      case Type::kGauge: gauges_[i]->Render(out); break;
      case Type::kHistogram: histograms_[i]->Render(out); break;
    }
  }
  return out;
}

Expected<RelayMetrics> RelayMetrics::Register(Registry& r) {
  RelayMetrics m;
#define XR_TRY_ADD(field, call)           \
  {                                       \
    auto f = call;                        \
    if (!f.ok()) return f.error();        \
    m.field = *f;                         \
  }
  XR_TRY_ADD(connections, r.AddGauge("xpra_relay_connections", "Connections open now, by state and transport",
                                     {"state", "transport"}));
  XR_TRY_ADD(logins, r.AddCounter("xpra_relay_logins_total", "Logins finished, by result and reason", {"result", "reason"}));
  XR_TRY_ADD(bytes, r.AddCounter("xpra_relay_bytes_total", "Bytes relayed, by direction and path (copy, splice, tls, ws)",
                                 {"direction", "path"}));
  XR_TRY_ADD(login_seconds, r.AddHistogram("xpra_relay_login_seconds",
                                           "Seconds from accept to the end of the client's login", {"transport"},
                                           LatencyBuckets()));
  XR_TRY_ADD(server_handshake_seconds,
             r.AddHistogram("xpra_relay_server_handshake_seconds",
                            "Seconds from connecting to a session's server to its hello", {}, LatencyBuckets()));
  XR_TRY_ADD(backoff_addresses, r.AddGauge("xpra_relay_backoff_addresses", "Source addresses in login back-off now"));
  XR_TRY_ADD(prelogin_memory_bytes,
             r.AddGauge("xpra_relay_prelogin_memory_bytes", "Bytes buffered for connections that have not logged in"));
  XR_TRY_ADD(backend, r.AddGauge("xpra_relay_backend", "The I/O backend in use (1)", {"backend"}));
#undef XR_TRY_ADD
  return m;
}

}  // namespace xr::metrics
