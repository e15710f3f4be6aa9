#include "auth/allow_auth.h"

#include "auth/module_base.h"

namespace xr::auth {
namespace {

class AllowAuth final : public ModuleBase {
 public:
  using ModuleBase::ModuleBase;

  // Accepts anything; one session entry with the relay's uid/gid and no displays.
  Expected<AuthResult> Authenticate(const AuthRequest& req) override {
    return AuthResult{EffectiveUsername(req.username), {ProcessSessionEntry()}};
  }
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreateAllowAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({}); !s.ok()) return s.error();
  return std::unique_ptr<AuthModule>(new AllowAuth(options));
}

}  // namespace xr::auth
