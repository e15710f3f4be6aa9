#include "auth/password_auth.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

std::unique_ptr<AuthModule> Make(const std::string& value) {
  auto m = CreatePasswordAuth(ModuleOptions("password", {{"value", value}}));
  REQUIRE(m.ok());
  return std::move(m).value();
}

TEST_CASE("password: right password accepted for every digest, wrong refused") {
  auto m = Make("s3cret!");
  AuthResult r = testing::ExpectAcceptsOnly(*m, "alice", "s3cret!");
  CHECK(r.username == "alice");
  REQUIRE(r.sessions.size() == 1);
  CHECK(r.sessions[0].uid == static_cast<int64_t>(getuid()));
  CHECK(r.sessions[0].displays.empty());
}

TEST_CASE("password: any username, the same password") {
  auto m = Make("pw");
  CHECK(m->Authenticate(testing::ClientRequest("someone-else", "hmac+sha1", "pw")).ok());
  auto r = m->Authenticate(testing::ClientRequest("", "hmac+sha1", "pw"));
  REQUIRE(r.ok());
  CHECK(r->username == ProcessUsername());
}

TEST_CASE("password: xor response with a truncated or padded password is refused") {
  auto m = Make("password");
  AuthRequest req = testing::ClientRequest("a", "xor", "password");
  req.response.pop_back();
  CHECK(!m->Authenticate(req).ok());
  AuthRequest longer = testing::ClientRequest("a", "xor", std::string("password") + '\0');
  CHECK(!m->Authenticate(longer).ok());
}

TEST_CASE("password: a non-ASCII value= is hashed as latin-1, like xpra") {
  auto m = Make("p\xc3\xa4ssword");
  // /usr/bin/python3: hmac.new('p\u00e4ssword'.encode('latin1'), SALT, 'sha256').hexdigest()
  AuthRequest req{"a", "hmac+sha256", "fixed-salt-for-the-latin1-test-0002",
                  "716011f6ba0514e6dae563c184c85a394afb9552892167ef9e81988eaaa5700c", "peer"};
  CHECK(m->Authenticate(req).ok());
  CHECK(m->Authenticate(testing::ClientRequest("a", "xor", "p\xe4ssword")).ok());
  CHECK(!m->Authenticate(testing::ClientRequest("a", "hmac+sha256", "p\xc3\xa4ssword")).ok());
}

TEST_CASE("password: unsupported digest refused") {
  auto m = Make("pw");
  AuthRequest req = testing::ClientRequest("a", "hmac+sha256", "pw");
  req.digest = "des";
  auto r = m->Authenticate(req);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
}

TEST_CASE("password: value is required") {
  auto missing = CreatePasswordAuth(ModuleOptions("password", {}));
  REQUIRE(!missing.ok());
  CHECK(missing.error().code == ErrorCode::kMalformed);
  auto empty = CreatePasswordAuth(ModuleOptions("password", {{"value", ""}}));
  REQUIRE(!empty.ok());
  CHECK(empty.error().code == ErrorCode::kMalformed);
}

TEST_CASE("password: unknown option") {
  auto m = CreatePasswordAuth(ModuleOptions("password", {{"value", "x"}, {"filename", "y"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().message == "unknown option 'filename' for password authentication, valid options: value, prompt");
}

}  // namespace
}  // namespace xr::auth
