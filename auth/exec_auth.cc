#include "auth/exec_auth.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "auth/module_base.h"
#include "base/fd.h"
#include "base/spawn.h"

extern char** environ;

namespace xr::auth {
namespace {

struct ExecSettings {
  std::string command;
  int64_t timeout_ms = 20000;
  std::optional<int64_t> uid, gid;
};

// Waits up to `timeout_ms` for `pid` to exit; on time-out kills its process group (it leads
// one) and reaps it. Returns the wait status, or nullopt when it was killed.
std::optional<int> WaitOrKill(pid_t pid, int64_t timeout_ms) {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd.valid()) {
    pollfd p{pidfd.get(), POLLIN, 0};
    int64_t left = timeout_ms;
    timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (left > 0) {
      int n = poll(&p, 1, static_cast<int>(left));
      if (n > 0) break;
      if (n < 0 && errno != EINTR) break;
      timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
    }
  } else {
    // No pidfd (old kernel): poll the child every 10 ms.
    for (int64_t waited = 0; waited < timeout_ms; waited += 10) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return status;
      usleep(10000);
    }
  }
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == pid) return status;
  kill(-pid, SIGKILL);  // the command's process group: its children (a `sleep` in a script) too
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::nullopt;
}

// Runs the command for one login. `password`: written to its stdin (password=stdin) or null.
Expected<SessionEntry> RunCommand(const ExecSettings& s, const std::string& username, const std::string* password,
                                  const std::string& peer) {
  if (username.size() > 256) return MakeError(ErrorCode::kAuthFailed, "user name longer than 256 bytes");
  int sv[2];
  UniqueFd ours, theirs;
  if (password != nullptr) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return MakeError(ErrorCode::kIo, std::string("socketpair: ") + strerror(errno));
    }
    ours.reset(sv[0]);
    theirs.reset(sv[1]);
  }
  const std::string timeout_s = std::to_string((s.timeout_ms + 999) / 1000);
  const std::vector<std::string> argv = {s.command, "Connection request from " + peer, timeout_s};
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "XPRA_AUTH_", 10) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back("XPRA_AUTH_USERNAME=" + username);
  env_strings.push_back("XPRA_AUTH_PEER=" + peer);
  env_strings.push_back("XPRA_AUTH_TIMEOUT=" + timeout_s);

  // Its own process group, killed whole at the timeout; the password (if any) on stdin.
  SpawnOptions opts;
  opts.stdin_fd = theirs.valid() ? theirs.get() : -1;
  pid_t pid = -1;
  int rc = SpawnIsolated(argv, env_strings, opts, &pid);
  theirs.reset();
  if (rc != 0) return MakeError(ErrorCode::kIo, "cannot run " + s.command + ": " + strerror(rc));
  if (ours.valid()) {
    // One line, never blocking (far below the socket buffer); a command that exited early or
    // does not read just does not get it (MSG_NOSIGNAL: no SIGPIPE).
    std::string line = *password + "\n";
    (void)send(ours.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    WipeSecret(line);
    shutdown(ours.get(), SHUT_WR);
  }
  std::optional<int> status = WaitOrKill(pid, s.timeout_ms);
  if (!status) {
    return MakeError(ErrorCode::kTimeout, s.command + " did not decide within " + timeout_s + " s (killed pid " +
                                              std::to_string(pid) + ")");
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    const std::string how = WIFEXITED(*status) ? "exit status " + std::to_string(WEXITSTATUS(*status))
                                               : "signal " + std::to_string(WTERMSIG(*status));
    return MakeError(ErrorCode::kAuthFailed, s.command + " refused '" + username + "' (" + how + ")");
  }
  std::optional<SessionEntry> nss = SystemUserEntry(username);
  SessionEntry entry = nss ? *nss : ProcessSessionEntry();
  if (s.uid) entry.uid = *s.uid;
  if (s.gid) entry.gid = *s.gid;
  return entry;
}

// password=no: no challenge, the command decides from the name and address.
class ExecAuth final : public ModuleBase {
 public:
  ExecAuth(const ModuleOptions& options, ExecSettings s) : ModuleBase(options), s_(std::move(s)) {}
  bool requires_challenge() const override { return false; }

  Expected<AuthResult> Authenticate(const AuthRequest& req) override {
    const std::string username = EffectiveUsername(req.username);
    Expected<SessionEntry> entry = RunCommand(s_, username, nullptr, req.peer);
    if (!entry.ok()) return MakeError(entry.error().code, "exec: " + entry.error().message);
    return AuthResult{username, {std::move(entry).value()}};
  }

 private:
  const ExecSettings s_;
};

// password=stdin: the command also reads the password.
class ExecPasswordAuth final : public ClearPasswordModuleBase {
 public:
  ExecPasswordAuth(const ModuleOptions& options, ExecSettings s) : ClearPasswordModuleBase(options), s_(std::move(s)) {}

 protected:
  Expected<SessionEntry> CheckPassword(const std::string& username, const std::string& password,
                                       const AuthRequest& req) override {
    return RunCommand(s_, username, &password, req.peer);
  }

 private:
  const ExecSettings s_;
};

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreateExecAuth(const ModuleOptions& options) {
  if (Status st = options.CheckAllowed({"command", "timeout", "password", "uid", "gid"}); !st.ok()) return st.error();
  ExecSettings s;
  Expected<std::string> command = options.GetNonEmpty("command", std::nullopt);
  if (!command.ok()) return command.error();
  s.command = AbsolutePath(*command);
  if (access(s.command.c_str(), X_OK) != 0) {
    return MakeError(ErrorCode::kIo, "exec authentication: cannot run " + s.command + ": " + strerror(errno));
  }
  Expected<int64_t> timeout = GetSecondsOption(options, "timeout", 20, 600);
  if (!timeout.ok()) return timeout.error();
  s.timeout_ms = *timeout;
  if (std::optional<std::string> uid = options.Get("uid")) s.uid = ParseUid(*uid);
  if (std::optional<std::string> gid = options.Get("gid")) s.gid = ParseGid(*gid);
  const std::string password = options.Get("password").value_or("no");
  if (password == "stdin") return std::unique_ptr<AuthModule>(new ExecPasswordAuth(options, std::move(s)));
  if (password == "no" || password == "0" || password == "false") {
    return std::unique_ptr<AuthModule>(new ExecAuth(options, std::move(s)));
  }
  return MakeError(ErrorCode::kMalformed, "exec authentication: password= must be no or stdin, not '" + password + "'");
}

}  // namespace xr::auth
