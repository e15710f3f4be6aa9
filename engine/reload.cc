#include "engine/reload.h"

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "engine/limits.h"
#include "engine/log.h"
#include "engine/stats.h"

namespace xr::engine {
namespace {

// ConfigChanges keys (the option names) of what only a restart changes: the threads, rings and
// control sockets made at start.
constexpr std::string_view kRestartOnly[] = {
    "display", "threads", "auth-threads", "io", "recv-buffers", "recv-buffer-size",
    "socket-dir", "proxy-sockets", "socket-group", "bind-metrics",
    "cluster", "cluster-node", "cluster-heartbeat", "cluster-ttl",
};

pid_t PeerPid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
}

void ApplyAdmission(const RelayConfig& cfg) {
  AdmissionConfig admission;
  admission.max_per_address = static_cast<uint32_t>(cfg.max_per_address);
  admission.free_failures = static_cast<uint32_t>(cfg.login_failures);
  admission.max_logins_per_source = static_cast<uint32_t>(cfg.max_logins_per_address);
  GlobalAdmission().SetConfig(admission);
  GlobalLoginMemory().SetBudget(cfg.max_login_memory);
  GlobalKdfBudget().SetRate(static_cast<int64_t>(cfg.max_kdf_iterations));
}

}  // namespace

bool NeedsRestart(std::string_view change) {
  for (std::string_view key : kRestartOnly) {
    if (change.starts_with(key) && change.size() > key.size() && change[key.size()] == ':') return true;
  }
  return false;
}

RelayConfig KeepRestartOptions(const RelayConfig& running, RelayConfig next) {
  next.display = running.display;
  next.threads = running.threads;
  next.auth_threads = running.auth_threads;
  next.io = running.io;
  next.recv_buffers = running.recv_buffers;
  next.recv_buffer_size = running.recv_buffer_size;
  next.socket_dirs = running.socket_dirs;
  next.proxy_sockets = running.proxy_sockets;
  next.socket_group = running.socket_group;
  next.bind_metrics = running.bind_metrics;
  next.cluster = running.cluster;
  next.cluster_node = running.cluster_node;
  next.cluster_heartbeat = running.cluster_heartbeat;
  next.cluster_ttl = running.cluster_ttl;
  return next;
}

HandedSockets ByListenerId(std::vector<takeover::HandedSocket> sockets) {
  HandedSockets out;
  for (auto& s : sockets) out[s.id].push_back(std::move(s.fd));
  return out;
}

std::vector<ListenerSpec> ReactorSpecs(const std::vector<ListenerSpec>& specs, const HandedSockets& handed, int index,
                                       int threads) {
  std::vector<ListenerSpec> out;
  std::vector<ListenerSpec> extra;
  for (const auto& spec : specs) {
    auto it = handed.find(spec.id());
    if (it == handed.end() || it->second.empty()) {
      out.push_back(spec);
      continue;
    }
    const auto& fds = it->second;
    ListenerSpec mine = spec;
    mine.inherited_fd = fds[static_cast<size_t>(index) % fds.size()].get();
    out.push_back(mine);
    if (spec.kind != ListenerSpec::Kind::kTcp) continue;  // unix and control: the first reactor's only
    for (size_t j = static_cast<size_t>(index) + static_cast<size_t>(threads); j < fds.size(); j += static_cast<size_t>(threads)) {
      mine.inherited_fd = fds[j].get();
      extra.push_back(mine);
    }
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

// ------------------------------------------------------------------ TakeoverMailbox

void TakeoverMailbox::Request(uint64_t ctl, UniqueFd conn) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(Event{ctl, std::move(conn), false, false});
  }
  kill(getpid(), SIGUSR1);
}

void TakeoverMailbox::Done(uint64_t ctl, bool confirmed) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(Event{ctl, UniqueFd(), true, confirmed});
  }
  kill(getpid(), SIGUSR1);
}

std::vector<TakeoverMailbox::Event> TakeoverMailbox::Take() {
  std::lock_guard lock(mu_);
  std::vector<Event> out;
  out.swap(events_);
  return out;
}

// ------------------------------------------------------------------ RelayRuntime

RelayRuntime::RelayRuntime(std::vector<std::string> args, PrepareFn prepare, PreparedConfig running,
                           std::vector<ListenerSpec> control, const std::vector<std::unique_ptr<Reactor>>* reactors,
                           TakeoverMailbox* mailbox)
    : args_(std::move(args)),
      prepare_(std::move(prepare)),
      running_(std::move(running)),
      control_(std::move(control)),
      reactors_(reactors),
      mailbox_(mailbox) {}

Status RelayRuntime::AdoptListeners() {
  for (const auto& r : *reactors_) {
    for (const auto& [id, fd] : r->listener_fds()) {
      UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
      if (!dup.valid()) return MakeError(ErrorCode::kIo, fmt::format("dup of listener {}: {}", id, log::ErrnoText(errno)));
      sockets_[id].push_back(std::move(dup));
    }
  }
  return Status::Ok();
}

uint64_t RelayRuntime::LiveConnections() const {
  uint64_t n = 0;
  for (const auto& r : *reactors_) n += r->live_connections();
  return n;
}

Expected<std::vector<UniqueFd>> RelayRuntime::OpenBind(const ListenerSpec& spec) const {
  std::vector<UniqueFd> out;
  const size_t threads = reactors_->size();
  ListenerSpec s = spec;
  for (size_t i = 0; i < (s.kind == ListenerSpec::Kind::kTcp ? threads : 1); ++i) {
    auto fd = OpenListenerSocket(s, threads > 1, /*check_free=*/i == 0, 0600);
    if (!fd.ok()) return fd.error();
    if (i == 0 && s.kind == ListenerSpec::Kind::kTcp && s.port == 0) {
      // Port 0: every reactor listens on the port the first socket got.
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len);
      s.port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    out.push_back(std::move(*fd));
  }
  return out;
}

void RelayRuntime::Reload() {
  log::Reopen();
  if (state_ != State::kRunning) {
    XR_WARN("reload", "SIGHUP ignored: this relay {}", state_ == State::kDraining ? "handed its sockets over and drains"
                                                                                 : "is handing its sockets over");
    return;
  }
  auto refuse = [](const std::string& why) {
    XR_ERROR("reload", "SIGHUP: reload refused, the running configuration stays: {}", why);
  };
  // Prepare: everything that can fail, before anything changes.
  auto parsed = ParseConfiguration(args_);
  if (!parsed.ok()) return refuse(parsed.error().message);
  std::vector<std::string> changes = ConfigChanges(running_.cfg, *parsed);
  RelayConfig next = KeepRestartOptions(running_.cfg, std::move(*parsed));
  auto prepared = prepare_(next, running_.modules);
  if (!prepared.ok()) return refuse(prepared.error().message);
  std::map<std::string, std::vector<UniqueFd>> opened;
  for (const auto& spec : prepared->binds) {
    if (sockets_.count(spec.id()) != 0 || opened.count(spec.id()) != 0) continue;
    auto fds = OpenBind(spec);
    if (!fds.ok()) return refuse(spec.describe() + ": " + fds.error().message);
    opened[spec.id()] = std::move(*fds);
  }

  // Commit: nothing below fails the reload.
  size_t applied = 0;
  for (const auto& c : changes) {
    if (NeedsRestart(c)) {
      XR_WARN("reload", "{}: needs a restart, not applied", c);
    } else {
      XR_INFO("reload", "{}", c);
      ++applied;
    }
  }
  for (const auto& [spec, m] : prepared->modules) {
    auto old = running_.modules.find(spec);
    if (old == running_.modules.end() || old->second != m) continue;  // new: read just now
    if (Status s = m->Reload(); !s.ok()) XR_WARN("reload", "reload of auth {} failed: {}", m->name(), s.error().message);
  }
  log::Configure(log::Level::kInfo, next.debug);
  log::SetFormat(log::ParseFormat(next.log_format).value_or(log::Format::kText));
  if (next.log_file != running_.cfg.log_file && !log::OpenFile(next.log_file)) {
    XR_WARN("reload", "cannot open log file {}; logging goes on where it went", next.log_file);
  }
  ApplyAdmission(next);
  std::set<std::string> wanted_ids;
  for (const auto& spec : prepared->binds) wanted_ids.insert(spec.id());
  for (const auto& c : control_) wanted_ids.insert(c.id());
  for (size_t i = 0; i < reactors_->size(); ++i) {
    auto wanted = std::make_shared<std::vector<Reactor::OpenListener>>();
    for (const auto& spec : prepared->binds) {
      if (spec.kind != ListenerSpec::Kind::kTcp && i != 0) continue;
      Reactor::OpenListener l;
      l.spec = spec;
      auto it = opened.find(spec.id());
      if (it != opened.end() && i < it->second.size()) {
        // The reactor gets the socket; the table keeps a duplicate.
        sockets_[spec.id()].emplace_back(fcntl(it->second[i].get(), F_DUPFD_CLOEXEC, 0));
        l.fd = std::move(it->second[i]);
      }
      wanted->push_back(std::move(l));
    }
    if (i == 0) {
      for (const auto& c : control_) wanted->push_back(Reactor::OpenListener{c, UniqueFd()});
    }
    Reactor* r = (*reactors_)[i].get();
    ReactorLimits limits = prepared->limits;
    r->Post([r, limits, wanted] { r->Reconfigure(limits, std::move(*wanted), /*unlink_removed=*/true); });
  }
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    it = wanted_ids.count(it->first) != 0 ? std::next(it) : sockets_.erase(it);
  }
  running_ = std::move(*prepared);
  if (on_reload_) on_reload_(running_);
  XR_INFO("reload", "SIGHUP: configuration reloaded{}: {} change{} applied{}",
          running_.cfg.config_file.empty() ? "" : " from " + running_.cfg.config_file, applied, applied == 1 ? "" : "s",
          running_.tls ? ", TLS certificates reloaded" : "");
}

void RelayRuntime::StopAccepting() {
  for (const auto& r : *reactors_) {
    Reactor* rp = r.get();
    ReactorLimits limits = running_.limits;
    rp->Post([rp, limits] { rp->Reconfigure(limits, {}, /*unlink_removed=*/false); });
  }
  sockets_.clear();  // the new relay holds them now
}

void RelayRuntime::OnMailbox(const SdNotifier& notify) {
  for (auto& e : mailbox_->Take()) {
    if (!e.done) {
      pid_t pid = PeerPid(e.conn.get());
      if (state_ != State::kRunning) {
        XR_WARN("takeover", "takeover asked by pid {} refused: another one is under way", pid);
        if (Status s = takeover::SendRefusal(e.conn.get(), "another takeover is under way"); !s.ok()) {
          XR_DEBUG("takeover", "refusal: {}", s.error().message);
        }
        continue;
      }
      std::vector<std::pair<std::string, int>> list;
      for (const auto& [id, fds] : sockets_) {
        for (const auto& fd : fds) list.emplace_back(id, fd.get());
      }
      if (Status s = takeover::SendSockets(e.conn.get(), list); !s.ok()) {
        XR_WARN("takeover", "takeover asked by pid {} failed, still accepting: {}", pid, s.error().message);
        continue;
      }
      state_ = State::kHanding;
      handing_ctl_ = e.ctl;
      XR_INFO("takeover", "takeover asked by pid {}: {} listening sockets sent; accepting until it confirms", pid,
              list.size());
      continue;
    }
    if (state_ != State::kHanding || e.ctl != handing_ctl_) continue;  // a refused request's end
    if (!e.confirmed) {
      state_ = State::kRunning;
      XR_WARN("takeover", "the new relay went away before it confirmed: this one goes on accepting");
      continue;
    }
    StopAccepting();
    state_ = State::kDraining;
    double drain = running_.cfg.drain_timeout;
    drain_deadline_ms_ = drain > 0 ? NowMs() + static_cast<int64_t>(drain * 1000) : 0;
    SdNotifier::WarnIfFailed(notify.Stopping("handed over to a new relay, draining"));
    uint64_t sessions = Counters().relaying.load() + Counters().handshaking.load();
    XR_INFO("takeover", "the new relay accepts now: this one stopped accepting and drains {} session{} ({})", sessions,
            sessions == 1 ? "" : "s", drain > 0 ? fmt::format("for at most {} s", drain) : std::string("until they end"));
  }
}

void RelayRuntime::Run(const sigset_t& sigs, const SdNotifier& notify) {
  uint64_t last_activity = 0;
  bool trim_pending = false;
  int quiet_ticks = 0;
  while (true) {
    if (state_ == State::kDraining) {
      uint64_t live = LiveConnections();
      if (live == 0) {
        XR_INFO("takeover", "drained: every connection has ended");
        return;
      }
      if (drain_deadline_ms_ != 0 && NowMs() >= drain_deadline_ms_) {
        XR_INFO("takeover", "drain timeout ({} s): ending the {} connection{} left", running_.cfg.drain_timeout, live,
                live == 1 ? "" : "s");
        return;
      }
    }
    timespec tick{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig < 0) {
      // Once a burst of logins or closes has settled (no change for a second), give heap
      // pages back to the kernel: each login's transient allocations (hello values, auth
      // work, buffers) otherwise stay in the allocator's arenas between long-lived objects.
      uint64_t activity = Counters().accepted.load() + Counters().closed.load();
      if (activity != last_activity) {
        last_activity = activity;
        trim_pending = true;
        quiet_ticks = 0;
      } else if (trim_pending && ++quiet_ticks >= 5) {
        trim_pending = false;
        malloc_trim(0);
      }
      continue;
    }
    if (sig == SIGUSR1) {
      OnMailbox(notify);
      continue;
    }
    if (sig == SIGHUP) {
      SdNotifier::WarnIfFailed(notify.Reloading());  // systemd: RELOADING ... READY around the reload
      Reload();
      if (state_ == State::kRunning) SdNotifier::WarnIfFailed(notify.Ready());
      continue;
    }
    XR_INFO("main", "{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return;
  }
}

}  // namespace xr::engine
