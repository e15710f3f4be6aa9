#include "auth/env_auth.h"

#include <doctest/doctest.h>

#include <cstdlib>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

TEST_CASE("env: XPRA_PASSWORD by default") {
  setenv("XPRA_PASSWORD", "from-env", 1);
  auto m = CreateEnvAuth(ModuleOptions("env", {}));
  REQUIRE(m.ok());
  testing::ExpectAcceptsOnly(**m, "alice", "from-env");
  unsetenv("XPRA_PASSWORD");
}

TEST_CASE("env: name= picks the variable, read at each authentication") {
  unsetenv("XR_TEST_PW");
  auto m = CreateEnvAuth(ModuleOptions("env", {{"name", "XR_TEST_PW"}}));
  REQUIRE(m.ok());
  auto unset = (*m)->Authenticate(testing::ClientRequest("a", "hmac+sha256", ""));
  REQUIRE(!unset.ok());
  CHECK(unset.error().code == ErrorCode::kAuthFailed);
  setenv("XR_TEST_PW", "one", 1);
  CHECK((*m)->Authenticate(testing::ClientRequest("a", "hmac+sha256", "one")).ok());
  setenv("XR_TEST_PW", "two", 1);
  CHECK(!(*m)->Authenticate(testing::ClientRequest("a", "hmac+sha256", "one")).ok());
  testing::ExpectAcceptsOnly(**m, "a", "two");
  unsetenv("XR_TEST_PW");
}

TEST_CASE("env: empty variable never matches") {
  setenv("XR_TEST_EMPTY", "", 1);
  auto m = CreateEnvAuth(ModuleOptions("env", {{"name", "XR_TEST_EMPTY"}}));
  REQUIRE(m.ok());
  AuthRequest req = testing::ClientRequest("a", "xor", "");
  CHECK(!(*m)->Authenticate(req).ok());
  unsetenv("XR_TEST_EMPTY");
}

TEST_CASE("env: bad options") {
  CHECK(!CreateEnvAuth(ModuleOptions("env", {{"name", ""}})).ok());
  auto m = CreateEnvAuth(ModuleOptions("env", {{"value", "x"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace xr::auth
