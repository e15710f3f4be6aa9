#pragma once
// "multifile": `filename=` holds one user per line,
//   username|password|uid|gid|displays|env_options|session_options
// parsed as xpra's server/auth/multifile_auth.py does: lines are stripped; blank lines and lines
// starting with '#' are skipped; at least 2 fields; uid/gid/displays only with 5+ fields
// (otherwise the default uid/gid, "nobody"); env_options and session_options are "k=v;k=v";
// a duplicate username keeps its first line; bad lines are skipped. The file is re-read when it
// changes.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

struct MultifileUser {
  std::string password;
  SessionEntry session;
};

struct MultifileData {
  std::map<std::string, MultifileUser> users;
  std::vector<std::string> problems;  // "line 3: not enough fields: 1", "line 5: duplicate entry for 'bob'"
};

// Parses a multifile password file (no secrets in `problems`).
MultifileData ParseMultifile(std::string_view data);

// Options: filename (required; relative to the current directory), prompt. Bad options ->
// kMalformed; the file cannot be read -> kIo.
Expected<std::unique_ptr<AuthModule>> CreateMultifileAuth(const ModuleOptions& options);

}  // namespace xr::auth
