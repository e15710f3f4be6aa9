#include "cluster/cluster_cli.h"

#include <time.h>

#include <chrono>
#include <ostream>
#include <thread>

#include "auth/postgresql_db.h"
#include "cluster/cluster_db.h"
#include "cluster/cluster_node.h"
#include "cluster/cluster_state.h"

namespace xr::cluster {
namespace {

using auth::PgNowMs;

int Failed(std::ostream& err, const std::string& what) {
  err << "xpra_relay cluster: " << what << "\n";
  return 1;
}

// The live row `id` names (a bare ":proxy-N": the one live node holding it).
Expected<ListedRow> FindRow(auth::PgConn& db, const std::string& id, int64_t deadline) {
  auto parsed = ParseConnectionId(id);
  if (!parsed.ok()) return parsed.error();
  auto r = parsed->node.empty() ? db.Exec(kFindInstanceSql, {parsed->instance}, deadline)
                                : db.Exec(kInfoSql, {parsed->node, parsed->instance}, deadline);
  if (!r.ok()) return r.error();
  std::vector<ListedRow> rows = ReadRows(*r);
  if (rows.empty()) {
    return MakeError(ErrorCode::kNotFound, "no connection " + id.substr(0, 120) +
                                               " on a live node (`xpra_relay cluster list` shows them)");
  }
  if (rows.size() > 1) {
    std::string ids;
    for (const auto& row : rows) ids += " " + ConnectionId(row.node, row.row.instance);
    return MakeError(ErrorCode::kMalformed, parsed->instance + " is on several nodes; name one:" + ids);
  }
  return rows[0];
}

}  // namespace

const char* ClusterUsage() {
  return "usage: xpra_relay cluster [--cluster=postgresql://...|--config=FILE] [--limit=N] COMMAND\n"
         "  list              the connections of every live node (ID = NODE/:proxy-N)\n"
         "  info ID           one connection\n"
         "  stop ID           end that connection on whichever node holds it (its client is told\n"
         "                    \"this session was stopped by the cluster operator\")\n"
         "  migrate           create or update the cluster schema (the relay also does at start)\n"
         "The database is --cluster=, else the `cluster` key of --config=FILE or of\n"
         "/etc/xpra-relay/xpra-relay.conf.\n";
}

int RunClusterCommand(const CliOptions& o, const std::vector<std::string>& words, std::ostream& out,
                      std::ostream& err) {
  if (words.empty()) {
    err << ClusterUsage();
    return 2;
  }
  const std::string& verb = words[0];
  const bool needs_id = verb == "info" || verb == "stop";
  if ((verb != "list" && verb != "migrate" && !needs_id) || words.size() != (needs_id ? 2u : 1u)) {
    err << ClusterUsage();
    return 2;
  }
  if (o.uri.empty()) {
    return Failed(err, "no database: give --cluster=postgresql://... or a config file with a `cluster` key");
  }
  if (o.limit < 1 || o.limit > kMaxListRows) {
    return Failed(err, "--limit must be 1 to " + std::to_string(kMaxListRows));
  }
  auto deadline = [&] { return PgNowMs() + o.timeout_ms; };
  auto conn = auth::PgConn::Connect(o.uri, deadline(), static_cast<int>(o.timeout_ms));
  if (!conn.ok()) return Failed(err, conn.error().message);
  auth::PgConn& db = *conn;

  if (verb == "migrate") {
    auto m = ApplyMigrations(db, deadline() + 4 * o.timeout_ms);
    if (!m.ok()) return Failed(err, m.error().message);
    for (const auto& name : m->applied) out << "applied " << name << "\n";
    out << "cluster schema at version " << m->version << " in " << db.name() << "\n";
    return 0;
  }
  if (verb == "list") {
    auto count = db.Exec(kCountSql, {}, deadline());
    if (!count.ok()) return Failed(err, count.error().message);
    auto rows = db.Exec(kListSql, {std::to_string(o.limit)}, deadline());
    if (!rows.ok()) return Failed(err, rows.error().message);
    const int64_t total = std::strtoll(count->Text(0, 0).value_or("0").c_str(), nullptr, 10);
    const int64_t nodes = std::strtoll(count->Text(0, 1).value_or("0").c_str(), nullptr, 10);
    out << FormatList(ReadRows(*rows), total, nodes);
    return 0;
  }
  auto row = FindRow(db, words[1], deadline());
  if (!row.ok()) return Failed(err, row.error().message);
  const std::string id = ConnectionId(row->node, row->row.instance);
  if (verb == "info") {
    out << FormatInfo(*row, static_cast<int64_t>(time(nullptr)));
    return 0;
  }
  // stop: the holding node LISTENs; it ends the connection and deletes the row.
  auto sent = db.Exec("SELECT pg_notify($1, $2)",
                      {std::string(kNotifyChannel), FormatStopPayload(StopRequest{row->node, row->row.instance})},
                      deadline());
  if (!sent.ok()) return Failed(err, sent.error().message);
  const int64_t until = PgNowMs() + o.stop_wait_ms;
  while (PgNowMs() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto still = db.Exec(kInfoSql, {row->node, row->row.instance}, deadline());
    if (!still.ok()) return Failed(err, still.error().message);
    if (still->rows() == 0) {
      out << "stopped " << id << " (user " << row->row.username << "): the client was told \"" << kStoppedDetail
          << "\"\n";
      return 0;
    }
  }
  return Failed(err, "asked node " + row->node + " to stop " + row->row.instance + ", but its row is still there after " +
                         std::to_string(o.stop_wait_ms / 1000) + " s (is that node connected to the database?)");
}

}  // namespace xr::cluster
