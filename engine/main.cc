// xpra-relay: parses the command line, probes io_uring, opens listeners, runs one reactor
// per thread, and handles signals (SIGTERM/SIGINT: graceful stop; SIGHUP: reopen logs, reload auth).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <thread>

#include "auth/factory.h"
#include "engine/config.h"
#include "engine/log.h"
#include "engine/reactor.h"
#include "engine/version.h"

using namespace xr;
using namespace xr::engine;

namespace {

std::string Hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// Raises the open-file soft limit to the hard limit; returns the limit in force.
rlim_t RaiseFdLimit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur;
}

Expected<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kIo, "cannot read the encryption keyfile " + path);
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) return MakeError(ErrorCode::kMalformed, "the encryption keyfile " + path + " is empty");
  return key;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "xpra-relay: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    if (parsed.error().code == ErrorCode::kOk) return 0;  // --help
    return Fail(parsed.error().message + "\nrun 'xpra-relay --help' for the options");
  }
  RelayConfig cfg = std::move(*parsed);
  log::Configure(log::Level::kInfo, cfg.debug);
  if (!cfg.log_file.empty() && !log::OpenFile(cfg.log_file)) return Fail("cannot open log file " + cfg.log_file);

  if (Status s = ProbeIoUring(); !s.ok()) return Fail(s.error().message);

  // Signals are handled by this thread only (sigwait below); every other thread blocks them.
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rlim_t fd_limit = RaiseFdLimit();

  // One auth module instance per distinct spec, shared by the binds that use it.
  std::map<std::string, std::shared_ptr<auth::AuthModule>> modules;
  std::string aes_key;
  if (cfg.tcp_encryption == "AES") {
    auto key = ReadKeyFile(cfg.tcp_encryption_keyfile);
    if (!key.ok()) return Fail(key.error().message);
    aes_key = std::move(*key);
  }
  std::string hostname = Hostname();
  std::vector<ListenerSpec> specs;
  for (const auto& b : cfg.binds) {
    bool tcp = b.kind == BindOption::Kind::kTcp;
    std::string auth_spec = !b.auth.empty() ? b.auth : (tcp ? cfg.tcp_auth : cfg.unix_auth);
    auto& module = modules[auth_spec];
    if (!module) {
      auto m = auth::CreateAuthModule(auth_spec);
      if (!m.ok()) return Fail("auth '" + auth_spec + "': " + m.error().message);
      module = std::shared_ptr<auth::AuthModule>(std::move(*m));
    }
    auto sc = std::make_shared<SessionConfig>();
    sc->auth = module;
    sc->registry.socket_dirs = cfg.socket_dirs;
    sc->registry.hostname = hostname;
    if (!cfg.display.empty()) sc->registry.own_display = cfg.display;
    sc->aes = tcp && cfg.tcp_encryption == "AES";
    if (sc->aes) sc->aes_key = aes_key;
    sc->identity = ProxyIdentity{kRelayVersion, hostname};
    sc->client_limits.max_payload = cfg.max_packet_size;
    sc->login_timeout_ms = static_cast<int64_t>(cfg.login_timeout * 1000);
    sc->server_timeout_ms = static_cast<int64_t>(cfg.server_timeout * 1000);
    ListenerSpec spec;
    spec.kind = tcp ? ListenerSpec::Kind::kTcp : ListenerSpec::Kind::kUnix;
    spec.host = b.host;
    spec.port = b.port;
    spec.path = b.path;
    spec.session = sc;
    specs.push_back(spec);
  }

  int threads = cfg.threads > 0 ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  WorkerPool pool(cfg.auth_threads, 4096);
  ReactorLimits limits;
  limits.max_connections = cfg.max_connections;
  std::vector<std::unique_ptr<Reactor>> reactors;
  for (int i = 0; i < threads; ++i) {
    auto r = std::make_unique<Reactor>(i, &pool, limits);
    if (Status s = r->Init(specs, threads > 1, i == 0); !s.ok()) return Fail(s.error().message);
    reactors.push_back(std::move(r));
  }
  std::string listening;
  for (const auto& b : reactors[0]->bound()) listening += (listening.empty() ? "" : ", ") + b;
  XR_INFO("main", "xpra-relay {} on {} ({} reactor thread{}, open-file limit {}, auth: {})", kRelayVersion,
          listening, threads, threads == 1 ? "" : "s", static_cast<unsigned long long>(fd_limit),
          [&] {
            std::string names;
            for (const auto& [spec, m] : modules) names += (names.empty() ? "" : ", ") + std::string(m->name());
            return names;
          }());

  static std::atomic<bool> fatal{false};
  std::vector<std::thread> workers;
  for (auto& r : reactors) {
    Reactor* rp = r.get();
    workers.emplace_back([rp] {
      pthread_setname_np(pthread_self(), "xr-reactor");
      if (!rp->Run()) {
        fatal = true;
        kill(getpid(), SIGTERM);  // wakes the signal loop below, which stops everything
      }
    });
  }

  while (true) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log::Reopen();
      for (auto& [spec, m] : modules) {
        if (Status s = m->Reload(); !s.ok()) XR_WARN("main", "reload of auth {} failed: {}", m->name(), s.error().message);
      }
      XR_INFO("main", "SIGHUP: log re-opened, auth reloaded");
      continue;
    }
    XR_INFO("main", "{}: stopping", fatal ? "reactor failure" : sig == SIGINT ? "SIGINT" : "SIGTERM");
    break;
  }
  for (auto& r : reactors) r->Stop();
  for (auto& t : workers) t.join();
  XR_INFO("main", "stopped");
  return fatal ? 1 : 0;
}
