// The cluster's SQL and its thread against a real PostgreSQL 15 (tests/auth/pg_server.h).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "auth/postgresql_db.h"
#include "cluster/cluster_db.h"
#include "cluster/cluster_node.h"
#include "cluster/cluster_state.h"
#include "deploy/cluster/cluster_schema.h"
#include "tests/auth/pg_server.h"

namespace xr::cluster {
namespace {

using auth::PgConn;
using auth::PgNowMs;
using auth::testing::PgServer;

PgServer& Server() {
  static PgServer server;
  REQUIRE_MESSAGE(server.ok(), server.why());
  return server;
}

PgConn Connect(const PgServer& s) {
  auto c = PgConn::Connect(s.uri(), PgNowMs() + 5000);
  REQUIRE_MESSAGE(c.ok(), c.error().message);
  return std::move(*c);
}

std::string One(PgConn& db, const std::string& sql, const auth::PgParams& params = {}) {
  auto r = db.Exec(sql, params, PgNowMs() + 5000);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  REQUIRE(r->rows() == 1);
  return r->Text(0, 0).value_or("NULL");
}

bool WaitFor(const std::function<bool()>& pred, int ms) {
  for (int i = 0; i < ms / 50; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

TEST_CASE("migrations: every schema file applied once, in order, recorded; a second run applies none") {
  PgServer& s = Server();
  PgConn db = Connect(s);
  auto first = ApplyMigrations(db, PgNowMs() + 10000);
  REQUIRE_MESSAGE(first.ok(), first.error().message);
  // The first test to run applies them; either way the table now holds every file.
  auto again = ApplyMigrations(db, PgNowMs() + 10000);
  REQUIRE(again.ok());
  CHECK(again->applied.empty());
  const auto& files = Migrations();
  REQUIRE(!files.empty());
  CHECK(std::string(files[0].name) == "001_cluster_state.sql");
  for (size_t i = 1; i < files.size(); ++i) CHECK(std::string(files[i - 1].name) < files[i].name);
  CHECK(One(db, "SELECT count(*) FROM xr_schema_version") == std::to_string(files.size()));
  CHECK(again->version == MigrationVersion(files.back().name));
  CHECK(MigrationVersion("010_policy.sql") == 10);
  CHECK(MigrationVersion("policy.sql") == -1);
}

TEST_CASE("rows: the sync SQL stores what a node has, updates bytes, drops what it no longer has") {
  PgServer& s = Server();
  PgConn db = Connect(s);
  REQUIRE(ApplyMigrations(db, PgNowMs() + 10000).ok());
  auto exec = [&](const char* sql, const auth::PgParams& p) {
    auto r = db.Exec(sql, p, PgNowMs() + 5000);
    REQUIRE_MESSAGE(r.ok(), r.error().message);
  };
  exec(kUpsertNodeSql, {"rows-node", "tcp:127.0.0.1:1", "42", "test", "10000", "2000"});
  ConnRow a{":proxy-1", 1, "q\"uote\\back", "tcp://127.0.0.1:9/", "tcp", "127.0.0.1:5", 1700000000, 10, 20};
  ConnRow b{":proxy-2", 2, "ünïcode {,} NULL", ":100", "wss", "[::1]:6", 1700000001, 30, 40};
  auto p = SyncParams("rows-node", {a, b});
  exec(kDeleteGoneSql, {p[0], p[1]});
  exec(kSyncConnectionsSql, auth::PgParams(p.begin(), p.end()));
  auto listed = db.Exec(kInfoSql, {"rows-node", ":proxy-1"}, PgNowMs() + 5000);
  REQUIRE(listed.ok());
  auto rows = ReadRows(*listed);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].row.username == "q\"uote\\back");
  CHECK(rows[0].row.target == "tcp://127.0.0.1:9/");
  CHECK(rows[0].row.started_unix == 1700000000);
  CHECK(rows[0].row.bytes_to_server == 20);
  CHECK(One(db, "SELECT username FROM xr_cluster_connections WHERE instance = ':proxy-2'") == "ünïcode {,} NULL");
  // A later heartbeat: :proxy-1 gone, :proxy-2's bytes moved.
  b.bytes_to_client = 3000;
  p = SyncParams("rows-node", {b});
  exec(kDeleteGoneSql, {p[0], p[1]});
  exec(kSyncConnectionsSql, auth::PgParams(p.begin(), p.end()));
  CHECK(One(db, "SELECT count(*) FROM xr_cluster_connections WHERE node = 'rows-node'") == "1");
  CHECK(One(db, "SELECT bytes_to_client FROM xr_cluster_connections WHERE node = 'rows-node'") == "3000");
  // No connection left: the empty array deletes them all.
  p = SyncParams("rows-node", {});
  exec(kDeleteGoneSql, {p[0], p[1]});
  CHECK(One(db, "SELECT count(*) FROM xr_cluster_connections WHERE node = 'rows-node'") == "0");
  exec(kDeleteNodeSql, {"rows-node"});
}

TEST_CASE("TTL: readers ignore a node past its ttl; expiry deletes it and its rows, not live nodes") {
  PgServer& s = Server();
  PgConn db = Connect(s);
  REQUIRE(ApplyMigrations(db, PgNowMs() + 10000).ok());
  for (const char* n : {"ttl-live", "ttl-dead"}) {
    REQUIRE(db.Exec(kUpsertNodeSql, {n, "", "1", "", "10000", "2000"}, PgNowMs() + 5000).ok());
    auto p = SyncParams(n, {ConnRow{":proxy-1", 1, "u", "t", "tcp", "a", 0, 0, 0}});
    REQUIRE(db.Exec(kSyncConnectionsSql, auth::PgParams(p.begin(), p.end()), PgNowMs() + 5000).ok());
  }
  // ttl-dead's last heartbeat 11 s ago (its ttl is 10 s).
  REQUIRE(db.Exec("UPDATE xr_cluster_nodes SET heartbeat_at = now() - interval '11 seconds' WHERE node = 'ttl-dead'",
                  {}, PgNowMs() + 5000)
              .ok());
  auto list = db.Exec(kListSql, {"1000"}, PgNowMs() + 5000);
  REQUIRE(list.ok());
  bool dead_listed = false, live_listed = false;
  for (const auto& r : ReadRows(*list)) {
    dead_listed = dead_listed || r.node == "ttl-dead";
    live_listed = live_listed || r.node == "ttl-live";
  }
  CHECK_FALSE(dead_listed);
  CHECK(live_listed);
  auto expired = db.Exec(std::string(kExpireNodesSql) + " RETURNING node", {}, PgNowMs() + 5000);
  REQUIRE(expired.ok());
  REQUIRE(expired->rows() == 1);
  CHECK(expired->Text(0, 0).value_or("") == "ttl-dead");
  CHECK(One(db, "SELECT count(*) FROM xr_cluster_connections WHERE node = 'ttl-dead'") == "0");
  CHECK(One(db, "SELECT count(*) FROM xr_cluster_connections WHERE node = 'ttl-live'") == "1");
  REQUIRE(db.Exec(kDeleteNodeSql, {"ttl-live"}, PgNowMs() + 5000).ok());
}

// The relay side of the seam: rows it reports, stops it is asked for, lines it logs.
class Host final : public ClusterHost {
 public:
  std::optional<std::vector<ConnRow>> Snapshot(int64_t) override {
    std::lock_guard lock(mu);
    return rows;
  }
  bool Stop(const std::string& instance, const std::string& detail, int64_t) override {
    std::lock_guard lock(mu);
    for (auto it = rows.begin(); it != rows.end(); ++it) {
      if (it->instance == instance) {
        rows.erase(it);
        stopped.push_back(instance + ": " + detail);
        return true;
      }
    }
    return false;
  }
  void Log(bool, const std::string& line) override {
    std::lock_guard lock(mu);
    log.push_back(line);
  }
  bool Logged(const std::string& part) {
    std::lock_guard lock(mu);
    for (const auto& l : log) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
  std::mutex mu;
  std::vector<ConnRow> rows;
  std::vector<std::string> stopped;
  std::vector<std::string> log;
};

TEST_CASE("the cluster thread: registers, takes a stop by NOTIFY, survives a database restart, leaves") {
  PgServer& s = Server();
  Host host;
  host.rows = {ConnRow{":proxy-1", 1, "ann", "t1", "tcp", "a1", 1, 2, 3},
               ConnRow{":proxy-2", 2, "ben", "t2", "ssl", "a2", 1, 2, 3}};
  ClusterOptions o;
  o.uri = s.uri();
  o.node = "thread-node";
  o.heartbeat_ms = 300;
  o.ttl_ms = 3000;
  o.min_backoff_ms = 100;
  o.max_backoff_ms = 400;
  auto node = ClusterNode::Start(o, &host);
  REQUIRE_MESSAGE(node.ok(), node.error().message);
  PgConn db = Connect(s);
  auto rows_of = [&] {
    auto r = db.Exec("SELECT count(*) FROM xr_cluster_connections WHERE node = 'thread-node'", {}, PgNowMs() + 5000);
    return r.ok() ? r->Text(0, 0).value_or("") : "error";
  };
  REQUIRE(WaitFor([&] { return rows_of() == "2"; }, 5000));
  ClusterStatus st = (*node)->status();
  CHECK(st.connected);
  CHECK(st.node == "thread-node");
  CHECK(st.database.find(s.password()) == std::string::npos);
  CHECK(st.database == "xr@127.0.0.1:" + std::to_string(s.port()) + "/postgres");

  // A stop for this node: the host is asked, the client told why, the row goes at once.
  REQUIRE(db.Exec("SELECT pg_notify($1, $2)", {std::string(kNotifyChannel), "stop thread-node :proxy-2"},
                  PgNowMs() + 5000)
              .ok());
  REQUIRE(WaitFor([&] { return rows_of() == "1"; }, 3000));
  {
    std::lock_guard lock(host.mu);
    REQUIRE(host.stopped.size() == 1);
    CHECK(host.stopped[0] == std::string(":proxy-2: ") + kStoppedDetail);
  }
  // Another node's stop and a malformed payload change nothing here (the latter is logged).
  REQUIRE(db.Exec("SELECT pg_notify($1, $2)", {std::string(kNotifyChannel), "stop other-node :proxy-1"},
                  PgNowMs() + 5000)
              .ok());
  REQUIRE(db.Exec("SELECT pg_notify($1, $2)", {std::string(kNotifyChannel), "stop thread-node ;drop"},
                  PgNowMs() + 5000)
              .ok());
  CHECK(WaitFor([&] { return host.Logged("ignored a notification"); }, 3000));
  CHECK(rows_of() == "1");

  // The database stops: the thread says so; the host goes on. It comes back: registration resumes.
  s.Stop();
  CHECK(WaitFor([&] { return !(*node)->status().connected; }, 5000));
  CHECK(host.Logged("relayed sessions go on"));
  {
    std::lock_guard lock(host.mu);
    host.rows.push_back(ConnRow{":proxy-3", 3, "cat", "t3", "ws", "a3", 1, 2, 3});
  }
  REQUIRE(s.Start());
  PgConn db2 = Connect(s);
  auto rows2 = [&] {
    auto r = db2.Exec("SELECT count(*) FROM xr_cluster_connections WHERE node = 'thread-node'", {}, PgNowMs() + 5000);
    return r.ok() ? r->Text(0, 0).value_or("") : "error";
  };
  CHECK(WaitFor([&] { return rows2() == "2"; }, 5000));
  CHECK((*node)->status().connected);
  CHECK(host.Logged("registered again in database"));

  // Leaving: the node's row and its connections go.
  (*node)->Stop();
  auto n = db2.Exec("SELECT count(*) FROM xr_cluster_nodes WHERE node = 'thread-node'", {}, PgNowMs() + 5000);
  REQUIRE(n.ok());
  CHECK(n->Text(0, 0).value_or("") == "0");
  CHECK(rows2() == "0");
  for (const auto& l : host.log) CHECK(l.find(s.password()) == std::string::npos);
}

TEST_CASE("the cluster thread: a database that is down at start-up is retried, not fatal") {
  Host host;
  ClusterOptions o;
  o.uri = "postgresql://xr:secret-pw@127.0.0.1:1/postgres";  // nothing listens on port 1
  o.node = "down-node";
  o.min_backoff_ms = 50;
  o.max_backoff_ms = 100;
  auto node = ClusterNode::Start(o, &host);
  REQUIRE(node.ok());
  CHECK(WaitFor([&] { return host.Logged("cannot reach the database xr@127.0.0.1:1/postgres"); }, 3000));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  (*node)->Stop();
  int lines = 0;
  for (const auto& l : host.log) {
    CHECK(l.find("secret-pw") == std::string::npos);
    lines += l.find("cannot reach") != std::string::npos;
  }
  CHECK(lines == 1);  // one line for the outage, not one per retry
  CHECK_FALSE((*node)->status().connected);
}

TEST_CASE("the cluster thread refuses a bad node name or a ttl not above the heartbeat") {
  Host host;
  ClusterOptions o;
  o.uri = "postgresql://x@127.0.0.1:1/db";
  o.node = "bad name";
  CHECK_FALSE(ClusterNode::Start(o, &host).ok());
  o.node = "ok";
  o.ttl_ms = o.heartbeat_ms;
  auto r = ClusterNode::Start(o, &host);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("--cluster-ttl") != std::string::npos);
}

}  // namespace
}  // namespace xr::cluster
