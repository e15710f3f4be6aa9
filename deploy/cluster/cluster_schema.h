#pragma once
// The cluster schema's migrations (deploy/cluster/schema/NNN_name.sql), embedded at build time
// by gen_schema.sh, in file-name order. NNN is the version a migration records in
// xr_schema_version; cluster/cluster_db.h applies them.

#include <string>
#include <vector>

namespace xr::cluster {

struct Migration {
  const char* name;  // "001_cluster_state.sql"
  const char* sql;
};

const std::vector<Migration>& Migrations();

}  // namespace xr::cluster
