#pragma once
// A relay node's membership of the cluster (issue 16): one thread of its own registers the node
// (a row with a heartbeat) and its relayed connections in PostgreSQL, deletes nodes whose
// heartbeat is older than their TTL, and LISTENs for stop requests naming this node.
//
// Nothing here runs on a reactor: the thread asks the relay for its connections through
// ClusterHost (which posts to the reactors and waits a bounded time) and never makes a reactor
// wait for the database. Database down: relayed sessions go on; the thread reconnects with a
// doubling back-off and registration resumes, no restart.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "auth/postgresql_db.h"
#include "base/fd.h"
#include "base/status.h"
#include "cluster/cluster_state.h"

namespace xr::cluster {

// What the relay gives the cluster thread. Called on the cluster thread only.
class ClusterHost {
 public:
  virtual ~ClusterHost() = default;
  // The connections relaying now; nullopt when the reactors did not all answer within
  // `timeout_ms` (the heartbeat then leaves the node's rows as they are).
  virtual std::optional<std::vector<ConnRow>> Snapshot(int64_t timeout_ms) = 0;
  // Ends `instance` (":proxy-N"), the client told `detail`; false when it is not here.
  virtual bool Stop(const std::string& instance, const std::string& detail, int64_t timeout_ms) = 0;
  // One log line (the relay's log); `warning` for failures.
  virtual void Log(bool warning, const std::string& line) = 0;
};

struct ClusterOptions {
  std::string uri;       // postgresql://... (never logged: PgTargetName names it)
  std::string node;      // ValidNodeName
  std::string address;   // shown to operators (the node's first bind)
  std::string version;   // the relay's version
  int64_t heartbeat_ms = 2000;
  int64_t ttl_ms = 10000;
  int64_t min_backoff_ms = 500;   // reconnect back-off, doubling
  int64_t max_backoff_ms = 5000;
  int64_t db_timeout_ms = 3000;   // each connect and statement
};

// What `xpra info` shows of the cluster.
struct ClusterStatus {
  std::string node;
  std::string database;   // user@host:port/db
  bool connected = false;
  int schema_version = 0;
  uint64_t heartbeats = 0;         // successful ones
  uint64_t registered = 0;         // this node's rows at the last heartbeat
  struct Node {
    std::string name, address;
    int64_t connections = 0;
    int64_t heartbeat_age_ms = 0;
  };
  std::vector<Node> live_nodes;    // at the last heartbeat (at most kMaxNodesShown)
  std::string last_error;          // "" when connected
};

// The detail a client stopped through the cluster is told.
inline constexpr const char* kStoppedDetail = "this session was stopped by the cluster operator";

class ClusterNode {
 public:
  // Starts the thread (it connects in the background: a database that is down at start-up
  // does not stop the relay). `host` must outlive the node.
  static Expected<std::unique_ptr<ClusterNode>> Start(ClusterOptions options, ClusterHost* host);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // Stops the thread; a connected node deletes its own row (its connections' rows go with it)
  // within db_timeout_ms. Idempotent.
  void Stop();
  ClusterStatus status() const;

 private:
  ClusterNode(ClusterOptions options, ClusterHost* host, UniqueFd wake);
  void Run();
  bool Connect();
  Status Heartbeat();
  // Waits until `until_ms` (monotonic) or Stop, handling notifications; false when the
  // connection was lost.
  bool WaitAndListen(int64_t until_ms);
  void HandleNotification(const std::string& payload);
  void Drop(const std::string& why);

  ClusterOptions o_;
  ClusterHost* host_;
  UniqueFd wake_;  // eventfd: Stop
  std::atomic<bool> stop_{false};
  std::unique_ptr<auth::PgConn> db_;
  bool ever_connected_ = false;
  bool down_logged_ = false;
  mutable std::mutex mu_;
  ClusterStatus status_;
  std::thread thread_;
};

}  // namespace xr::cluster
