#include "auth/pam_auth.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "auth/module_base.h"
#include "tests/auth/test_util.h"

// Real Linux-PAM stacks from a private directory (confdir=, pam_start_confdir): pam_permit,
// pam_deny, pam_exec (which hands the password to a script: the password really reaches PAM)
// and a stack that hangs. System accounts checked by pam_unix are in tests/interop/test_sysauth.py.

namespace xr::auth {
namespace {

using testing::ClientRequest;

struct Stacks {
  testing::TempDir dir;
  std::string check_script;
  Stacks() {
    // pam_exec expose_authtok writes the password and a NUL to the script's stdin.
    check_script = dir.Write("check.sh", "#!/bin/sh\npw=$(head -c 200 | tr -d '\\000')\n[ \"$pw\" = 's3cret pw' ]\n");
    chmod(check_script.c_str(), 0755);
    dir.Write("permit", "auth required pam_permit.so\naccount required pam_permit.so\n");
    dir.Write("deny", "auth required pam_deny.so\naccount required pam_permit.so\n");
    dir.Write("exec", "auth required pam_exec.so expose_authtok quiet " + check_script +
                          "\naccount required pam_permit.so\n");
    dir.Write("acct-deny", "auth required pam_permit.so\naccount required pam_deny.so\n");
    dir.Write("hang", "auth required pam_exec.so quiet /bin/sleep 2\naccount required pam_permit.so\n");
    dir.Write("broken", "auth required pam_xr_no_such_module.so\naccount required pam_permit.so\n");
  }
  std::unique_ptr<AuthModule> Make(const std::string& service, OptionList extra = {}) {
    OptionList o = {{"service", service}, {"confdir", dir.path()}};
    o.insert(o.end(), extra.begin(), extra.end());
    auto m = CreatePamAuth(ModuleOptions("pam", o));
    REQUIRE(m.ok());
    return std::move(m).value();
  }
};

// An account NSS knows (the tests run as root; "root" always exists).
const std::string kUser = "root";

TEST_CASE("pam: needs the password (xor digest) and a challenge") {
  Stacks s;
  auto m = s.Make("permit");
  CHECK(m->needs_password());
  CHECK(m->requires_challenge());
  CHECK(m->name() == "pam");
}

TEST_CASE("pam: the password reaches the PAM stack: right accepted, wrong refused") {
  Stacks s;
  auto m = s.Make("exec");
  auto ok = m->Authenticate(ClientRequest(kUser, "xor", "s3cret pw"));
  if (!ok.ok()) FAIL("refused: " << ok.error().message);
  CHECK(ok->username == kUser);
  REQUIRE(ok->sessions.size() == 1);
  CHECK(ok->sessions[0].uid == 0);
  CHECK(ok->sessions[0].gid == 0);
  CHECK(ok->sessions[0].displays.empty());
  auto bad = m->Authenticate(ClientRequest(kUser, "xor", "s3cret px"));
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == ErrorCode::kAuthFailed);
  CHECK(bad.error().message.find("s3cret") == std::string::npos);
}

TEST_CASE("pam: pam_deny refuses, pam_permit accepts, the account stack is checked") {
  Stacks s;
  CHECK(s.Make("permit")->Authenticate(ClientRequest(kUser, "xor", "anything")).ok());
  auto denied = s.Make("deny")->Authenticate(ClientRequest(kUser, "xor", "anything"));
  REQUIRE(!denied.ok());
  CHECK(denied.error().code == ErrorCode::kAuthFailed);
  auto acct = s.Make("acct-deny")->Authenticate(ClientRequest(kUser, "xor", "anything"));
  REQUIRE(!acct.ok());
  CHECK(acct.error().message.find("account") != std::string::npos);
  CHECK(s.Make("acct-deny", {{"check-account", "no"}})->Authenticate(ClientRequest(kUser, "xor", "x")).ok());
}

TEST_CASE("pam: only the xor digest; empty password, re-used salt and unknown accounts refused") {
  Stacks s;
  auto m = s.Make("permit");
  auto hmac = m->Authenticate(ClientRequest(kUser, "hmac+sha256", "pw"));
  REQUIRE(!hmac.ok());
  CHECK(hmac.error().message.find("xor") != std::string::npos);
  AuthRequest empty = ClientRequest(kUser, "xor", "pw");
  empty.response.clear();
  CHECK(!m->Authenticate(empty).ok());
  AuthRequest nul = ClientRequest(kUser, "xor", std::string("pw\0x", 4));
  CHECK(!m->Authenticate(nul).ok());
  AuthRequest once = ClientRequest(kUser, "xor", "pw");
  REQUIRE(m->Authenticate(once).ok());
  auto replay = m->Authenticate(once);
  REQUIRE(!replay.ok());
  CHECK(replay.error().message.find("re-use") != std::string::npos);
  // pam_permit says yes to anyone; the system must still know the user for a uid.
  auto ghost = m->Authenticate(ClientRequest("xr_no_such_user_here", "xor", "pw"));
  REQUIRE(!ghost.ok());
  CHECK(ghost.error().code == ErrorCode::kAuthFailed);
  CHECK(ghost.error().message.find("no such user") != std::string::npos);
}

TEST_CASE("pam: a broken stack is 'unavailable' (kIo), not a wrong password") {
  Stacks s;
  auto r = s.Make("broken")->Authenticate(ClientRequest(kUser, "xor", "pw"));
  REQUIRE(!r.ok());
  CHECK_MESSAGE(r.error().code == ErrorCode::kIo, r.error().message);
}

TEST_CASE("pam: a hung stack times out, the caller gets its thread back, hangs are capped") {
  Stacks s;
  auto m = s.Make("hang", {{"timeout", "0.2"}});
  auto t0 = std::chrono::steady_clock::now();
  auto r = m->Authenticate(ClientRequest(kUser, "xor", "pw"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kTimeout);
  CHECK(r.error().message.find("did not answer within 200 ms") != std::string::npos);
  CHECK(ms < 1500);
  // Fill the cap: kPamMaxStuck calls hang (the first included), then the next is refused at once.
  for (int i = 1; i < kPamMaxStuck; ++i) CHECK(!m->Authenticate(ClientRequest(kUser, "xor", "pw")).ok());
  t0 = std::chrono::steady_clock::now();
  auto capped = m->Authenticate(ClientRequest(kUser, "xor", "pw"));
  ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(!capped.ok());
  CHECK(capped.error().code == ErrorCode::kIo);
  CHECK(capped.error().message.find("still hanging") != std::string::npos);
  CHECK(ms < 100);
  // The hung calls end (sleep 2) and free their places.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto again = m->Authenticate(ClientRequest(kUser, "xor", "pw"));
  REQUIRE(!again.ok());
  CHECK(again.error().code == ErrorCode::kTimeout);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // let its sleep end before exiting
}

TEST_CASE("pam: options") {
  CHECK(CreatePamAuth(ModuleOptions("pam", {})).ok());
  CHECK(CreatePamAuth(ModuleOptions("sys", {{"service", "login"}, {"timeout", "3"}})).ok());
  auto bad = [](OptionList o) {
    auto m = CreatePamAuth(ModuleOptions("pam", std::move(o)));
    REQUIRE(!m.ok());
    CHECK(m.error().code == ErrorCode::kMalformed);
    return m.error().message;
  };
  CHECK(bad({{"service", "../etc/x"}}).find("not a path") != std::string::npos);
  CHECK(bad({{"timeout", "0"}}).find("timeout") != std::string::npos);
  CHECK(bad({{"timeout", "301"}}).find("timeout") != std::string::npos);
  CHECK(bad({{"timeout", "abc"}}).find("timeout") != std::string::npos);
  CHECK(bad({{"check-account", "maybe"}}).find("check-account") != std::string::npos);
  CHECK(bad({{"filename", "x"}}).find("filename") != std::string::npos);
}

}  // namespace
}  // namespace xr::auth
