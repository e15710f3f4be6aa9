// xpra-relay: parses the command line, picks the I/O backend (io_uring or epoll), opens listeners, runs one reactor
// per thread; the main thread then runs engine/reload.h (signals, SIGHUP reload, socket takeover).
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <grp.h>
#include <sys/stat.h>

#include <filesystem>

#include <fmt/ranges.h>

#include "auth/factory.h"
#include "cluster/cluster_cli.h"
#include "cluster/cluster_node.h"
#include "base/process.h"
#include "engine/control.h"
#include "engine/limits.h"
#include "engine/stats.h"
#include "session_registry/session_launcher.h"
#include "session_registry/socket_dirs.h"
#include "engine/config.h"
#include "engine/front_end.h"
#include "engine/log.h"
#include "engine/metrics_server.h"
#include "engine/reactor.h"
#include "engine/relay_metrics.h"
#include "engine/reload.h"
#include "engine/sd_notify.h"
#include "engine/backend_choice.h"
#include "engine/version.h"

using namespace xr;
using namespace xr::engine;

namespace {

std::string Hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

Expected<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kIo, "cannot read the encryption keyfile " + path);
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) return MakeError(ErrorCode::kMalformed, "the encryption keyfile " + path + " is empty");
  return key;
}

// The relay's own :DISPLAY endpoint: relay-wide info, and stop = graceful shutdown.
class RelayControl final : public ControlTarget {
 public:
  RelayControl(std::string display, std::vector<std::string> listeners, std::vector<std::string> auth, int threads,
               std::string io_backend)
      : display_(std::move(display)), listeners_(std::move(listeners)), auth_(std::move(auth)), threads_(threads),
        io_backend_(std::move(io_backend)), started_(NowMs()) {}
  Value Info() override {
    const RelayCounters& c = Counters();
    TrafficTotals t;
    for (const Reactor* r : reactors_) t.Add(r->stats().traffic);
    Value counts{Dict{}};
    counts.set("accepted", static_cast<long long>(c.accepted.load()));
    counts.set("handshaking", static_cast<long long>(c.handshaking.load()));
    counts.set("active", static_cast<long long>(c.relaying.load()));
    counts.set("total", static_cast<long long>(c.relayed_total.load()));
    counts.set("failed-auth", static_cast<long long>(c.auth_failures.load()));
    counts.set("closed", static_cast<long long>(c.closed.load()));
    counts.set("bytes-to-client", static_cast<long long>(t.bytes_to_client));
    counts.set("bytes-to-server", static_cast<long long>(t.bytes_to_server));
    counts.set("bytes-spliced", static_cast<long long>(t.bytes_spliced));
    counts.set("recv-ring-empty", static_cast<long long>(t.recv_nobufs));
    List listeners, auth;
    {
      std::lock_guard lock(mu_);  // a reload may be replacing them
      for (const auto& l : listeners_) listeners.emplace_back(std::string_view(l));
      for (const auto& a : auth_) auth.emplace_back(std::string_view(a));
    }
    Value proxy{Dict{}};
    proxy.set("version", kRelayVersion);
    proxy.set("implementation", "xpra-relay");
    proxy.set("display", std::string_view(display_));
    proxy.set("uptime", static_cast<long long>((NowMs() - started_) / 1000));
    proxy.set("threads", threads_);
    proxy.set("io-backend", std::string_view(io_backend_));
    proxy.set("listeners", std::move(listeners));
    proxy.set("auth", std::move(auth));
    proxy.set("connections", std::move(counts));
    Value out{Dict{}};
    out.set("proxy", std::move(proxy));
    out.set("instances", Instances().ToValue());
    if (cluster_info_) out.set("cluster", cluster_info_());
    return out;
  }
  // The "cluster" subtree of Info (--cluster); set once, before any reactor thread runs.
  void SetClusterInfo(std::function<Value()> info) { cluster_info_ = std::move(info); }
  bool Stop() override {
    XR_INFO("main", "stop requested on the control socket {}", display_);
    kill(getpid(), SIGTERM);
    return true;
  }
  std::string name() const override { return display_; }
  // The reactors whose traffic Info sums; set once, before any reactor thread runs.
  void SetReactors(std::vector<const Reactor*> reactors) { reactors_ = std::move(reactors); }
  // Where takeover requests go (engine/reload.h); set once, before any reactor thread runs.
  void SetMailbox(TakeoverMailbox* mailbox) { mailbox_ = mailbox; }
  // After a reload: what Info lists.
  void SetListenersAndAuth(std::vector<std::string> listeners, std::vector<std::string> auth) {
    std::lock_guard lock(mu_);
    listeners_ = std::move(listeners);
    auth_ = std::move(auth);
  }
  bool Takeover(uint64_t ctl, UniqueFd conn) override {
    if (mailbox_ == nullptr) return false;
    mailbox_->Request(ctl, std::move(conn));
    return true;
  }
  void TakeoverDone(uint64_t ctl, bool confirmed) override {
    if (mailbox_ != nullptr) mailbox_->Done(ctl, confirmed);
  }

 private:
  TakeoverMailbox* mailbox_ = nullptr;
  std::function<Value()> cluster_info_;
  std::mutex mu_;  // listeners_ and auth_
  std::vector<const Reactor*> reactors_;
  std::string display_;
  std::vector<std::string> listeners_;
  std::vector<std::string> auth_;
  int threads_;
  std::string io_backend_;
  int64_t started_;
};

// Removes control sockets a crashed relay left behind (files nobody listens on).
void CleanStaleSockets(const std::string& dir, const std::string& hostname, const std::string& display) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename();
    bool ours = name.starts_with(hostname + "-proxy-") ||
                (!display.empty() && name == hostname + "-" + display.substr(1));
    if (!ours || !e.is_socket(ec)) continue;
    if (registry::ProbeSocket(e.path()) == registry::SocketState::kLive) continue;
    if (::unlink(e.path().c_str()) == 0) XR_INFO("main", "removed stale control socket {}", e.path().string());
  }
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "xpra-relay: %s\n", message.c_str());
  return 1;
}

// Blocks SIGINT/SIGTERM/SIGHUP in this thread and every thread it starts (the signal loop
// takes them with sigtimedwait); ignores SIGPIPE. Returns the set to wait on.
sigset_t BlockSignals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&sigs, s);  // SIGUSR1: takeover mailbox
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return sigs;
}

// --ssl-cert/--ssl-key and the other --ssl-* options as TlsOptions (one directory: cert_dir).
tls::TlsOptions TlsOptionsFrom(const RelayConfig& cfg) {
  tls::TlsOptions o;
  std::error_code ec;
  if (cfg.ssl_certs.size() == 1 && std::filesystem::is_directory(cfg.ssl_certs[0], ec)) {
    o.cert_dir = cfg.ssl_certs[0];
  } else {
    for (size_t i = 0; i < cfg.ssl_certs.size(); ++i) {
      o.certs.push_back(tls::CertKeyPair{cfg.ssl_certs[i], i < cfg.ssl_keys.size() ? cfg.ssl_keys[i] : ""});
    }
  }
  o.protocols = cfg.ssl_protocols;
  o.ciphers = cfg.ssl_ciphers;
  o.ca_certs = cfg.ssl_ca_certs;
  o.client_verify_mode = cfg.ssl_client_verify_mode;
  return o;
}

// The front end's settings for each kind of tcp bind (sniffing tcp, ssl, ws, wss); null for a
// tcp bind when it would only ever see xpra (no certificate, no HTML5 client).
struct FrontEnds {
  std::shared_ptr<tls::ContextHolder> tls;
  std::shared_ptr<const FrontEndConfig> by_entry[4];
};

Expected<FrontEnds> MakeFrontEnds(const RelayConfig& cfg) {
  FrontEnds out;
  if (!cfg.ssl_certs.empty() && cfg.ssl != "off") {
    auto holder = tls::ContextHolder::Create(TlsOptionsFrom(cfg));
    if (!holder.ok()) return holder.error();
    out.tls = std::shared_ptr<tls::ContextHolder>(std::move(*holder));
    auto set = out.tls->current();
    for (const auto& w : set->warnings()) XR_WARN("main", "TLS: {}", w);
    for (const auto& c : set->certificates()) {
      XR_INFO("main", "TLS certificate {} for {}", c.cert_file, fmt::join(c.names, ", "));
    }
  }
  std::shared_ptr<const http::StaticSite> site;
  if (cfg.html != "off" && cfg.html != "no" && cfg.html != "false") {
    http::StaticOptions so;
    bool named = cfg.html != "auto" && cfg.html != "on" && cfg.html != "yes" && cfg.html != "true";
    if (named) so.root = cfg.html;
    std::error_code ec;
    if (named || cfg.html != "auto" || std::filesystem::is_directory(so.root, ec)) {
      auto opened = http::StaticSite::Open(so);
      if (!opened.ok()) return MakeError(opened.error().code, "--html: " + opened.error().message);
      site = std::make_shared<const http::StaticSite>(std::move(*opened));
    }
  }
  // One table of per-source TLS handshake buckets for every bind.
  auto tls_rate = std::make_shared<HandshakeRate>(cfg.ssl_max_handshake_rate_per_address,
                                                  cfg.ssl_handshake_burst_per_address);
  for (int e = 0; e < 4; ++e) {
    auto fc = std::make_shared<FrontEndConfig>();
    fc->tls_rate = tls_rate;
    fc->entry = static_cast<FrontEndConfig::Entry>(e);
    fc->tls = out.tls;
    fc->site = site;
    fc->sniff.timeout_ms = static_cast<uint32_t>(cfg.peek_timeout * 1000);
    fc->tls_limits.handshake_timeout_ms = static_cast<uint32_t>(cfg.ssl_handshake_timeout * 1000);
    fc->tls_limits.max_handshake_bytes = cfg.ssl_max_handshake_bytes;
    fc->http.head_timeout_ms = static_cast<uint32_t>(cfg.http_timeout * 1000);
    fc->http.max_header_bytes = cfg.http_max_header_bytes;
    fc->ws.decoder.max_frame_payload = cfg.websocket_max_frame;
    fc->ws.decoder.max_message_payload = std::max<uint64_t>(cfg.websocket_max_frame, cfg.max_packet_size + 4096);
    if (fc->plain_tcp_only()) continue;
    out.by_entry[e] = fc;
  }
  return out;
}

// A bind's PROXY protocol settings (proxy-protocol=v1|v2, --proxy-protocol-from; checked by
// the config already).
std::shared_ptr<const ProxyProtocolConfig> MakeProxyProtocol(const RelayConfig& cfg, int version) {
  auto p = std::make_shared<ProxyProtocolConfig>();
  p->limits.accept = version == 1 ? proxy::Versions::kV1 : proxy::Versions::kV2;
  if (auto from = CidrList::Parse(cfg.proxy_protocol_from); from.ok()) p->from = *from;
  return p;
}

// --bind-metrics: the Prometheus endpoint on its own thread (null when not asked for).
Expected<std::unique_ptr<MetricsServer>> StartMetrics(const RelayConfig& cfg, std::string_view backend) {
  RelayMetricsSet& m = RelayMetricsSet::Get();
  m.SetBackend(backend);
  m.SetBuildInfo(kRelayVersion);
  if (cfg.bind_metrics.empty()) return std::unique_ptr<MetricsServer>();
  auto bind = ParseTcpBind(cfg.bind_metrics);
  if (!bind.ok()) return bind.error();
  MetricsServerOptions o;
  o.host = bind->host;
  o.port = bind->port;
  auto server = MetricsServer::Start(o, [] { return RelayMetricsSet::Get().Render(); });
  if (!server.ok()) return server.error();
  XR_INFO("main", "metrics on http://{}:{}/metrics", o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host,
          (*server)->port());
  return server;
}

// System-wide mode's launcher (null unless --proxy-start-sessions), shared by every bind, and
// the start-up line that says how users' sessions are found and started.
std::shared_ptr<registry::SessionLauncher> MakeSessionLauncher(const RelayConfig& cfg) {
  if (!cfg.system_wide) return nullptr;
  if (!cfg.proxy_start_sessions) {
    XR_INFO("main", "system-wide mode as uid {}: sessions found in each user's socket dirs, none started", geteuid());
    return nullptr;
  }
  registry::LauncherOptions o;
  std::istringstream words(cfg.start_session_command);
  for (std::string w; words >> w;) o.command.push_back(w);
  o.timeout_ms = static_cast<int64_t>(cfg.start_session_timeout * 1000);
  o.max_per_user = cfg.max_sessions_per_user;
  o.max_concurrent = cfg.max_concurrent_starts;
  o.min_uid = cfg.start_session_min_uid;
  const std::vector<std::string> cmd = o.command.empty() ? registry::DefaultStartCommand() : o.command;
  XR_INFO("main", "system-wide mode as uid {}: sessions found in each user's socket dirs, started on demand with: {}{}",
          geteuid(), fmt::join(cmd, " "), geteuid() != 0 && o.command.empty() ? " (needs root: the default launcher will fail)" : "");
  return std::make_shared<registry::SessionLauncher>(std::move(o));
}

// One listener spec per --bind-tcp / --bind, each with the session settings of its sessions.
Expected<std::vector<ListenerSpec>> MakeListenerSpecs(const RelayConfig& cfg, AuthModules* modules,
                                                      const FrontEnds& fronts) {
  std::string aes_key;
  if (cfg.tcp_encryption == "AES" || !cfg.tcp_encryption_keyfile.empty()) {
    // Checked at start-up whenever given: a missing or unreadable keyfile is a clear error now,
    // not a login failure later.
    auto key = ReadKeyFile(cfg.tcp_encryption_keyfile);
    if (!key.ok()) return key.error();
    aes_key = std::move(*key);
  }
  std::string hostname = Hostname();
  std::vector<ListenerSpec> specs;
  const std::shared_ptr<registry::SessionLauncher> launcher = MakeSessionLauncher(cfg);
  for (const auto& b : cfg.binds) {
    bool tcp = b.kind == BindOption::Kind::kTcp;
    std::string auth_spec = !b.auth.empty() ? b.auth : (tcp ? cfg.tcp_auth : cfg.unix_auth);
    auto& module = (*modules)[auth_spec];
    if (!module) {
      auto m = auth::CreateAuthModule(auth_spec);
      if (!m.ok()) return MakeError(m.error().code, "auth '" + auth_spec + "': " + m.error().message);
      module = std::shared_ptr<auth::AuthModule>(std::move(*m));
    }
    auto sc = std::make_shared<SessionConfig>();
    sc->auth = module;
    sc->registry.socket_dirs = cfg.socket_dirs;
    sc->registry.hostname = registry::DefaultSocketHostname();  // as the control sockets (XPRA_SOCKET_HOSTNAME)
    if (!cfg.display.empty()) sc->registry.own_display = cfg.display;
    sc->registry.system_wide = cfg.system_wide;
    sc->registry.launcher = launcher;
    sc->aes = tcp && cfg.tcp_encryption == "AES";
    if (sc->aes) sc->aes_key = aes_key;
    sc->identity = ProxyIdentity{kRelayVersion, hostname};
    sc->client_limits.max_payload = cfg.max_packet_size;
    sc->max_login_packet = std::min<size_t>(cfg.max_login_packet_size, cfg.max_packet_size);
    sc->max_login_elements = cfg.max_login_elements;
    sc->server_limits.max_payload = cfg.max_server_packet_size;
    sc->login_timeout_ms = static_cast<int64_t>(cfg.login_timeout * 1000);
    sc->server_timeout_ms = static_cast<int64_t>(cfg.server_timeout * 1000);
    ListenerSpec spec;
    spec.kind = tcp ? ListenerSpec::Kind::kTcp : ListenerSpec::Kind::kUnix;
    spec.host = b.host;
    spec.port = b.port;
    spec.path = b.path;
    spec.session = sc;
    if (tcp) spec.front = fronts.by_entry[static_cast<int>(b.entry)];
    if (tcp && b.proxy_protocol != 0) spec.proxy = MakeProxyProtocol(cfg, b.proxy_protocol);
    spec.key = spec.describe();  // as configured: a port 0 stays 0 here
    specs.push_back(spec);
  }
  return specs;
}

// Control sockets live in the first socket dir (as xpra's): creates it (given to
// --socket-group), checks the relay's own display is free, removes stale sockets, and adds
// the display's control listener to `specs`.
Expected<ControlConfig> SetUpControl(const RelayConfig& cfg, std::vector<ListenerSpec>* specs, bool taking_over) {
  ControlConfig control;
  control.socket_dir = registry::ExpandSocketDir(cfg.socket_dirs.front(), -1);
  control.hostname = registry::DefaultSocketHostname();
  control.display = cfg.display;
  control.instance_sockets = cfg.proxy_sockets;
  std::error_code ec;
  std::filesystem::create_directories(control.socket_dir, ec);
  if (ec) return MakeError(ErrorCode::kIo, "cannot create the socket dir " + control.socket_dir + ": " + ec.message());
  if (!cfg.socket_group.empty()) {
    group* g = getgrnam(cfg.socket_group.c_str());
    if (g == nullptr) return MakeError(ErrorCode::kMalformed, "unknown group for --socket-group: " + cfg.socket_group);
    control.mode = 0660;
    if (chown(control.socket_dir.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      return MakeError(ErrorCode::kIo, "cannot give the socket dir " + control.socket_dir + " to group " +
                                           cfg.socket_group + ": " + log::ErrnoText(errno));
    }
  }
  if (!control.display.empty() && !taking_over) {
    std::string path = ControlSocketPath(control, control.display);
    if (registry::ProbeSocket(path) == registry::SocketState::kLive) {
      return MakeError(ErrorCode::kIo, "display " + control.display + " is already in use (" + path + " is live)");
    }
  }
  CleanStaleSockets(control.socket_dir, control.hostname, control.display);
  if (!control.display.empty()) {
    ListenerSpec spec;
    spec.kind = ListenerSpec::Kind::kControl;
    spec.path = ControlSocketPath(control, control.display);
    specs->push_back(spec);
  }
  return control;
}

ReactorLimits MakeReactorLimits(const RelayConfig& cfg, IoMode io) {
  ReactorLimits limits;
  limits.io = io;
  limits.max_connections = cfg.max_connections;
  limits.recv_buffers = static_cast<unsigned>(cfg.recv_buffers);
  limits.recv_buffer = cfg.recv_buffer_size;
  limits.splice_min = cfg.splice_min;
  limits.max_handshakes = static_cast<int64_t>(cfg.max_logins);
  limits.idle_timeout_ms = static_cast<int64_t>(cfg.idle_timeout * 1000);
  return limits;
}

void ConfigureAdmissionFrom(const RelayConfig& cfg) {
  AdmissionConfig admission;
  admission.max_per_address = static_cast<uint32_t>(cfg.max_per_address);
  admission.free_failures = static_cast<uint32_t>(cfg.login_failures);
  admission.max_logins_per_source = static_cast<uint32_t>(cfg.max_logins_per_address);
  ConfigureAdmission(admission);
  ConfigureLoginMemory(cfg.max_login_memory);
  ConfigureKdfBudget(static_cast<int64_t>(cfg.max_kdf_iterations));
  // xpra 6.x AES keys are derived on the worker pool: at most half its threads at once.
  GlobalKdfBudget().SetMaxConcurrent(std::max(1, static_cast<int>(cfg.auth_threads) / 2));
}

// One reactor per thread, each with its listeners (tcp shared by SO_REUSEPORT; unix ones on
// the first reactor only). The relay's info sums their traffic.
Expected<std::vector<std::unique_ptr<Reactor>>> MakeReactors(int threads, WorkerPool* pool, const RelayConfig& cfg,
                                                             IoMode io, std::vector<ListenerSpec> specs,
                                                             const ControlConfig& control, RelayControl* relay,
                                                             const HandedSockets& handed) {
  std::vector<std::unique_ptr<Reactor>> reactors;
  SessionEnv env{&GlobalAdmission(), &Counters(), NowMs, &GlobalLoginMemory(), &GlobalKdfBudget()};
  for (int i = 0; i < threads; ++i) {
    auto r = std::make_unique<Reactor>(i, pool, MakeReactorLimits(cfg, io), control, env);
    if (Status s = r->Init(ReactorSpecs(specs, handed, i, threads), threads > 1, i == 0); !s.ok()) return s.error();
    if (i == 0) {
      // --bind-tcp=HOST:0: every reactor listens on the port the first one got.
      for (size_t k = 0; k < specs.size(); ++k) {
        if (specs[k].kind == ListenerSpec::Kind::kTcp && specs[k].port == 0) specs[k].port = r->bound_port(k);
      }
    }
    reactors.push_back(std::move(r));
  }
  std::vector<const Reactor*> sources;
  for (const auto& r : reactors) sources.push_back(r.get());
  relay->SetReactors(std::move(sources));
  return reactors;
}

void LogStart(const std::vector<std::unique_ptr<Reactor>>& reactors, const std::vector<std::string>& auth_names,
              const ControlConfig& control, uint64_t fd_limit) {
  std::string listening;
  for (const auto& b : reactors[0]->bound()) listening += (listening.empty() ? "" : ", ") + b;
  std::string auth_list;
  for (const auto& n : auth_names) auth_list += (auth_list.empty() ? "" : ", ") + n;
  size_t threads = reactors.size();
  XR_INFO("main", "xpra-relay {} on {} ({} reactor thread{}, open-file limit {}, auth: {}, control sockets in {})",
          kRelayVersion, listening, threads, threads == 1 ? "" : "s", static_cast<unsigned long long>(fd_limit),
          auth_list, control.socket_dir);
}

// Set when a reactor's backend failed: the process then exits 1.
std::atomic<bool> g_fatal{false};

std::vector<std::thread> StartReactorThreads(const std::vector<std::unique_ptr<Reactor>>& reactors) {
  std::vector<std::thread> threads;
  for (const auto& r : reactors) {
    Reactor* rp = r.get();
    threads.emplace_back([rp] {
      pthread_setname_np(pthread_self(), "xr-reactor");
      if (!rp->Run()) {
        g_fatal = true;
        kill(getpid(), SIGTERM);  // wakes the signal loop, which stops everything
      }
    });
  }
  return threads;
}

// Everything `cfg` needs to run, made without touching the running relay: front ends (TLS,
// HTML), auth modules (those of `reuse` kept for specs it has), listener specs, limits.
Expected<PreparedConfig> Prepare(const RelayConfig& cfg, const AuthModules& reuse, IoMode io) {
  auto fronts = MakeFrontEnds(cfg);
  if (!fronts.ok()) return fronts.error();
  PreparedConfig out;
  out.cfg = cfg;
  out.modules = reuse;
  auto specs = MakeListenerSpecs(cfg, &out.modules, *fronts);
  if (!specs.ok()) return specs.error();
  for (auto it = out.modules.begin(); it != out.modules.end();) {
    bool used = false;
    for (const auto& spec : *specs) used = used || spec.session->auth == it->second;
    it = used ? std::next(it) : out.modules.erase(it);
  }
  out.binds = std::move(*specs);
  out.limits = MakeReactorLimits(cfg, io);
  out.tls = fronts->tls != nullptr;
  return out;
}

// What `xpra info` lists for a configuration: its listeners (binds, then the control socket)
// and its auth modules.
std::pair<std::vector<std::string>, std::vector<std::string>> InfoNames(const PreparedConfig& p,
                                                                        const std::vector<ListenerSpec>& control) {
  std::vector<std::string> listeners, auth;
  for (const auto& spec : p.binds) listeners.push_back(spec.describe());
  for (const auto& spec : control) listeners.push_back(spec.describe());
  for (const auto& [spec, m] : p.modules) auth.emplace_back(m->name());
  return {std::move(listeners), std::move(auth)};
}

// --cluster: what the cluster thread asks of the relay. Each call posts to every reactor and
// waits a bounded time for their answers: a reactor never waits for the cluster thread.
class RelayClusterHost final : public cluster::ClusterHost {
 public:
  explicit RelayClusterHost(const std::vector<std::unique_ptr<Reactor>>* reactors) : reactors_(reactors) {}

  std::optional<std::vector<cluster::ConnRow>> Snapshot(int64_t timeout_ms) override {
    auto g = std::make_shared<Gather<std::vector<RelayedConnection>>>(reactors_->size());
    for (const auto& r : *reactors_) {
      Reactor* rp = r.get();
      rp->Post([rp, g] { g->Add(rp->RelayedConnections()); });
    }
    auto parts = g->Wait(timeout_ms);
    if (!parts) return std::nullopt;
    std::vector<cluster::ConnRow> rows;
    for (const auto& part : *parts) {
      for (const auto& c : part) {
        rows.push_back(cluster::ConnRow{c.instance, c.id, c.username, c.target, c.transport, c.peer, c.started_unix,
                                        c.bytes_to_client, c.bytes_to_server});
      }
    }
    return rows;
  }

  bool Stop(const std::string& instance, const std::string& detail, int64_t timeout_ms) override {
    auto g = std::make_shared<Gather<bool>>(reactors_->size());
    for (const auto& r : *reactors_) {
      Reactor* rp = r.get();
      rp->Post([rp, g, instance, detail] { g->Add(rp->StopInstance(instance, detail)); });
    }
    auto found = g->Wait(timeout_ms);
    if (!found) return false;
    for (bool f : *found) {
      if (f) return true;
    }
    return false;
  }

  void Log(bool warning, const std::string& line) override {
    if (warning) {
      XR_WARN("cluster", "{}", line);
    } else {
      XR_INFO("cluster", "{}", line);
    }
  }

 private:
  // One answer per reactor, gathered for a thread that waits a bounded time (late answers
  // land in the shared state and are dropped with it).
  template <typename T>
  struct Gather {
    explicit Gather(size_t n) : pending(n) {}
    void Add(T v) {
      std::lock_guard lock(mu);
      parts.push_back(std::move(v));
      if (--pending == 0) cv.notify_all();
    }
    std::optional<std::vector<T>> Wait(int64_t timeout_ms) {
      std::unique_lock lock(mu);
      if (!cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return pending == 0; })) return std::nullopt;
      return std::move(parts);
    }
    std::mutex mu;
    std::condition_variable cv;
    size_t pending;
    std::vector<T> parts;
  };
  const std::vector<std::unique_ptr<Reactor>>* reactors_;
};

// The cluster subtree of the relay's `xpra info`: the node, the database (no password) and the
// live nodes with their connection counts, as of the last heartbeat.
Value ClusterInfo(const cluster::ClusterNode& node) {
  cluster::ClusterStatus st = node.status();
  Value out{Dict{}};
  out.set("node", std::string_view(st.node));
  out.set("database", std::string_view(st.database));
  out.set("connected", st.connected);
  out.set("schema-version", st.schema_version);
  out.set("heartbeats", static_cast<long long>(st.heartbeats));
  out.set("registered-connections", static_cast<long long>(st.registered));
  if (!st.last_error.empty()) out.set("last-error", log::Sanitize(st.last_error, 200));
  Value nodes{Dict{}};
  long long total = 0;
  for (const auto& n : st.live_nodes) {
    Value v{Dict{}};
    v.set("address", std::string_view(n.address));
    v.set("connections", static_cast<long long>(n.connections));
    v.set("heartbeat-age-ms", static_cast<long long>(n.heartbeat_age_ms));
    nodes.set(n.name, std::move(v));
    total += n.connections;
  }
  out.set("live-nodes", static_cast<long long>(st.live_nodes.size()));
  out.set("nodes", std::move(nodes));
  out.set("connections", total);
  return out;
}

// --cluster: joins the cluster once the reactors run (null without --cluster).
Expected<std::unique_ptr<cluster::ClusterNode>> StartCluster(const RelayConfig& cfg, RelayClusterHost* host,
                                                             const std::vector<std::unique_ptr<Reactor>>& reactors) {
  if (cfg.cluster.empty()) return std::unique_ptr<cluster::ClusterNode>();
  cluster::ClusterOptions o;
  o.uri = cfg.cluster;
  const std::vector<std::string>& bound = reactors[0]->bound();
  o.address = bound.empty() ? "" : bound[0];
  o.node = cfg.cluster_node;
  if (o.node.empty()) {
    const size_t colon = o.address.rfind(':');
    o.node = Hostname() + (colon == std::string::npos ? "" : o.address.substr(colon));
  }
  o.version = kRelayVersion;
  o.heartbeat_ms = static_cast<int64_t>(cfg.cluster_heartbeat * 1000);
  o.ttl_ms = static_cast<int64_t>(cfg.cluster_ttl * 1000);
  return cluster::ClusterNode::Start(std::move(o), host);
}

// `xpra_relay cluster ...`: the database from --cluster=, else the `cluster` key of
// --config=FILE (or of the default config file).
int ClusterCommand(int argc, char** argv) {
  cluster::CliOptions o;
  std::string config;
  std::vector<std::string> words;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with("--cluster=")) {
      o.uri = std::string(a.substr(10));
    } else if (a.starts_with("--config=")) {
      config = std::string(a.substr(9));
    } else if (a.starts_with("--limit=")) {
      o.limit = std::strtoll(std::string(a.substr(8)).c_str(), nullptr, 10);
    } else if (a == "--help" || a == "-h") {
      std::fputs(cluster::ClusterUsage(), stdout);
      return 0;
    } else if (a.starts_with("--")) {
      std::fprintf(stderr, "xpra_relay cluster: unknown option %s\n%s", std::string(a.substr(0, 40)).c_str(),
                   cluster::ClusterUsage());
      return 2;
    } else {
      words.emplace_back(a);
    }
  }
  if (o.uri.empty()) {
    std::error_code ec;
    if (config.empty() && std::filesystem::exists(kDefaultConfigFile, ec)) config = kDefaultConfigFile;
    if (!config.empty()) {
      auto entries = ReadConfigFile(config);
      if (!entries.ok()) return Fail(entries.error().message);
      for (const auto& e : *entries) {
        if (e.key == "cluster") o.uri = e.value;
      }
    }
  }
  std::ostringstream out, err;
  int rc = cluster::RunClusterCommand(o, words, out, err);
  std::fputs(out.str().c_str(), stdout);
  std::fputs(err.str().c_str(), stderr);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "cluster") return ClusterCommand(argc, argv);
  auto parsed = ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    if (parsed.error().code == ErrorCode::kOk) return 0;  // --help
    return Fail(parsed.error().message + "\nrun 'xpra-relay --help' for the options");
  }
  RelayConfig cfg = std::move(*parsed);
  log::Configure(log::Level::kInfo, cfg.debug);
  log::SetFormat(log::ParseFormat(cfg.log_format).value_or(log::Format::kText));  // --log-format
  const SdNotifier notify = SdNotifier::FromEnvironment();                          // systemd Type=notify
  if (!cfg.log_file.empty() && !log::OpenFile(cfg.log_file)) return Fail("cannot open log file " + cfg.log_file);
  auto io_mode = ParseIoMode(cfg.io);
  if (!io_mode.ok()) return Fail(io_mode.error().message);
  auto io = ChooseBackend(*io_mode);
  if (!io.ok()) return Fail(io.error().message);
  XR_INFO("main", "{}", io->log_line);
  sigset_t sigs = BlockSignals();
  uint64_t fd_limit = RaiseFdLimit();

  auto prepared = Prepare(cfg, {}, io->backend);
  if (!prepared.ok()) return Fail(prepared.error().message);
  // --takeover: the running relay's listening sockets, asked for once this configuration is
  // known to be good, confirmed once this relay accepts on them.
  HandedSockets handed;
  UniqueFd takeover_conn;
  if (!cfg.takeover.empty()) {
    auto got = takeover::RequestSockets(cfg.takeover, &takeover_conn);
    if (!got.ok()) return Fail(got.error().message);
    XR_INFO("takeover", "took over {} listening sockets from the relay at {}", got->size(), cfg.takeover);
    handed = ByListenerId(std::move(*got));
  }
  std::vector<ListenerSpec> specs = prepared->binds;
  auto control = SetUpControl(cfg, &specs, !cfg.takeover.empty());
  if (!control.ok()) return Fail(control.error().message);
  std::vector<ListenerSpec> control_specs;
  for (const auto& spec : specs) {
    if (spec.kind == ListenerSpec::Kind::kControl) control_specs.push_back(spec);
  }
  auto [listener_names, auth_names] = InfoNames(*prepared, control_specs);
  for (const auto& [id, fds] : handed) {
    bool kept = false;
    for (const auto& spec : specs) kept = kept || spec.id() == id;
    if (kept) continue;
    XR_INFO("takeover", "{}: not in this configuration, closed", id);
    // A unix bind's file goes with it (the old relay leaves the files of what it hands over).
    if (id.starts_with("unix:")) ::unlink(id.substr(5).c_str());
  }
  int threads = cfg.threads > 0 ? cfg.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto relay = std::make_shared<RelayControl>(control->display, listener_names, auth_names, threads, io->name());
  control->relay = relay;
  ConfigureAdmissionFrom(cfg);
  TakeoverMailbox mailbox;  // outlives the reactors, whose control sessions post to it
  relay->SetMailbox(&mailbox);

  // Declared before the pool, so destroyed after it: ~WorkerPool finishes the auth jobs still
  // queued or running, and each posts its result to its reactor (Reactor::Post), which must
  // still exist then.
  std::vector<std::unique_ptr<Reactor>> reactors;
  WorkerPool pool(cfg.auth_threads, 4096);
  auto made = MakeReactors(threads, &pool, cfg, io->backend, std::move(specs), *control, relay.get(), handed);
  if (!made.ok()) return Fail(made.error().message);
  reactors = std::move(*made);
  handed.clear();  // each reactor holds its own duplicate
  std::vector<std::string> args(argv + 1, argv + argc);
  IoMode io_backend = io->backend;
  RelayRuntime runtime(
      std::move(args),
      [io_backend](const RelayConfig& c, const AuthModules& reuse) { return Prepare(c, reuse, io_backend); },
      std::move(*prepared), control_specs, &reactors, &mailbox);
  if (Status s = runtime.AdoptListeners(); !s.ok()) return Fail(s.error().message);
  runtime.OnReload([relay, control_specs](const PreparedConfig& p) {
    auto [listeners, auth] = InfoNames(p, control_specs);
    relay->SetListenersAndAuth(std::move(listeners), std::move(auth));
  });
  LogStart(reactors, auth_names, *control, fd_limit);
  auto metrics_server = StartMetrics(cfg, io->name());
  if (!metrics_server.ok()) return Fail(metrics_server.error().message);
  SdNotifier::WarnIfFailed(notify.Ready(fmt::format("listening on {}", fmt::join(reactors[0]->bound(), ", "))));

  // The cluster thread starts before the reactors run (what it posts waits for them), so the
  // relay's info knows of it from the first request.
  RelayClusterHost cluster_host(&reactors);
  auto cluster_node = StartCluster(cfg, &cluster_host, reactors);
  if (!cluster_node.ok()) return Fail(cluster_node.error().message);
  if (*cluster_node) {
    cluster::ClusterNode* node = cluster_node->get();
    relay->SetClusterInfo([node] { return ClusterInfo(*node); });
  }
  std::vector<std::thread> workers = StartReactorThreads(reactors);
  if (takeover_conn.valid()) {
    // Accepting now (each reactor arms its accepts as it starts): the old relay may stop.
    if (Status s = takeover::Confirm(takeover_conn.get()); !s.ok()) {
      XR_WARN("takeover", "{}; both relays accept until the old one is stopped", s.error().message);
    } else {
      XR_INFO("takeover", "accepting on the sockets taken over; the relay at {} stops accepting and drains", cfg.takeover);
    }
    takeover_conn.reset();
  }
  runtime.Run(sigs, notify);
  if (*cluster_node) (*cluster_node)->Stop();  // leaves the cluster (its rows go) while the reactors still run
  if (g_fatal) XR_ERROR("main", "a reactor failed: stopping");
  SdNotifier::WarnIfFailed(notify.Stopping());  // systemd: STOPPING
  for (auto& r : reactors) r->Stop();
  for (auto& t : workers) t.join();
  XR_INFO("main", "stopped");
  return g_fatal ? 1 : 0;
}
