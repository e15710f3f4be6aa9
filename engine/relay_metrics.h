#pragma once
// The relay's own metrics (issue 19), on one process-wide registry: what the data path updates
// is resolved to a child once (a fixed table per state x transport, direction x path), so an
// update is one relaxed atomic add on the calling thread's shard, never a lookup or a lock.
// Gauges that describe shared state (addresses in back-off, pre-login memory) are read at
// scrape time instead of being kept up to date on every event.
//
// Label values are fixed small sets chosen by the relay, never peer strings.

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/metrics.h"

namespace xr::engine {

// xpra_relay_connections{state, transport}
enum class ConnState : uint8_t { kHandshaking, kRelaying };
enum class ConnTransport : uint8_t { kTcp, kSsl, kWs, kWss, kUnix };
// xpra_relay_bytes_total{direction, path}: copy (plain passthrough or relayed frame by frame),
// splice (server->client without a copy), tls (a TLS client leg, wss included), ws (plain WebSocket).
enum class BytePath : uint8_t { kCopy, kSplice, kTls, kWs };
enum class ByteDir : uint8_t { kToClient, kToServer };

// "tcp", "ssl", "ws", "wss", "unix" -> the enum (unknown names: kTcp).
ConnTransport ConnTransportOf(std::string_view name);
const char* ConnTransportName(ConnTransport t);
// The bytes path of a client leg whose transport is `name` (tcp/unix: copy, ssl/wss: tls, ws: ws).
BytePath BytePathOf(std::string_view transport_name);

class RelayMetricsSet {
 public:
  // The process-wide set (registered on first use).
  static RelayMetricsSet& Get();

  metrics::Gauge* connections(ConnState s, ConnTransport t) {
    return connections_[static_cast<int>(s)][static_cast<int>(t)];
  }
  metrics::Counter* bytes(ByteDir d, BytePath p) { return bytes_[static_cast<int>(d)][static_cast<int>(p)]; }
  // A login ended: ok (reason "authenticated") or failed with a reason of the fixed set
  // (LoginFailureLabel in engine/session.h, or "client-closed").
  void Login(bool ok, const char* reason);
  void LoginSeconds(ConnTransport t, double seconds) { login_seconds_[static_cast<int>(t)]->Observe(seconds); }
  void ServerHandshakeSeconds(double seconds) { server_handshake_->Observe(seconds); }
  // xpra_relay_backend{backend="io_uring"} 1 (at start-up).
  void SetBackend(std::string_view name);
  // xpra_relay_build_info{version="0.1.0"} 1 (at start-up).
  void SetBuildInfo(std::string_view version);
  // The exposition text, after refreshing the gauges read at scrape time.
  std::string Render();
  metrics::Registry& registry() { return registry_; }

 private:
  RelayMetricsSet();
  metrics::Registry registry_;
  metrics::RelayMetrics families_;
  metrics::Gauge* connections_[2][5] = {};
  metrics::Counter* bytes_[2][4] = {};
  metrics::Histogram* login_seconds_[5] = {};
  metrics::Histogram* server_handshake_ = nullptr;
  metrics::GaugeFamily* build_info_ = nullptr;
};

}  // namespace xr::engine
