#include "auth/module_base.h"

#include <openssl/crypto.h>
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

// response XOR salt, the salt zero-padded to the response's length (xpra's xor digest).
std::string XorUnmask(std::string_view response, std::string_view salt) {
  std::string recovered(response.size(), '\0');
  for (size_t i = 0; i < response.size(); ++i) {
    const char s = i < salt.size() ? salt[i] : '\0';
    recovered[i] = static_cast<char>(response[i] ^ s);
  }
  return recovered;
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
    std::string recovered = XorUnmask(response, salt);
    const bool same = xr::digest::ConstantTimeEquals(recovered, password);
    WipeSecret(recovered);
    return same;
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
  const std::string username = EffectiveUsername(req.username);
  Expected<AuthResult> result = Verify(req, username);
  if (!result.ok() && result.error().code == ErrorCode::kAuthFailed) Failed(username, req);
  return result;
}

Expected<AuthResult> PasswordModuleBase::Verify(const AuthRequest& req, const std::string& username) {
  const std::string who = std::string(name()) + ": ";
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
  Expected<std::vector<Credential>> passwords = GetCredentialsFor(username, req);
  if (!passwords.ok() && passwords.error().code == ErrorCode::kLimited) return passwords.error();
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
  if (!sessions.ok() && sessions.error().code == ErrorCode::kLimited) return sessions.error();
  if (!sessions.ok()) {
    return MakeError(FailureCode(sessions.error().code), who + sessions.error().message);
  }
  return AuthResult{username, std::move(sessions).value()};
}

}  // namespace xr::auth

namespace xr::auth {

std::optional<std::string> RecoverXorPassword(const AuthRequest& req) {
  if (req.digest != "xor" || req.salt.empty() || req.response.empty()) return std::nullopt;
  return XorUnmask(req.response, req.salt);
}

void WipeSecret(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

Expected<AuthResult> ClearPasswordModuleBase::Authenticate(const AuthRequest& req) {
  const std::string who = std::string(name()) + ": ";
  if (req.digest != "xor") {
    return MakeError(ErrorCode::kAuthFailed, who + "needs the password (xor digest), got '" + req.digest + "'");
  }
  const std::string username = EffectiveUsername(req.username);
  if (username.empty()) return MakeError(ErrorCode::kAuthFailed, who + "no user name");
  const int64_t now_ms = MonotonicMs();
  if (SaltSeen(req.salt, now_ms)) {
    return MakeError(ErrorCode::kAuthFailed, who + "an attempt was made to re-use the same computed salt");
  }
  std::optional<std::string> password = RecoverXorPassword(req);
  if (!password || password->empty()) return MakeError(ErrorCode::kAuthFailed, who + "empty password or salt");
  // A NUL ends the password for C checkers (PAM, libldap): refuse rather than check a prefix.
  if (password->find('\0') != std::string::npos) {
    WipeSecret(*password);
    return MakeError(ErrorCode::kAuthFailed, who + "the password holds a NUL byte");
  }
  Expected<SessionEntry> entry = CheckPassword(username, *password, req);
  WipeSecret(*password);
  if (!entry.ok()) {
    Error e = entry.error();
    e.message = who + e.message;
    return e;
  }
  if (!RememberSalt(req.salt, now_ms)) {
    return MakeError(ErrorCode::kAuthFailed, who + "an attempt was made to re-use the same computed salt");
  }
  return AuthResult{username, std::vector<SessionEntry>{std::move(entry).value()}};
}

}  // namespace xr::auth
