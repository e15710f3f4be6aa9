// System-wide discovery with real sockets: some listened on by a child process that became
// another local account (nobody), some by this process (root), in one shared directory. Needs
// root (to become nobody and to chown): fails, not skips, without it.

#include "session_registry/user_sessions.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "doctest/doctest.h"
#include "session_registry/socket_dirs.h"
#include "tests/session_registry/test_sockets.h"

namespace xr::registry {
namespace {

using testing::SocketDir;
using testing::UnixListener;

// A unix listener bound and served by a child process running as `uid`:`gid`.
class ForeignListener {
 public:
  ForeignListener(const std::string& path, uid_t uid, gid_t gid) : path_(path) {
    int ready[2];
    if (pipe(ready) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(2);
      UnixListener l(path);
      if (!l.ok()) _exit(3);
      char c = 'k';
      if (write(ready[1], &c, 1) != 1) _exit(4);
      pause();
      _exit(0);
    }
    close(ready[1]);
    char c = 0;
    ok_ = pid_ > 0 && read(ready[0], &c, 1) == 1 && c == 'k';
    close(ready[0]);
    if (!ok_ && pid_ > 0) {
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
      MESSAGE("listener as uid " << uid << " failed: child exit " << WEXITSTATUS(status)
                                 << " (2: setuid refused, e.g. in a user namespace; 3: bind)");
    }
  }
  ~ForeignListener() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    unlink(path_.c_str());
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  pid_t pid_ = -1;
  bool ok_ = false;
};

// A directory in /tmp that another account can reach (a bazel TEST_TMPDIR under /root cannot be).
class SharedDir {
 public:
  SharedDir() {
    std::string tmpl = "/tmp/xr-sw-XXXXXX";
    path_ = mkdtemp(tmpl.data());
    chmod(path_.c_str(), 0777);
  }
  ~SharedDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

struct Nobody {
  uid_t uid;
  gid_t gid;
};

Nobody FindNobody() {
  struct passwd* pw = getpwnam("nobody");
  REQUIRE_MESSAGE(pw != nullptr, "the test needs the local account 'nobody'");
  return Nobody{pw->pw_uid, pw->pw_gid};
}

template <typename Dir>
RegistryOptions Opts(const Dir& dir) {
  RegistryOptions o;
  o.socket_dirs = {dir.path()};
  o.hostname = "h";
  o.system_wide = true;
  return o;
}

auth::SessionEntry Entry(int64_t uid) {
  auth::SessionEntry e;
  e.uid = uid;
  e.gid = uid;
  return e;
}

TEST_CASE("system-wide: runs as root (it becomes 'nobody' and chowns sockets)") {
  REQUIRE_MESSAGE(geteuid() == 0, "run the session_registry tests as root (tools/test does)");
}

TEST_CASE("ListUserSockets: owner and server must both be the user; symlinks are never taken") {
  REQUIRE(geteuid() == 0);
  const Nobody nb = FindNobody();
  SharedDir dir;
  ForeignListener theirs(dir.file("h-1"), nb.uid, nb.gid);
  UnixListener mine(dir.file("h-2"));
  UnixListener swapped(dir.file("h-3"));  // served by root, file given to nobody
  REQUIRE((theirs.ok() && mine.ok() && swapped.ok()));
  REQUIRE(lchown(swapped.path().c_str(), nb.uid, nb.gid) == 0);
  REQUIRE(symlink(theirs.path().c_str(), dir.file("h-4").c_str()) == 0);
  const ScanLimits limits;
  auto found = ListUserSockets({dir.path()}, "h", nb.uid, limits);
  REQUIRE(found.size() == 1);
  CHECK(found[0].display == ":1");
  CHECK(found[0].path == theirs.path());
  found = ListUserSockets({dir.path()}, "h", 0, limits);
  REQUIRE(found.size() == 1);
  CHECK(found[0].display == ":2");
  int64_t peer = -1;
  CHECK(ProbeSocketPeer(theirs.path(), &peer) == SocketState::kLive);
  CHECK(peer == static_cast<int64_t>(nb.uid));
}

TEST_CASE("ListUserSockets: bounded sockets per dir and dirs per scan") {
  SocketDir one;
  SocketDir two;
  std::vector<std::unique_ptr<UnixListener>> ls;
  for (int i = 0; i < 10; ++i) ls.push_back(std::make_unique<UnixListener>(one.file("h-" + std::to_string(10 + i))));
  ls.push_back(std::make_unique<UnixListener>(two.file("h-99")));
  for (auto& l : ls) REQUIRE(l->ok());
  ScanLimits limits;
  limits.max_sockets_per_dir = 4;
  const int64_t me = geteuid();
  CHECK(ListUserSockets({one.path(), two.path()}, "h", me, limits).size() == 5);
  limits.max_dirs = 1;
  CHECK(ListUserSockets({one.path(), two.path()}, "h", me, limits).size() == 4);
  limits.max_entries_per_dir = 3;  // readdir order is the file system's: at most 3 of the 10
  CHECK(ListUserSockets({one.path(), two.path()}, "h", me, limits).size() <= 3);
}

TEST_CASE("SelectUserTarget: the user's own sessions only, by uid or by name") {
  REQUIRE(geteuid() == 0);
  const Nobody nb = FindNobody();
  SharedDir dir;
  ForeignListener a(dir.file("h-1"), nb.uid, nb.gid);
  ForeignListener b(dir.file("h-5"), nb.uid, nb.gid);
  UnixListener roots(dir.file("h-3"));
  REQUIRE((a.ok() && b.ok() && roots.ok()));
  const RegistryOptions opts = Opts(dir);

  auto t = SelectUserTarget({Entry(nb.uid)}, "ignored", ":5", StartRequest{}, opts);
  REQUIRE(t.ok());
  CHECK(t->path == b.path());
  CHECK(t->display == ":5");
  CHECK(t->server_uid == static_cast<int64_t>(nb.uid));
  // No uid from the module: the user name through NSS.
  t = SelectUserTarget({}, "nobody", "1", StartRequest{}, opts);
  REQUIRE(t.ok());
  CHECK(t->path == a.path());
  t = SelectUserTarget({Entry(-1)}, "nobody", "", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "please specify a display, more than one is available: :1, :5");
  // root's socket in the same dir is neither reachable nor listed.
  t = SelectUserTarget({}, "nobody", ":3", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "display ':3' not found, available: :1, :5");
}

TEST_CASE("SelectUserTarget: refusals") {
  SocketDir dir;
  const RegistryOptions opts = Opts(dir);
  auto t = SelectUserTarget({}, "root", "", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "sessions of root are not relayed");
  t = SelectUserTarget({}, "xr-no-such-user-here", "", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "no local account for this user");
  t = SelectUserTarget({}, "nobody", "", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "no sessions found for this user");
  t = SelectUserTarget({}, "nobody", "tcp://elsewhere:1/", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message.find("invalid display name") == 0);
  StartRequest start;
  start.requested = true;
  t = SelectUserTarget({}, "nobody", "", start, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "starting sessions is not enabled on this relay");
}

TEST_CASE("SelectUserTarget: module displays and non-system-wide keep SelectTarget's rules") {
  SocketDir dir;
  RegistryOptions opts = Opts(dir);
  auth::SessionEntry e = Entry(-1);
  e.displays = {"tcp://127.0.0.1:15000/"};
  auto t = SelectUserTarget({e}, "nobody", "", StartRequest{}, opts);
  REQUIRE(t.ok());
  CHECK(t->kind == Target::Kind::kTcp);
  CHECK(t->server_uid == -1);
  opts.system_wide = false;
  t = SelectUserTarget({}, "nobody", "", StartRequest{}, opts);
  REQUIRE(!t.ok());
  CHECK(t.error().message == "no sessions found for this user");
}

TEST_CASE("SelectUserTarget: a user with no session gets one from the launcher") {
  REQUIRE(geteuid() == 0);
  const Nobody nb = FindNobody();
  SharedDir dir;
  RegistryOptions opts = Opts(dir);
  LauncherOptions lo;
  lo.command = {"/bin/true"};
  lo.min_uid = 1;
  lo.timeout_ms = 5000;
  opts.launcher = std::make_shared<SessionLauncher>(lo);
  // The "session" appears while the launcher waits: a listener of nobody's made from here.
  std::unique_ptr<ForeignListener> later;
  std::thread maker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    later = std::make_unique<ForeignListener>(dir.file("h-8"), nb.uid, nb.gid);
  });
  auto t = SelectUserTarget({}, "nobody", "", StartRequest{}, opts);
  maker.join();
  REQUIRE(t.ok());
  CHECK(t->display == ":8");
  CHECK(t->server_uid == static_cast<int64_t>(nb.uid));
}

}  // namespace
}  // namespace xr::registry
