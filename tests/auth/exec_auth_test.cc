#include "auth/exec_auth.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/auth/test_util.h"

// Real commands (shell scripts written here) decide: allowed, refused, timed out (killed with
// their children), and what they are told: xpra's arguments, the environment, the password on
// stdin only with password=stdin, never on the command line.

namespace xr::auth {
namespace {

using testing::ClientRequest;

std::string Script(const testing::TempDir& dir, const std::string& name, const std::string& body) {
  std::string p = dir.Write(name, "#!/bin/sh\n" + body);
  chmod(p.c_str(), 0755);
  return p;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<AuthModule> Make(OptionList o) {
  auto m = CreateExecAuth(ModuleOptions("exec", std::move(o)));
  if (!m.ok()) FAIL(m.error().message);
  return std::move(m).value();
}

AuthRequest NoChallenge(const std::string& user) {
  AuthRequest req;
  req.username = user;
  req.peer = "127.0.0.1:5555";
  return req;
}

TEST_CASE("exec: exit status 0 allows, anything else refuses") {
  testing::TempDir dir;
  auto allow = Make({{"command", Script(dir, "allow.sh", "exit 0\n")}});
  CHECK(!allow->requires_challenge());
  CHECK(!allow->needs_password());
  auto ok = allow->Authenticate(NoChallenge("root"));
  REQUIRE(ok.ok());
  CHECK(ok->username == "root");
  REQUIRE(ok->sessions.size() == 1);
  CHECK(ok->sessions[0].uid == 0);  // root's account from NSS
  auto deny = Make({{"command", Script(dir, "deny.sh", "exit 3\n")}})->Authenticate(NoChallenge("root"));
  REQUIRE(!deny.ok());
  CHECK(deny.error().code == ErrorCode::kAuthFailed);
  CHECK(deny.error().message.find("exit status 3") != std::string::npos);
  auto killed = Make({{"command", Script(dir, "sig.sh", "kill -9 $$\n")}})->Authenticate(NoChallenge("root"));
  REQUIRE(!killed.ok());
  CHECK(killed.error().message.find("signal 9") != std::string::npos);
}

TEST_CASE("exec: xpra's arguments and the environment; no password without password=stdin") {
  testing::TempDir dir;
  const std::string out = dir.file("seen");
  auto m = Make({{"command", Script(dir, "show.sh", "printf '%s|' \"$@\" > " + out +
                                                          "\necho \"$XPRA_AUTH_USERNAME|$XPRA_AUTH_PEER|$XPRA_AUTH_TIMEOUT\" >> " + out +
                                                          "\ncat >> " + out + "\n")},
                 {"timeout", "7"}, {"uid", "1234"}, {"gid", "4321"}});
  auto r = m->Authenticate(NoChallenge("bob"));
  REQUIRE(r.ok());
  CHECK(r->sessions[0].uid == 1234);
  CHECK(r->sessions[0].gid == 4321);
  CHECK(ReadFile(out) == "Connection request from 127.0.0.1:5555|7|bob|127.0.0.1:5555|7\n");
}

TEST_CASE("exec: password=stdin: the password on stdin only, over the xor digest") {
  testing::TempDir dir;
  const std::string argv_file = dir.file("argv");
  auto m = Make({{"command", Script(dir, "pw.sh", "echo \"$@\" > " + argv_file +
                                                     "\nIFS= read -r pw\n[ \"$pw\" = 'open sesame' ]\n")},
                 {"password", "stdin"}});
  CHECK(m->needs_password());
  auto ok = m->Authenticate(ClientRequest("root", "xor", "open sesame"));
  if (!ok.ok()) FAIL(ok.error().message);
  CHECK(ReadFile(argv_file).find("sesame") == std::string::npos);
  auto bad = m->Authenticate(ClientRequest("root", "xor", "open sesamE"));
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == ErrorCode::kAuthFailed);
  CHECK(bad.error().message.find("sesam") == std::string::npos);
  CHECK(!m->Authenticate(ClientRequest("root", "hmac+sha256", "open sesame")).ok());
}

TEST_CASE("exec: a command past its timeout is killed with its children, and refused") {
  testing::TempDir dir;
  const std::string pidfile = dir.file("child.pid");
  auto m = Make({{"command", Script(dir, "hang.sh", "sleep 30 &\necho $! > " + pidfile + "\nwait\n")},
                 {"timeout", "0.3"}});
  auto t0 = std::chrono::steady_clock::now();
  auto r = m->Authenticate(NoChallenge("root"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kTimeout);
  CHECK(r.error().message.find("did not decide within") != std::string::npos);
  CHECK(ms >= 250);
  CHECK(ms < 2000);
  const pid_t child = static_cast<pid_t>(std::stol(ReadFile(pidfile)));
  REQUIRE(child > 1);
  // The script's own child (sleep) died with it: same process group.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = kill(child, 0) != 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(gone);
}

TEST_CASE("exec: options") {
  testing::TempDir dir;
  const std::string ok = Script(dir, "ok.sh", "exit 0\n");
  auto bad = [](OptionList o, ErrorCode code = ErrorCode::kMalformed) {
    auto m = CreateExecAuth(ModuleOptions("exec", std::move(o)));
    REQUIRE(!m.ok());
    CHECK(m.error().code == code);
    return m.error().message;
  };
  CHECK(bad({}).find("command") != std::string::npos);
  CHECK(bad({{"command", dir.file("missing")}}, ErrorCode::kIo).find("cannot run") != std::string::npos);
  CHECK(bad({{"command", ok}, {"timeout", "601"}}).find("timeout") != std::string::npos);
  CHECK(bad({{"command", ok}, {"password", "argv"}}).find("password") != std::string::npos);
  CHECK(bad({{"command", ok}, {"shell", "yes"}}).find("shell") != std::string::npos);
}

}  // namespace
}  // namespace xr::auth
