#pragma once
// The pure parts of the relay cluster (issue 16): the rows a node writes to PostgreSQL, their
// serialisation as libpq text parameters, the NOTIFY payload of a stop and its bounded parse,
// cluster-wide connection ids, the TTL rule and the reconnect back-off. No I/O here; the
// database thread is cluster/cluster_node.h, the CLI cluster/cluster_cli.h.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/postgresql_db.h"
#include "base/status.h"

namespace xr::cluster {

// The channel every node LISTENs on; a stop names its node in the payload.
inline constexpr const char* kNotifyChannel = "xpra_relay_cluster";
// Bounds: a node name, an instance name (":proxy-N"), a NOTIFY payload we accept.
inline constexpr size_t kMaxNodeName = 64;
inline constexpr size_t kMaxInstance = 32;
inline constexpr size_t kMaxPayload = 256;
// The most connection rows `cluster list` prints (the rest are counted), and live nodes shown.
inline constexpr int64_t kMaxListRows = 100000;
inline constexpr int64_t kMaxNodesShown = 256;

// One relayed connection as a node registers it.
struct ConnRow {
  std::string instance;        // ":proxy-N" (unique on its node)
  uint64_t conn_id = 0;        // the connection's id inside its relay (logs: conn=N)
  std::string username;        // sanitised
  std::string target;          // the session's address (no credentials)
  std::string transport;       // tcp, ssl, ws, wss, unix
  std::string client_address;  // the client's "addr:port" (PROXY protocol source when used)
  int64_t started_unix = 0;    // seconds since the epoch
  uint64_t bytes_to_client = 0;
  uint64_t bytes_to_server = 0;
};

// A node name: 1-64 bytes of [A-Za-z0-9._:@-] (so it prints and parses without quoting).
bool ValidNodeName(std::string_view name);
// ":proxy-N", N decimal without leading zeros, at most kMaxInstance bytes.
bool ValidInstance(std::string_view instance);

// Array literals for the sync's unnest() parameters (auth/postgresql_db.h).
using auth::PgIntArray;
using auth::PgTextArray;

// The text parameters of kSyncConnectionsSql for `node` and its rows ($1 node, $2 instances,
// ... $10 bytes to server).
std::vector<std::string> SyncParams(const std::string& node, const std::vector<ConnRow>& rows);

// A stop request carried by NOTIFY: "stop NODE INSTANCE".
struct StopRequest {
  std::string node;
  std::string instance;
};
std::string FormatStopPayload(const StopRequest& r);
// Bounded parse: at most kMaxPayload bytes, exactly "stop", one space, a valid node name, one
// space, a valid instance; anything else is kMalformed with a readable reason.
Expected<StopRequest> ParseStopPayload(std::string_view payload);

// A cluster-wide connection id is "NODE/:proxy-N" (what `cluster list` prints). A bare
// ":proxy-N" is accepted too (node empty: the caller looks for the one node holding it).
Expected<StopRequest> ParseConnectionId(std::string_view id);
std::string ConnectionId(std::string_view node, std::string_view instance);

// The TTL rule, as the SQL applies it with the database's clock: a node is alive while its
// last heartbeat is younger than its TTL.
inline bool NodeAlive(int64_t heartbeat_age_ms, int64_t ttl_ms) { return heartbeat_age_ms < ttl_ms; }
// Reconnect back-off: doubles from `min_ms` up to `max_ms`.
int64_t NextBackoffMs(int64_t previous_ms, int64_t min_ms, int64_t max_ms);

// `cluster list` output: one line per row with its id, at most `limit` rows, then a summary
// line ("3 connections on 2 live nodes", "... (showing the first 2)"). `nodes` is the live
// node count; `total` the rows there are (>= rows.size()).
struct ListedRow {
  std::string node;
  ConnRow row;
};
std::string FormatList(const std::vector<ListedRow>& rows, int64_t total, int64_t nodes);
// `cluster info ID`: "key: value" lines.
std::string FormatInfo(const ListedRow& r, int64_t now_unix);

// --- SQL (the schema: deploy/cluster/schema/001_cluster_state.sql)
// $1 node, $2 address, $3 pid, $4 version, $5 ttl ms, $6 heartbeat ms
extern const char* const kUpsertNodeSql;
// $1 node, $2..$10 arrays (SyncParams); rows whose byte counts did not move are left alone
extern const char* const kSyncConnectionsSql;
// $1 node, $2 instances still here: the node's other rows go
extern const char* const kDeleteGoneSql;
// Nodes whose heartbeat is older than their TTL go, with their rows (ON DELETE CASCADE).
extern const char* const kExpireNodesSql;
// Live nodes: node, address, connections, heartbeat age ms ($1 limit)
extern const char* const kLiveNodesSql;
// Rows of live nodes: node, instance, conn_id, username, target, transport, client_address,
// started (unix s), bytes_to_client, bytes_to_server ($1 limit)
extern const char* const kListSql;
// Count of rows of live nodes
extern const char* const kCountSql;
// One row of a live node ($1 node, $2 instance); same columns as kListSql
extern const char* const kInfoSql;
// Rows of live nodes with this instance ($1 instance); same columns as kListSql
extern const char* const kFindInstanceSql;
// $1 node, $2 instance
extern const char* const kDeleteRowSql;
// $1 node
extern const char* const kDeleteNodeSql;

}  // namespace xr::cluster
