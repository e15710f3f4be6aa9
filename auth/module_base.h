#pragma once
// Base classes for the authentication modules: ModuleBase (name and prompt) and
// PasswordModuleBase (modules that know the user's password and check the challenge response,
// like xpra's SysAuthenticator.authenticate_hmac).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_module.h"
#include "auth/auth_util.h"
#include "base/status.h"

namespace xr::auth {

// Holds the configured name and prompt.
class ModuleBase : public AuthModule {
 public:
  explicit ModuleBase(const ModuleOptions& options);

  // The module name as configured.
  std::string_view name() const override { return name_; }

  // The `prompt=` option, "password" by default.
  std::string_view prompt() const override { return prompt_; }

 private:
  std::string name_;
  std::string prompt_;
};

// True when `response` is what a client holding `password` sends for `digest` over `salt`:
// hmac digests through xr::digest::VerifyResponse, "xor" by recovering the password
// (response XOR salt) and comparing in constant time. Empty password, salt or response and
// unknown digests never match (as xpra's verify_digest).
bool CheckResponse(std::string_view digest, std::string_view password, std::string_view salt,
                   std::string_view response);

// The replay cache (xpra refuses re-used salts). It holds the SHA-256 of the combined salt of
// each *successful* login for an hour, at most 65,536 of them (the oldest go first): failed
// logins never touch it, so an attacker cannot flush it without valid credentials, and its
// memory does not depend on the salt's size. Thread-safe. `now_ms`: a monotonic clock.
//   SaltSeen: whether `salt` is in the cache (checked before verifying).
//   RememberSalt: records it; false when it was already there (a parallel replay lost the race).
bool SaltSeen(std::string_view salt, int64_t now_ms);
bool RememberSalt(std::string_view salt, int64_t now_ms);
// The cache's limits, for tests.
inline constexpr size_t kUsedSaltCapacity = 65536;
inline constexpr int64_t kUsedSaltLifetimeMs = 3600 * 1000;

// One password a user may use.
struct Credential {
  std::string password;  // the bytes the client's response is checked against
  std::string stored;    // as stored (database text); handed back to GetSessions()
};

// A module that looks up the user's password(s) and verifies the response itself.
class PasswordModuleBase : public ModuleBase {
 public:
  using ModuleBase::ModuleBase;

  // Checks the response against every password of the user; kAuthFailed on any mismatch.
  Expected<AuthResult> Authenticate(const AuthRequest& req) final;

 protected:
  // The passwords `username` may use (empty: no password). An Error (unknown user, database or
  // file unreadable) fails the authentication with that detail.
  virtual Expected<std::vector<Credential>> GetCredentials(const std::string& username) = 0;
  // The same with the whole request (its source, for a shared login policy). An Error of code
  // kLimited is handed to the engine as it is (its message is for the user). Default:
  // GetCredentials(username).
  virtual Expected<std::vector<Credential>> GetCredentialsFor(const std::string& username, const AuthRequest& req) {
    return GetCredentials(username);
  }
  // Authenticate() is about to return kAuthFailed for `req` (a failed login). Default: nothing.
  virtual void Failed(const std::string& username, const AuthRequest& req) {}

  // The sessions of `username`, who proved to know `credential`. Default: ProcessSessionEntry().
  virtual Expected<std::vector<SessionEntry>> GetSessions(const std::string& username, const Credential& credential);

  // Extra text appended to the log detail of a mismatch (e.g. "the file ends with a newline").
  virtual std::string MismatchHint(const std::string& password) const { return {}; }

  // True when a kIo / kTimeout from GetCredentials() or GetSessions() means the user database is
  // unreachable (a database server) and is passed through, so the engine says "authentication
  // service unavailable" instead of counting a failed login. False (the default): kAuthFailed.
  virtual bool reports_unavailable() const { return false; }

 private:
  // The code Authenticate() returns for a lookup error (see reports_unavailable()).
  ErrorCode FailureCode(ErrorCode lookup_error) const;
  // Authenticate() but for the Failed() call.
  Expected<AuthResult> Verify(const AuthRequest& req, const std::string& username);
};

}  // namespace xr::auth

namespace xr::auth {

// A module that hands the password itself to a checker it does not control (PAM, an LDAP bind,
// a command): needs_password(), so the client answers an "xor" challenge (only over TLS or AES,
// the engine's rule), the password is recovered as response XOR salt, the replay cache is
// applied as for PasswordModuleBase, and CheckPassword() decides. Thread-safe when
// CheckPassword() is.
class ClearPasswordModuleBase : public ModuleBase {
 public:
  using ModuleBase::ModuleBase;
  bool needs_password() const override { return true; }

  // kAuthFailed for a non-xor digest, an empty salt or response, a re-used salt, or what
  // CheckPassword() refuses; kIo / kTimeout (the checker is unreachable or hung) pass through so
  // the engine can say "authentication service unavailable".
  Expected<AuthResult> Authenticate(const AuthRequest& req) final;

 protected:
  // Checks `password` (never empty, never logged) for `username` (never empty). On success: the
  // user's session entry (uid/gid, usually no displays). kAuthFailed: wrong password or unknown
  // user (same code for both); kIo / kTimeout: the checker could not answer.
  virtual Expected<SessionEntry> CheckPassword(const std::string& username, const std::string& password,
                                               const AuthRequest& req) = 0;
};

// The password an "xor" response carries: response XOR salt (salt zero-padded), as xpra's
// authenticate_check. nullopt for another digest or an empty salt/response. The caller wipes it.
std::optional<std::string> RecoverXorPassword(const AuthRequest& req);

// Overwrites `secret` with zeros (not optimised away) and clears it.
void WipeSecret(std::string& secret);

}  // namespace xr::auth
