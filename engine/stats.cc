#include "engine/stats.h"

#include <string_view>

namespace xr::engine {

RelayCounters& Counters() {
  static RelayCounters* c = new RelayCounters();
  return *c;
}

InstanceTable& Instances() {
  static InstanceTable* t = new InstanceTable();
  return *t;
}

void InstanceTable::Put(const InstanceSummary& s) {
  std::lock_guard lock(mu_);
  items_[s.id] = s;
}

void InstanceTable::Remove(uint64_t id) {
  std::lock_guard lock(mu_);
  items_.erase(id);
}

size_t InstanceTable::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

Value InstanceTable::ToValue() const {
  std::lock_guard lock(mu_);
  Value out{Dict{}};
  for (const auto& [id, s] : items_) {
    Value v{Dict{}};
    v.set("peer", std::string_view(s.peer));
    v.set("username", std::string_view(s.username));
    v.set("target", std::string_view(s.target));
    v.set("started", static_cast<long long>(s.started_unix));
    v.set("connection", static_cast<long long>(id));
    out.set(s.display, std::move(v));
  }
  return out;
}

}  // namespace xr::engine
