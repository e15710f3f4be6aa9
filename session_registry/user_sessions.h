#pragma once
// System-wide mode: after authentication the user's uid (from the auth module, else from NSS
// by the user's name) selects that user's own sessions, as `xpra list` run by that user would
// list them, and a user with none (or a client asking for a new one) may get one started
// (SessionLauncher). The relay keeps one identity throughout; see docs/security.md.
//
// Everything here may block (NSS, socket probes, a launch): call it on a worker thread.

#include <string_view>
#include <vector>

#include "auth/auth_module.h"
#include "base/status.h"
#include "session_registry/session_launcher.h"
#include "session_registry/session_registry.h"

namespace xr::registry {

// NSS (getpwnam_r / getpwuid_r). kNotFound: "no local account for this user".
Expected<UserAccount> LookupUser(std::string_view name);
Expected<UserAccount> LookupUserById(int64_t uid);

// The socket dirs `xpra list` reads for that user: opts.socket_dirs expanded for the user
// ($UID, $XDG_RUNTIME_DIR -> /run/user/UID, ~/ -> the user's home, ...), at most
// opts.scan.max_dirs of them.
std::vector<std::string> UserSocketDirs(const UserAccount& user, const RegistryOptions& opts);

// The user's live sessions (ListUserSockets: owned by the user, served by a process of the
// user's), ":proxy-*" and the relay's own display left out, each display once.
std::vector<SocketInfo> UserSessions(const UserAccount& user, const RegistryOptions& opts);

// Picks the client's target. Without opts.system_wide, or when the module named displays, it is
// SelectTarget(sessions, requested, opts). Otherwise the user is the uid of the first session
// entry that has one, else `username` looked up in NSS; root is refused. Then:
//   - a start request (`start`) or no live session, with opts.launcher: a new session is
//     started for the user and is the target;
//   - a start request without a launcher: "starting sessions is not enabled on this relay";
//   - `requested` (":N" / "N") must be one of the user's live displays, else
//     "display ':N' not found, available: <the user's displays only>";
//   - no request: the only one, else "please specify a display, more than one is available: ...";
//   - none at all: "no sessions found for this user".
// The target's server_uid is the user's uid.
Expected<Target> SelectUserTarget(const std::vector<auth::SessionEntry>& sessions, std::string_view username,
                                  std::string_view requested, const StartRequest& start, const RegistryOptions& opts);

}  // namespace xr::registry
