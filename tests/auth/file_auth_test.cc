#include "auth/file_auth.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::ClientRequest;
using testing::TempDir;

std::unique_ptr<AuthModule> Make(const std::string& path) {
  auto m = CreateFileAuth(ModuleOptions("file", {{"filename", path}}));
  REQUIRE(m.ok());
  return std::move(m).value();
}

TEST_CASE("file: the file's content is the password") {
  TempDir dir;
  auto m = Make(dir.Write("pw", "file-secret"));
  AuthResult r = testing::ExpectAcceptsOnly(*m, "alice", "file-secret");
  CHECK(r.username == "alice");
  REQUIRE(r.sessions.size() == 1);
  CHECK(r.sessions[0].uid == static_cast<int64_t>(getuid()));
  CHECK(r.sessions[0].displays.empty());
}

TEST_CASE("file: a trailing newline is part of the password (as in xpra)") {
  TempDir dir;
  auto m = Make(dir.Write("pw", "secret\n"));
  auto without = m->Authenticate(ClientRequest("a", "hmac+sha256", "secret"));
  REQUIRE(!without.ok());
  CHECK(without.error().code == ErrorCode::kAuthFailed);
  CHECK(without.error().message.find("newline") != std::string::npos);
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "secret\n")).ok());
  CHECK(m->Authenticate(ClientRequest("a", "xor", "secret\n")).ok());
}

TEST_CASE("file: binary content") {
  TempDir dir;
  const std::string pw("a\0b\xff", 4);
  auto m = Make(dir.Write("pw", pw));
  testing::ExpectAcceptsOnly(*m, "a", pw);
}

TEST_CASE("file: an empty file refuses everyone") {
  TempDir dir;
  auto m = Make(dir.Write("pw", ""));
  auto r = m->Authenticate(ClientRequest("a", "hmac+sha256", ""));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
  CHECK(!m->Authenticate(ClientRequest("a", "hmac+sha256", "x")).ok());
}

TEST_CASE("file: an edited file is re-read without Reload") {
  TempDir dir;
  const std::string path = dir.Write("pw", "first");
  auto m = Make(path);
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "first")).ok());
  dir.Write("pw", "the-second-one");
  CHECK(!m->Authenticate(ClientRequest("a", "hmac+sha256", "first")).ok());
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "the-second-one")).ok());
}

TEST_CASE("file: a deleted file refuses everyone until it is back") {
  TempDir dir;
  const std::string path = dir.Write("pw", "pw1");
  auto m = Make(path);
  REQUIRE(std::remove(path.c_str()) == 0);
  auto r = m->Authenticate(ClientRequest("a", "hmac+sha256", "pw1"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
  dir.Write("pw", "pw1");
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "pw1")).ok());
}

TEST_CASE("file: Reload failure keeps the previous password") {
  TempDir dir;
  const std::string path = dir.Write("pw", "kept");
  auto m = Make(path);
  REQUIRE(std::remove(path.c_str()) == 0);
  REQUIRE(mkdir(path.c_str(), 0700) == 0);  // now a directory: cannot be read
  Status s = m->Reload();
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kIo);
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "kept")).ok());
  REQUIRE(rmdir(path.c_str()) == 0);
  dir.Write("pw", "fresh");
  CHECK(m->Reload().ok());
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "fresh")).ok());
}

TEST_CASE("file: missing file at creation is an I/O error") {
  TempDir dir;
  auto m = CreateFileAuth(ModuleOptions("file", {{"filename", dir.file("nope")}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kIo);
  CHECK(m.error().message.find("nope") != std::string::npos);
}

TEST_CASE("file: filename is required") {
  auto m = CreateFileAuth(ModuleOptions("file", {}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
  CHECK(m.error().message == "file authentication needs filename=");
}

TEST_CASE("file: unknown option") {
  TempDir dir;
  auto m = CreateFileAuth(ModuleOptions("file", {{"filename", dir.Write("pw", "x")}, {"value", "y"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
}

TEST_CASE("file: a relative filename is resolved against the current directory") {
  TempDir dir;
  dir.Write("rel-pw", "relative");
  const std::filesystem::path old = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  auto m = CreateFileAuth(ModuleOptions("file", {{"filename", "rel-pw"}}));
  std::filesystem::current_path(old);
  REQUIRE(m.ok());
  CHECK((*m)->Authenticate(ClientRequest("a", "hmac+sha256", "relative")).ok());
}

}  // namespace
}  // namespace xr::auth
