#pragma once
// "reject" (alias "fail"): sends a challenge and refuses every response
// (xpra server/auth/reject_auth.py; xpra's "fail" refuses by failing to instantiate).

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// Options: prompt. Unknown option -> kMalformed.
Expected<std::unique_ptr<AuthModule>> CreateRejectAuth(const ModuleOptions& options);

}  // namespace xr::auth
