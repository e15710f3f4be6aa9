// SessionLauncher with real processes (sh, sleep) as launchers; the session's socket is what the
// injected scan reports, so each outcome (started, failed, timed out, refused) is driven exactly.

#include "session_registry/session_launcher.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "doctest/doctest.h"
#include "tests/session_registry/test_sockets.h"

namespace xr::registry {
namespace {

using testing::SocketDir;

UserAccount User(int64_t uid = 54321) {
  UserAccount u;
  u.uid = uid;
  u.gid = uid;
  u.name = "someone";
  u.home = "/";
  return u;
}

LauncherOptions Options(std::vector<std::string> command, int64_t timeout_ms = 5000) {
  LauncherOptions o;
  o.command = std::move(command);
  o.timeout_ms = timeout_ms;
  o.min_uid = 1000;
  return o;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool WaitFor(const std::function<bool()>& pred, int ms) {
  for (int i = 0; i < ms / 20; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

// A scan that shows one new session from its `after`-th call on.
std::function<std::vector<SocketInfo>()> AppearsAfter(int after, std::vector<SocketInfo> before = {}) {
  auto calls = std::make_shared<int>(0);
  return [calls, after, before] {
    std::vector<SocketInfo> out = before;
    if (++*calls > after) out.push_back(SocketInfo{SocketState::kLive, ":77", "/run/x/h-77"});
    return out;
  };
}

TEST_CASE("ExpandStartCommand: placeholders in every word, xpra's arguments at %a or appended") {
  UserAccount u{1001, 1002, "alice", "/home/alice"};
  StartRequest req;
  req.requested = true;
  req.display = ":5";
  req.options = {{"start", "xterm -T x"}, {"exit-with-children", "yes"}};
  CHECK(ExpandStartCommand({"runuser", "-u", "%u", "--", "xpra", "%a", "--daemon=no"}, u, req) ==
        std::vector<std::string>{"runuser", "-u", "alice", "--", "xpra", "start", ":5", "--start=xterm -T x",
                                 "--exit-with-children=yes", "--daemon=no"});
  CHECK(ExpandStartCommand({"launch", "--uid=%U", "--gid=%g", "--home=%h"}, u, StartRequest{}) ==
        std::vector<std::string>{"launch", "--uid=1001", "--gid=1002", "--home=/home/alice", "start"});
  StartRequest desk;
  desk.mode = "start-desktop";
  CHECK(ExpandStartCommand({"x", "%a"}, u, desk) == std::vector<std::string>{"x", "start-desktop"});
}

TEST_CASE("DefaultStartCommand: runuser, or systemd-run where systemd is PID 1; xpra in the foreground") {
  const std::vector<std::string> cmd = DefaultStartCommand();
  REQUIRE(!cmd.empty());
  CHECK((cmd.front() == "runuser" || cmd.front() == "systemd-run"));
  CHECK(std::find(cmd.begin(), cmd.end(), "%a") != cmd.end());
  CHECK(std::find(cmd.begin(), cmd.end(), "--daemon=no") != cmd.end());
}

TEST_CASE("IsAllowedStartOption: start commands yes, binds and auth never") {
  CHECK(IsAllowedStartOption("start"));
  CHECK(IsAllowedStartOption("start-child"));
  CHECK(!IsAllowedStartOption("bind-tcp"));
  CHECK(!IsAllowedStartOption("tcp-auth"));
  CHECK(!IsAllowedStartOption("socket-dir"));
  CHECK(!IsAllowedStartOption("daemon"));
}

TEST_CASE("Start: a launcher that keeps running is the session's; it is tracked and reaped when it ends") {
  SocketDir dir;
  const std::string pidfile = dir.file("pid");
  SessionLauncher l(Options({"/bin/sh", "-c", "echo $$ > " + pidfile + "; exec sleep 30"}));
  auto got = l.Start(User(), StartRequest{}, AppearsAfter(3));
  REQUIRE(got.ok());
  CHECK(got->display == ":77");
  CHECK(l.tracked() == 1);
  REQUIRE(WaitFor([&] { return !ReadFile(pidfile).empty(); }, 2000));
  const pid_t pid = std::stoi(ReadFile(pidfile));
  CHECK(Alive(pid));
  kill(pid, SIGTERM);
  CHECK(WaitFor([&] { return l.tracked() == 0; }, 3000));  // reaped: no zombie left
  CHECK(!Alive(pid));
}

TEST_CASE("Start: a launcher that hands over (exit 0) and the socket shows later") {
  SessionLauncher l(Options({"/bin/true"}));
  auto got = l.Start(User(), StartRequest{}, AppearsAfter(5));
  REQUIRE(got.ok());
  CHECK(l.tracked() == 0);
}

TEST_CASE("Start: the requested display, not just any new one") {
  SessionLauncher l(Options({"/bin/true"}, 600));
  StartRequest req;
  req.requested = true;
  req.display = ":78";
  auto got = l.Start(User(), req, AppearsAfter(0));  // :77 appears, :78 never does
  REQUIRE(!got.ok());
  CHECK(got.error().code == ErrorCode::kTimeout);
}

TEST_CASE("Start: a failing launcher is reported with its exit status only") {
  SessionLauncher l(Options({"/bin/sh", "-c", "echo secret-output >&2; exit 3"}));
  auto got = l.Start(User(), StartRequest{}, AppearsAfter(1000));
  REQUIRE(!got.ok());
  CHECK(got.error().code == ErrorCode::kIo);
  CHECK(got.error().message == "the session launcher failed (exit status 3)");
}

TEST_CASE("Start: a launcher that cannot be run") {
  SessionLauncher l(Options({"/nonexistent/xr-launcher"}));
  auto got = l.Start(User(), StartRequest{}, AppearsAfter(1000));
  REQUIRE(!got.ok());
  CHECK(got.error().message.find("cannot run the session launcher") != std::string::npos);
}

TEST_CASE("Start: on timeout the launcher's whole process group is killed") {
  SocketDir dir;
  const std::string pids = dir.file("pids");
  SessionLauncher l(Options({"/bin/sh", "-c", "sleep 30 & echo $$ $! > " + pids + "; wait"}, 700));
  const auto t0 = std::chrono::steady_clock::now();
  auto got = l.Start(User(), StartRequest{}, AppearsAfter(1000000));
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!got.ok());
  CHECK(got.error().code == ErrorCode::kTimeout);
  CHECK(got.error().message == "the new session did not start within 1 seconds");
  CHECK(took < std::chrono::seconds(5));
  std::istringstream in(ReadFile(pids));
  pid_t shell = 0, child = 0;
  in >> shell >> child;
  REQUIRE((shell > 0 && child > 0));
  CHECK(!Alive(shell));
  CHECK(WaitFor([&] { return !Alive(child); }, 2000));  // the grandchild went with the group
  CHECK(l.tracked() == 0);
}

TEST_CASE("Start: clean environment, default signals, nothing blocked") {
  SocketDir dir;
  const std::string out = dir.file("env");
  setenv("XR_LAUNCHER_TEST_SECRET", "relay-only", 1);
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);  // as the relay's threads have it
  SessionLauncher l(Options({"/bin/sh", "-c", "env > " + out + "; grep SigBlk /proc/self/status >> " + out}));
  auto got = l.Start(User(), StartRequest{}, AppearsAfter(3));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  REQUIRE(got.ok());
  REQUIRE(WaitFor([&] { return ReadFile(out).find("SigBlk") != std::string::npos; }, 2000));
  const std::string env = ReadFile(out);
  CHECK(env.find("XR_LAUNCHER_TEST_SECRET") == std::string::npos);
  CHECK(env.find("USER=someone") != std::string::npos);
  CHECK(env.find("HOME=/\n") != std::string::npos);
  CHECK(env.find("SigBlk:\t0000000000000000") != std::string::npos);
}

TEST_CASE("Start: who may not get a session, and the per-user limit") {
  SessionLauncher l(Options({"/bin/true"}));
  for (int64_t uid : {0, 999}) {
    auto got = l.Start(User(uid), StartRequest{}, AppearsAfter(0));
    REQUIRE(!got.ok());
    CHECK(got.error().message == "user not allowed to start sessions on this relay");
  }
  UserAccount rootgroup = User();
  rootgroup.gid = 0;
  CHECK(!l.Start(rootgroup, StartRequest{}, AppearsAfter(0)).ok());

  LauncherOptions o = Options({"/bin/true"});
  o.max_per_user = 2;
  SessionLauncher limited(o);
  std::vector<SocketInfo> two{{SocketState::kLive, ":1", "/a"}, {SocketState::kLive, ":2", "/b"}};
  auto got = limited.Start(User(), StartRequest{}, [&] { return two; });
  REQUIRE(!got.ok());
  CHECK(got.error().message == "2 sessions already running for this user (the limit is 2)");
  StartRequest req;
  req.display = ":1";
  got = l.Start(User(), req, [&] { return two; });
  REQUIRE(!got.ok());
  CHECK(got.error().message == "display :1 is already running");
}

TEST_CASE("Start: concurrent starts, relay-wide and per user") {
  SocketDir dir;
  const std::string pids = dir.file("pids");
  LauncherOptions o = Options({"/bin/sh", "-c", "echo $$ >> " + pids + "; exec sleep 30"}, 1500);
  o.max_concurrent = 1;
  SessionLauncher l(o);
  std::atomic<bool> entered{false};
  std::thread slow([&] {
    auto r = l.Start(User(2000), StartRequest{}, [&] {
      entered = true;
      return std::vector<SocketInfo>{};
    });
    CHECK(r.error().code == ErrorCode::kTimeout);
  });
  REQUIRE(WaitFor([&] { return entered.load(); }, 2000));
  auto same = l.Start(User(2000), StartRequest{}, AppearsAfter(0));
  REQUIRE(!same.ok());
  CHECK(same.error().message == "a session is already starting for this user, try again in a few seconds");
  auto other = l.Start(User(2001), StartRequest{}, AppearsAfter(0));
  REQUIRE(!other.ok());
  CHECK(other.error().message == "too many sessions starting on this relay, try again in a few seconds");
  slow.join();
  // The slot is free again.
  auto again = l.Start(User(2001), StartRequest{}, AppearsAfter(1));
  CHECK(again.ok());
  CHECK(WaitFor([&] {
    const std::string text = ReadFile(pids);
    return std::count(text.begin(), text.end(), '\n') == 2;
  }, 3000));
  std::istringstream in(ReadFile(pids));
  for (pid_t pid = 0; in >> pid;) kill(pid, SIGKILL);
  CHECK(WaitFor([&] { return l.tracked() == 0; }, 3000));
}

}  // namespace
}  // namespace xr::registry
