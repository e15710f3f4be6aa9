#include "cluster/cluster_db.h"

#include <set>

#include "deploy/cluster/cluster_schema.h"

namespace xr::cluster {
namespace {

int64_t ToInt(const std::optional<std::string>& s) {
  if (!s) return 0;
  return std::strtoll(s->c_str(), nullptr, 10);
}

}  // namespace

int MigrationVersion(const std::string& name) {
  int v = 0;
  size_t i = 0;
  for (; i < name.size() && i < 6 && name[i] >= '0' && name[i] <= '9'; ++i) v = v * 10 + (name[i] - '0');
  return i == 0 ? -1 : v;
}

Expected<MigrationResult> ApplyMigrations(auth::PgConn& db, int64_t deadline_ms) {
  auto step = [&](const char* sql, const auth::PgParams& params = {}) { return db.Exec(sql, params, deadline_ms); };
  if (auto r = step("BEGIN"); !r.ok()) return r.error();
  auto fail = [&](Error e) -> Expected<MigrationResult> {
    (void)db.Exec("ROLLBACK", {}, deadline_ms);
    return e;
  };
  // No NOTICE ("already exists, skipping") on stderr: libpq prints those itself.
  if (auto r = step("SET LOCAL client_min_messages = warning"); !r.ok()) return fail(r.error());
  // One node at a time; the lock ends with the transaction.
  if (auto r = step("SELECT pg_advisory_xact_lock(7346938201)"); !r.ok()) return fail(r.error());
  if (auto r = step("CREATE TABLE IF NOT EXISTS xr_schema_version (version integer PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      !r.ok()) {
    return fail(r.error());
  }
  auto have = step("SELECT version FROM xr_schema_version");
  if (!have.ok()) return fail(have.error());
  std::set<int> done;
  for (int i = 0; i < have->rows(); ++i) done.insert(static_cast<int>(ToInt(have->Text(i, 0))));
  MigrationResult out;
  for (const Migration& m : Migrations()) {
    const int v = MigrationVersion(m.name);
    if (v < 0) return fail(MakeError(ErrorCode::kMalformed, std::string("migration ") + m.name + " has no version number"));
    if (done.count(v) != 0) continue;
    if (auto r = db.Exec(m.sql, {}, deadline_ms); !r.ok()) {
      return fail(MakeError(r.error().code, std::string("migration ") + m.name + ": " + r.error().message));
    }
    if (auto r = step("INSERT INTO xr_schema_version (version, name) VALUES ($1::integer, $2)",
                      {std::to_string(v), std::string(m.name)});
        !r.ok()) {
      return fail(r.error());
    }
    done.insert(v);
    out.applied.emplace_back(m.name);
  }
  if (auto r = step("COMMIT"); !r.ok()) return fail(r.error());
  out.version = done.empty() ? 0 : *done.rbegin();
  return out;
}

std::vector<ListedRow> ReadRows(const auth::PgResult& r) {
  std::vector<ListedRow> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    ListedRow l;
    l.node = r.Text(i, 0).value_or("");
    l.row.instance = r.Text(i, 1).value_or("");
    l.row.conn_id = static_cast<uint64_t>(ToInt(r.Text(i, 2)));
    l.row.username = r.Text(i, 3).value_or("");
    l.row.target = r.Text(i, 4).value_or("");
    l.row.transport = r.Text(i, 5).value_or("");
    l.row.client_address = r.Text(i, 6).value_or("");
    l.row.started_unix = ToInt(r.Text(i, 7));
    l.row.bytes_to_client = static_cast<uint64_t>(ToInt(r.Text(i, 8)));
    l.row.bytes_to_server = static_cast<uint64_t>(ToInt(r.Text(i, 9)));
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace xr::cluster
