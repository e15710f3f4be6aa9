#pragma once
// Reactor: one thread, one I/O backend (io_uring or epoll), many connections. Each completion's user_data names the
// connection (high 56 bits) and the operation (low 8 bits); every opcode has its own error path.
// A connection is freed only once none of its operations is in flight.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/ip.h"
#include "codec/proxy_protocol.h"
#include "engine/instance_control.h"
#include "engine/leg.h"
#include "engine/limits.h"
#include "engine/session.h"
#include "engine/backend.h"
#include "engine/backend_choice.h"
#include "engine/worker_pool.h"

namespace xr::engine {

struct FrontEndConfig;

class ControlTarget;

// A bind's PROXY protocol (proxy-protocol=v1|v2): every connection must come from `from` and
// start with a header of that version, complete within `timeout_ms`; its source address then
// stands for the client everywhere (logs, back-off, per-address limits, xpra info).
struct ProxyProtocolConfig {
  proxy::ProxyLimits limits;  // .accept: the version the bind takes
  CidrList from;              // --proxy-protocol-from
  int64_t timeout_ms = 5000;
};

// One listening endpoint and the settings of the sessions it accepts.
struct ListenerSpec {
  enum class Kind { kTcp, kUnix, kControl } kind = Kind::kTcp;
  std::string host;  // tcp
  uint16_t port = 0;
  std::string path;  // unix
  std::shared_ptr<const SessionConfig> session;
  // tcp: what the connections start as (sniff; ssl/ws/wss binds), with TLS and HTML settings;
  // null: plain xpra only.
  std::shared_ptr<const FrontEndConfig> front;
  // tcp: connections start with a PROXY protocol header (null: they do not).
  std::shared_ptr<const ProxyProtocolConfig> proxy;
  // The bind this listener serves across reloads and takeovers (as configured, before a port
  // 0 is chosen); empty: describe().
  std::string key;
  // A socket already listening (handed over by the relay this one takes over from): Init
  // takes a duplicate of it instead of opening one. -1: open one.
  int inherited_fd = -1;
  std::string describe() const;
  std::string id() const { return key.empty() ? describe() : key; }
};

// Opens the socket of `spec` (tcp: with SO_REUSEPORT when `shared`, refusing a port another
// process holds when `check_free`; unix and control: at spec.path, `mode`), or duplicates
// spec.inherited_fd when set.
Expected<UniqueFd> OpenListenerSocket(const ListenerSpec& spec, bool shared, bool check_free, mode_t mode);

// Limits that apply to every connection of a reactor.
struct ReactorLimits {
  size_t recv_buffer = size_t{64} * 1024;         // bytes read per recv (one provided buffer)
  unsigned recv_buffers = 256;            // provided buffers per reactor (a power of two)
  size_t high_water = 1 << 20;            // stop reading a leg when the other leg has this queued
  size_t low_water = size_t{256} * 1024;         // resume reading below this
  int64_t close_linger_ms = 5000;         // time allowed to flush on close
  int64_t idle_timeout_ms = 90000;        // a relayed leg silent or unread this long ends it (0: never)
  size_t max_connections = 10000;         // per reactor
  int64_t max_handshakes = 200;           // logins in progress, relay-wide
  size_t splice_min = 0;                  // splice the rest of a server frame this large (0: never)
  IoMode io = IoMode::kUring;             // the I/O backend (kUring or kEpoll, as ChooseBackend said)
};

// Counters, read from any thread.
struct ReactorStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> relaying{0};
  std::atomic<uint64_t> closed{0};
  TrafficCounters traffic;  // written by the reactor's thread only
};

class Connection;

// One relayed connection as the cluster registers it (issue 16; cluster/cluster_node.h).
struct RelayedConnection {
  uint64_t id = 0;
  std::string instance;   // ":proxy-N"
  std::string username;   // sanitised
  std::string target;     // no credentials
  std::string transport;  // tcp, ssl, ws, wss
  std::string peer;       // the client's address (the PROXY protocol source when used)
  int64_t started_unix = 0;
  uint64_t bytes_to_client = 0;
  uint64_t bytes_to_server = 0;
};

class Reactor {
 public:
  // `env`: what the sessions of this reactor share with the rest of the relay (admission,
  // counters, clock).
  Reactor(int index, WorkerPool* pool, ReactorLimits limits, ControlConfig control, SessionEnv env);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Creates the ring and opens this reactor's listeners (tcp with SO_REUSEPORT when `shared`;
  // unix listeners only when `own_unix`). Fails with a readable message.
  Status Init(const std::vector<ListenerSpec>& specs, bool shared, bool own_unix);
  // Runs the event loop on the calling thread until Stop() has drained every connection;
  // false when the ring failed (the caller should stop the process with an error).
  bool Run();
  // Thread-safe: runs `fn` on the reactor thread soon.
  void Post(std::function<void()> fn);
  // Thread-safe: stop accepting, tell every client "server shutdown", flush, close, return from Run().
  void Stop();
  // Bound addresses ("127.0.0.1:14501"), valid after Init.
  const std::vector<std::string>& bound() const { return bound_; }
  // The port listener `i` (in Init's spec order, tcp only) is bound to: lets later reactors
  // share a port 0 choice.
  uint16_t bound_port(size_t i) const { return i < listeners_.size() ? listeners_[i].spec.port : 0; }
  const ReactorStats& stats() const { return stats_; }
  int index() const { return index_; }

  // An open listening socket and the settings of what it accepts.
  struct OpenListener {
    ListenerSpec spec;
    UniqueFd fd;  // empty when the reactor already listens for spec.id()
  };
  // Reactor thread only (Post it). New limits for new work (the backend and its receive
  // buffers stay as they are); the listeners become `wanted`: a listener whose id is wanted
  // keeps its socket and takes the new spec (new connections get its session and front-end
  // settings, live ones keep theirs); a wanted id the reactor lacks comes with its open
  // socket and is armed; a listener not wanted has its accept cancelled and its socket
  // closed (a unix bind's file removed when `unlink_removed`). No live connection is touched.
  void Reconfigure(const ReactorLimits& limits, std::vector<OpenListener> wanted, bool unlink_removed);
  // (id, fd) of each listener, after Init and before Run: the main thread keeps duplicates.
  std::vector<std::pair<std::string, int>> listener_fds() const;
  // Connections alive (relayed, logging in or control), from any thread.
  uint64_t live_connections() const { return stats_.active.load(); }
  // Reactor thread only (Post it): this reactor's connections that are relaying now.
  std::vector<RelayedConnection> RelayedConnections() const;
  // Reactor thread only: ends the relayed connection `instance` (":proxy-N") as `xpra stop
  // :proxy-N` does, the client told `detail`; false when it is not on this reactor.
  bool StopInstance(std::string_view instance, std::string_view detail);

  // What a completion is for: the low 8 bits of its tag (the high 56 name the connection, or
  // the listener for kAccept). Per-leg operations come in pairs, client then server.
  enum Op : uint8_t {
    kAccept = 1, kTick, kWake, kCtlAccept, kConnect, kConnectTimeout, kCancel,
    kClientRecv, kServerRecv, kClientSend, kServerSend, kClientPoll, kServerPoll,
    kListenerCancel,  // the cancel of a removed listener's accept
  };
  static uint64_t Tag(uint64_t id, Op op) { return (id << 8) | op; }
  static Op RecvOp(Dir d) { return static_cast<Op>(int{kClientRecv} + int{d}); }
  static Op SendOp(Dir d) { return static_cast<Op>(int{kClientSend} + int{d}); }
  static Op PollOp(Dir d) { return static_cast<Op>(int{kClientPoll} + int{d}); }
  // The leg of a per-leg operation.
  static Dir DirOf(Op op) { return ((op - kClientRecv) & 1) ? kServerLeg : kClientLeg; }

 private:
  friend class Connection;

  struct Listener {
    ListenerSpec spec;
    UniqueFd fd;
    bool armed = false;
    bool removed = false;     // closed by Reconfigure; the slot stays (late completions name it)
    int64_t retry_at_ms = 0;  // after EMFILE/ENFILE: back off, then re-arm
  };
  // Cancels listener `i`'s accept and closes its socket.
  void CloseListener(size_t i, bool unlink_path);

  void ArmAccept(size_t index);
  void OnAccept(size_t index, const Completion& c);
  void ArmTick();
  void OnTick();
  void ArmWake();
  void OnWake();
  void Dispatch(const Completion& c);
  void Reap(Connection* c);
  void BeginStop();
  // Counts a receive that found the buffer ring empty; logs it at most once a minute.
  void NoteRingEmpty();
  // The per-address admission of a client at `peer` ("addr:port"): "" and *admitted when it
  // may go on, else the readable refusal.
  std::string AdmitAddress(const std::string& peer, bool* admitted);
  // Creates a connection for an accepted control client of `target`.
  void AcceptControl(UniqueFd fd, std::shared_ptr<ControlTarget> target);
  Connection* Find(uint64_t id);

  int index_;
  WorkerPool* pool_;
  ReactorLimits limits_;
  ControlConfig control_;
  SessionEnv env_;
  std::unique_ptr<Backend> io_;
  std::vector<Listener> listeners_;
  std::vector<std::string> bound_;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  ReactorStats stats_;
  UniqueFd wake_fd_;
  uint64_t wake_buf_ = 0;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stop_requested_{false};
  int64_t ring_empty_logged_ms_ = 0;
  // Receives left that take the main ring instead of the hot buffers (Backend::RecvHot): set
  // when the hot ones ran out, so many busy TLS streams share the main ring instead of each
  // paying a failed receive per miss; one stream or a few get the hot ones back once it ends.
  uint32_t hot_recv_pause_ = 0;
  static constexpr uint32_t kHotRecvPause = 256;
  uint64_t ticks_ = 0;
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;
};


}  // namespace xr::engine
