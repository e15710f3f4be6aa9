// The postgresql module against a real PostgreSQL 15 server started by the test.
#include "auth/postgresql_auth.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "auth/factory.h"
#include "auth/postgresql_db.h"
#include "tests/auth/pg_server.h"
#include "tests/auth/test_util.h"

namespace xr::auth {
namespace {

using testing::ClientRequest;
using testing::PgServer;

constexpr char kSchema[] =
    "CREATE TABLE users (username VARCHAR(255) NOT NULL, password VARCHAR(255), uid VARCHAR(63), "
    "gid VARCHAR(63), displays VARCHAR(8191), env_options VARCHAR(8191), session_options VARCHAR(8191))";

// One server for the cases that do not stop it (stopped and removed at exit); its tables made once.
PgServer& Shared() {
  static PgServer shared;
  static PgServer* server = [] {
    PgServer* s = &shared;
    if (s->ok()) {
      const std::string err = s->Sql(std::string(kSchema) +
                                     ";INSERT INTO users VALUES('alice', 'apw', '1000', '1000', ':100,tcp://h:1/', "
                                     "'A=1;B=2', 'speaker=off;x=y');"
                                     "INSERT INTO users(username, password) VALUES('nulls', 'npw');"
                                     "INSERT INTO users(username) VALUES('nopw');"
                                     "CREATE TABLE accounts (login TEXT, secret TEXT, home TEXT);"
                                     "INSERT INTO accounts VALUES('carol', 'cpw', ':7')");
      if (!err.empty()) FAIL("cannot create the test tables: " << err);
    }
    return s;
  }();
  REQUIRE_MESSAGE(server->ok(), server->why());
  return *server;
}

std::unique_ptr<AuthModule> Make(const std::string& spec) {
  auto m = CreateAuthModule(spec);
  REQUIRE_MESSAGE(m.ok(), m.error().message);
  return std::move(m).value();
}

int64_t Elapsed(int64_t start) { return PgNowMs() - start; }

TEST_CASE("postgresql: placeholders of xpra (%s) and sqlite (?) become $n, quotes kept") {
  CHECK(ToPgPlaceholders("SELECT a FROM t WHERE u=(%s) AND p=(%s)") == "SELECT a FROM t WHERE u=($1) AND p=($2)");
  CHECK(ToPgPlaceholders("SELECT a FROM t WHERE u=? AND p=?") == "SELECT a FROM t WHERE u=$1 AND p=$2");
  CHECK(ToPgPlaceholders("SELECT '?%s' FROM t WHERE u=$1") == "SELECT '?%s' FROM t WHERE u=$1");
  CHECK(IsPostgresqlUri("postgresql://h/db"));
  CHECK(IsPostgresqlUri("postgres://h/db"));
  CHECK(!IsPostgresqlUri("users.sdb"));
  CHECK(PgTargetName("postgresql://u:secret@h:5/db?sslmode=require") == "u@h:5/db");
}

TEST_CASE("postgresql: the user's password works with every digest; wrong ones fail; sessions parsed") {
  PgServer& pg = Shared();
  auto m = Make("postgresql,uri=" + pg.uri());
  CHECK(m->name() == "postgresql");
  AuthResult r = testing::ExpectAcceptsOnly(*m, "alice", "apw");
  CHECK(r.username == "alice");
  REQUIRE(r.sessions.size() == 1);
  CHECK(r.sessions[0].uid == 1000);
  CHECK(r.sessions[0].gid == 1000);
  CHECK(r.sessions[0].displays == std::vector<std::string>{":100", "tcp://h:1/"});
  CHECK(r.sessions[0].env_options == std::vector<std::string>{"A=1", "B=2"});
  REQUIRE(r.sessions[0].session_options.size() == 2);
  CHECK(r.sessions[0].session_options[0] == std::pair<std::string, std::string>{"speaker", "off"});
  // NULL columns: defaults, as the sqlite module.
  auto n = m->Authenticate(ClientRequest("nulls", "hmac+sha256", "npw"));
  REQUIRE(n.ok());
  CHECK(n->sessions[0].uid == ParseUid(""));
  CHECK(n->sessions[0].displays.empty());
}

TEST_CASE("postgresql: unknown user and NULL password refused like a wrong password, no secret in the detail") {
  PgServer& pg = Shared();
  auto m = Make("postgresql,uri=" + pg.uri());
  auto unknown = m->Authenticate(ClientRequest("mallory", "hmac+sha256", "apw"));
  REQUIRE(!unknown.ok());
  CHECK(unknown.error().code == ErrorCode::kAuthFailed);
  CHECK(unknown.error().message.find("not found") != std::string::npos);
  CHECK(unknown.error().message.find(pg.password()) == std::string::npos);
  auto wrong = m->Authenticate(ClientRequest("alice", "hmac+sha256", "bad"));
  REQUIRE(!wrong.ok());
  CHECK(wrong.error().code == ErrorCode::kAuthFailed);
  for (const char* guess : {"None", "", "x"}) {
    auto r = m->Authenticate(ClientRequest("nopw", "hmac+sha256", guess));
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::kAuthFailed);
  }
}

TEST_CASE("postgresql: password_query / sessions_query overrides, in %s, ? or $n form") {
  PgServer& pg = Shared();
  auto m = Make("postgresql,uri=" + pg.uri() + ",password_query=SELECT secret FROM accounts WHERE login=%s" +
                ",sessions_query=SELECT 5 AS uid, 6 AS gid, home AS displays FROM accounts WHERE login=$1 AND secret=$2");
  AuthResult r = testing::ExpectAcceptsOnly(*m, "carol", "cpw");
  REQUIRE(r.sessions.size() == 1);
  CHECK(r.sessions[0].uid == 5);
  CHECK(r.sessions[0].gid == 6);
  CHECK(r.sessions[0].displays == std::vector<std::string>{":7"});
  // alice is not in accounts.
  CHECK(!m->Authenticate(ClientRequest("alice", "hmac+sha256", "apw")).ok());
  auto q = Make("postgresql,uri=" + pg.uri() + ",password_query=SELECT secret FROM accounts WHERE login=?");
  // The default sessions query reads users, where carol has no row: accepted, no sessions.
  auto c = q->Authenticate(ClientRequest("carol", "hmac+sha256", "cpw"));
  REQUIRE(c.ok());
  CHECK(c->sessions.empty());
}

TEST_CASE("postgresql: bad options, URI and queries are refused at start with a clear reason") {
  PgServer& pg = Shared();
  auto no_uri = CreateAuthModule("postgresql");
  REQUIRE(!no_uri.ok());
  CHECK(no_uri.error().code == ErrorCode::kMalformed);
  CHECK(no_uri.error().message.find("uri=") != std::string::npos);
  auto bad_uri = CreateAuthModule("postgresql,uri=postgresql://xr:s3cr3t@127.0.0.1:1/x?nosuchoption=1");
  REQUIRE(!bad_uri.ok());
  CHECK(bad_uri.error().code == ErrorCode::kMalformed);
  CHECK(bad_uri.error().message.find("s3cr3t") == std::string::npos);
  auto bad_timeout = CreateAuthModule("postgresql,uri=" + pg.uri() + ",connect_timeout_ms=5");
  REQUIRE(!bad_timeout.ok());
  CHECK(bad_timeout.error().message.find("connect_timeout_ms") != std::string::npos);
  auto params = CreateAuthModule("postgresql,uri=" + pg.uri() + ",password_query=SELECT password FROM users");
  REQUIRE(!params.ok());
  CHECK(params.error().code == ErrorCode::kMalformed);
  CHECK(params.error().message.find("password_query must have exactly 1 parameter") != std::string::npos);
  auto table = CreateAuthModule("postgresql,uri=" + pg.uri() + ",password_query=SELECT pw FROM nosuch WHERE u=%s");
  REQUIRE(!table.ok());
  CHECK(table.error().code == ErrorCode::kMalformed);
  CHECK(table.error().message.find("nosuch") != std::string::npos);
  // Wrong database password: the server refuses; the password is not in the message.
  std::string wrong = pg.uri();
  wrong.replace(wrong.find(pg.password()), pg.password().size(), "not-the-password");
  auto denied = CreateAuthModule("postgresql,uri=" + wrong);
  REQUIRE(!denied.ok());
  CHECK(denied.error().code == ErrorCode::kIo);
  CHECK(denied.error().message.find("password authentication failed") != std::string::npos);
  CHECK(denied.error().message.find("not-the-password") == std::string::npos);
}

TEST_CASE("postgresql: a database that accepts TCP but never answers fails at the deadline, under 2 s") {
  // A listening socket nobody accepts on: the TCP handshake completes, libpq waits for a reply.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 16) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string uri = "postgresql://xr:pw@127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/db";
  const int64_t start = PgNowMs();
  auto m = CreateAuthModule("postgresql,uri=" + uri);
  const int64_t took = Elapsed(start);
  REQUIRE(!m.ok());
  CHECK(m.error().code == ErrorCode::kTimeout);
  CHECK(m.error().message.find("timed out") != std::string::npos);
  CHECK(took >= kDefaultPgConnectTimeoutMs - 50);
  CHECK(took < 2000);
  close(fd);
}

TEST_CASE("postgresql: database stopped -> logins fail fast as unavailable; started again -> logins work, no reload") {
  PgServer pg;
  REQUIRE_MESSAGE(pg.ok(), pg.why());
  REQUIRE(pg.Sql(std::string(kSchema) + ";INSERT INTO users VALUES('dave', 'dpw', '1', '1', ':3', '', '')").empty());
  auto m = Make("postgresql,uri=" + pg.uri());
  REQUIRE(m->Authenticate(ClientRequest("dave", "hmac+sha256", "dpw")).ok());  // a pooled connection now
  pg.Stop();
  for (int i = 0; i < 3; ++i) {
    const int64_t start = PgNowMs();
    auto r = m->Authenticate(ClientRequest("dave", "hmac+sha256", "dpw"));
    const int64_t took = Elapsed(start);
    CAPTURE(i);
    REQUIRE(!r.ok());
    CHECK(r.error().code == ErrorCode::kIo);  // the engine says "authentication service unavailable"
    CHECK(r.error().message.find(pg.password()) == std::string::npos);
    CHECK(took < 2000);
  }
  REQUIRE_MESSAGE(pg.Start(), pg.why());
  const int64_t started = PgNowMs();
  bool ok = false;
  while (!ok && Elapsed(started) < 5000) {
    ok = m->Authenticate(ClientRequest("dave", "hmac+sha256", "dpw")).ok();
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(ok);
  MESSAGE("first login after the restart took " << Elapsed(started) << " ms");
  // No cache: a password changed in the database is in force at once.
  REQUIRE(pg.Sql("UPDATE users SET password='new' WHERE username='dave'").empty());
  CHECK(!m->Authenticate(ClientRequest("dave", "hmac+sha256", "dpw")).ok());
  CHECK(m->Authenticate(ClientRequest("dave", "hmac+sha256", "new")).ok());
}

TEST_CASE("postgresql: parallel logins share a bounded pool of connections") {
  PgServer& pg = Shared();
  auto m = Make("postgresql,uri=" + pg.uri() + "?application_name=xr-pool-test");
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) good += m->Authenticate(ClientRequest("alice", "hmac+sha256", "apw")).ok();
    });
  }
  for (auto& t : threads) t.join();
  CHECK(good == 80);
  auto conn = PgConn::Connect(pg.uri(), PgNowMs() + 5000);
  REQUIRE(conn.ok());
  auto idle = conn->Exec("SELECT count(*) FROM pg_stat_activity WHERE application_name='xr-pool-test'", {},
                         PgNowMs() + 5000);
  REQUIRE(idle.ok());
  const int held = std::stoi(idle->Text(0, 0).value_or("99"));
  CHECK(held >= 1);
  CHECK(held <= static_cast<int>(kMaxPooledPgConnections));
}

}  // namespace
}  // namespace xr::auth
