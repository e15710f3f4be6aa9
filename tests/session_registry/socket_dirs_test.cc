#include "session_registry/socket_dirs.h"

#include <doctest/doctest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "tests/session_registry/test_sockets.h"

namespace xr::registry {
namespace {

using testing::SocketDir;
using testing::UnixListener;

TEST_CASE("ProbeSocket: live, refused, missing, not a socket") {
  SocketDir dir;
  UnixListener live(dir.file("live"));
  REQUIRE(live.ok());
  CHECK(ProbeSocket(live.path()) == SocketState::kLive);
  UnixListener dead(dir.file("dead"));
  REQUIRE(dead.ok());
  dead.Kill();
  CHECK(ProbeSocket(dead.path()) == SocketState::kUnknown);
  CHECK(ProbeSocket(dir.file("missing")) == SocketState::kDead);
  std::ofstream(dir.file("plain")) << "x";
  CHECK(ProbeSocket(dir.file("plain")) == SocketState::kUnknown);
  CHECK(std::string(SocketStateName(SocketState::kLive)) == "LIVE");
  CHECK(std::string(SocketStateName(SocketState::kInaccessible)) == "INACCESSIBLE");
}

TEST_CASE("ProbeSocket: a socket we may not connect to is INACCESSIBLE") {
  if (geteuid() == 0) return;  // root bypasses permissions
  SocketDir dir;
  UnixListener l(dir.file("locked"));
  REQUIRE(l.ok());
  REQUIRE(chmod(l.path().c_str(), 0) == 0);
  CHECK(ProbeSocket(l.path()) == SocketState::kInaccessible);
}

TEST_CASE("ListSockets: HOSTNAME-N sockets of one host, sorted, with their state") {
  SocketDir dir;
  UnixListener s100(dir.file("testhost-100"));
  UnixListener s101(dir.file("testhost-101"));
  UnixListener proxy(dir.file("testhost-proxy-5"));
  UnixListener other(dir.file("otherhost-102"));
  REQUIRE((s100.ok() && s101.ok() && proxy.ok() && other.ok()));
  s101.Kill();
  std::ofstream(dir.file("testhost-103")) << "not a socket";
  UnixListener bare(dir.file("testhost-"));  // no display name: ignored
  std::vector<SocketInfo> found = ListSockets({dir.path()}, "testhost", -1);
  REQUIRE(found.size() == 3);
  CHECK(found[0].display == ":100");
  CHECK(found[0].state == SocketState::kLive);
  CHECK(found[0].path == s100.path());
  CHECK(found[1].display == ":101");
  CHECK(found[1].state == SocketState::kUnknown);
  CHECK(found[2].display == ":proxy-5");
  CHECK(found[2].state == SocketState::kLive);
}

TEST_CASE("ListSockets: matching_display probes only that socket") {
  SocketDir dir;
  UnixListener a(dir.file("h-1"));
  UnixListener b(dir.file("h-2"));
  REQUIRE((a.ok() && b.ok()));
  auto found = ListSockets({dir.path()}, "h", -1, ":2");
  REQUIRE(found.size() == 1);
  CHECK(found[0].path == b.path());
  CHECK(ListSockets({dir.path()}, "h", -1, ":3").empty());
}

TEST_CASE("ListSockets: dirs in order, missing ones skipped, the same real dir once") {
  SocketDir one;
  SocketDir two;
  UnixListener a(one.file("h-1"));
  UnixListener b(two.file("h-2"));
  UnixListener dup(two.file("h-1"));
  REQUIRE((a.ok() && b.ok() && dup.ok()));
  const std::string link = one.file("link-to-two");
  REQUIRE(symlink(two.path().c_str(), link.c_str()) == 0);
  auto found = ListSockets({one.file("missing"), two.path(), one.path(), link, two.path() + "/"}, "h", -1);
  REQUIRE(found.size() == 3);
  CHECK(found[0].path == dup.path());  // two/h-1
  CHECK(found[1].path == b.path());    // two/h-2
  CHECK(found[2].path == a.path());    // one/h-1 (same display, other dir: both listed)
}

TEST_CASE("ListSockets: owner filter when check_uid > 0") {
  SocketDir dir;
  UnixListener a(dir.file("h-1"));
  REQUIRE(a.ok());
  CHECK(ListSockets({dir.path()}, "h", 0).size() == 1);
  CHECK(ListSockets({dir.path()}, "h", -1).size() == 1);
  const int64_t me = static_cast<int64_t>(geteuid());
  if (me > 0) CHECK(ListSockets({dir.path()}, "h", me).size() == 1);
  CHECK(ListSockets({dir.path()}, "h", 54321).empty());
  // As root (outside a user-namespace sandbox) give the socket to another uid and find it by that uid.
  if (geteuid() == 0 && lchown(a.path().c_str(), 54321, 54321) == 0) {
    auto found = ListSockets({dir.path()}, "h", 54321);
    REQUIRE(found.size() == 1);
    CHECK(found[0].display == ":1");
  }
}

TEST_CASE("ExpandSocketDir: home, ids and variables") {
  const std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
  if (!home.empty()) CHECK(ExpandSocketDir("~/.xpra", -1) == home + "/.xpra");
  const std::string uid = std::to_string(getuid());
  CHECK(ExpandSocketDir("/run/user/$UID/xpra", -1) == "/run/user/" + uid + "/xpra");
  CHECK(ExpandSocketDir("/run/user/${UID}/xpra", -1) == "/run/user/" + uid + "/xpra");
  setenv("XR_TEST_SOCKDIR", "/somewhere", 1);
  CHECK(ExpandSocketDir("$XR_TEST_SOCKDIR/x", -1) == "/somewhere/x");
  unsetenv("XR_TEST_SOCKDIR");
  CHECK(ExpandSocketDir("/a/$XR_NO_SUCH_VAR/b", -1) == "/a/$XR_NO_SUCH_VAR/b");
  CHECK(ExpandSocketDir("/a/${XR_NO_SUCH_VAR}/b", -1) == "/a/${XR_NO_SUCH_VAR}/b");
  CHECK(ExpandSocketDir("/plain/dir", -1) == "/plain/dir");
  CHECK(ExpandSocketDir("/cost/$", -1) == "/cost/$");
}

TEST_CASE("ExpandSocketDir: another user's home and runtime dir") {
  struct passwd* nobody = getpwnam("nobody");
  if (nobody == nullptr || nobody->pw_uid == getuid()) return;
  const int64_t uid = nobody->pw_uid;
  CHECK(ExpandSocketDir("~/.xpra", uid) == std::string(nobody->pw_dir) + "/.xpra");
  CHECK(ExpandSocketDir("$XDG_RUNTIME_DIR/xpra", uid) == "/run/user/" + std::to_string(uid) + "/xpra");
  CHECK(ExpandSocketDir("$USER", uid) == "nobody");
}

TEST_CASE("DefaultSocketHostname: $XPRA_SOCKET_HOSTNAME wins") {
  setenv("XPRA_SOCKET_HOSTNAME", "fromenv", 1);
  CHECK(DefaultSocketHostname() == "fromenv");
  unsetenv("XPRA_SOCKET_HOSTNAME");
  CHECK(!DefaultSocketHostname().empty());
}

}  // namespace
}  // namespace xr::registry
