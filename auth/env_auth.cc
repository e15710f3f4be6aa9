#include "auth/env_auth.h"

#include <cstdlib>

#include "auth/module_base.h"

namespace xr::auth {
namespace {

class EnvAuth final : public PasswordModuleBase {
 public:
  bool per_user() const override { return false; }  // one password, whatever the name
  EnvAuth(const ModuleOptions& options, std::string var) : PasswordModuleBase(options), var_(std::move(var)) {}

 protected:
  // The variable's current value (latin-1 bytes, as xpra hashes it); none when it is unset or empty.
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    const char* v = std::getenv(var_.c_str());
    if (v == nullptr || *v == '\0') {
      return MakeError(ErrorCode::kAuthFailed, "environment variable " + var_ + " is not set");
    }
    std::optional<std::string> bytes = TextPasswordBytes(v);
    if (!bytes) return MakeError(ErrorCode::kAuthFailed, var_ + " has characters outside latin-1");
    return std::vector<Credential>{{*bytes, v}};
  }

 private:
  const std::string var_;
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreateEnvAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"name"}); !s.ok()) return s.error();
  Expected<std::string> var = options.GetNonEmpty("name", std::string("XPRA_PASSWORD"));
  if (!var.ok()) return var.error();
  return std::unique_ptr<AuthModule>(new EnvAuth(options, std::move(var).value()));
}

}  // namespace xr::auth
