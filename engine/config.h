#pragma once
// RelayConfig: everything the command line and the config file set, parsed and checked
// before anything starts (and, for a SIGHUP reload, before anything changes).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace xr::engine {

struct BindOption {
  enum class Kind { kTcp, kUnix } kind = Kind::kTcp;
  std::string host;
  uint16_t port = 0;
  std::string path;
  std::string auth;  // per-bind auth spec ("sqlite,filename=x"); empty: the default for its kind
  // tcp binds: what connections start as: sniffed (--bind-tcp) or a dedicated --bind-ssl,
  // --bind-ws, --bind-wss.
  enum class Entry { kTcp, kSsl, kWs, kWss } entry = Entry::kTcp;
  int proxy_protocol = 0;  // tcp binds: 1 or 2 when connections start with a PROXY protocol v1/v2 header
};

// "tcp", "ssl", "ws", "wss" (the option is "bind-" + this).
const char* BindEntryName(BindOption::Entry e);

struct RelayConfig {
  std::string display;                  // ":20": the relay's own endpoint name (optional)
  std::vector<BindOption> binds;
  std::string tcp_auth;                 // default auth for tcp binds
  std::string ssl_auth, ws_auth, wss_auth;  // default auth for ssl/ws/wss binds (else tcp_auth)
  // TLS (xpra 3.1's options). --ssl=auto: tcp binds also take TLS when a certificate is given.
  std::string ssl = "auto";             // on | off | auto
  std::vector<std::string> ssl_certs;   // --ssl-cert, repeatable (or one directory of pairs)
  std::vector<std::string> ssl_keys;    // --ssl-key, one per --ssl-cert (or none: key in the cert file)
  std::string ssl_ca_certs;
  std::string ssl_client_verify_mode;
  std::string ssl_protocols = "TLSv1.2,TLSv1.3";
  std::string ssl_ciphers;
  std::string html = "auto";            // on | off | auto | DIR (auto: xpra's www when present)
  // Bounds of the front end (before login; docs/security.md).
  double peek_timeout = 1;              // seconds for the first decisive bytes
  double ssl_handshake_timeout = 10;    // seconds for a TLS handshake
  uint64_t ssl_max_handshake_bytes = 32u << 10;
  double ssl_max_handshake_rate_per_address = 20;  // TLS handshakes started per second per source (0: no limit)
  uint32_t ssl_handshake_burst_per_address = 40;   // ... of which this many at once
  double http_timeout = 10;             // seconds for an HTTP request head
  uint64_t http_max_header_bytes = 16u << 10;
  uint64_t websocket_max_frame = (16u << 20) + 4096;
  std::string unix_auth;                // default auth for unix binds (--auth)
  std::vector<std::string> socket_dirs;
  std::string tcp_encryption;           // "" or "AES"
  std::string tcp_encryption_keyfile;
  int threads = 0;                      // 0: one per core
  int auth_threads = 4;
  std::string debug;                    // debug categories
  std::string log_file;
  double login_timeout = 30;            // seconds
  double server_timeout = 20;           // seconds: target connect + server hello
  uint64_t max_packet_size = 16u << 20; // from the client
  uint64_t max_server_packet_size = 256u << 20;  // from the session's server (xpra's absolute limit)
  double idle_timeout = 90;             // seconds a relayed leg may be silent or not read; 0: never
  uint64_t max_connections = 10000;
  uint64_t max_logins = 200;            // logins in progress at once (xpra proxy: 200)
  uint64_t max_per_address = 256;       // connections from one source address
  uint64_t login_failures = 5;          // failed logins per address/user before back-off
  // The pre-login budget (issue 13): a real xpra 3.1.3 hello is 22,659 bytes of zlib, 67,247
  // decoded, 6,017 values.
  uint64_t max_logins_per_address = 16;         // logins in progress from one IPv4 address / IPv6 /64
  uint64_t max_login_packet_size = 1u << 20;    // a client frame before login, wire and decoded
  uint64_t max_login_elements = 100000;         // values in one decoded packet before login
  uint64_t max_login_memory = 256u << 20;       // held by all unauthenticated connections together
  uint64_t max_kdf_iterations = 200000;         // PBKDF2 iterations per second for unauthenticated clients
  uint64_t splice_min = 32u << 10;      // splice server frames with this much payload left (0: never)
  uint64_t recv_buffers = 256;          // provided receive buffers per reactor (power of two)
  uint64_t recv_buffer_size = 64u << 10; // bytes each
  bool proxy_sockets = true;            // a HOSTNAME-proxy-N control socket per connection
  std::string socket_group;             // control sockets mode 0660 for this group
  std::string log_format = "text";      // "text" or "json" (--log-format)
  std::string config_file;              // the config file read ("" when none)
  std::string io = "auto";              // I/O backend: auto (io_uring, else epoll), uring, epoll
  std::string bind_metrics;             // HOST:PORT serving GET /metrics ("" : none)
  std::string proxy_protocol_from;      // CIDR,...: who may send PROXY protocol headers
  std::string takeover;                 // the running relay's control socket to take the listeners of
  double drain_timeout = 0;             // seconds a relay that handed over keeps its sessions (0: until they end)
  // System-wide mode (issue 15): sessions are the authenticated user's own (found by uid), and
  // may be started on demand by a launcher (docs/architecture.md "System-wide mode").
  bool system_wide = false;
  bool proxy_start_sessions = false;    // start a session for a user with none / a client asking
  std::string start_session_command;    // argv template (%u %U %g %h %a); "": the default
  double start_session_timeout = 20;    // seconds: launch -> the new session's socket is live
  uint64_t max_sessions_per_user = 4;   // live sessions a user may have for a new one to start
  uint64_t max_concurrent_starts = 2;   // starts in progress at once (each holds an auth thread)
  int64_t start_session_min_uid = 1000; // users below this uid never get a session started
  // Cluster (issue 16): this node and its relayed connections registered in PostgreSQL, stops
  // from any node by LISTEN/NOTIFY (cluster/cluster_node.h). Restart-only.
  std::string cluster;                  // postgresql://... ("": not in a cluster)
  std::string cluster_node;             // this node's name ("": HOSTNAME:PORT of the first tcp bind)
  double cluster_heartbeat = 2;         // seconds between heartbeats
  double cluster_ttl = 10;              // seconds without a heartbeat before a node's rows are ignored and deleted
};

// Read when present and no --config=FILE is given.
inline constexpr const char* kDefaultConfigFile = "/etc/xpra-relay/xpra-relay.conf";

// One "key = value" line of a config file.
struct ConfigEntry {
  std::string key;
  std::string value;
  int line = 0;  // 1-based; the first line of a continued (trailing '\\') line
};

// xpra's config syntax (as xpra's own /etc/xpra/xpra.conf): one "key = value" per line,
// spaces around both trimmed, lines starting with '#' or '!' and blank lines skipped, a
// trailing backslash joins the next line (with a space), the same key may repeat. A line
// without '=' or with an empty key is an error "NAME:LINE: ...". At most 1 MiB.
Expected<std::vector<ConfigEntry>> ReadConfigText(std::string_view text, const std::string& name);
Expected<std::vector<ConfigEntry>> ReadConfigFile(const std::string& path);

// The whole configuration from `args` (the command line without argv[0]) and a config file:
// the one --config=FILE names (which must exist; "none" reads no file at all), else
// `default_config` when it exists. Every
// command-line option is a key (without "--"; "display" for the display); the command line
// wins: a key given there ignores the file's lines for it (all of them, for repeatable keys
// such as bind-tcp). Errors in the file name it and the line. No side effects (nothing
// printed, no global state), so a reload can validate a new configuration before applying it.
// --help: an Error with code kOk and the help text as message.
Expected<RelayConfig> ParseConfiguration(const std::vector<std::string>& args,
                                         const std::string& default_config = kDefaultConfigFile);

// What differs between a running configuration and a new one, one readable item per
// option ("threads: 2 -> 4", "bind-tcp added 0.0.0.0:14502", "tcp-auth changed"), in option
// order; empty when nothing differs. Auth specs and key files are named, never shown (they may
// hold a password). For the log line of a reload.
std::vector<std::string> ConfigChanges(const RelayConfig& before, const RelayConfig& after);

// ParseConfiguration over argv; on --help prints usage and returns an Error with code kOk ("exit 0").
Expected<RelayConfig> ParseCommandLine(int argc, char** argv);

// "HOST:PORT[,proxy-protocol=v1|v2][,auth=MODULE,opt=value...]" -> BindOption (tcp).
Expected<BindOption> ParseTcpBind(const std::string& text);

// Normalises "MODULE:opt=value,opt=value" to "MODULE,opt=value,opt=value".
std::string NormaliseAuthSpec(const std::string& spec);

}  // namespace xr::engine
