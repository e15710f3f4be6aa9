#pragma once
// AuthModule: the interface every authentication module implements (xpra 3.1.3's
// server/auth/*.py, one C++ class per module), plus the data it hands to the session registry.
//
// Create modules with CreateAuthModule() from auth/factory.h.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace xr::auth {

// One row of xpra's get_sessions(): (uid, gid, displays, env_options, session_options).
struct SessionEntry {
  int64_t uid = -1, gid = -1;
  // ":100", "tcp://host:port/", "/path/to/socket", ...; empty: the registry scans the socket dirs.
  std::vector<std::string> displays;
  std::vector<std::string> env_options;                              // "KEY=VALUE", in order
  std::vector<std::pair<std::string, std::string>> session_options;  // ordered
};

// What the engine knows once the client answered the challenge.
struct AuthRequest {
  std::string username;  // from the client's hello (may be empty: the relay's own user is assumed)
  std::string digest;    // digest sent in the challenge: "hmac+sha256", ..., or "xor"
  std::string salt;      // combined salt the client's response was computed over
  std::string response;  // client's challenge_response
  std::string peer;      // for logs only ("127.0.0.1:5555")
  // The client's credentials from the kernel (SO_PEERCRED) on a unix-socket bind; -1 otherwise.
  int64_t peer_uid = -1, peer_gid = -1, peer_pid = -1;
  // The engine's login back-off (engine/limits.h Admission), for a module that shares it between
  // the relays of a cluster (postgresql with cluster=yes): who failures count against and the
  // policy's numbers. The engine's own node-local back-off is checked before the module runs.
  std::string source;        // SourceOf(address): an IPv4 address, an IPv6 /64, "unix"
  std::string backoff_user;  // "" when the module checks one password for every name
  uint32_t free_failures = 5;
  int64_t failure_window_ms = 600000;
  int64_t max_backoff_ms = 300000;
};

// A successful authentication: who, and where their sessions are.
struct AuthResult {
  std::string username;
  std::vector<SessionEntry> sessions;  // may be empty: "no sessions found" is the registry's call
};

class AuthModule {
 public:
  virtual ~AuthModule() = default;

  // The module name as configured ("sqlite", "fail", ...).
  virtual std::string_view name() const = 0;

  // False only for "none": no challenge is sent and Authenticate() is called with an empty response.
  virtual bool requires_challenge() const { return true; }

  // True when the module needs the password itself (pam, ldap, exec with password=stdin): the
  // challenge then uses the "xor" digest, which the engine sends only over TLS or AES; over a
  // plain link the client is refused with a reason that says to use ssl:// or AES.
  virtual bool needs_password() const { return false; }

  // False when the module checks one password whatever the user name (password, file, env):
  // failed-login back-off then counts every name as the same user, so random names do not
  // dodge it.
  virtual bool per_user() const { return true; }
  // The prompt sent as the challenge packet's last element (option `prompt=`, default "password").
  virtual std::string_view prompt() const { return "password"; }

  // Verifies the response (constant time) and returns the user's sessions; kAuthFailed on any
  // mismatch, with the same code whether the user exists or not (Error::message is a log detail
  // and never contains a secret). May block (file I/O, SQLite): call it on a worker thread.
  // Thread-safe.
  virtual Expected<AuthResult> Authenticate(const AuthRequest& req) = 0;

  // Re-reads files/databases (SIGHUP); on failure the previous state is kept and an error returned.
  virtual Status Reload() { return Status::Ok(); }

  // A session that Authenticate() let in has ended (the engine calls it on the reactor: it must
  // not block). For modules that count sessions per user across a cluster; default: nothing.
  virtual void SessionEnded(const std::string& username) {}
};

}  // namespace xr::auth
