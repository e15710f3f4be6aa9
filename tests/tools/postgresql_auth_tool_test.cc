// xpra-relay-auth on a postgresql:// URI against a real PostgreSQL 15 server started by the test:
// create, add, list, remove, authenticate as on a sqlite file, and migrate from a sqlite file
// (made by the same tool, so the copy is checked row by row through `list`).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/auth/pg_server.h"
#include "tests/auth/test_util.h"

namespace {

using xr::auth::testing::PgServer;
using xr::auth::testing::TempDir;

// The tool from the runfiles (the test runs in its runfiles directory).
constexpr char kTool[] = "tools/xpra_relay_auth";

struct Result {
  int rc = -1;
  std::string out, err;
};

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

// Runs the tool with `args`, stdout and stderr captured through files.
Result Tool(const TempDir& dir, const std::vector<std::string>& args) {
  const std::string out = dir.file("out.txt"), err = dir.file("err.txt");
  const pid_t pid = fork();
  if (pid == 0) {
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv{const_cast<char*>(kTool)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kTool, argv.data());
    _exit(127);
  }
  Result r;
  int status = 0;
  waitpid(pid, &status, 0);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int fd = open(out.c_str(), O_RDONLY);
  r.out = ReadAll(fd);
  close(fd);
  fd = open(err.c_str(), O_RDONLY);
  r.err = ReadAll(fd);
  close(fd);
  return r;
}

TEST_CASE("xpra-relay-auth on postgresql://: create, add, list, authenticate, remove, migrate") {
  REQUIRE_MESSAGE(access(kTool, X_OK) == 0, "the tool is not in the runfiles: " << kTool);
  PgServer pg;
  REQUIRE_MESSAGE(pg.ok(), pg.why());
  TempDir dir;
  const std::string uri = pg.uri();
  auto ok = [&](const std::vector<std::string>& args) {
    Result r = Tool(dir, args);
    CAPTURE(args[1]);
    CHECK_MESSAGE(r.rc == 0, r.err);
    // The database password is never echoed.
    CHECK(r.out.find(pg.password()) == std::string::npos);
    CHECK(r.err.find(pg.password()) == std::string::npos);
    return r;
  };
  auto fails = [&](const std::vector<std::string>& args) {
    Result r = Tool(dir, args);
    CAPTURE(args[1]);
    CHECK(r.rc == 1);
    CHECK(r.err.find(pg.password()) == std::string::npos);
    return r;
  };

  // Before create: a clear hint that does not print the URI.
  Result early = fails({uri, "list"});
  CHECK(early.err.find("create it first: xpra-relay-auth postgresql://... create") != std::string::npos);

  ok({uri, "create"});
  CHECK(ok({uri, "list"}).out == "no rows found\n");
  ok({uri, "add", "alice", "apw", "1000", "1000", ":100", "A=1", "speaker=off"});
  ok({uri, "add", "bob", "bpw"});
  Result list = ok({uri, "list"});
  CHECK(list.out.find("2 rows found:") == 0);
  CHECK(list.out.find("|username|") == std::string::npos);  // columns are padded: "| username|"
  CHECK(list.out.find(" alice|") != std::string::npos);
  CHECK(list.out.find(":100|") != std::string::npos);
  // Same output as the sqlite file with the same rows.
  const std::string sdb = dir.file("same.sdb");
  ok({sdb, "create"});
  ok({sdb, "add", "alice", "apw", "1000", "1000", ":100", "A=1", "speaker=off"});
  ok({sdb, "add", "bob", "bpw"});
  CHECK(ok({sdb, "list"}).out == list.out);

  CHECK(ok({uri, "authenticate", "alice", "apw"}).out ==
        "success, found sessions: (1000, 1000, [':100'], {'A': '1'}, {'speaker': 'off'})\n");
  Result wrong = fails({uri, "authenticate", "alice", "nope"});
  CHECK(wrong.err.find("authentication failed") != std::string::npos);
  fails({uri, "authenticate", "nobody-here", "apw"});

  ok({uri, "remove", "bob"});
  fails({uri, "authenticate", "bob", "bpw"});
  Result none = ok({uri, "remove", "bob"});
  CHECK(none.err.find("no matching user 'bob'") != std::string::npos);

  // migrate: alice is replaced by the file's alice, carol (two passwords) and dan are added.
  const std::string src = dir.file("src.sdb");
  ok({src, "create"});
  ok({src, "add", "alice", "new-apw", "5", "6", ":5", "", ""});
  ok({src, "add", "carol", "c1"});
  ok({src, "add", "carol", "c2"});
  ok({src, "add", "dan", "dpw", "7", "8", "tcp://127.0.0.1:9/", "K=V", "a=b;c=d"});
  Result migrated = ok({uri, "migrate", src});
  CHECK(migrated.out.find("copied 4 rows (3 users, 1 replaced)") == 0);
  CHECK(migrated.out.find(uri) == std::string::npos);
  // The copy lists exactly as the source.
  CHECK(ok({uri, "list"}).out == ok({src, "list"}).out);
  fails({uri, "authenticate", "alice", "apw"});
  CHECK(ok({uri, "authenticate", "alice", "new-apw"}).out.find("(5, 6, [':5'], {}, {})") != std::string::npos);
  ok({uri, "authenticate", "carol", "c1"});
  ok({uri, "authenticate", "carol", "c2"});
  CHECK(ok({uri, "authenticate", "dan", "dpw"}).out ==
        "success, found sessions: (7, 8, ['tcp://127.0.0.1:9/'], {'K': 'V'}, {'a': 'b', 'c': 'd'})\n");
  // Running it again replaces instead of duplicating.
  CHECK(ok({uri, "migrate", src}).out.find("copied 4 rows (3 users, 3 replaced)") == 0);
  CHECK(ok({uri, "list"}).out.find("4 rows found:") == 0);

  // Refusals: a missing source, migrate into a file, a database that is down.
  CHECK(fails({uri, "migrate", dir.file("missing.sdb")}).err.find("does not exist") != std::string::npos);
  CHECK(fails({sdb, "migrate", src}).err.find("postgresql://") != std::string::npos);
  pg.Stop();
  Result down = fails({uri, "list"});
  CHECK(down.err.find("cannot connect to xr@127.0.0.1:" + std::to_string(pg.port()) + "/postgres") != std::string::npos);
}

}  // namespace
