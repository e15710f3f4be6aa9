#include "auth/password_auth.h"

#include "auth/module_base.h"

namespace xr::auth {
namespace {

class PasswordAuth final : public PasswordModuleBase {
 public:
  bool per_user() const override { return false; }  // one password, whatever the name
  PasswordAuth(const ModuleOptions& options, std::string value)
      : PasswordModuleBase(options), value_(std::move(value)) {}

 protected:
  // The configured value (latin-1 bytes, as xpra hashes it), whoever the user is.
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    std::optional<std::string> bytes = TextPasswordBytes(value_);
    if (!bytes) return MakeError(ErrorCode::kAuthFailed, "the password has characters outside latin-1");
    return std::vector<Credential>{{*bytes, value_}};
  }

 private:
  const std::string value_;
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreatePasswordAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"value"}); !s.ok()) return s.error();
  Expected<std::string> value = options.GetNonEmpty("value", std::nullopt);
  if (!value.ok()) return value.error();
  return std::unique_ptr<AuthModule>(new PasswordAuth(options, std::move(value).value()));
}

}  // namespace xr::auth
