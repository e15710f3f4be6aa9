#include "auth/reject_auth.h"

#include "auth/module_base.h"

namespace xr::auth {
namespace {

class RejectAuth final : public ModuleBase {
 public:
  using ModuleBase::ModuleBase;

  // Always kAuthFailed.
  Expected<AuthResult> Authenticate(const AuthRequest& req) override {
    return MakeError(ErrorCode::kAuthFailed,
                     std::string(name()) + ": every connection is refused (user '" + req.username + "')");
  }
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreateRejectAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({}); !s.ok()) return s.error();
  return std::unique_ptr<AuthModule>(new RejectAuth(options));
}

}  // namespace xr::auth
