#include "auth/module_base.h"

#include <doctest/doctest.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::FreshSalt;
using testing::XorResponse;

TEST_CASE("CheckResponse: hmac digests through xr::digest") {
  const std::string salt = FreshSalt();
  for (const char* digest : testing::kAllDigests) {
    if (std::string_view(digest) == "xor") continue;
    CAPTURE(digest);
    auto r = xr::digest::ComputeResponse(digest, "pw", salt);
    REQUIRE(r.ok());
    CHECK(CheckResponse(digest, "pw", salt, *r));
    CHECK(!CheckResponse(digest, "pW", salt, *r));
    CHECK(!CheckResponse(digest, "pw", salt + "x", *r));
  }
}

TEST_CASE("CheckResponse: hmac+sha256 known answer (Python hmac.new(b'pw', b'salt', 'sha256'))") {
  const char* kExpected = "4455a156bb43a9213145b52eb69c1f99f9facbb7003bc54d3a9e809ec68641af";
  CHECK(CheckResponse("hmac+sha256", "pw", "salt", kExpected));
  CHECK(!CheckResponse("hmac+sha256", "pw", "salt", std::string(kExpected).substr(1)));
  CHECK(!CheckResponse("hmac+sha1", "pw", "salt", kExpected));
}

TEST_CASE("CheckResponse: xor recovers the password") {
  const std::string salt = FreshSalt();
  CHECK(CheckResponse("xor", "password", salt, XorResponse("password", salt)));
  CHECK(!CheckResponse("xor", "password", salt, XorResponse("passwore", salt)));
  CHECK(!CheckResponse("xor", "password", salt, XorResponse("passwor", salt)));
  // A password longer than the salt: the salt is padded with NUL bytes.
  const std::string longpw(100, 'k');
  CHECK(CheckResponse("xor", longpw, "short", XorResponse(longpw, "short")));
}

TEST_CASE("CheckResponse: empty inputs and unknown digests never match") {
  CHECK(!CheckResponse("xor", "", "salt", ""));
  CHECK(!CheckResponse("xor", "pw", "", "pw"));
  CHECK(!CheckResponse("hmac+sha256", "pw", "salt", ""));
  CHECK(!CheckResponse("des", "pw", "salt", "anything"));
  CHECK(!CheckResponse("", "pw", "salt", "anything"));
}

TEST_CASE("RememberSalt: a salt is accepted once") {
  const std::string salt = FreshSalt();
  CHECK(!SaltSeen(salt, 0));
  CHECK(RememberSalt(salt, 0));
  CHECK(SaltSeen(salt, 0));
  CHECK(!RememberSalt(salt, 0));
  CHECK(RememberSalt(FreshSalt(), 0));
}

// Issue 13: the replay cache is time-bound, holds a fixed-size digest per salt, and only
// successful logins enter it (so failed logins cannot flush it).
TEST_CASE("replay cache: entries live for their lifetime, then go") {
  const std::string salt = FreshSalt();
  const int64_t t = int64_t{1} << 40;  // later than every other test's entries
  CHECK(RememberSalt(salt, t));
  CHECK(SaltSeen(salt, t + kUsedSaltLifetimeMs));
  CHECK(!SaltSeen(salt, t + kUsedSaltLifetimeMs + 1));
  CHECK(RememberSalt(salt, t + kUsedSaltLifetimeMs + 1));
}

class FixedModule : public PasswordModuleBase {
 public:
  FixedModule() : PasswordModuleBase(ModuleOptions("fixed", {})) {}
  int lookups = 0;

 protected:
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    ++lookups;
    if (username == "two") return std::vector<Credential>{{"first", "1"}, {"second", "2"}};
    if (username == "broken") return MakeError(ErrorCode::kIo, "database unreadable");
    return std::vector<Credential>{};
  }
  Expected<std::vector<SessionEntry>> GetSessions(const std::string& username, const Credential& c) override {
    SessionEntry e;
    e.displays = {":" + c.stored};
    return std::vector<SessionEntry>{e};
  }
};

TEST_CASE("PasswordModuleBase: the matching credential gives the sessions") {
  FixedModule m;
  auto r1 = m.Authenticate(testing::ClientRequest("two", "hmac+sha512", "first"));
  REQUIRE(r1.ok());
  CHECK(r1->sessions.at(0).displays == std::vector<std::string>{":1"});
  auto r2 = m.Authenticate(testing::ClientRequest("two", "xor", "second"));
  REQUIRE(r2.ok());
  CHECK(r2->sessions.at(0).displays == std::vector<std::string>{":2"});
}

TEST_CASE("PasswordModuleBase: a re-used salt is refused before any lookup") {
  FixedModule m;
  AuthRequest req = testing::ClientRequest("two", "hmac+sha256", "first");
  CHECK(m.Authenticate(req).ok());
  const int lookups = m.lookups;
  auto again = m.Authenticate(req);
  REQUIRE(!again.ok());
  CHECK(again.error().code == ErrorCode::kAuthFailed);
  CHECK(again.error().message.find("re-use") != std::string::npos);
  CHECK(m.lookups == lookups);
}

TEST_CASE("PasswordModuleBase: failed logins never enter the replay cache") {
  FixedModule m;
  AuthRequest good = testing::ClientRequest("two", "hmac+sha256", "first");
  REQUIRE(m.Authenticate(good).ok());
  // Many failures (a flood meant to push `good`'s salt out) add nothing.
  for (size_t i = 0; i < kUsedSaltCapacity + 10; i += 4096) {
    AuthRequest bad = testing::ClientRequest("two", "hmac+sha256", "wrong");
    CHECK(!m.Authenticate(bad).ok());
    CHECK(!SaltSeen(bad.salt, 0));
  }
  CHECK(!m.Authenticate(good).ok());  // still refused as a replay
  // And a failure's salt does not block a correct answer over it.
  AuthRequest wrong = testing::ClientRequest("two", "hmac+sha256", "wrong");
  CHECK(!m.Authenticate(wrong).ok());
  CHECK(!SaltSeen(wrong.salt, 0));
}

TEST_CASE("PasswordModuleBase: lookup errors and missing passwords are kAuthFailed") {
  FixedModule m;
  auto broken = m.Authenticate(testing::ClientRequest("broken", "hmac+sha256", "x"));
  REQUIRE(!broken.ok());
  CHECK(broken.error().code == ErrorCode::kAuthFailed);
  CHECK(broken.error().message == "fixed: database unreadable");
  auto none = m.Authenticate(testing::ClientRequest("nobody", "hmac+sha256", "x"));
  REQUIRE(!none.ok());
  CHECK(none.error().code == ErrorCode::kAuthFailed);
  CHECK(none.error().message == "fixed: no password defined for 'nobody'");
}

TEST_CASE("PasswordModuleBase: unsupported digest and empty salt") {
  FixedModule m;
  AuthRequest req = testing::ClientRequest("two", "hmac+sha256", "first");
  req.digest = "hmac+whirlpool";
  auto r = m.Authenticate(req);
  REQUIRE(!r.ok());
  CHECK(r.error().message == "fixed: unsupported digest 'hmac+whirlpool'");
  AuthRequest nosalt = testing::ClientRequest("two", "hmac+sha256", "first");
  nosalt.salt.clear();
  CHECK(!m.Authenticate(nosalt).ok());
}

TEST_CASE("TextPasswordBytes: latin-1 as xpra hashes text") {
  CHECK(TextPasswordBytes("plain").value() == "plain");
  CHECK(TextPasswordBytes("p\xc3\xa4ss").value() == "p\xe4ss");      // "päss"
  CHECK(!TextPasswordBytes("\xe2\x82\xac").has_value());              // "€" is not latin-1
  CHECK(TextPasswordBytes("raw\xff\xfe").value() == "raw\xff\xfe");  // not UTF-8: raw bytes
  CHECK(TextPasswordBytes("\xc0\x80").value() == "\xc0\x80");        // overlong: raw bytes
  CHECK(TextPasswordBytes("").value().empty());
}

}  // namespace
}  // namespace xr::auth
