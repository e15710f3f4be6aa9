#pragma once
// "peercred": for unix-socket binds, the kernel's word on who connected (SO_PEERCRED) decides
// (xpra server/auth/peercred_auth.py). No challenge, no password.

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: uid= and gid= (':'-separated uids or user names, gids or group names; an unknown
// name is kMalformed). With neither, any local peer is allowed; with uid=, the peer's uid must be
// listed; with gid=, its primary gid must be (xpra: the uid list is checked first, then the gid
// list). The session entry carries the peer's uid and gid (the registry then scans that user's
// socket dirs), and the user name is the peer uid's account name. A connection without peer
// credentials (tcp, ssl, ws) is refused. Otherwise kMalformed.
Expected<std::unique_ptr<AuthModule>> CreatePeercredAuth(const ModuleOptions& options);

}  // namespace xr::auth
