#include "auth/factory.h"

#include <doctest/doctest.h>

#include <algorithm>

#include "auth/sqlite_db.h"
#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::TempDir;

TEST_CASE("CreateAuthModule: every module by name") {
  TempDir dir;
  const std::string pw = dir.Write("pw", "secret");
  const std::string multi = dir.Write("multi", "bob|pw\n");
  const std::string db = dir.file("x.db");
  {
    auto created = SqliteDb::Open(db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    REQUIRE(created.ok());
    REQUIRE(created->Exec("CREATE TABLE users (username VARCHAR(255) NOT NULL, password VARCHAR(255), uid "
                          "VARCHAR(63), gid VARCHAR(63), displays VARCHAR(8191), env_options VARCHAR(8191), "
                          "session_options VARCHAR(8191))")
                .ok());
  }
  const std::pair<std::string, std::string> cases[] = {
      {"allow", "allow"},
      {"none", "none"},
      {"reject", "reject"},
      {"fail", "fail"},
      {"password,value=x", "password"},
      {"env", "env"},
      {"env:name=FOO", "env"},
      {"file,filename=" + pw, "file"},
      {"file:filename=" + pw, "file"},
      {"multifile,filename=" + multi, "multifile"},
      {"sqlite,filename=" + db, "sqlite"},
      {"sqlite:filename=" + db, "sqlite"},
  };
  for (const auto& c : cases) {
    const std::string& spec = c.first;
    const std::string& name = c.second;
    CAPTURE(spec);
    auto m = CreateAuthModule(spec);
    REQUIRE(m.ok());
    CHECK((*m)->name() == name);
    CHECK((*m)->requires_challenge() == (name != "none"));
    CHECK((*m)->prompt() == "password");
  }
}

TEST_CASE("CreateAuthModule: unknown module lists the valid ones") {
  auto m = CreateAuthModule("kerberos");
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
  CHECK(m.error().message ==
        "unknown authentication module 'kerberos', valid modules: allow, env, exec, fail, file, ldap, ldap3, "
        "multifile, none, pam, password, peercred, postgresql, reject, sqlite, sys");
}

TEST_CASE("CreateAuthModule: unknown option is malformed") {
  auto m = CreateAuthModule("allow,foo=bar");
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
  CHECK(m.error().message == "unknown option 'foo' for allow authentication, valid options: prompt");
}

TEST_CASE("CreateAuthModule: option without value name is malformed") {
  auto m = CreateAuthModule("password,secret");
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
}

TEST_CASE("CreateAuthModule: prompt option") {
  auto m = CreateAuthModule("password,value=x,prompt=PIN code");
  REQUIRE(m.ok());
  CHECK((*m)->prompt() == "PIN code");
}

TEST_CASE("AuthModuleNames") {
  auto names = AuthModuleNames();
  CHECK(names.size() == 16);
  CHECK(names.front() == "allow");
  CHECK(names.back() == "sys");
  CHECK(std::is_sorted(names.begin(), names.end()));
}

TEST_CASE("CreateAuthModule: the system-wide modules and their aliases") {
  for (const char* spec : {"pam", "sys,service=login", "ldap,host=127.0.0.1", "ldap3:port=389", "peercred,uid=0"}) {
    CAPTURE(spec);
    auto m = CreateAuthModule(spec);
    REQUIRE(m.ok());
    CHECK((*m)->name() == std::string_view(spec).substr(0, std::string_view(spec).find_first_of(",:")));
    CHECK((*m)->needs_password() == (std::string_view(spec).substr(0, 4) != "peer"));
  }
  auto exec = CreateAuthModule("exec:command=/bin/true");
  REQUIRE(exec.ok());
  CHECK(!(*exec)->requires_challenge());
  CHECK(!(*exec)->needs_password());
}

}  // namespace
}  // namespace xr::auth
