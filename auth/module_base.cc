#include "auth/module_base.h"

#include <openssl/sha.h>
#include <time.h>

#include <deque>
#include <mutex>
#include <unordered_set>
#include <utility>

#include "codec/digest.h"

namespace xr::auth {
namespace {

struct UsedSalts {
  std::mutex mu;
  std::deque<std::pair<int64_t, std::string>> order;  // (when recorded, SHA-256), oldest first
  std::unordered_set<std::string> seen;
};

std::string SaltKey(std::string_view salt) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof md);
}

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// Drops entries past their lifetime (the caller holds the lock).
void Expire(UsedSalts& used, int64_t now_ms) {
  while (!used.order.empty() && now_ms - used.order.front().first > kUsedSaltLifetimeMs) {
    used.seen.erase(used.order.front().second);
    used.order.pop_front();
  }
}

UsedSalts& GetUsedSalts() {
  static UsedSalts* salts = new UsedSalts();  // never destroyed: used from worker threads
  return *salts;
}

}  // namespace

ModuleBase::ModuleBase(const ModuleOptions& options) : name_(options.module()), prompt_(options.prompt()) {}

bool CheckResponse(std::string_view digest, std::string_view password, std::string_view salt,
                   std::string_view response) {
  if (password.empty() || salt.empty() || response.empty()) return false;
  if (digest == "xor") {
    // The client sent password XOR salt[:len(password)] (salt zero-padded when shorter).
    std::string recovered(response.size(), '\0');
    for (size_t i = 0; i < response.size(); ++i) {
      const char s = i < salt.size() ? salt[i] : '\0';
      recovered[i] = static_cast<char>(response[i] ^ s);
    }
    return xr::digest::ConstantTimeEquals(recovered, password);
  }
  if (!xr::digest::IsSupported(digest)) return false;
  return xr::digest::VerifyResponse(digest, password, salt, response);
}

bool SaltSeen(std::string_view salt, int64_t now_ms) {
  const std::string key = SaltKey(salt);
  UsedSalts& used = GetUsedSalts();
  std::lock_guard<std::mutex> lock(used.mu);
  Expire(used, now_ms);
  return used.seen.count(key) != 0;
}

bool RememberSalt(std::string_view salt, int64_t now_ms) {
  std::string key = SaltKey(salt);
  UsedSalts& used = GetUsedSalts();
  std::lock_guard<std::mutex> lock(used.mu);
  Expire(used, now_ms);
  if (used.seen.count(key) != 0) return false;
  used.seen.insert(key);
  used.order.emplace_back(now_ms, std::move(key));
  while (used.order.size() > kUsedSaltCapacity) {
    used.seen.erase(used.order.front().second);
    used.order.pop_front();
  }
  return true;
}

Expected<std::vector<SessionEntry>> PasswordModuleBase::GetSessions(const std::string& username,
                                                                   const Credential& credential) {
  return std::vector<SessionEntry>{ProcessSessionEntry()};
}

ErrorCode PasswordModuleBase::FailureCode(ErrorCode lookup_error) const {
  const bool unavailable = lookup_error == ErrorCode::kIo || lookup_error == ErrorCode::kTimeout;
  return unavailable && reports_unavailable() ? lookup_error : ErrorCode::kAuthFailed;
}

Expected<AuthResult> PasswordModuleBase::Authenticate(const AuthRequest& req) {
  const std::string who = std::string(name()) + ": ";
  const std::string username = EffectiveUsername(req.username);
  if (req.digest != "xor" && !xr::digest::IsSupported(req.digest)) {
    return MakeError(ErrorCode::kAuthFailed, who + "unsupported digest '" + req.digest + "'");
  }
  if (req.salt.empty()) {
    return MakeError(ErrorCode::kAuthFailed, who + "empty salt");
  }
  const int64_t now_ms = MonotonicMs();
  if (SaltSeen(req.salt, now_ms)) {
    return MakeError(ErrorCode::kAuthFailed, who + "an attempt was made to re-use the same computed salt");
  }
  Expected<std::vector<Credential>> passwords = GetCredentials(username);
  if (!passwords.ok() || passwords->empty()) {
    // Spend the time of one check so an unknown user is not told apart by timing.
    (void)CheckResponse(req.digest, "no password for this user", req.salt, req.response);
  }
  if (!passwords.ok()) {
    return MakeError(FailureCode(passwords.error().code), who + passwords.error().message);
  }
  if (passwords->empty()) {
    return MakeError(ErrorCode::kAuthFailed, who + "no password defined for '" + username + "'");
  }
  // Check every password so the time taken does not reveal which one matched.
  const Credential* matched = nullptr;
  for (const Credential& c : *passwords) {
    if (CheckResponse(req.digest, c.password, req.salt, req.response) && matched == nullptr) matched = &c;
  }
  if (matched == nullptr) {
    std::string detail = who + req.digest + " challenge for '" + username + "' does not match";
    if (passwords->size() > 1) detail += " (checked " + std::to_string(passwords->size()) + " passwords)";
    if (passwords->size() == 1) detail += MismatchHint(passwords->front().password);
    return MakeError(ErrorCode::kAuthFailed, std::move(detail));
  }
  if (!RememberSalt(req.salt, now_ms)) {
    return MakeError(ErrorCode::kAuthFailed, who + "an attempt was made to re-use the same computed salt");
  }
  Expected<std::vector<SessionEntry>> sessions = GetSessions(username, *matched);
  if (!sessions.ok()) {
    return MakeError(FailureCode(sessions.error().code), who + sessions.error().message);
  }
  return AuthResult{username, std::move(sessions).value()};
}

}  // namespace xr::auth
