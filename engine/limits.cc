#include "engine/limits.h"

#include <time.h>

#include <algorithm>

namespace xr::engine {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::string AddressOf(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') {
    size_t close = peer.find(']');
    return close == std::string::npos ? peer : peer.substr(1, close - 1);
  }
  size_t colon = peer.rfind(':');
  if (colon == std::string::npos || peer.find(':') != colon) return peer;
  return peer.substr(0, colon);
}

bool Admission::Connect(const std::string& address) {
  std::lock_guard lock(mu_);
  uint32_t& n = per_address_[address];
  if (config_.max_per_address != 0 && n >= config_.max_per_address) {
    if (n == 0) per_address_.erase(address);
    return false;
  }
  ++n;
  return true;
}

void Admission::Disconnect(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = per_address_.find(address);
  if (it == per_address_.end()) return;
  if (--it->second == 0) per_address_.erase(it);
}

uint32_t Admission::connections(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = per_address_.find(address);
  return it == per_address_.end() ? 0 : it->second;
}

int64_t Admission::Backoff(const Failures& f, int64_t now_ms) const {
  if (f.count <= config_.free_failures) return 0;
  if (now_ms - f.last_ms > config_.failure_window_ms) return 0;
  uint32_t extra = std::min<uint32_t>(f.count - config_.free_failures, 30);
  int64_t wait = std::min<int64_t>(int64_t{1000} << (extra - 1), config_.max_backoff_ms);
  int64_t until = f.last_ms + wait;
  return until > now_ms ? until - now_ms : 0;
}

int64_t Admission::BackoffMs(const std::string& address, const std::string& user, int64_t now_ms) {
  std::lock_guard lock(mu_);
  int64_t wait = 0;
  if (auto it = address_failures_.find(address); it != address_failures_.end()) {
    wait = std::max(wait, Backoff(it->second, now_ms));
  }
  if (auto it = user_failures_.find(user); it != user_failures_.end()) {
    wait = std::max(wait, Backoff(it->second, now_ms));
  }
  return wait;
}

void Admission::Forget(int64_t now_ms) {
  if (now_ms - last_forget_ms_ < 60000) return;
  last_forget_ms_ = now_ms;
  for (auto* m : {&address_failures_, &user_failures_}) {
    std::erase_if(*m, [&](const auto& kv) { return now_ms - kv.second.last_ms > config_.failure_window_ms; });
  }
}

void Admission::Failed(const std::string& address, const std::string& user, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Forget(now_ms);
  for (auto [m, key] : {std::pair{&address_failures_, &address}, std::pair{&user_failures_, &user}}) {
    Failures& f = (*m)[*key];
    if (now_ms - f.last_ms > config_.failure_window_ms) f.count = 0;
    ++f.count;
    f.last_ms = now_ms;
  }
}

void Admission::Succeeded(const std::string& address, const std::string& user) {
  std::lock_guard lock(mu_);
  address_failures_.erase(address);
  user_failures_.erase(user);
}

namespace {
Admission*& Global() {
  static Admission* a = new Admission();
  return a;
}
}  // namespace

Admission& GlobalAdmission() { return *Global(); }

void ConfigureAdmission(const AdmissionConfig& config) {
  Admission* old = Global();
  Global() = new Admission(config);
  delete old;  // only at start-up, before any reactor runs
}

}  // namespace xr::engine
