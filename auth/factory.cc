#include "auth/factory.h"

#include "auth/allow_auth.h"
#include "auth/auth_util.h"
#include "auth/env_auth.h"
#include "auth/exec_auth.h"
#include "auth/file_auth.h"
#include "auth/ldap_auth.h"
#include "auth/multifile_auth.h"
#include "auth/none_auth.h"
#include "auth/pam_auth.h"
#include "auth/password_auth.h"
#include "auth/peercred_auth.h"
#include "auth/postgresql_auth.h"
#include "auth/reject_auth.h"
#include "auth/sqlite_auth.h"

namespace xr::auth {
namespace {

using Creator = Expected<std::unique_ptr<AuthModule>> (*)(const ModuleOptions&);

struct Entry {
  const char* name;
  Creator create;
};

constexpr Entry kModules[] = {  // sorted by name
    {"allow", CreateAllowAuth},
    {"env", CreateEnvAuth},
    {"exec", CreateExecAuth},  // system-wide mode (issue 15): exec, ldap, pam, peercred
    {"fail", CreateRejectAuth},
    {"file", CreateFileAuth},
    {"ldap", CreateLdapAuth},
    {"ldap3", CreateLdapAuth},
    {"multifile", CreateMultifileAuth},
    {"none", CreateNoneAuth},
    {"pam", CreatePamAuth},
    {"password", CreatePasswordAuth},
    {"peercred", CreatePeercredAuth},
    {"postgresql", CreatePostgresqlAuth},
    {"reject", CreateRejectAuth},
    {"sqlite", CreateSqliteAuth},
    {"sys", CreatePamAuth},
};

}  // namespace

std::vector<std::string> AuthModuleNames() {
  std::vector<std::string> names;
  for (const Entry& e : kModules) names.emplace_back(e.name);
  return names;
}

Expected<std::unique_ptr<AuthModule>> CreateAuthModule(std::string_view spec) {
  Expected<ModuleSpec> parsed = ParseModuleSpec(spec);
  if (!parsed.ok()) return parsed.error();
  for (const Entry& e : kModules) {
    if (parsed->name == e.name) return e.create(ModuleOptions(parsed->name, std::move(parsed->options)));
  }
  std::string valid;
  for (const Entry& e : kModules) {
    if (!valid.empty()) valid += ", ";
    valid += e.name;
  }
  return MakeError(ErrorCode::kMalformed,
                   "unknown authentication module '" + parsed->name + "', valid modules: " + valid);
}

}  // namespace xr::auth
