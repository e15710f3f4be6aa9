#pragma once
// "allow": sends a challenge and accepts any response; the client's username is kept
// (xpra server/auth/allow_auth.py).

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: prompt. Unknown option -> kMalformed.
Expected<std::unique_ptr<AuthModule>> CreateAllowAuth(const ModuleOptions& options);

}  // namespace xr::auth
