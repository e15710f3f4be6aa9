#pragma once
// "env": the password is the value of an environment variable, `name=` (default XPRA_PASSWORD),
// read at each authentication (xpra server/auth/env_auth.py).

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: name (default "XPRA_PASSWORD"), prompt. Otherwise kMalformed.
Expected<std::unique_ptr<AuthModule>> CreateEnvAuth(const ModuleOptions& options);

}  // namespace xr::auth
