#include "auth/none_auth.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

TEST_CASE("none: no challenge, accepted without a response") {
  auto m = CreateNoneAuth(ModuleOptions("none", {}));
  REQUIRE(m.ok());
  CHECK(!(*m)->requires_challenge());
  CHECK((*m)->name() == "none");
  AuthRequest req;
  req.username = "carol";
  auto r = (*m)->Authenticate(req);
  REQUIRE(r.ok());
  CHECK(r->username == "carol");
  REQUIRE(r->sessions.size() == 1);
  CHECK(r->sessions[0].uid == static_cast<int64_t>(getuid()));
  CHECK(r->sessions[0].displays.empty());
}

TEST_CASE("none: empty username becomes the relay's user") {
  auto m = CreateNoneAuth(ModuleOptions("none", {}));
  REQUIRE(m.ok());
  auto r = (*m)->Authenticate(AuthRequest{});
  REQUIRE(r.ok());
  CHECK(r->username == ProcessUsername());
}

TEST_CASE("none: bad option") {
  auto m = CreateNoneAuth(ModuleOptions("none", {{"filename", "x"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace xr::auth
