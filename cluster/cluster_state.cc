#include "cluster/cluster_state.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace xr::cluster {
namespace {

bool NodeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '@' || c == '-';
}

std::string HumanBytes(uint64_t n) {
  if (n < 10 * 1024) return fmt::format("{} B", n);
  if (n < 10 * 1024 * 1024) return fmt::format("{} KiB", n / 1024);
  if (n < uint64_t{10} * 1024 * 1024 * 1024) return fmt::format("{} MiB", n >> 20);
  return fmt::format("{} GiB", n >> 30);
}

std::string Age(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 120) return fmt::format("{}s", seconds);
  if (seconds < 7200) return fmt::format("{}m", seconds / 60);
  return fmt::format("{}h", seconds / 3600);
}

// A value for a column: never empty (columns stay aligned), spaces made visible.
std::string Cell(std::string_view s) {
  if (s.empty()) return "-";
  std::string out(s);
  std::replace(out.begin(), out.end(), ' ', '_');
  return out;
}

}  // namespace

bool ValidNodeName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNodeName && std::all_of(name.begin(), name.end(), NodeChar);
}

bool ValidInstance(std::string_view instance) {
  constexpr std::string_view kPrefix = ":proxy-";
  if (instance.size() > kMaxInstance || !instance.starts_with(kPrefix)) return false;
  std::string_view n = instance.substr(kPrefix.size());
  if (n.empty() || (n.size() > 1 && n[0] == '0')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string> SyncParams(const std::string& node, const std::vector<ConnRow>& rows) {
  std::vector<std::string> instance, user, target, transport, address;
  std::vector<uint64_t> id, to_client, to_server;
  std::vector<int64_t> started;
  for (const auto& r : rows) {
    instance.push_back(r.instance);
    id.push_back(r.conn_id);
    user.push_back(r.username);
    target.push_back(r.target);
    transport.push_back(r.transport);
    address.push_back(r.client_address);
    started.push_back(r.started_unix);
    // bigint is signed: a counter past 2^63 (never in practice) is clamped, not wrapped.
    to_client.push_back(std::min<uint64_t>(r.bytes_to_client, INT64_MAX));
    to_server.push_back(std::min<uint64_t>(r.bytes_to_server, INT64_MAX));
  }
  return {node,           PgTextArray(instance),  PgIntArray(id),        PgTextArray(user),
          PgTextArray(target), PgTextArray(transport), PgTextArray(address), PgIntArray(started),
          PgIntArray(to_client), PgIntArray(to_server)};
}

std::string FormatStopPayload(const StopRequest& r) { return "stop " + r.node + " " + r.instance; }

Expected<StopRequest> ParseStopPayload(std::string_view payload) {
  if (payload.size() > kMaxPayload) {
    return MakeError(ErrorCode::kTooLarge, fmt::format("payload of {} bytes (at most {})", payload.size(), kMaxPayload));
  }
  if (!payload.starts_with("stop ")) return MakeError(ErrorCode::kMalformed, "not a stop request");
  std::string_view rest = payload.substr(5);
  const size_t sp = rest.find(' ');
  if (sp == std::string_view::npos) return MakeError(ErrorCode::kMalformed, "stop request without an instance");
  StopRequest r{std::string(rest.substr(0, sp)), std::string(rest.substr(sp + 1))};
  if (!ValidNodeName(r.node)) return MakeError(ErrorCode::kMalformed, "stop request with an invalid node name");
  if (!ValidInstance(r.instance)) return MakeError(ErrorCode::kMalformed, "stop request with an invalid instance");
  return r;
}

Expected<StopRequest> ParseConnectionId(std::string_view id) {
  const size_t slash = id.rfind('/');
  StopRequest r;
  if (slash == std::string_view::npos) {
    r.instance = std::string(id);
  } else {
    r.node = std::string(id.substr(0, slash));
    r.instance = std::string(id.substr(slash + 1));
    if (!ValidNodeName(r.node)) {
      return MakeError(ErrorCode::kMalformed, "'" + std::string(id.substr(0, std::min<size_t>(slash, 80))) +
                                                  "' is not a node name (letters, digits, . _ : @ -; at most 64)");
    }
  }
  if (!ValidInstance(r.instance)) {
    return MakeError(ErrorCode::kMalformed, "expected a connection id NODE/:proxy-N (as `cluster list` prints) or :proxy-N");
  }
  return r;
}

std::string ConnectionId(std::string_view node, std::string_view instance) {
  return std::string(node) + "/" + std::string(instance);
}

int64_t NextBackoffMs(int64_t previous_ms, int64_t min_ms, int64_t max_ms) {
  if (previous_ms < min_ms) return min_ms;
  return std::min(previous_ms * 2, max_ms);
}

std::string FormatList(const std::vector<ListedRow>& rows, int64_t total, int64_t nodes) {
  std::string out = fmt::format("{:<34} {:<16} {:<5} {:<22} {:<28} {:>10} {:>10}\n", "ID", "USER", "VIA", "CLIENT",
                                "TARGET", "TO-CLIENT", "TO-SERVER");
  for (const auto& r : rows) {
    out += fmt::format("{:<34} {:<16} {:<5} {:<22} {:<28} {:>10} {:>10}\n",
                       Cell(ConnectionId(r.node, r.row.instance)), Cell(r.row.username), Cell(r.row.transport),
                       Cell(r.row.client_address), Cell(r.row.target), HumanBytes(r.row.bytes_to_client),
                       HumanBytes(r.row.bytes_to_server));
  }
  out += fmt::format("{} connection{} on {} live node{}", total, total == 1 ? "" : "s", nodes, nodes == 1 ? "" : "s");
  if (static_cast<int64_t>(rows.size()) < total) out += fmt::format(" (showing the first {})", rows.size());
  return out + "\n";
}

std::string FormatInfo(const ListedRow& r, int64_t now_unix) {
  return fmt::format(
      "id: {}\nnode: {}\ninstance: {}\nconnection: {}\nuser: {}\ntarget: {}\ntransport: {}\nclient: {}\n"
      "started: {} ({} ago)\nbytes-to-client: {}\nbytes-to-server: {}\n",
      ConnectionId(r.node, r.row.instance), r.node, r.row.instance, r.row.conn_id, r.row.username, r.row.target,
      r.row.transport, r.row.client_address, r.row.started_unix, Age(now_unix - r.row.started_unix),
      r.row.bytes_to_client, r.row.bytes_to_server);
}

// ------------------------------------------------------------------------------ SQL

const char* const kUpsertNodeSql =
    "INSERT INTO xr_cluster_nodes (node, address, pid, version, ttl_ms, heartbeat_ms, started_at, heartbeat_at) "
    "VALUES ($1, $2, $3::integer, $4, $5::integer, $6::integer, now(), now()) "
    "ON CONFLICT (node) DO UPDATE SET address = EXCLUDED.address, pid = EXCLUDED.pid, version = EXCLUDED.version, "
    "ttl_ms = EXCLUDED.ttl_ms, heartbeat_ms = EXCLUDED.heartbeat_ms, heartbeat_at = now(), "
    "started_at = CASE WHEN xr_cluster_nodes.pid = EXCLUDED.pid THEN xr_cluster_nodes.started_at ELSE now() END";

const char* const kSyncConnectionsSql =
    "INSERT INTO xr_cluster_connections (node, instance, conn_id, username, target, transport, client_address, "
    "started_at, bytes_to_client, bytes_to_server, updated_at) "
    "SELECT $1, i, c, u, t, tr, a, to_timestamp(s), bc, bs, now() FROM unnest($2::text[], $3::bigint[], "
    "$4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[]) "
    "AS x(i, c, u, t, tr, a, s, bc, bs) "
    "ON CONFLICT (node, instance) DO UPDATE SET bytes_to_client = EXCLUDED.bytes_to_client, "
    "bytes_to_server = EXCLUDED.bytes_to_server, updated_at = now() "
    // An idle connection's row is not rewritten every heartbeat (no dead tuple, no WAL).
    "WHERE xr_cluster_connections.bytes_to_client <> EXCLUDED.bytes_to_client "
    "OR xr_cluster_connections.bytes_to_server <> EXCLUDED.bytes_to_server";

const char* const kDeleteGoneSql =
    "DELETE FROM xr_cluster_connections WHERE node = $1 AND NOT (instance = ANY($2::text[]))";

const char* const kExpireNodesSql =
    "DELETE FROM xr_cluster_nodes WHERE heartbeat_at < now() - ttl_ms * interval '1 millisecond'";

#define XR_LIVE "n.heartbeat_at >= now() - n.ttl_ms * interval '1 millisecond'"

const char* const kLiveNodesSql =
    "SELECT n.node, n.address, (SELECT count(*) FROM xr_cluster_connections c WHERE c.node = n.node), "
    "(extract(epoch FROM now() - n.heartbeat_at) * 1000)::bigint FROM xr_cluster_nodes n WHERE " XR_LIVE
    " ORDER BY n.node LIMIT $1::bigint";

#define XR_ROW_COLUMNS                                                                                   \
  "SELECT c.node, c.instance, c.conn_id, c.username, c.target, c.transport, c.client_address, "       \
  "extract(epoch FROM c.started_at)::bigint, c.bytes_to_client, c.bytes_to_server "                   \
  "FROM xr_cluster_connections c JOIN xr_cluster_nodes n ON n.node = c.node WHERE " XR_LIVE

const char* const kListSql = XR_ROW_COLUMNS " ORDER BY c.node, c.conn_id LIMIT $1::bigint";
const char* const kCountSql =
    "SELECT count(*), (SELECT count(*) FROM xr_cluster_nodes n WHERE " XR_LIVE ") FROM xr_cluster_connections c "
    "JOIN xr_cluster_nodes n ON n.node = c.node WHERE " XR_LIVE;
const char* const kInfoSql = XR_ROW_COLUMNS " AND c.node = $1 AND c.instance = $2";
const char* const kFindInstanceSql = XR_ROW_COLUMNS " AND c.instance = $1 ORDER BY c.node LIMIT 16";
const char* const kDeleteRowSql = "DELETE FROM xr_cluster_connections WHERE node = $1 AND instance = $2";
const char* const kDeleteNodeSql = "DELETE FROM xr_cluster_nodes WHERE node = $1";

#undef XR_ROW_COLUMNS
#undef XR_LIVE

}  // namespace xr::cluster
