#pragma once
// CreateAuthModule: builds an authentication module from an xpra-style spec string.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_module.h"
#include "base/status.h"

namespace xr::auth {

// "sqlite,filename=/x.db" or "sqlite:filename=/x.db" (xpra's syntax; also "file:filename=...").
// Modules: allow, env, exec, fail, file, ldap (ldap3), multifile, none, pam (sys), password,
// peercred, reject, sqlite. Unknown module or
// bad option -> kMalformed listing the valid ones; a file/database that cannot be read -> kIo.
Expected<std::unique_ptr<AuthModule>> CreateAuthModule(std::string_view spec);

// The module names CreateAuthModule() accepts, sorted.
std::vector<std::string> AuthModuleNames();

}  // namespace xr::auth
