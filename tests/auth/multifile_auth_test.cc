#include "auth/multifile_auth.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::ClientRequest;
using testing::TempDir;

std::unique_ptr<AuthModule> Make(const std::string& path) {
  auto m = CreateMultifileAuth(ModuleOptions("multifile", {{"filename", path}}));
  REQUIRE(m.ok());
  return std::move(m).value();
}

TEST_CASE("ParseMultifile: all seven fields") {
  MultifileData d = ParseMultifile("alice|pw1|1000|1001|:100,:101|A=1;B=2|compression_level=1;lz4=0\n");
  CHECK(d.problems.empty());
  REQUIRE(d.users.count("alice") == 1);
  const MultifileUser& u = d.users.at("alice");
  CHECK(u.password == "pw1");
  CHECK(u.session.uid == 1000);
  CHECK(u.session.gid == 1001);
  CHECK(u.session.displays == std::vector<std::string>{":100", ":101"});
  CHECK(u.session.env_options == std::vector<std::string>{"A=1", "B=2"});
  REQUIRE(u.session.session_options.size() == 2);
  CHECK(u.session.session_options[0] == std::pair<std::string, std::string>("compression_level", "1"));
  CHECK(u.session.session_options[1] == std::pair<std::string, std::string>("lz4", "0"));
}

TEST_CASE("ParseMultifile: two fields use the default uid/gid and no displays") {
  MultifileData d = ParseMultifile("bob|pw");
  REQUIRE(d.users.count("bob") == 1);
  const MultifileUser& u = d.users.at("bob");
  CHECK(u.password == "pw");
  CHECK(u.session.uid == ParseUid(""));
  CHECK(u.session.gid == ParseGid(""));
  CHECK(u.session.displays.empty());
}

TEST_CASE("ParseMultifile: three or four fields ignore uid and gid (as xpra)") {
  MultifileData d = ParseMultifile("c|pw|1000\nd|pw|1000|1000\n");
  CHECK(d.users.at("c").session.uid == ParseUid(""));
  CHECK(d.users.at("d").session.gid == ParseGid(""));
  CHECK(d.users.at("d").session.displays.empty());
}

TEST_CASE("ParseMultifile: five fields") {
  MultifileData d = ParseMultifile("e|pw|root|root|tcp://127.0.0.1:15200/");
  const MultifileUser& u = d.users.at("e");
  CHECK(u.session.uid == 0);
  CHECK(u.session.gid == 0);
  CHECK(u.session.displays == std::vector<std::string>{"tcp://127.0.0.1:15200/"});
  CHECK(u.session.env_options.empty());
}

TEST_CASE("ParseMultifile: comments, blank lines, spaces around lines") {
  MultifileData d = ParseMultifile("# a comment\n\n   \n  #indented comment\n  alice|pw  \n\t\n");
  CHECK(d.problems.empty());
  REQUIRE(d.users.size() == 1);
  CHECK(d.users.at("alice").password == "pw");
}

TEST_CASE("ParseMultifile: CRLF and CR line endings") {
  MultifileData d = ParseMultifile("a|1\r\nb|2\rc|3");
  REQUIRE(d.users.size() == 3);
  CHECK(d.users.at("a").password == "1");
  CHECK(d.users.at("b").password == "2");
  CHECK(d.users.at("c").password == "3");
}

TEST_CASE("ParseMultifile: fields are not trimmed individually") {
  MultifileData d = ParseMultifile("bob | pw");
  REQUIRE(d.users.count("bob ") == 1);
  CHECK(d.users.at("bob ").password == " pw");
}

TEST_CASE("ParseMultifile: a line with one field is skipped and reported") {
  MultifileData d = ParseMultifile("lonely\nok|pw\n");
  REQUIRE(d.problems.size() == 1);
  CHECK(d.problems[0] == "line 1: not enough fields: 1");
  CHECK(d.users.size() == 1);
  CHECK(d.users.count("ok") == 1);
}

TEST_CASE("ParseMultifile: a duplicate username keeps the first line") {
  MultifileData d = ParseMultifile("bob|first\nbob|second\n");
  REQUIRE(d.problems.size() == 1);
  CHECK(d.problems[0] == "line 2: duplicate entry for username 'bob'");
  CHECK(d.users.at("bob").password == "first");
}

TEST_CASE("ParseMultifile: problems never show passwords") {
  MultifileData d = ParseMultifile("bob|hunter2\nbob|hunter3\n");
  REQUIRE(!d.problems.empty());
  for (const std::string& p : d.problems) CHECK(p.find("hunter") == std::string::npos);
}

TEST_CASE("ParseMultifile: empty data") {
  MultifileData d = ParseMultifile("");
  CHECK(d.users.empty());
  CHECK(d.problems.empty());
}

TEST_CASE("multifile: each user with their own password, sessions from their line") {
  TempDir dir;
  auto m = Make(dir.Write("users", "alice|apw|1000|1000|:100,:101|X=1|compression_level=3\nbob|bpw\n"));
  AuthResult a = testing::ExpectAcceptsOnly(*m, "alice", "apw");
  CHECK(a.username == "alice");
  REQUIRE(a.sessions.size() == 1);
  CHECK(a.sessions[0].uid == 1000);
  CHECK(a.sessions[0].displays == std::vector<std::string>{":100", ":101"});
  CHECK(a.sessions[0].env_options == std::vector<std::string>{"X=1"});
  REQUIRE(a.sessions[0].session_options.size() == 1);
  testing::ExpectAcceptsOnly(*m, "bob", "bpw");
  // One user's password does not open another's account.
  CHECK(!m->Authenticate(ClientRequest("bob", "hmac+sha256", "apw")).ok());
}

TEST_CASE("multifile: unknown user refused with the same code as a wrong password") {
  TempDir dir;
  auto m = Make(dir.Write("users", "alice|apw\n"));
  auto unknown = m->Authenticate(ClientRequest("mallory", "hmac+sha256", "apw"));
  auto wrong = m->Authenticate(ClientRequest("alice", "hmac+sha256", "nope"));
  REQUIRE(!unknown.ok());
  REQUIRE(!wrong.ok());
  CHECK(unknown.error().code == ErrorCode::kAuthFailed);
  CHECK(wrong.error().code == ErrorCode::kAuthFailed);
  CHECK(unknown.error().message.find("apw") == std::string::npos);
}

TEST_CASE("multifile: empty password in the file refuses the user") {
  TempDir dir;
  auto m = Make(dir.Write("users", "alice|\n"));
  auto r = m->Authenticate(ClientRequest("alice", "xor", ""));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
}

TEST_CASE("multifile: empty username means the relay's own user") {
  TempDir dir;
  auto m = Make(dir.Write("users", ProcessUsername() + "|mine\n"));
  auto r = m->Authenticate(ClientRequest("", "hmac+sha256", "mine"));
  REQUIRE(r.ok());
  CHECK(r->username == ProcessUsername());
}

TEST_CASE("multifile: edits are picked up; Reload failure keeps the entries") {
  TempDir dir;
  const std::string path = dir.Write("users", "alice|one\n");
  auto m = Make(path);
  CHECK(m->Authenticate(ClientRequest("alice", "hmac+sha256", "one")).ok());
  dir.Write("users", "alice|two\ncarol|three\n");
  CHECK(!m->Authenticate(ClientRequest("alice", "hmac+sha256", "one")).ok());
  CHECK(m->Authenticate(ClientRequest("alice", "hmac+sha256", "two")).ok());
  CHECK(m->Authenticate(ClientRequest("carol", "hmac+sha256", "three")).ok());
  REQUIRE(unlink(path.c_str()) == 0);
  REQUIRE(mkdir(path.c_str(), 0700) == 0);
  CHECK(!m->Reload().ok());
  CHECK(m->Authenticate(ClientRequest("carol", "hmac+sha256", "three")).ok());
}

TEST_CASE("multifile: missing file and missing filename") {
  TempDir dir;
  auto missing = CreateMultifileAuth(ModuleOptions("multifile", {{"filename", dir.file("none")}}));
  REQUIRE(!missing.ok());
  CHECK(missing.error().code == ErrorCode::kIo);
  auto noname = CreateMultifileAuth(ModuleOptions("multifile", {}));
  REQUIRE(!noname.ok());
  CHECK(noname.error().code == ErrorCode::kMalformed);
}

}  // namespace
}  // namespace xr::auth
