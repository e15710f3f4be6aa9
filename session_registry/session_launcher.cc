#include "session_registry/session_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include "base/spawn.h"

namespace xr::registry {
namespace {

constexpr int64_t kPollMs = 100;
constexpr int64_t kKillGraceMs = 2000;
constexpr size_t kMaxTracked = 1024;  // launchers kept running for their sessions, relay-wide

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string ReplaceAll(std::string s, std::string_view from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

std::vector<std::string> XpraArgs(const StartRequest& req) {
  std::vector<std::string> args{req.mode == "start-desktop" ? "start-desktop" : "start"};
  if (!req.display.empty()) args.push_back(req.display);
  for (const auto& [key, value] : req.options) args.push_back("--" + key + "=" + value);
  return args;
}

// A clean environment for the launcher: nothing of the relay's own (its XDG_RUNTIME_DIR, its
// HOME) leaks into the user's session.
std::vector<std::string> LauncherEnv(const UserAccount& user) {
  std::vector<std::string> env{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "HOME=" + user.home, "USER=" + user.name, "LOGNAME=" + user.name,
                               "LANG=C.UTF-8"};
  const std::string runtime = "/run/user/" + std::to_string(user.uid);
  struct stat st;
  if (lstat(runtime.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && static_cast<int64_t>(st.st_uid) == user.uid) {
    env.push_back("XDG_RUNTIME_DIR=" + runtime);
  }
  return env;
}

// A new session (its own process group, no terminal), found in PATH, isolated as SpawnIsolated says.
Expected<pid_t> Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& cwd) {
  SpawnOptions opts;
  opts.new_session = true;
  opts.search_path = true;
  opts.cwd = cwd;
  pid_t pid = -1;
  const int rc = SpawnIsolated(argv, env, opts, &pid);
  if (rc != 0) {
    return MakeError(ErrorCode::kIo, "cannot run the session launcher '" + argv[0] + "': " + std::strerror(rc));
  }
  return pid;
}

std::string ExitText(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// SIGTERM to the launcher's process group, SIGKILL after a grace period; reaps the launcher.
void KillGroup(pid_t pid) {
  kill(-pid, SIGTERM);
  const int64_t until = NowMs() + kKillGraceMs;
  int status = 0;
  while (NowMs() < until) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      kill(-pid, SIGKILL);  // what is left of the group
      return;
    }
    SleepMs(50);
  }
  kill(-pid, SIGKILL);
  waitpid(pid, &status, 0);
}

bool Contains(const std::vector<SocketInfo>& v, const std::string& display) {
  return std::any_of(v.begin(), v.end(), [&](const SocketInfo& s) { return s.display == display; });
}

}  // namespace

bool IsAllowedStartOption(std::string_view key) {
  static constexpr std::array<std::string_view, 14> kAllowed = {
      "start", "start-child", "start-after-connect", "start-child-after-connect", "start-on-connect",
      "start-child-on-connect", "start-on-last-client-exit", "start-child-on-last-client-exit",
      "exit-with-children", "exit-with-client", "session-name", "dpi", "pixel-depth", "resize-display"};
  return std::find(kAllowed.begin(), kAllowed.end(), key) != kAllowed.end();
}

std::vector<std::string> DefaultStartCommand() {
  struct stat st;
  if (stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode)) {
    return {"systemd-run", "--quiet", "--collect", "--uid=%U", "--gid=%g", "--working-directory=%h",
            "--setenv=HOME=%h", "--setenv=USER=%u", "--setenv=LOGNAME=%u", "--", "xpra", "%a", "--daemon=no"};
  }
  return {"runuser", "-u", "%u", "--", "xpra", "%a", "--daemon=no"};
}

std::vector<std::string> ExpandStartCommand(const std::vector<std::string>& tmpl, const UserAccount& user,
                                            const StartRequest& req) {
  std::vector<std::string> out;
  bool placed = false;
  for (const std::string& word : tmpl) {
    if (word == "%a") {
      for (std::string& a : XpraArgs(req)) out.push_back(std::move(a));
      placed = true;
      continue;
    }
    std::string w = ReplaceAll(word, "%u", user.name);
    w = ReplaceAll(std::move(w), "%U", std::to_string(user.uid));
    w = ReplaceAll(std::move(w), "%g", std::to_string(user.gid));
    w = ReplaceAll(std::move(w), "%h", user.home);
    out.push_back(std::move(w));
  }
  if (!placed) {
    for (std::string& a : XpraArgs(req)) out.push_back(std::move(a));
  }
  return out;
}

SessionLauncher::SessionLauncher(LauncherOptions options)
    : options_(std::move(options)), reaper_([this] { ReapLoop(); }) {}

SessionLauncher::~SessionLauncher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  reaper_.join();
}

size_t SessionLauncher::tracked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_.size();
}

void SessionLauncher::Track(pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  running_.push_back(pid);
}

void SessionLauncher::ReapLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::seconds(1));
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [](pid_t pid) {
                                    int status = 0;
                                    const pid_t r = waitpid(pid, &status, WNOHANG);
                                    return r == pid || (r < 0 && errno == ECHILD);
                                  }),
                   running_.end());
  }
}

Expected<SocketInfo> SessionLauncher::Start(const UserAccount& user, const StartRequest& req,
                                            const std::function<std::vector<SocketInfo>()>& scan) {
  if (user.uid <= 0 || user.gid <= 0 || user.uid < options_.min_uid) {
    return MakeError(ErrorCode::kNotFound, "user not allowed to start sessions on this relay");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (starting_uids_.count(user.uid) != 0) {
      return MakeError(ErrorCode::kTooLarge, "a session is already starting for this user, try again in a few seconds");
    }
    if (starting_ >= options_.max_concurrent || running_.size() >= kMaxTracked) {
      return MakeError(ErrorCode::kTooLarge, "too many sessions starting on this relay, try again in a few seconds");
    }
    starting_uids_.insert(user.uid);
    starting_++;
  }
  struct Release {
    SessionLauncher* self;
    int64_t uid;
    ~Release() {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->starting_uids_.erase(uid);
      self->starting_--;
    }
  } release{this, user.uid};

  const std::vector<SocketInfo> before = scan();
  if (before.size() >= options_.max_per_user) {
    return MakeError(ErrorCode::kTooLarge, std::to_string(before.size()) +
                                               " sessions already running for this user (the limit is " +
                                               std::to_string(options_.max_per_user) + ")");
  }
  if (!req.display.empty() && Contains(before, req.display)) {
    return MakeError(ErrorCode::kNotFound, "display " + req.display + " is already running");
  }
  const std::vector<std::string>& tmpl = options_.command.empty() ? DefaultStartCommand() : options_.command;
  struct stat st;
  const std::string cwd = stat(user.home.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? user.home : "/";
  Expected<pid_t> spawned = Spawn(ExpandStartCommand(tmpl, user, req), LauncherEnv(user), cwd);
  if (!spawned.ok()) return spawned.error();
  const pid_t pid = *spawned;
  const int64_t deadline = NowMs() + options_.timeout_ms;
  bool exited = false;
  while (true) {
    int status = 0;
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        kill(-pid, SIGKILL);  // anything it left in its group
        return MakeError(ErrorCode::kIo, "the session launcher failed (" + ExitText(status) + ")");
      }
      // Exited 0: a launcher that hands the session over (systemd-run, xpra --daemon=yes).
    }
    for (const SocketInfo& s : scan()) {
      if (Contains(before, s.display)) continue;
      if (!req.display.empty() && s.display != req.display) continue;
      if (!exited) Track(pid);
      return s;
    }
    if (NowMs() >= deadline) break;
    SleepMs(kPollMs);
  }
  if (!exited) KillGroup(pid);
  return MakeError(ErrorCode::kTimeout, "the new session did not start within " +
                                            std::to_string((options_.timeout_ms + 999) / 1000) + " seconds");
}

}  // namespace xr::registry
