#include "auth/sqlite_auth.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "auth/factory.h"
#include "auth/sqlite_db.h"
#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::ClientRequest;
using testing::TempDir;

constexpr char kSchema[] =
    "CREATE TABLE users (username VARCHAR(255) NOT NULL, password VARCHAR(255), uid VARCHAR(63), "
    "gid VARCHAR(63), displays VARCHAR(8191), env_options VARCHAR(8191), session_options VARCHAR(8191))";

// Creates an xpra-schema database; `rows` are SQL INSERT statements.
std::string MakeDb(const TempDir& dir, const std::vector<std::string>& statements, const char* name = "users.db") {
  const std::string path = dir.file(name);
  auto db = SqliteDb::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  REQUIRE(db.ok());
  for (const std::string& sql : statements) {
    Status s = db->Exec(sql);
    if (!s.ok()) FAIL(s.error().message);
  }
  return path;
}

std::unique_ptr<AuthModule> Make(const std::string& path, OptionList extra = {}) {
  extra.insert(extra.begin(), {"filename", path});
  auto m = CreateSqliteAuth(ModuleOptions("sqlite", std::move(extra)));
  if (!m.ok()) FAIL(m.error().message);
  return std::move(m).value();
}

TEST_CASE("sqlite: default queries, every digest, sessions from the row") {
  TempDir dir;
  auto m = Make(MakeDb(dir, {kSchema,
                             "INSERT INTO users VALUES('alice', 'apw', '1000', '1001', ':100, :101', 'A=1;B=2', "
                             "'compression_level=1')",
                             "INSERT INTO users VALUES('bob', 'bpw', '2000', '2000', '', '', '')"}));
  AuthResult a = testing::ExpectAcceptsOnly(*m, "alice", "apw");
  CHECK(a.username == "alice");
  REQUIRE(a.sessions.size() == 1);
  CHECK(a.sessions[0].uid == 1000);
  CHECK(a.sessions[0].gid == 1001);
  CHECK(a.sessions[0].displays == std::vector<std::string>{":100", ":101"});
  CHECK(a.sessions[0].env_options == std::vector<std::string>{"A=1", "B=2"});
  REQUIRE(a.sessions[0].session_options.size() == 1);
  CHECK(a.sessions[0].session_options[0] == std::pair<std::string, std::string>("compression_level", "1"));
  AuthResult b = testing::ExpectAcceptsOnly(*m, "bob", "bpw");
  REQUIRE(b.sessions.size() == 1);
  CHECK(b.sessions[0].uid == 2000);
  CHECK(b.sessions[0].displays.empty());
  CHECK(!m->Authenticate(ClientRequest("bob", "hmac+sha256", "apw")).ok());
}

TEST_CASE("sqlite: unknown user refused like a wrong password") {
  TempDir dir;
  auto m = Make(MakeDb(dir, {kSchema, "INSERT INTO users VALUES('alice', 'apw', '1', '1', '', '', '')"}));
  auto unknown = m->Authenticate(ClientRequest("mallory", "hmac+sha256", "apw"));
  auto wrong = m->Authenticate(ClientRequest("alice", "hmac+sha256", "bad"));
  REQUIRE(!unknown.ok());
  REQUIRE(!wrong.ok());
  CHECK(unknown.error().code == ErrorCode::kAuthFailed);
  CHECK(wrong.error().code == ErrorCode::kAuthFailed);
  CHECK(unknown.error().message.find("apw") == std::string::npos);
  CHECK(unknown.error().message.find("not found") != std::string::npos);
}

TEST_CASE("sqlite: NULL columns use the defaults; integer uids work") {
  TempDir dir;
  auto m = Make(MakeDb(dir, {kSchema, "INSERT INTO users(username, password) VALUES('n', 'pw')",
                             "INSERT INTO users VALUES('i', 'pw', 1234, 99, NULL, NULL, NULL)"}));
  auto n = m->Authenticate(ClientRequest("n", "hmac+sha256", "pw"));
  REQUIRE(n.ok());
  REQUIRE(n->sessions.size() == 1);
  CHECK(n->sessions[0].uid == ParseUid(""));
  CHECK(n->sessions[0].gid == ParseGid(""));
  CHECK(n->sessions[0].displays.empty());
  auto i = m->Authenticate(ClientRequest("i", "hmac+sha256", "pw"));
  REQUIRE(i.ok());
  CHECK(i->sessions[0].uid == 1234);
  CHECK(i->sessions[0].gid == 99);
}

TEST_CASE("sqlite: a NULL password never matches") {
  TempDir dir;
  auto m = Make(MakeDb(dir, {kSchema, "INSERT INTO users(username) VALUES('nopw')"}));
  for (const char* guess : {"None", "", "x"}) {
    auto r = m->Authenticate(ClientRequest("nopw", "hmac+sha256", guess));
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::kAuthFailed);
  }
}

TEST_CASE("sqlite: non-ASCII text passwords are hashed as latin-1, like xpra") {
  TempDir dir;
  auto m = Make(MakeDb(dir, {kSchema, "INSERT INTO users VALUES('j\xc3\xb6rg', 'p\xc3\xa4ssword', '1', '1', ':9', '', '')",
                             "INSERT INTO users VALUES('euro', '\xe2\x82\xac', '1', '1', '', '', '')"}));
  // /usr/bin/python3: hmac.new('p\u00e4ssword'.encode('latin1'), SALT, 'sha256').hexdigest()
  AuthRequest req{"j\xc3\xb6rg", "hmac+sha256", "fixed-salt-for-the-latin1-test-0001",
                  "56ac934225149026ab2c13d6f97ee4d18148ec4c85490d7a47898d7dd1be92ec", "peer"};
  auto r = m->Authenticate(req);
  if (!r.ok()) FAIL(r.error().message);
  CHECK(r->sessions.at(0).displays == std::vector<std::string>{":9"});  // sessions query got the stored text
  // The UTF-8 bytes are not what an xpra client hashes.
  CHECK(!m->Authenticate(ClientRequest("j\xc3\xb6rg", "hmac+sha256", "p\xc3\xa4ssword")).ok());
  // A character outside latin-1 can never match (xpra cannot encode it either).
  CHECK(!m->Authenticate(ClientRequest("euro", "hmac+sha256", "\xe2\x82\xac")).ok());
}

TEST_CASE("sqlite: several rows for one user, the matching row gives the sessions") {
  TempDir dir;
  auto m = Make(MakeDb(dir, {kSchema, "INSERT INTO users VALUES('multi', 'one', '1', '1', ':1', '', '')",
                             "INSERT INTO users VALUES('multi', 'two', '2', '2', ':2', '', '')"}));
  auto one = m->Authenticate(ClientRequest("multi", "hmac+sha256", "one"));
  REQUIRE(one.ok());
  CHECK(one->sessions[0].displays == std::vector<std::string>{":1"});
  auto two = m->Authenticate(ClientRequest("multi", "xor", "two"));
  REQUIRE(two.ok());
  CHECK(two->sessions[0].displays == std::vector<std::string>{":2"});
  auto bad = m->Authenticate(ClientRequest("multi", "hmac+sha256", "three"));
  REQUIRE(!bad.ok());
  CHECK(bad.error().message.find("checked 2 passwords") != std::string::npos);
}

TEST_CASE("sqlite: custom queries on another schema, given through the spec string") {
  TempDir dir;
  const std::string path = MakeDb(dir, {"CREATE TABLE accounts (login TEXT, secret TEXT, screen TEXT, enabled INT)",
                                        "INSERT INTO accounts VALUES('eve', 'epw', ':42', 1)",
                                        "INSERT INTO accounts VALUES('off', 'opw', ':43', 0)"},
                                  "custom.db");
  const std::string spec = "sqlite,filename=" + path +
                           ",password_query=SELECT secret FROM accounts WHERE login=(?) AND enabled=1"
                           ",sessions_query=SELECT 4242 AS UID, 4243 AS gid, screen AS displays, 'compression_level=0' "
                           "AS session_options FROM accounts WHERE login=(?) AND secret=(?)";
  auto m = CreateAuthModule(spec);
  if (!m.ok()) FAIL(m.error().message);
  AuthResult r = testing::ExpectAcceptsOnly(**m, "eve", "epw");
  REQUIRE(r.sessions.size() == 1);
  CHECK(r.sessions[0].uid == 4242);  // column names match case-insensitively
  CHECK(r.sessions[0].gid == 4243);
  CHECK(r.sessions[0].displays == std::vector<std::string>{":42"});
  CHECK(r.sessions[0].env_options.empty());  // column absent: empty
  REQUIRE(r.sessions[0].session_options.size() == 1);
  CHECK(!(*m)->Authenticate(ClientRequest("off", "hmac+sha256", "opw")).ok());
}

TEST_CASE("sqlite: sessions query with no row: authenticated, no sessions") {
  TempDir dir;
  const std::string path = MakeDb(dir, {kSchema, "INSERT INTO users VALUES('a', 'pw', '1', '1', ':1', '', '')"});
  auto m = Make(path, {{"sessions_query",
                        "SELECT uid, gid, displays FROM users WHERE username=(?) AND password=(?) AND 0"}});
  auto r = m->Authenticate(ClientRequest("a", "hmac+sha256", "pw"));
  REQUIRE(r.ok());
  CHECK(r->sessions.empty());
}

TEST_CASE("sqlite: invalid SQL is malformed") {
  TempDir dir;
  const std::string path = MakeDb(dir, {kSchema});
  auto m = CreateSqliteAuth(ModuleOptions("sqlite", {{"filename", path}, {"password_query", "SELEKT x"}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
  CHECK(m.error().message.find("password_query") != std::string::npos);
}

TEST_CASE("sqlite: unknown table is malformed") {
  TempDir dir;
  const std::string path = MakeDb(dir, {"CREATE TABLE other (x)"});
  auto m = CreateSqliteAuth(ModuleOptions("sqlite", {{"filename", path}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kMalformed);
  CHECK(m.error().message.find("no such table: users") != std::string::npos);
}

TEST_CASE("sqlite: wrong number of query parameters is malformed") {
  TempDir dir;
  const std::string path = MakeDb(dir, {kSchema});
  auto p = CreateSqliteAuth(ModuleOptions(
      "sqlite", {{"filename", path}, {"password_query", "SELECT password FROM users WHERE username=? AND uid=?"}}));
  REQUIRE(!p.ok());
  CHECK(p.error().message == "sqlite authentication: password_query must have exactly 1 '?' parameter, found 2");
  auto s = CreateSqliteAuth(ModuleOptions(
      "sqlite", {{"filename", path}, {"sessions_query", "SELECT uid FROM users WHERE username=?"}}));
  REQUIRE(!s.ok());
  CHECK(s.error().message == "sqlite authentication: sessions_query must have exactly 2 '?' parameters, found 1");
}

TEST_CASE("sqlite: missing database is an I/O error") {
  TempDir dir;
  auto m = CreateSqliteAuth(ModuleOptions("sqlite", {{"filename", dir.file("absent.db")}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kIo);
  CHECK(m.error().message.find("absent.db") != std::string::npos);
}

TEST_CASE("sqlite: a file that is not a database") {
  TempDir dir;
  auto m = CreateSqliteAuth(ModuleOptions("sqlite", {{"filename", dir.Write("junk.db", std::string(4096, 'j'))}}));
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kIo);
}

TEST_CASE("sqlite: default filename is sqlite.sdb in the current directory") {
  auto m = CreateSqliteAuth(ModuleOptions("sqlite", {}));
  REQUIRE(!m.ok());
  CHECK(m.error().message.find("/sqlite.sdb") != std::string::npos);
}

TEST_CASE("sqlite: bad options") {
  auto unknown = CreateSqliteAuth(ModuleOptions("sqlite", {{"file", "x"}}));
  REQUIRE(!unknown.ok());
  CHECK(unknown.error().message ==
        "unknown option 'file' for sqlite authentication, valid options: filename, password_query, "
        "sessions_query, prompt");
  auto empty = CreateSqliteAuth(ModuleOptions("sqlite", {{"filename", ""}}));
  REQUIRE(!empty.ok());
  CHECK(empty.error().code == ErrorCode::kMalformed);
}

TEST_CASE("sqlite: changes to the database are seen at once; Reload re-validates") {
  TempDir dir;
  const std::string path = MakeDb(dir, {kSchema, "INSERT INTO users VALUES('a', 'old', '1', '1', '', '', '')"});
  auto m = Make(path);
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "old")).ok());
  {
    auto db = SqliteDb::Open(path, SQLITE_OPEN_READWRITE);
    REQUIRE(db.ok());
    REQUIRE(db->Exec("UPDATE users SET password='new' WHERE username='a'").ok());
  }
  CHECK(!m->Authenticate(ClientRequest("a", "hmac+sha256", "old")).ok());
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "new")).ok());
  CHECK(m->Reload().ok());
  REQUIRE(std::remove(path.c_str()) == 0);
  Status s = m->Reload();
  REQUIRE(!s.ok());
  CHECK(s.error().code == ErrorCode::kIo);
  auto r = m->Authenticate(ClientRequest("a", "hmac+sha256", "new"));
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::kAuthFailed);
}

TEST_CASE("sqlite: a database file replaced at the same path is used at once") {
  // Connections are pooled between logins; a new file at the path (a deploy's atomic rename)
  // must not be hidden behind a connection to the old one.
  TempDir dir;
  const std::string path = MakeDb(dir, {kSchema, "INSERT INTO users VALUES('a', 'first', '1', '1', '', '', '')"});
  auto m = Make(path);
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "first")).ok());
  const std::string next =
      MakeDb(dir, {kSchema, "INSERT INTO users VALUES('a', 'second', '1', '1', '', '', '')"}, "next.db");
  REQUIRE(std::rename(next.c_str(), path.c_str()) == 0);
  CHECK(!m->Authenticate(ClientRequest("a", "hmac+sha256", "first")).ok());
  CHECK(m->Authenticate(ClientRequest("a", "hmac+sha256", "second")).ok());
}

TEST_CASE("sqlite: waits for a writer's lock (busy timeout)") {
  TempDir dir;
  const std::string path = MakeDb(dir, {kSchema, "INSERT INTO users VALUES('a', 'pw', '1', '1', '', '', '')"});
  auto m = Make(path);
  auto writer = SqliteDb::Open(path, SQLITE_OPEN_READWRITE);
  REQUIRE(writer.ok());
  REQUIRE(writer->Exec("BEGIN EXCLUSIVE").ok());
  REQUIRE(writer->Exec("UPDATE users SET password='pw2'").ok());
  std::atomic<bool> committed{false};
  std::thread commit([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    committed = writer->Exec("COMMIT").ok();
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = m->Authenticate(ClientRequest("a", "hmac+sha256", "pw2"));
  const auto waited = std::chrono::steady_clock::now() - start;
  commit.join();
  CHECK(committed);
  CHECK(r.ok());
  CHECK(waited >= std::chrono::milliseconds(200));
}

TEST_CASE("sqlite: concurrent authentications from several threads") {
  TempDir dir;
  std::vector<std::string> sql = {kSchema};
  for (int i = 0; i < 8; ++i) {
    sql.push_back("INSERT INTO users VALUES('u" + std::to_string(i) + "', 'p" + std::to_string(i) + "', '" +
                  std::to_string(1000 + i) + "', '1', ':" + std::to_string(i) + "', '', '')");
  }
  auto m = Make(MakeDb(dir, sql));
  std::atomic<int> ok{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 25; ++k) {
        const std::string user = "u" + std::to_string(t);
        auto r = m->Authenticate(ClientRequest(user, "hmac+sha256", "p" + std::to_string(t)));
        if (r.ok() && r->sessions.size() == 1 && r->sessions[0].uid == 1000 + t) ++ok;
        if (!m->Authenticate(ClientRequest(user, "hmac+sha256", "p" + std::to_string(t + 1))).ok()) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok == 200);
  CHECK(wrong == 200);
}

}  // namespace
}  // namespace xr::auth
