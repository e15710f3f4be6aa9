#pragma once
// "postgresql": users in a PostgreSQL database (xpra's users table: username, password, uid, gid,
// displays, env_options, session_options, as made by `xpra-relay-auth postgresql://... create`),
// with the queries of the sqlite module; mirrors xpra's server/auth/postgresql_auth.py.
//
// Authenticate() runs on the auth worker pool (it blocks on the database). Connections are pooled
// (at most kMaxPooledPgConnections idle), each with both queries prepared once. Every database
// call of one lookup shares one deadline (connect_timeout_ms + statement_timeout_ms), connecting
// gets connect_timeout_ms of it at most; the server also gets statement_timeout. A database that cannot be reached or answered gives kIo / kTimeout
// (the engine then tells the client "authentication service unavailable"), and for the next
// kPgRetryDelayMs logins fail at once without trying, so a dead database never holds workers; a
// pooled connection found dead (the server restarted) is replaced once within the same login.

#include <memory>

#include "auth/auth_module.h"
#include "auth/auth_util.h"

namespace xr::auth {

// xpra's defaults for postgresql_auth.py (psycopg2's %s placeholders, turned into $1, $2).
inline constexpr char kDefaultPgPasswordQuery[] = "SELECT password FROM users WHERE username=(%s)";
inline constexpr char kDefaultPgSessionsQuery[] =
    "SELECT uid, gid, displays, env_options, session_options FROM users WHERE username=(%s) AND password=(%s)";
inline constexpr size_t kMaxPooledPgConnections = 4;
inline constexpr int64_t kPgRetryDelayMs = 1000;
// Defaults: one lookup takes 1.4 s at most, so a login against a hung database fails within 2 s.
inline constexpr int kDefaultPgConnectTimeoutMs = 700;
inline constexpr int kDefaultPgStatementTimeoutMs = 700;

// Options: uri (required: postgresql://user:password@host:port/dbname?sslmode=...),
// password_query (exactly 1 parameter), sessions_query (exactly 2), connect_timeout_ms and
// statement_timeout_ms (50..60000, default 700 each), prompt. Bad options, URI or queries ->
// kMalformed; the database cannot be reached at start -> kIo / kTimeout (the relay does not
// start with a configuration it cannot check).
Expected<std::unique_ptr<AuthModule>> CreatePostgresqlAuth(const ModuleOptions& options);

}  // namespace xr::auth
