#include "auth/allow_auth.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

std::unique_ptr<AuthModule> Make(OptionList options = {}) {
  auto m = CreateAllowAuth(ModuleOptions("allow", std::move(options)));
  REQUIRE(m.ok());
  return std::move(m).value();
}

TEST_CASE("allow: sends a challenge and accepts any response") {
  auto m = Make();
  CHECK(m->requires_challenge());
  for (const char* digest : testing::kAllDigests) {
    auto r = m->Authenticate(testing::ClientRequest("alice", digest, "whatever"));
    REQUIRE(r.ok());
    CHECK(r->username == "alice");
  }
  AuthRequest garbage{"bob", "hmac+sha256", "salt", "not-a-response", "peer"};
  auto r = m->Authenticate(garbage);
  REQUIRE(r.ok());
  CHECK(r->username == "bob");
}

TEST_CASE("allow: one session entry with the process ids and no displays") {
  auto r = Make()->Authenticate(testing::ClientRequest("alice", "hmac+sha256", "x"));
  REQUIRE(r.ok());
  REQUIRE(r->sessions.size() == 1);
  CHECK(r->sessions[0].uid == static_cast<int64_t>(getuid()));
  CHECK(r->sessions[0].gid == static_cast<int64_t>(getgid()));
  CHECK(r->sessions[0].displays.empty());
}

TEST_CASE("allow: empty username becomes the relay's user") {
  auto r = Make()->Authenticate(AuthRequest{});
  REQUIRE(r.ok());
  CHECK(r->username == ProcessUsername());
}

TEST_CASE("allow: bad option") {
  auto m = CreateAllowAuth(ModuleOptions("allow", {{"value", "x"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace xr::auth
