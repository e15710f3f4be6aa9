#include "base/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

namespace xr {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// posix_spawn's attributes and file actions, destroyed with the object.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

}  // namespace

int SpawnIsolated(const std::vector<std::string>& argv, const std::vector<std::string>& env, const SpawnOptions& o,
                  pid_t* pid) {
  if (argv.empty()) return EINVAL;
  SpawnSetup sp;
  if (o.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&sp.actions, o.stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&sp.actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&sp.actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&sp.actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&sp.actions, 3);
  if (!o.cwd.empty()) posix_spawn_file_actions_addchdir_np(&sp.actions, o.cwd.c_str());
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&sp.attr, &none);
  posix_spawnattr_setsigdefault(&sp.attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.new_session) {
    flags |= POSIX_SPAWN_SETSID;
  } else {
    posix_spawnattr_setpgroup(&sp.attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&sp.attr, flags);
  std::vector<char*> cargv = CStrings(argv);
  std::vector<char*> cenv = CStrings(env);
  return o.search_path ? posix_spawnp(pid, cargv[0], &sp.actions, &sp.attr, cargv.data(), cenv.data())
                       : posix_spawn(pid, cargv[0], &sp.actions, &sp.attr, cargv.data(), cenv.data());
}

}  // namespace xr
