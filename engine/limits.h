#pragma once
// Admission limits shared by every reactor: connections per source address, and back-off
// after failed logins per source address and per user name. Thread-safe; touched only on
// accept, close and login results, never per packet.

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace xr::engine {

struct AdmissionConfig {
  uint32_t max_per_address = 256;   // concurrent connections from one source address (0 = no cap)
  uint32_t free_failures = 5;       // failed logins allowed before back-off starts
  int64_t failure_window_ms = 600000;   // failures older than this are forgotten
  int64_t max_backoff_ms = 300000;  // back-off doubles per failure up to this
};

class Admission {
 public:
  explicit Admission(AdmissionConfig config = {}) : config_(config) {}

  // A new connection from `address`; false when the address is at its cap (nothing recorded).
  bool Connect(const std::string& address);
  // The connection from `address` ended (pairs with a successful Connect).
  void Disconnect(const std::string& address);
  // Milliseconds the login of `user` from `address` must wait before it may be tried at `now_ms`
  // (0 = go ahead).
  int64_t BackoffMs(const std::string& address, const std::string& user, int64_t now_ms);
  // Records a failed / successful login (success clears the user's and address's failures).
  void Failed(const std::string& address, const std::string& user, int64_t now_ms);
  void Succeeded(const std::string& address, const std::string& user);
  uint32_t connections(const std::string& address);

 private:
  struct Failures {
    uint32_t count = 0;
    int64_t last_ms = 0;
  };
  int64_t Backoff(const Failures& f, int64_t now_ms) const;
  void Forget(int64_t now_ms);

  AdmissionConfig config_;
  std::mutex mu_;
  std::unordered_map<std::string, uint32_t> per_address_;
  std::unordered_map<std::string, Failures> address_failures_;
  std::unordered_map<std::string, Failures> user_failures_;
  int64_t last_forget_ms_ = 0;
};

// Milliseconds on the monotonic clock.
int64_t NowMs();

// The address part of "1.2.3.4:5678" / "[::1]:5678" ("unix" and others unchanged).
std::string AddressOf(const std::string& peer);

// The process-wide admission state.
Admission& GlobalAdmission();
// Replaces its configuration (at start-up).
void ConfigureAdmission(const AdmissionConfig& config);

}  // namespace xr::engine
