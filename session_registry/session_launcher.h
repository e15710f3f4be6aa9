#pragma once
// SessionLauncher: starts an xpra session for a local user on demand (system-wide mode), as
// xpra's proxy_server.py start_new_session() does, without the relay changing identity: it runs
// a configurable launcher command (`--start-session-command`; by default `systemd-run --uid=...`
// where systemd is PID 1, else `runuser -u USER --`) that becomes the user, waits for the new
// session's socket, and kills what it started when the socket does not come in time.
//
// Everything here blocks (spawn, wait, socket probes): call it on a worker thread only.

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "session_registry/socket_dirs.h"

namespace xr::registry {

// A local account (NSS).
struct UserAccount {
  int64_t uid = -1, gid = -1;
  std::string name;
  std::string home;
};

// What the client asked for in its hello's "start-new-session" dict (xpra's `xpra start
// tcp://USER@HOST/ --start=xterm`), already bounded and checked by whoever decoded it.
struct StartRequest {
  bool requested = false;    // the client sent start-new-session
  std::string mode = "start";  // "start" or "start-desktop"
  std::string display;       // "" or ":N" (digits)
  // Allowed xpra options ("start", "start-child", ...) and their values, in order; each becomes
  // one "--KEY=VALUE" argument (no shell ever sees them).
  std::vector<std::pair<std::string, std::string>> options;
};

// The xpra options a client may pass to a session it asks for: xpra 3.1.3's
// START_COMMAND_OPTIONS (what `xpra start tcp://...` sends) plus a few harmless ones. Anything
// else is dropped (xpra's proxy drops what is not in PROXY_START_OVERRIDABLE_OPTIONS).
bool IsAllowedStartOption(std::string_view key);

// Bounds on a client's start request (checked by the decoder).
inline constexpr size_t kMaxStartOptions = 16;
inline constexpr size_t kMaxStartValueBytes = 1024;

struct LauncherOptions {
  // The launcher's argv template (no shell): %u user name, %U uid, %g gid, %h home are replaced
  // in every word; the word %a becomes xpra's arguments ("start" [":N"] ["--start=xterm" ...]),
  // appended at the end when there is no %a. Empty: DefaultStartCommand().
  std::vector<std::string> command;
  int64_t timeout_ms = 20000;   // launch -> the new session's socket is live
  size_t max_per_user = 4;      // a user with this many live sessions gets no new one
  size_t max_concurrent = 2;    // starts in progress at once, relay-wide (each holds a worker)
  int64_t min_uid = 1000;       // users below this uid (and uid/gid 0 always) get no session
};

// `systemd-run ... xpra %a --daemon=no` when systemd runs as PID 1 (/run/systemd/system exists),
// else `runuser -u %u -- xpra %a --daemon=no`. Both need the relay to run as root.
std::vector<std::string> DefaultStartCommand();

// The launcher's argv for `user` and `req` (the template expanded, xpra's arguments placed).
std::vector<std::string> ExpandStartCommand(const std::vector<std::string>& tmpl, const UserAccount& user,
                                            const StartRequest& req);

class SessionLauncher {
 public:
  explicit SessionLauncher(LauncherOptions options);
  // Stops reaping; launchers still running (sessions run by `runuser ... --daemon=no`) are left
  // running: sessions outlive the relay.
  ~SessionLauncher();
  SessionLauncher(const SessionLauncher&) = delete;
  SessionLauncher& operator=(const SessionLauncher&) = delete;

  // Starts a session for `user` and waits until `scan` (the user's live sessions, called every
  // 100 ms) shows one that was not there before (the requested display when one was named).
  // Errors, each readable by the user (no launcher output or client strings in them):
  //   kNotFound  "user not allowed to start sessions" (uid below min_uid, uid or gid 0)
  //   kTooLarge  "N sessions already running for this user (the limit is M)",
  //              "too many sessions starting on this relay, try again in a few seconds",
  //              "a session is already starting for this user, try again in a few seconds"
  //   kNotFound  "display :N is already running"
  //   kIo        "the session launcher failed (exit status N)" / "(killed by signal N)" /
  //              "cannot run the session launcher: ..."
  //   kTimeout   "the new session did not start within N seconds" (its process group killed)
  Expected<SocketInfo> Start(const UserAccount& user, const StartRequest& req,
                             const std::function<std::vector<SocketInfo>()>& scan);

  const LauncherOptions& options() const { return options_; }
  // Launchers still running after their session came up (tests).
  size_t tracked() const;

 private:
  // Every second: reaps launchers that ended (no zombies), until the destructor.
  void ReapLoop();
  void Track(pid_t pid);

  const LauncherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<int64_t> starting_uids_;
  size_t starting_ = 0;
  std::vector<pid_t> running_;
  bool stopping_ = false;
  std::thread reaper_;
};

}  // namespace xr::registry
