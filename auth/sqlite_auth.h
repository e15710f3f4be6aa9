#pragma once
// "sqlite": users in an SQLite database made by `xpra-relay-auth DB create` or xpra's own
// sqlite_auth.py (table users(username, password, uid, gid, displays, env_options,
// session_options)); mirrors xpra server/auth/sqlite_auth.py and sqlauthbase.py.
//
// The database is opened read-only for each authentication (so it can be edited or replaced
// while the relay runs), with a busy timeout.

#include <memory>
#include <string>

#include "auth/auth_module.h"
#include "auth/auth_util.h"
#include "auth/sqlite_db.h"

namespace xr::auth {

// xpra's defaults; the password query takes (username), the sessions query (username, password).
inline constexpr char kDefaultPasswordQuery[] = "SELECT password FROM users WHERE username=(?)";
inline constexpr char kDefaultSessionsQuery[] =
    "SELECT uid, gid, displays, env_options, session_options FROM users WHERE username=(?) AND password=(?)";
inline constexpr char kDefaultSqliteFilename[] = "sqlite.sdb";

// Turns one sessions_query row into a SessionEntry: columns found by name (case-insensitive,
// like sqlite3.Row); a missing or NULL column counts as empty. uid/gid through ParseUid/ParseGid.
SessionEntry ParseSessionRow(const SqliteStatement& row);

// Options: filename (default "sqlite.sdb", relative to the current directory), password_query
// (exactly 1 parameter), sessions_query (exactly 2), prompt. Bad options or queries ->
// kMalformed; the database cannot be opened -> kIo.
Expected<std::unique_ptr<AuthModule>> CreateSqliteAuth(const ModuleOptions& options);

}  // namespace xr::auth
