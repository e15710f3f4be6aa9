#pragma once
// The main thread of a running relay: signals, SIGHUP reloads of the configuration, and
// socket takeover (engine/takeover.h) in both roles. main.cc builds a configuration (a
// PrepareFn); RelayRuntime applies one to the running reactors, or refuses it whole.
//
// A reload is two steps. Prepare: parse the config file(s) and command line again, build
// auth modules (an unchanged spec keeps its module), TLS contexts, front ends, and open the
// sockets of added binds; any failure refuses the reload with its reason and changes nothing.
// Commit: log what changed (one line each, ConfigChanges), apply log level and format,
// admission limits, and post each reactor its new limits and listeners (Reactor::Reconfigure):
// new connections get the new settings, live ones keep theirs. Options that shape what was
// made at start (threads, io, display, ...) are logged as needing a restart and not applied.

#include <signal.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_module.h"
#include "base/fd.h"
#include "base/status.h"
#include "engine/config.h"
#include "engine/reactor.h"
#include "engine/sd_notify.h"
#include "engine/takeover.h"

namespace xr::engine {

// The auth modules, one instance per distinct spec, shared by the binds that use it.
using AuthModules = std::map<std::string, std::shared_ptr<auth::AuthModule>>;

// One configuration made ready to run; nothing in it touches the running relay yet.
struct PreparedConfig {
  RelayConfig cfg;
  AuthModules modules;             // the modules the binds use
  std::vector<ListenerSpec> binds; // tcp and unix binds (ListenerSpec::key set), no control socket
  ReactorLimits limits;
  bool tls = false;                // certificates read (just now: a reload re-reads them all)
};

// Builds a PreparedConfig from `cfg`, taking the module of `reuse` for each auth spec it has
// (fresh modules for new specs); an error says why `cfg` cannot run.
using PrepareFn = std::function<Expected<PreparedConfig>(const RelayConfig& cfg, const AuthModules& reuse)>;

// Whether a ConfigChanges item names an option only a restart can change (threads, io,
// display, auth-threads, recv buffers, socket dirs and control socket options).
bool NeedsRestart(std::string_view change);
// `next` with `running`'s value for every option only a restart can change.
RelayConfig KeepRestartOptions(const RelayConfig& running, RelayConfig next);

// The listening sockets handed over by the relay this one takes over, by listener id.
using HandedSockets = std::map<std::string, std::vector<UniqueFd>>;
HandedSockets ByListenerId(std::vector<takeover::HandedSocket> sockets);
// The specs reactor `index` of `threads` initialises with: each spec once (in order; the
// first reactor's listeners line up with `specs`), taking a handed-over socket when there is
// one (each handed socket goes to exactly one reactor; a reactor beyond their number shares
// one), then the handed sockets left over for this reactor.
std::vector<ListenerSpec> ReactorSpecs(const std::vector<ListenerSpec>& specs, const HandedSockets& handed, int index,
                                       int threads);

// Takeover requests and confirmations from reactor threads (a control session) to the main
// thread, which they wake with SIGUSR1.
class TakeoverMailbox {
 public:
  void Request(uint64_t ctl, UniqueFd conn);
  void Done(uint64_t ctl, bool confirmed);
  struct Event {
    uint64_t ctl = 0;
    UniqueFd conn;          // a request
    bool done = false;      // else a confirmation (confirmed) or abandonment
    bool confirmed = false;
  };
  std::vector<Event> Take();

 private:
  std::mutex mu_;
  std::vector<Event> events_;
};

class RelayRuntime {
 public:
  // `args`: the command line (re-read on reload); `running`: what the reactors started with;
  // `control`: the relay's control listener (reactor 0), kept across reloads.
  RelayRuntime(std::vector<std::string> args, PrepareFn prepare, PreparedConfig running, std::vector<ListenerSpec> control,
               const std::vector<std::unique_ptr<Reactor>>* reactors, TakeoverMailbox* mailbox);
  // Keeps a duplicate of every reactor's listening socket (call after Init, before Run): what
  // a takeover hands over, and what a reload keeps open.
  Status AdoptListeners();
  // Waits for signals: SIGHUP reloads, SIGINT/SIGTERM return, SIGUSR1 looks at the takeover
  // mailbox. After a confirmed takeover returns once every connection has ended, or at
  // --drain-timeout (the caller's Stop then tells the rest "server shutdown").
  void Run(const sigset_t& sigs, const SdNotifier& notify);
  // SIGHUP: re-reads the configuration and applies it, or refuses it with the reason.
  void Reload();
  // Called after each applied reload with the configuration now running (for `xpra info`).
  void OnReload(std::function<void(const PreparedConfig&)> fn) { on_reload_ = std::move(fn); }
  // Whether Run returned after handing the sockets over.
  bool handed_over() const { return state_ == State::kDraining; }

 private:
  enum class State : uint8_t { kRunning, kHanding, kDraining };
  void OnMailbox(const SdNotifier& notify);
  void StopAccepting();
  uint64_t LiveConnections() const;
  // The sockets of a bind the relay lacks: one per reactor (tcp) or one (unix).
  Expected<std::vector<UniqueFd>> OpenBind(const ListenerSpec& spec) const;

  std::vector<std::string> args_;
  PrepareFn prepare_;
  std::function<void(const PreparedConfig&)> on_reload_;
  PreparedConfig running_;
  std::vector<ListenerSpec> control_;
  const std::vector<std::unique_ptr<Reactor>>* reactors_;
  TakeoverMailbox* mailbox_;
  std::map<std::string, std::vector<UniqueFd>> sockets_;  // by listener id: duplicates of the reactors'
  State state_ = State::kRunning;
  uint64_t handing_ctl_ = 0;
  int64_t drain_deadline_ms_ = 0;  // 0: until the sessions end
};

}  // namespace xr::engine
