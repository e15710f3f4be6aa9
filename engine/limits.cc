#include "engine/limits.h"

#include <arpa/inet.h>
#include <time.h>

#include <algorithm>
#include <cstring>

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

bool Admission::Take(std::unordered_map<std::string, uint32_t>& counts, const std::string& key, uint32_t cap) {
  auto it = counts.find(key);
  const uint32_t n = it == counts.end() ? 0 : it->second;
  if (cap != 0 && n >= cap) return false;
  if (it == counts.end()) {
    counts.emplace(key, 1);
  } else {
    ++it->second;
  }
  return true;
}

void Admission::Release(std::unordered_map<std::string, uint32_t>& counts, const std::string& key) {
  auto it = counts.find(key);
  if (it == counts.end()) return;
  if (--it->second == 0) counts.erase(it);
}

std::string SourceOf(const std::string& address) {
  in6_addr a6{};
  if (address.find(':') == std::string::npos || inet_pton(AF_INET6, address.c_str(), &a6) != 1) return address;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char text[INET6_ADDRSTRLEN];
  if (std::memcmp(a6.s6_addr, kMapped, sizeof kMapped) == 0) {
    in_addr a4;
    std::memcpy(&a4, a6.s6_addr + 12, 4);
    return inet_ntop(AF_INET, &a4, text, sizeof text) ? std::string(text) : address;
  }
  std::memset(a6.s6_addr + 8, 0, 8);
  if (!inet_ntop(AF_INET6, &a6, text, sizeof text)) return address;
  return std::string(text) + "/64";
}

bool Admission::BeginLogin(const std::string& address) {
  std::lock_guard lock(mu_);
  return Take(logins_, SourceOf(address), config_.max_logins_per_source);
}

void Admission::EndLogin(const std::string& address) {
  std::lock_guard lock(mu_);
  Release(logins_, SourceOf(address));
}

uint32_t Admission::logins(const std::string& address) {
  std::lock_guard lock(mu_);
  auto it = logins_.find(SourceOf(address));
  return it == logins_.end() ? 0 : it->second;
}

void Admission::SetConfig(const AdmissionConfig& config) {
  std::lock_guard lock(mu_);
  config_ = config;
}

AdmissionConfig Admission::config() {
  std::lock_guard lock(mu_);
  return config_;
}

bool Admission::Connect(const std::string& address) {
  std::lock_guard lock(mu_);
  return Take(per_address_, address, config_.max_per_address);
}

void Admission::Disconnect(const std::string& address) {
  std::lock_guard lock(mu_);
  Release(per_address_, address);
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
  if (auto it = address_failures_.find(SourceOf(address)); it != address_failures_.end()) {
    wait = std::max(wait, Backoff(it->second, now_ms));
  }
  if (auto it = user_failures_.find(user); it != user_failures_.end() && it->second.many_sources) {
    wait = std::max(wait, Backoff(it->second, now_ms));
  }
  return wait;
}

size_t Admission::BackedOffSources(int64_t now_ms) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [source, f] : address_failures_) n += Backoff(f, now_ms) > 0;
  return n;
}

void Admission::Forget(int64_t now_ms) {
  if (now_ms - last_forget_ms_ < 60000) return;
  last_forget_ms_ = now_ms;
  for (auto* m : {&address_failures_, &user_failures_}) {
    std::erase_if(*m, [&](const auto& kv) {
      return kv.second.in_flight == 0 && now_ms - kv.second.last_ms > config_.failure_window_ms;
    });
  }
}

bool Admission::MayVerify(const std::string& address, const std::string& user) {
  std::lock_guard lock(mu_);
  if (auto it = address_failures_.find(SourceOf(address)); it != address_failures_.end() && Busy(it->second)) {
    return false;
  }
  auto it = user_failures_.find(user);
  return it == user_failures_.end() || !it->second.many_sources || !Busy(it->second);
}

void Admission::Attempt(const std::string& address, const std::string& user) {
  std::lock_guard lock(mu_);
  address_failures_[SourceOf(address)].in_flight++;
  user_failures_[user].in_flight++;
}

void Admission::Finished(const std::string& address, const std::string& user, bool failed, int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (failed) Forget(now_ms);
  const std::string source = SourceOf(address);
  for (auto [m, key] : {std::pair{&address_failures_, source}, std::pair{&user_failures_, user}}) {
    auto it = m->find(key);
    if (it == m->end()) continue;
    Failures& f = it->second;
    if (f.in_flight > 0) --f.in_flight;
    if (failed) {
      if (now_ms - f.last_ms > config_.failure_window_ms) f.count = 0;
      ++f.count;
      f.last_ms = now_ms;
      if (m == &user_failures_) {
        if (f.first_source.empty()) {
          f.first_source = source;
        } else if (f.first_source != source) {
          f.many_sources = true;
        }
      }
    }
    if (f.count == 0 && f.in_flight == 0) m->erase(it);
  }
}

bool LoginMemory::Recharge(size_t from, size_t to) {
  if (to <= from) {
    used_.fetch_sub(from - to);
    return true;
  }
  const size_t more = to - from;
  size_t cur = used_.load();
  do {
    if (cur + more > budget_.load()) return false;
  } while (!used_.compare_exchange_weak(cur, cur + more));
  return true;
}

bool KdfBudget::Take(int64_t iterations, int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (last_ms_ >= 0 && now_ms > last_ms_) {
    tokens_ = std::min(per_second_, tokens_ + (now_ms - last_ms_) * per_second_ / 1000);
  }
  last_ms_ = std::max(last_ms_, now_ms);
  if (iterations > tokens_) return false;
  tokens_ -= iterations;
  return true;
}

void KdfBudget::SetRate(int64_t per_second) {
  std::lock_guard lock(mu_);
  per_second_ = per_second;
  tokens_ = std::min(tokens_, per_second);
}

bool KdfBudget::TakeSlot() {
  std::lock_guard lock(mu_);
  if (in_use_ >= max_concurrent_) return false;
  ++in_use_;
  return true;
}

void KdfBudget::GiveSlot() {
  std::lock_guard lock(mu_);
  if (in_use_ > 0) --in_use_;
}

void KdfBudget::SetMaxConcurrent(int max_concurrent) {
  std::lock_guard lock(mu_);
  max_concurrent_ = std::max(1, max_concurrent);
}

int KdfBudget::slots_in_use() {
  std::lock_guard lock(mu_);
  return in_use_;
}

namespace {
KdfBudget*& GlobalKdf() {
  static KdfBudget* k = new KdfBudget(200000);
  return k;
}

LoginMemory*& GlobalMemory() {
  static LoginMemory* m = new LoginMemory(size_t{256} << 20);
  return m;
}

Admission*& Global() {
  static Admission* a = new Admission();
  return a;
}
}  // namespace

Admission& GlobalAdmission() { return *Global(); }

KdfBudget& GlobalKdfBudget() { return *GlobalKdf(); }

void ConfigureKdfBudget(int64_t per_second) {
  KdfBudget* old = GlobalKdf();
  GlobalKdf() = new KdfBudget(per_second);
  delete old;  // only at start-up, before any reactor runs
}

LoginMemory& GlobalLoginMemory() { return *GlobalMemory(); }

HandshakeRate::HandshakeRate(double per_second, uint32_t burst, size_t max_sources)
    : per_second_(per_second), burst_(std::max<uint32_t>(burst, 1)), max_sources_(std::max<size_t>(max_sources, 1)) {}

void HandshakeRate::Sweep(int64_t now_ms) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const double refilled = it->second.tokens + static_cast<double>(now_ms - it->second.last_ms) * per_second_ / 1000;
    if (refilled >= burst_) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
  last_sweep_ms_ = now_ms;
}

bool HandshakeRate::Take(const std::string& source, int64_t now_ms) {
  if (per_second_ <= 0) return true;
  std::lock_guard lock(mu_);
  // Forget refilled sources once a second, and when the table is full at most every 100 ms: a
  // sweep walks the whole table under the lock, so a flood from many sources that keeps it full
  // must not make every handshake pay for one (new sources are refused meanwhile).
  const int64_t since = now_ms - last_sweep_ms_;
  if (since >= 1000 || (buckets_.size() >= max_sources_ && since >= 100)) Sweep(now_ms);
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_sources_) return false;
    it = buckets_.emplace(source, Bucket{burst_, now_ms}).first;
  }
  Bucket& b = it->second;
  if (now_ms > b.last_ms) {
    b.tokens = std::min(burst_, b.tokens + static_cast<double>(now_ms - b.last_ms) * per_second_ / 1000);
    b.last_ms = now_ms;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

size_t HandshakeRate::tracked() {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

void ConfigureLoginMemory(size_t budget) {
  LoginMemory* old = GlobalMemory();
  GlobalMemory() = new LoginMemory(budget);
  delete old;  // only at start-up, before any reactor runs
}

void ConfigureAdmission(const AdmissionConfig& config) {
  Admission* old = Global();
  Global() = new Admission(config);
  delete old;  // only at start-up, before any reactor runs
}

}  // namespace xr::engine
