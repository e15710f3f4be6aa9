#pragma once
// "password": one password for everyone, given as `value=` (xpra server/auth/password_auth.py).

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: value (required, non-empty), prompt. Otherwise kMalformed.
Expected<std::unique_ptr<AuthModule>> CreatePasswordAuth(const ModuleOptions& options);

}  // namespace xr::auth
