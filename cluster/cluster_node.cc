#include "cluster/cluster_node.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "cluster/cluster_db.h"

namespace xr::cluster {

using auth::PgNowMs;

Expected<std::unique_ptr<ClusterNode>> ClusterNode::Start(ClusterOptions options, ClusterHost* host) {
  if (!ValidNodeName(options.node)) {
    return MakeError(ErrorCode::kMalformed, "--cluster-node: '" + options.node.substr(0, 80) +
                                                "' is not a node name (1-64 of letters, digits, . _ : @ -)");
  }
  if (options.ttl_ms <= options.heartbeat_ms) {
    return MakeError(ErrorCode::kMalformed, "--cluster-ttl must be longer than --cluster-heartbeat");
  }
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return MakeError(ErrorCode::kIo, std::string("eventfd: ") + std::strerror(errno));
  std::unique_ptr<ClusterNode> n(new ClusterNode(std::move(options), host, std::move(wake)));
  n->thread_ = std::thread([p = n.get()] {
    pthread_setname_np(pthread_self(), "xr-cluster");
    p->Run();
  });
  return n;
}

ClusterNode::ClusterNode(ClusterOptions options, ClusterHost* host, UniqueFd wake)
    : o_(std::move(options)), host_(host), wake_(std::move(wake)) {
  status_.node = o_.node;
  status_.database = auth::PgTargetName(o_.uri);
}

ClusterNode::~ClusterNode() { Stop(); }

void ClusterNode::Stop() {
  stop_ = true;
  uint64_t one = 1;
  ssize_t w = write(wake_.get(), &one, sizeof one);
  (void)w;
  if (thread_.joinable()) thread_.join();
}

ClusterStatus ClusterNode::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void ClusterNode::Drop(const std::string& why) {
  host_->Log(true, fmt::format("cluster: lost the database {}: {}; relayed sessions go on, reconnecting",
                               status_.database, why));
  db_.reset();
  down_logged_ = true;
  std::lock_guard lock(mu_);
  status_.connected = false;
  status_.last_error = why;
}

bool ClusterNode::Connect() {
  const int64_t deadline = PgNowMs() + o_.db_timeout_ms;
  auto c = auth::PgConn::Connect(o_.uri, deadline, static_cast<int>(o_.db_timeout_ms));
  std::string error;
  if (c.ok()) {
    auto db = std::make_unique<auth::PgConn>(std::move(*c));
    auto m = ApplyMigrations(*db, PgNowMs() + 4 * o_.db_timeout_ms);
    if (!m.ok()) {
      error = m.error().message;
    } else if (auto l = db->Exec(std::string("LISTEN ") + kNotifyChannel, {}, PgNowMs() + o_.db_timeout_ms); !l.ok()) {
      error = l.error().message;
    } else {
      for (const auto& name : m->applied) host_->Log(false, "cluster: applied schema migration " + name);
      host_->Log(false, fmt::format("cluster: node {} {} database {} (schema version {}, heartbeat {} ms, ttl {} ms)",
                                    o_.node, ever_connected_ ? "registered again in" : "registering in",
                                    status_.database, m->version, o_.heartbeat_ms, o_.ttl_ms));
      db_ = std::move(db);
      ever_connected_ = true;
      down_logged_ = false;
      std::lock_guard lock(mu_);
      status_.connected = true;
      status_.schema_version = m->version;
      status_.last_error.clear();
      return true;
    }
  } else {
    error = c.error().message;
  }
  if (!down_logged_) {
    host_->Log(true, fmt::format("cluster: cannot reach the database {}: {}; relayed sessions go on, retrying with "
                                 "back-off (at most {} ms)",
                                 status_.database, error, o_.max_backoff_ms));
    down_logged_ = true;
  }
  std::lock_guard lock(mu_);
  status_.connected = false;
  status_.last_error = error;
  return false;
}

Status ClusterNode::Heartbeat() {
  std::optional<std::vector<ConnRow>> rows = host_->Snapshot(1000);
  const int64_t deadline = PgNowMs() + o_.db_timeout_ms;
  auth::PgConn& db = *db_;
  auto run = [&](const char* sql, const auth::PgParams& params) -> Status {
    auto r = db.Exec(sql, params, deadline);
    if (!r.ok()) return r.error();
    return Status::Ok();
  };
  if (Status s = run("BEGIN", {}); !s.ok()) return s;
  auto fail = [&](Status s) {
    (void)db.Exec("ROLLBACK", {}, deadline);
    return s;
  };
  if (Status s = run(kUpsertNodeSql, {o_.node, o_.address, std::to_string(getpid()), o_.version,
                                      std::to_string(o_.ttl_ms), std::to_string(o_.heartbeat_ms)});
      !s.ok()) {
    return fail(s);
  }
  if (rows) {
    std::vector<std::string> p = SyncParams(o_.node, *rows);
    if (Status s = run(kDeleteGoneSql, {p[0], p[1]}); !s.ok()) return fail(s);
    if (!rows->empty()) {
      auth::PgParams params(p.begin(), p.end());
      if (Status s = run(kSyncConnectionsSql, params); !s.ok()) return fail(s);
    }
  }
  auto expired = db.Exec(std::string(kExpireNodesSql) + " RETURNING node", {}, deadline);
  if (!expired.ok()) return fail(expired.error());
  if (Status s = run("COMMIT", {}); !s.ok()) return fail(s);
  for (int i = 0; i < expired->rows() && i < kMaxNodesShown; ++i) {
    host_->Log(false, fmt::format("cluster: node {} expired (no heartbeat within its ttl): its rows removed",
                                  expired->Text(i, 0).value_or("?")));
  }
  auto live = db.Exec(kLiveNodesSql, {std::to_string(kMaxNodesShown)}, deadline);
  if (!live.ok()) return live.error();
  std::lock_guard lock(mu_);
  status_.heartbeats++;
  if (rows) status_.registered = rows->size();
  status_.live_nodes.clear();
  for (int i = 0; i < live->rows(); ++i) {
    ClusterStatus::Node n;
    n.name = live->Text(i, 0).value_or("");
    n.address = live->Text(i, 1).value_or("");
    n.connections = std::strtoll(live->Text(i, 2).value_or("0").c_str(), nullptr, 10);
    n.heartbeat_age_ms = std::strtoll(live->Text(i, 3).value_or("0").c_str(), nullptr, 10);
    status_.live_nodes.push_back(std::move(n));
  }
  return Status::Ok();
}

void ClusterNode::HandleNotification(const std::string& payload) {
  auto req = ParseStopPayload(payload);
  if (!req.ok()) {
    host_->Log(true, "cluster: ignored a notification on " + std::string(kNotifyChannel) + ": " + req.error().message);
    return;
  }
  if (req->node != o_.node) return;  // another node's
  const bool stopped = host_->Stop(req->instance, kStoppedDetail, 1000);
  // The row goes now, not at the next heartbeat (a connection that is gone has none either).
  auto d = db_->Exec(kDeleteRowSql, {o_.node, req->instance}, PgNowMs() + o_.db_timeout_ms);
  host_->Log(false, fmt::format("cluster: stop request for {}: {}{}", req->instance,
                                stopped ? "connection stopped, client told why" : "no such connection on this node",
                                d.ok() ? "" : "; its row stays until the next heartbeat: " + d.error().message));
}

bool ClusterNode::WaitAndListen(int64_t until_ms) {
  int handled = 0;
  bool readable = false;
  while (!stop_) {
    PGconn* pg = db_->native();
    // Notifications that arrived while a statement's results were read (the heartbeat's, a
    // stop's DELETE) are already in libpq's queue and will not make the socket readable
    // again: take the queue first, then wait.
    if (readable && (PQconsumeInput(pg) == 0 || PQstatus(pg) != CONNECTION_OK)) {
      Drop("the connection closed");
      return false;
    }
    readable = false;
    while (PGnotify* note = PQnotifies(pg)) {
      std::string payload = note->extra != nullptr ? std::string(note->extra).substr(0, kMaxPayload + 1) : "";
      PQfreemem(note);
      // A flood of notifications is bounded: 256 handled per heartbeat interval.
      if (++handled == 257) host_->Log(true, "cluster: over 256 notifications in one heartbeat; ignoring the rest");
      if (handled > 256) continue;
      HandleNotification(payload);
      if (!db_->usable()) {
        Drop("a statement failed");
        return false;
      }
    }
    const int64_t left = until_ms - PgNowMs();
    if (left <= 0) return true;
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {PQsocket(pg), POLLIN, 0}};
    const int n = poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno != EINTR) {
      Drop(std::string("poll: ") + std::strerror(errno));
      return false;
    }
    readable = n > 0 && fds[1].revents != 0;
  }
  return true;
}

void ClusterNode::Run() {
  int64_t backoff = 0;
  while (!stop_) {
    if (!db_) {
      if (!Connect()) {
        backoff = NextBackoffMs(backoff, o_.min_backoff_ms, o_.max_backoff_ms);
        pollfd p{wake_.get(), POLLIN, 0};
        poll(&p, 1, static_cast<int>(backoff));
        continue;
      }
      backoff = 0;
    }
    const int64_t started = PgNowMs();
    if (Status s = Heartbeat(); !s.ok()) {
      Drop("heartbeat: " + s.error().message);
      continue;
    }
    if (!WaitAndListen(started + o_.heartbeat_ms)) continue;
  }
  if (db_ && db_->usable()) {
    auto d = db_->Exec(kDeleteNodeSql, {o_.node}, PgNowMs() + o_.db_timeout_ms);
    host_->Log(!d.ok(), d.ok() ? fmt::format("cluster: node {} left the cluster (its rows removed)", o_.node)
                               : fmt::format("cluster: node {} could not remove its rows ({}); they expire after {} ms",
                                             o_.node, d.error().message, o_.ttl_ms));
  }
  db_.reset();
}

}  // namespace xr::cluster
