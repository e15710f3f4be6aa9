#pragma once
// "none": no challenge at all; the username is the client's or the relay's own
// (xpra server/auth/none_auth.py).

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: prompt (unused). Unknown option -> kMalformed.
Expected<std::unique_ptr<AuthModule>> CreateNoneAuth(const ModuleOptions& options);

}  // namespace xr::auth
