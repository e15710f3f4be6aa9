#include "session_registry/session_registry.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include "tests/session_registry/test_sockets.h"

namespace xr::registry {
namespace {

using auth::SessionEntry;
using testing::SocketDir;
using testing::UnixListener;

RegistryOptions Opts(const SocketDir& dir, std::string own = "") {
  RegistryOptions o;
  o.socket_dirs = {dir.path()};
  o.hostname = "testhost";
  o.own_display = std::move(own);
  return o;
}

SessionEntry WithDisplays(std::vector<std::string> displays, int64_t uid = -1) {
  SessionEntry e;
  e.uid = uid;
  e.displays = std::move(displays);
  return e;
}

// ---- ParseEntry -------------------------------------------------------------------------------

TEST_CASE("ParseEntry: ':N' resolves to the live socket in the socket dirs") {
  SocketDir dir;
  UnixListener s(dir.file("testhost-100"));
  REQUIRE(s.ok());
  auto t = ParseEntry(":100", Opts(dir));
  REQUIRE(t.ok());
  CHECK(t->kind == Target::Kind::kUnix);
  CHECK(t->path == s.path());
  CHECK(t->display == ":100");
  CHECK(t->describe() == "unix:" + s.path());
}

TEST_CASE("ParseEntry: 'N' is ':N'") {
  SocketDir dir;
  UnixListener s(dir.file("testhost-7"));
  REQUIRE(s.ok());
  auto t = ParseEntry("7", Opts(dir));
  REQUIRE(t.ok());
  CHECK(t->path == s.path());
  CHECK(t->display == ":7");
}

TEST_CASE("ParseEntry: the first socket dir with a live socket wins") {
  SocketDir a;
  SocketDir b;
  UnixListener dead(a.file("testhost-5"));
  UnixListener live(b.file("testhost-5"));
  REQUIRE((dead.ok() && live.ok()));
  dead.Kill();
  RegistryOptions o = Opts(a);
  o.socket_dirs.push_back(b.path());
  auto t = ParseEntry(":5", o);
  REQUIRE(t.ok());
  CHECK(t->path == live.path());
}

TEST_CASE("ParseEntry: ':N' with no socket is not found") {
  SocketDir dir;
  auto t = ParseEntry(":100", Opts(dir));
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kNotFound);
  CHECK(t.error().message == "no session socket for display ':100' in " + dir.path());
}

TEST_CASE("ParseEntry: ':N' whose server is gone is not found") {
  SocketDir dir;
  UnixListener s(dir.file("testhost-100"));
  REQUIRE(s.ok());
  s.Kill();
  auto t = ParseEntry(":100", Opts(dir));
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kNotFound);
  CHECK(t.error().message ==
        "the session for display ':100' is not running: socket '" + s.path() + "' is UNKNOWN");
}

TEST_CASE("ParseEntry: a socket of another host name is not used") {
  SocketDir dir;
  UnixListener s(dir.file("otherhost-100"));
  REQUIRE(s.ok());
  CHECK(!ParseEntry(":100", Opts(dir)).ok());
}

TEST_CASE("ParseEntry: tcp with port and no display") {
  auto t = ParseEntry("tcp://127.0.0.1:15200/", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->kind == Target::Kind::kTcp);
  CHECK(t->host == "127.0.0.1");
  CHECK(t->port == 15200);
  CHECK(t->display == "tcp://127.0.0.1:15200/");
  CHECK(t->describe() == "tcp://127.0.0.1:15200/");
}

TEST_CASE("ParseEntry: tcp with a display number is named ':N'") {
  auto t = ParseEntry("tcp://10.0.0.5:14600/100", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->host == "10.0.0.5");
  CHECK(t->port == 14600);
  CHECK(t->display == ":100");
  auto dotted = ParseEntry("tcp://h:1/10.0", RegistryOptions{});
  REQUIRE(dotted.ok());
  CHECK(dotted->display == ":10.0");
}

TEST_CASE("ParseEntry: tcp without slash, default port, default host") {
  auto a = ParseEntry("tcp://example.org", RegistryOptions{});
  REQUIRE(a.ok());
  CHECK(a->host == "example.org");
  CHECK(a->port == 14500);
  auto b = ParseEntry("tcp://:15000/", RegistryOptions{});
  REQUIRE(b.ok());
  CHECK(b->host == "127.0.0.1");
  CHECK(b->port == 15000);
}

TEST_CASE("ParseEntry: tcp with credentials") {
  auto t = ParseEntry("tcp://user:p@ss:word@127.0.0.1:15200/", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->username == "user");
  CHECK(t->password == "p@ss:word");
  CHECK(t->host == "127.0.0.1");
  CHECK(t->describe() == "tcp://127.0.0.1:15200/");
  CHECK(t->describe().find("word") == std::string::npos);
  auto u = ParseEntry("tcp://alice@h:1/", RegistryOptions{});
  REQUIRE(u.ok());
  CHECK(u->username == "alice");
  CHECK(u->password.empty());
}

TEST_CASE("ParseEntry: tcp IPv6") {
  auto t = ParseEntry("tcp://[::1]:14600/", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->host == "::1");
  CHECK(t->port == 14600);
  CHECK(t->describe() == "tcp://[::1]:14600/");
  auto bare = ParseEntry("tcp://fe80::1:2/", RegistryOptions{});
  REQUIRE(bare.ok());
  CHECK(bare->host == "fe80::1:2");
  CHECK(bare->port == 14500);
  auto noport = ParseEntry("tcp://[::1]/", RegistryOptions{});
  REQUIRE(noport.ok());
  CHECK(noport->port == 14500);
}

TEST_CASE("ParseEntry: tcp bad port") {
  for (const char* e : {"tcp://h:0/", "tcp://h:65536/", "tcp://h:abc/", "tcp://h:/", "tcp://h:-1/", "tcp://[::1]:/"}) {
    CAPTURE(e);
    auto t = ParseEntry(e, RegistryOptions{});
    REQUIRE(!t.ok());
    CHECK(t.error().code == ErrorCode::kMalformed);
  }
}

TEST_CASE("ParseEntry: tcp bad display") {
  for (const char* e : {"tcp://h:1/abc", "tcp://h:1/1/2", "tcp://[::1/"}) {
    CAPTURE(e);
    auto t = ParseEntry(e, RegistryOptions{});
    REQUIRE(!t.ok());
    CHECK(t.error().code == ErrorCode::kMalformed);
  }
}

TEST_CASE("ParseEntry: unix socket paths") {
  for (const char* e : {"socket:///run/xpra/host-100", "socket:/run/xpra/host-100", "/run/xpra/host-100"}) {
    CAPTURE(e);
    auto t = ParseEntry(e, RegistryOptions{});
    REQUIRE(t.ok());
    CHECK(t->kind == Target::Kind::kUnix);
    CHECK(t->path == "/run/xpra/host-100");
    CHECK(t->display == e);
    CHECK(t->describe() == "unix:/run/xpra/host-100");
  }
}

TEST_CASE("ParseEntry: relative socket path is malformed") {
  auto t = ParseEntry("socket://relative/path", RegistryOptions{});
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kMalformed);
}

TEST_CASE("ParseEntry: other transports are unsupported") {
  for (const char* e : {"ssl://h:1/", "ws://h:1/", "wss://h:1/", "ssh://h/1", "ssh:h:1", "udp://h:1/", "vsock://1:2"}) {
    CAPTURE(e);
    auto t = ParseEntry(e, RegistryOptions{});
    REQUIRE(!t.ok());
    CHECK(t.error().code == ErrorCode::kUnsupported);
  }
}

TEST_CASE("ParseEntry: unknown formats are malformed") {
  for (const char* e : {"", "  ", "foo", "http://h/", ":", ":a/b"}) {
    CAPTURE(e);
    auto t = ParseEntry(e, RegistryOptions{});
    REQUIRE(!t.ok());
    CHECK(t.error().code == ErrorCode::kMalformed);
  }
}

TEST_CASE("DisplayNameOf") {
  CHECK(DisplayNameOf(":100") == ":100");
  CHECK(DisplayNameOf("100") == ":100");
  CHECK(DisplayNameOf("tcp://h:1/100") == ":100");
  CHECK(DisplayNameOf("tcp://h:1/") == "tcp://h:1/");
  CHECK(DisplayNameOf("/run/x") == "/run/x");
}

// ---- SelectTarget -----------------------------------------------------------------------------

TEST_CASE("SelectTarget: requested display among the session's displays") {
  SocketDir dir;
  UnixListener s200(dir.file("testhost-200"));
  UnixListener s201(dir.file("testhost-201"));
  REQUIRE((s200.ok() && s201.ok()));
  const std::vector<SessionEntry> sessions = {WithDisplays({":200", ":201"})};
  auto a = SelectTarget(sessions, ":201", Opts(dir));
  REQUIRE(a.ok());
  CHECK(a->path == s201.path());
  CHECK(a->display == ":201");
  auto b = SelectTarget(sessions, "200", Opts(dir));
  REQUIRE(b.ok());
  CHECK(b->path == s200.path());
}

TEST_CASE("SelectTarget: no request and several displays") {
  const std::vector<SessionEntry> sessions = {WithDisplays({":200", ":201"})};
  auto t = SelectTarget(sessions, "", RegistryOptions{});
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kNotFound);
  CHECK(t.error().message == "please specify a display, more than one is available: :200, :201");
}

TEST_CASE("SelectTarget: unknown display") {
  const std::vector<SessionEntry> sessions = {WithDisplays({":200", ":201"})};
  auto t = SelectTarget(sessions, ":300", RegistryOptions{});
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kNotFound);
  CHECK(t.error().message == "display ':300' not found, available: :200, :201");
  auto n = SelectTarget(sessions, "300", RegistryOptions{});
  REQUIRE(!n.ok());
  CHECK(n.error().message == "display ':300' not found, available: :200, :201");
}

TEST_CASE("SelectTarget: no sessions at all") {
  auto empty = SelectTarget({}, "", RegistryOptions{});
  REQUIRE(!empty.ok());
  CHECK(empty.error().code == ErrorCode::kNotFound);
  CHECK(empty.error().message == "no sessions found for this user");
  SocketDir dir;
  auto scanned_nothing = SelectTarget({SessionEntry{}}, ":5", Opts(dir));
  REQUIRE(!scanned_nothing.ok());
  CHECK(scanned_nothing.error().message == "no sessions found for this user");
}

TEST_CASE("SelectTarget: the only display without a request") {
  const std::vector<SessionEntry> sessions = {WithDisplays({"tcp://127.0.0.1:15200/"})};
  auto t = SelectTarget(sessions, "", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->kind == Target::Kind::kTcp);
  CHECK(t->port == 15200);
}

TEST_CASE("SelectTarget: by exact entry text and by tcp display number") {
  const std::vector<SessionEntry> sessions = {
      WithDisplays({"tcp://127.0.0.1:15200/", "tcp://127.0.0.1:15300/100", "socket:///run/a"})};
  auto text = SelectTarget(sessions, "tcp://127.0.0.1:15200/", RegistryOptions{});
  REQUIRE(text.ok());
  CHECK(text->port == 15200);
  auto number = SelectTarget(sessions, ":100", RegistryOptions{});
  REQUIRE(number.ok());
  CHECK(number->port == 15300);
  auto entry_of_number = SelectTarget(sessions, "tcp://127.0.0.1:15300/100", RegistryOptions{});
  REQUIRE(entry_of_number.ok());
  CHECK(entry_of_number->port == 15300);
  auto unix_path = SelectTarget(sessions, "socket:///run/a", RegistryOptions{});
  REQUIRE(unix_path.ok());
  CHECK(unix_path->path == "/run/a");
  auto all = SelectTarget(sessions, "", RegistryOptions{});
  REQUIRE(!all.ok());
  CHECK(all.error().message ==
        "please specify a display, more than one is available: tcp://127.0.0.1:15200/, :100, socket:///run/a");
}

TEST_CASE("SelectTarget: entries with no displays scan for live sockets") {
  SocketDir dir;
  UnixListener live(dir.file("testhost-7"));
  UnixListener dead(dir.file("testhost-8"));
  UnixListener proxy(dir.file("testhost-proxy-9"));
  REQUIRE((live.ok() && dead.ok() && proxy.ok()));
  dead.Kill();
  const std::vector<SessionEntry> sessions = {SessionEntry{}};
  CHECK(AvailableDisplays(sessions, Opts(dir)) == std::vector<std::string>{":7"});
  auto t = SelectTarget(sessions, "", Opts(dir));
  REQUIRE(t.ok());
  CHECK(t->kind == Target::Kind::kUnix);
  CHECK(t->path == live.path());
  CHECK(t->display == ":7");
  auto d = SelectTarget(sessions, ":8", Opts(dir));
  REQUIRE(!d.ok());
  CHECK(d.error().message == "display ':8' not found, available: :7");
}

TEST_CASE("SelectTarget: scanned sockets must belong to the entry's uid") {
  SocketDir dir;
  UnixListener live(dir.file("testhost-7"));
  REQUIRE(live.ok());
  auto other = SelectTarget({WithDisplays({}, 54321)}, "", Opts(dir));
  REQUIRE(!other.ok());
  CHECK(other.error().message == "no sessions found for this user");
  if (geteuid() > 0) {
    CHECK(SelectTarget({WithDisplays({}, geteuid())}, "", Opts(dir)).ok());
  } else if (lchown(live.path().c_str(), 54321, 54321) == 0) {  // root outside a user-namespace sandbox
    auto mine = SelectTarget({WithDisplays({}, 54321)}, "", Opts(dir));
    REQUIRE(mine.ok());
    CHECK(mine->path == live.path());
  }
}

TEST_CASE("SelectTarget: the relay's own display is never a target") {
  SocketDir dir;
  UnixListener own(dir.file("testhost-20"));
  UnixListener other(dir.file("testhost-21"));
  REQUIRE((own.ok() && other.ok()));
  auto t = SelectTarget({SessionEntry{}}, "", Opts(dir, ":20"));
  REQUIRE(t.ok());
  CHECK(t->display == ":21");
  auto asked = SelectTarget({SessionEntry{}}, ":20", Opts(dir, ":20"));
  REQUIRE(!asked.ok());
  CHECK(asked.error().code == ErrorCode::kNotFound);
  CHECK(asked.error().message == "invalid display");
  auto listed = SelectTarget({WithDisplays({":20", ":21"})}, "", Opts(dir, ":20"));
  REQUIRE(listed.ok());
  CHECK(listed->display == ":21");
}

TEST_CASE("SelectTarget: ':proxy-*' displays are left out") {
  SocketDir dir;
  UnixListener s(dir.file("testhost-3"));
  REQUIRE(s.ok());
  auto t = SelectTarget({WithDisplays({":proxy-123", ":3"})}, "", Opts(dir));
  REQUIRE(t.ok());
  CHECK(t->display == ":3");
  auto p = SelectTarget({WithDisplays({":proxy-123", ":3"})}, ":proxy-123", Opts(dir));
  REQUIRE(!p.ok());
  CHECK(p.error().message == "display ':proxy-123' not found, available: :3");
}

TEST_CASE("SelectTarget: session_index names the entry the display came from") {
  const std::vector<SessionEntry> sessions = {WithDisplays({"tcp://h:1/1"}), WithDisplays({"tcp://h:2/2"})};
  auto t = SelectTarget(sessions, ":2", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->session_index == 1);
  CHECK(t->port == 2);
  auto f = SelectTarget(sessions, ":1", RegistryOptions{});
  REQUIRE(f.ok());
  CHECK(f->session_index == 0);
}

TEST_CASE("SelectTarget: duplicate displays across entries count once") {
  const std::vector<SessionEntry> sessions = {WithDisplays({"tcp://h:1/5"}), WithDisplays({"tcp://h:9/5", ":5"})};
  CHECK(AvailableDisplays(sessions, RegistryOptions{}) == std::vector<std::string>{":5"});
  auto t = SelectTarget(sessions, "", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->port == 1);
  CHECK(t->session_index == 0);
}

TEST_CASE("SelectTarget: the chosen local display must be live") {
  SocketDir dir;
  UnixListener s(dir.file("testhost-4"));
  REQUIRE(s.ok());
  s.Kill();
  auto t = SelectTarget({WithDisplays({":4"})}, "", Opts(dir));
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kNotFound);
  CHECK(t.error().message.find("is not running") != std::string::npos);
}

TEST_CASE("SelectTarget: a malformed chosen entry reports the parse error") {
  auto t = SelectTarget({WithDisplays({"ssl://h:1/"})}, "", RegistryOptions{});
  REQUIRE(!t.ok());
  CHECK(t.error().code == ErrorCode::kUnsupported);
}

}  // namespace
// Issue 13: the userinfo of a tcp:// entry never reaches a client (errors), a log line or `xpra
// info` (Target::display).
TEST_CASE("tcp entries with credentials: the password is never shown") {
  auto t = ParseEntry("tcp://user:s3cret@127.0.0.1:15200/", RegistryOptions{});
  REQUIRE(t.ok());
  CHECK(t->password == "s3cret");
  CHECK(t->display == "tcp://127.0.0.1:15200/");
  CHECK(DisplayNameOf("tcp://user:s3cret@h:1/") == "tcp://h:1/");
  CHECK(RedactUserinfo("tcp://u:p@ss@h:1/x?y") == "tcp://h:1/x?y");
  CHECK(RedactUserinfo(":100") == ":100");
  const std::vector<SessionEntry> sessions = {WithDisplays({"tcp://user:s3cret@127.0.0.1:15200/", ":100"})};
  auto all = SelectTarget(sessions, "", RegistryOptions{});
  REQUIRE(!all.ok());
  CHECK(all.error().message.find("s3cret") == std::string::npos);
  auto missing = SelectTarget(sessions, ":300", RegistryOptions{});
  REQUIRE(!missing.ok());
  CHECK(missing.error().message.find("s3cret") == std::string::npos);
  auto bad = ParseEntry("tcp://user:s3cret@127.0.0.1:99999/", RegistryOptions{});
  REQUIRE(!bad.ok());
  CHECK(bad.error().message.find("s3cret") == std::string::npos);
  auto chosen = SelectTarget(sessions, "tcp://127.0.0.1:15200/", RegistryOptions{});
  REQUIRE(chosen.ok());
  CHECK(chosen->password == "s3cret");
}

// Issue 13: a ':N' socket must belong to the entry's uid, or to the relay's own user.
TEST_CASE("':N' sockets owned by someone else are not used") {
  SocketDir dir;
  UnixListener s(dir.file("testhost-100"));
  REQUIRE(s.ok());
  REQUIRE(ParseEntry(":100", Opts(dir)).ok());  // the relay's own user's socket
  const uid_t stranger = geteuid() == 54321 ? 54322 : 54321;
  // Needs CAP_CHOWN (root outside bazel's sandbox); the entry-uid case below runs everywhere.
  if (geteuid() == 0 && chown(s.path().c_str(), stranger, static_cast<gid_t>(-1)) == 0) {
    auto t = ParseEntry(":100", Opts(dir));
    CHECK_FALSE(t.ok());
    auto owned = SelectTarget({WithDisplays({":100"}, stranger)}, ":100", Opts(dir));
    CHECK(owned.ok());  // the entry names the stranger as its owner
  }
  auto other = SelectTarget({WithDisplays({":100"}, 54323)}, ":100", Opts(dir));
  CHECK_FALSE(other.ok());
}

}  // namespace xr::registry
