#include "engine/relay_metrics.h"

#include <cstdlib>

#include "engine/limits.h"

namespace xr::engine {
namespace {

constexpr const char* kStateNames[] = {"handshaking", "relaying"};
constexpr const char* kTransportNames[] = {"tcp", "ssl", "ws", "wss", "unix"};
constexpr const char* kPathNames[] = {"copy", "splice", "tls", "ws"};
constexpr const char* kDirNames[] = {"to_client", "to_server"};

template <typename T>
T* Must(Expected<T*> e) {
  if (!e.ok()) std::abort();  // fixed names and label counts: only a programming error gets here
  return *e;
}

}  // namespace

ConnTransport ConnTransportOf(std::string_view name) {
  for (int i = 0; i < 5; ++i) {
    if (name == kTransportNames[i]) return static_cast<ConnTransport>(i);
  }
  return ConnTransport::kTcp;
}

const char* ConnTransportName(ConnTransport t) { return kTransportNames[static_cast<int>(t)]; }

BytePath BytePathOf(std::string_view transport_name) {
  if (transport_name == "ssl" || transport_name == "wss") return BytePath::kTls;
  if (transport_name == "ws") return BytePath::kWs;
  return BytePath::kCopy;
}

RelayMetricsSet& RelayMetricsSet::Get() {
  static RelayMetricsSet* set = new RelayMetricsSet();
  return *set;
}

RelayMetricsSet::RelayMetricsSet() {
  auto registered = metrics::RelayMetrics::Register(registry_);
  if (!registered.ok()) std::abort();
  families_ = *registered;
  for (int s = 0; s < 2; ++s) {
    for (int t = 0; t < 5; ++t) connections_[s][t] = Must(families_.connections->With({kStateNames[s], kTransportNames[t]}));
  }
  for (int d = 0; d < 2; ++d) {
    for (int p = 0; p < 4; ++p) {
      if (d == static_cast<int>(ByteDir::kToServer) && p == static_cast<int>(BytePath::kSplice)) continue;
      bytes_[d][p] = Must(families_.bytes->With({kDirNames[d], kPathNames[p]}));
    }
  }
  // Splicing moves server->client bytes only: no to_server splice series (never asked for).
  bytes_[static_cast<int>(ByteDir::kToServer)][static_cast<int>(BytePath::kSplice)] =
      bytes_[static_cast<int>(ByteDir::kToServer)][static_cast<int>(BytePath::kCopy)];
  for (int t = 0; t < 5; ++t) login_seconds_[t] = Must(families_.login_seconds->With({kTransportNames[t]}));
  server_handshake_ = families_.server_handshake_seconds->Get();
  // Every login outcome the relay can report shows from the start (at 0): a PromQL rate over a
  // label that appears late misses its first increase.
  Must(families_.logins->With({"ok", "authenticated"}));
  Must(families_.logins->With({"failed", "authentication"}));
  build_info_ = Must(registry_.AddGauge("xpra_relay_build_info", "The relay's version (1)", {"version"}));
}

void RelayMetricsSet::SetBuildInfo(std::string_view version) {
  auto child = build_info_->With({std::string(version)});
  if (child.ok()) (*child)->Set(1);
}

void RelayMetricsSet::Login(bool ok, const char* reason) {
  auto child = families_.logins->With({ok ? "ok" : "failed", reason});
  if (child.ok()) (*child)->Inc();
}

void RelayMetricsSet::SetBackend(std::string_view name) {
  auto child = families_.backend->With({std::string(name)});
  if (child.ok()) (*child)->Set(1);
}

std::string RelayMetricsSet::Render() {
  families_.backoff_addresses->Get()->Set(static_cast<int64_t>(GlobalAdmission().BackedOffSources(NowMs())));
  families_.prelogin_memory_bytes->Get()->Set(static_cast<int64_t>(GlobalLoginMemory().used()));
  return registry_.Render();
}

}  // namespace xr::engine
