#include "auth/peercred_auth.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

std::unique_ptr<AuthModule> Make(OptionList o) {
  auto m = CreatePeercredAuth(ModuleOptions("peercred", std::move(o)));
  if (!m.ok()) FAIL(m.error().message);
  return std::move(m).value();
}

AuthRequest From(int64_t uid, int64_t gid) {
  AuthRequest req;
  req.username = "whoever";
  req.peer = "unix:/tmp/x";
  req.peer_uid = uid;
  req.peer_gid = gid;
  req.peer_pid = 42;
  return req;
}

TEST_CASE("peercred: any local peer without lists; the entry and name are the peer's") {
  auto m = Make({});
  CHECK(!m->requires_challenge());
  auto r = m->Authenticate(From(0, 0));
  REQUIRE(r.ok());
  CHECK(r->username == "root");  // the uid's account, not what the client claimed
  REQUIRE(r->sessions.size() == 1);
  CHECK(r->sessions[0].uid == 0);
  CHECK(r->sessions[0].gid == 0);
  CHECK(r->sessions[0].displays.empty());
  auto unknown = m->Authenticate(From(987654, 987654));
  REQUIRE(unknown.ok());
  CHECK(unknown->username == "987654");
}

TEST_CASE("peercred: uid= and gid= allow-lists, by number or name") {
  auto m = Make({{"uid", "root:4242"}});
  CHECK(m->Authenticate(From(0, 0)).ok());
  CHECK(m->Authenticate(From(4242, 100)).ok());
  auto no = m->Authenticate(From(4243, 0));
  REQUIRE(!no.ok());
  CHECK(no.error().code == ErrorCode::kAuthFailed);
  CHECK(no.error().message.find("uid 4243") != std::string::npos);
  auto g = Make({{"gid", "root: 77"}});
  CHECK(g->Authenticate(From(5000, 77)).ok());
  CHECK(g->Authenticate(From(5000, 0)).ok());
  auto gno = g->Authenticate(From(0, 78));
  REQUIRE(!gno.ok());
  CHECK(gno.error().message.find("gid 78") != std::string::npos);
  auto both = Make({{"uid", "0"}, {"gid", "0"}});
  CHECK(both->Authenticate(From(0, 0)).ok());
  CHECK(!both->Authenticate(From(0, 1)).ok());
  CHECK(!both->Authenticate(From(1, 0)).ok());
}

TEST_CASE("peercred: no credentials (not a unix socket) is refused") {
  auto r = Make({})->Authenticate(From(-1, -1));
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("unix-socket") != std::string::npos);
}

TEST_CASE("peercred: the kernel's credentials of a real socket pair pass the uid list") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  struct ucred cred {};
  socklen_t len = sizeof cred;
  REQUIRE(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0);
  close(sv[0]);
  close(sv[1]);
  CHECK(cred.pid == getpid());
  auto m = Make({{"uid", std::to_string(getuid())}});
  CHECK(m->Authenticate(From(cred.uid, cred.gid)).ok());
  CHECK(!m->Authenticate(From(cred.uid + 1, cred.gid)).ok());
}

TEST_CASE("peercred: options") {
  auto bad = [](OptionList o) {
    auto m = CreatePeercredAuth(ModuleOptions("peercred", std::move(o)));
    REQUIRE(!m.ok());
    CHECK(m.error().code == ErrorCode::kMalformed);
    return m.error().message;
  };
  CHECK(bad({{"uid", "xr_no_such_user_here"}}).find("unknown user 'xr_no_such_user_here'") != std::string::npos);
  CHECK(bad({{"gid", "xr_no_such_group"}}).find("unknown group") != std::string::npos);
  CHECK(bad({{"user", "root"}}).find("user") != std::string::npos);
}

}  // namespace
}  // namespace xr::auth
