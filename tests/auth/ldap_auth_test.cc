#include "auth/ldap_auth.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "base/fd.h"
#include "tests/auth/test_util.h"

// Module-level checks without a directory: escaping, options, a closed port and a server that
// accepts but never answers. Logins against a real slapd: tests/interop/test_sysauth.py.

namespace xr::auth {
namespace {

using testing::ClientRequest;

// A listening socket on 127.0.0.1 that never accepts: connects succeed, nothing ever answers.
struct BlackHole {
  UniqueFd fd;
  int port = 0;
  BlackHole() {
    fd.reset(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd.get(), 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
};

// A port nothing listens on (bound then closed).
int ClosedPort() {
  BlackHole b;
  return b.port;
}

std::unique_ptr<AuthModule> Make(OptionList o) {
  auto m = CreateLdapAuth(ModuleOptions("ldap", std::move(o)));
  if (!m.ok()) FAIL(m.error().message);
  return std::move(m).value();
}

TEST_CASE("ldap: DN and filter values are escaped") {
  CHECK(EscapeDnValue("alice") == "alice");
  CHECK(EscapeDnValue("a,b+c=d") == "a\\,b\\+c\\=d");
  CHECK(EscapeDnValue("x\\\"<>;") == "x\\\\\\\"\\<\\>\\;");
  CHECK(EscapeDnValue("#lead") == "\\#lead");
  CHECK(EscapeDnValue(" sp ") == "\\ sp\\ ");
  CHECK(EscapeDnValue(std::string("a\0b", 3)) == "a\\00b");
  CHECK(EscapeFilterValue("alice") == "alice");
  CHECK(EscapeFilterValue("*)(uid=*") == "\\2a\\29\\28uid=\\2a");
  CHECK(EscapeFilterValue("a\\b") == "a\\5cb");
}

TEST_CASE("ldap: needs the password (xor), refuses empty passwords before any bind") {
  auto m = Make({{"host", "127.0.0.1"}, {"port", std::to_string(ClosedPort())}});
  CHECK(m->needs_password());
  AuthRequest empty = ClientRequest("alice", "xor", "pw");
  empty.response.clear();  // an empty password would be an anonymous bind: never tried
  auto r = m->Authenticate(empty);
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
  CHECK(!m->Authenticate(ClientRequest("alice", "hmac+sha256", "pw")).ok());
}

TEST_CASE("ldap: a closed port is 'unavailable' (kIo) at once") {
  auto m = Make({{"host", "127.0.0.1"}, {"port", std::to_string(ClosedPort())}, {"timeout", "2"}});
  auto t0 = std::chrono::steady_clock::now();
  auto r = m->Authenticate(ClientRequest("alice", "xor", "pw"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kIo);
  CHECK(r.error().message.find("unreachable") != std::string::npos);
  CHECK(ms < 1500);
}

TEST_CASE("ldap: a server that never answers fails within the timeout") {
  BlackHole hole;
  auto m = Make({{"host", "127.0.0.1"}, {"port", std::to_string(hole.port)}, {"timeout", "0.5"}});
  auto t0 = std::chrono::steady_clock::now();
  auto r = m->Authenticate(ClientRequest("alice", "xor", "pw"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(!r.ok());
  CHECK_MESSAGE((r.error().code == ErrorCode::kIo || r.error().code == ErrorCode::kTimeout), r.error().message);
  CHECK(ms >= 400);
  CHECK(ms < 1600);  // libldap's own timeout (0.5 s); the outer guard is 1.5 s
}

TEST_CASE("ldap: options") {
  CHECK(CreateLdapAuth(ModuleOptions("ldap", {})).ok());
  CHECK(CreateLdapAuth(ModuleOptions("ldap3", {{"tls", "starttls"}, {"uid", "0"}, {"gid", "0"}})).ok());
  auto bad = [](OptionList o, ErrorCode code = ErrorCode::kMalformed) {
    auto m = CreateLdapAuth(ModuleOptions("ldap", std::move(o)));
    REQUIRE(!m.ok());
    CHECK(m.error().code == code);
    return m.error().message;
  };
  CHECK(bad({{"port", "0"}}).find("port") != std::string::npos);
  CHECK(bad({{"port", "70000"}}).find("port") != std::string::npos);
  CHECK(bad({{"tls", "maybe"}}).find("tls") != std::string::npos);
  CHECK(bad({{"username_format", "cn=fixed"}}).find("%username") != std::string::npos);
  CHECK(bad({{"search_base", "dc=x"}, {"search_filter", "(uid=bob)"}}).find("%username") != std::string::npos);
  CHECK(bad({{"bind_dn", "cn=admin"}}).find("search_base") != std::string::npos);
  CHECK(bad({{"search_base", "dc=x"}, {"bind_dn", "cn=admin"}}).find("bind_password") != std::string::npos);
  CHECK(bad({{"encoding", "latin1"}}).find("utf-8") != std::string::npos);
  CHECK(bad({{"timeout", "61"}}).find("timeout") != std::string::npos);
  CHECK(bad({{"cacert", "/nonexistent/ca.pem"}}, ErrorCode::kIo).find("cacert") != std::string::npos);
  CHECK(bad({{"server", "x"}}).find("server") != std::string::npos);
}

}  // namespace
}  // namespace xr::auth
