#include "auth/reject_auth.h"

#include <doctest/doctest.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

TEST_CASE("reject: challenge sent, every response refused") {
  for (const char* name : {"reject", "fail"}) {
    CAPTURE(name);
    auto m = CreateRejectAuth(ModuleOptions(name, {}));
    REQUIRE(m.ok());
    CHECK((*m)->name() == name);
    CHECK((*m)->requires_challenge());
    for (const char* digest : testing::kAllDigests) {
      auto r = (*m)->Authenticate(testing::ClientRequest("alice", digest, "pw"));
      REQUIRE(!r.ok());
      CHECK(r.error().code == ErrorCode::kAuthFailed);
    }
  }
}

TEST_CASE("reject: bad option") {
  auto m = CreateRejectAuth(ModuleOptions("reject", {{"value", "x"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace xr::auth
