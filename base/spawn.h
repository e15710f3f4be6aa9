#pragma once
// Starting a helper program (an exec auth command, a session launcher) apart from the relay:
// its own process group or session, stdio on /dev/null unless stdin is given, no other fd of
// the relay's, an empty signal mask and default dispositions (the relay blocks signals in
// every thread and ignores SIGPIPE; a child would inherit both).

#include <sys/types.h>

#include <string>
#include <vector>

namespace xr {

struct SpawnOptions {
  int stdin_fd = -1;         // becomes the child's fd 0; -1: /dev/null
  bool new_session = false;  // setsid (no controlling terminal); else only a new process group
  bool search_path = false;  // argv[0] looked up in PATH (posix_spawnp)
  std::string cwd;           // "": the relay's
};

// Runs argv with exactly `env` as its environment. Returns 0 and sets *pid, or the error
// number posix_spawn gave (the program could not be run).
int SpawnIsolated(const std::vector<std::string>& argv, const std::vector<std::string>& env, const SpawnOptions& o,
                  pid_t* pid);

}  // namespace xr
