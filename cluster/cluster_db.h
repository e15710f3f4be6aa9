#pragma once
// Database steps shared by the relay's cluster thread (cluster_node.h) and `xpra_relay cluster`
// (cluster_cli.h): the schema migrations and reading connection rows. Blocking libpq calls,
// each bounded by a deadline: never on a reactor thread.

#include <cstdint>
#include <string>
#include <vector>

#include "auth/postgresql_db.h"
#include "base/status.h"
#include "cluster/cluster_state.h"

namespace xr::cluster {

// The migrations applied now (names), and the schema version after them.
struct MigrationResult {
  std::vector<std::string> applied;
  int version = 0;
};

// The version a migration file name records: its leading digits ("010_policy.sql" -> 10);
// -1 when it has none.
int MigrationVersion(const std::string& name);

// Applies every embedded migration (deploy/cluster/schema/*.sql, in name order) whose version
// xr_schema_version lacks, in one transaction under an advisory lock (nodes starting together
// apply each once). A failing file rolls everything back and is named in the error.
Expected<MigrationResult> ApplyMigrations(auth::PgConn& db, int64_t deadline_ms);

// The rows of a kListSql / kInfoSql / kFindInstanceSql result.
std::vector<ListedRow> ReadRows(const auth::PgResult& r);

}  // namespace xr::cluster
