// xpra-relay-auth: manages the SQLite user database of the "sqlite" authentication module.
// Same commands, arguments, schema and output as xpra 3.1.3's server/auth/sqlite_auth.py, so a
// database made by either tool works with the other.
//
//   xpra-relay-auth DB create
//   xpra-relay-auth DB list
//   xpra-relay-auth DB add USERNAME PASSWORD [UID GID DISPLAYS ENV_OPTIONS SESSION_OPTIONS]
//   xpra-relay-auth DB remove USERNAME [PASSWORD]
//   xpra-relay-auth DB authenticate USERNAME PASSWORD
//
// Exit status: 0 success, 1 failure (bad arguments, database error, authentication failed).

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_util.h"
#include "auth/sqlite_auth.h"
#include "auth/sqlite_db.h"
#include "codec/digest.h"

namespace {

using xr::auth::SqliteDb;
using xr::auth::SqliteStatement;

constexpr char kCreateSql[] =
    "CREATE TABLE users (username VARCHAR(255) NOT NULL, password VARCHAR(255), uid VARCHAR(63), "
    "gid VARCHAR(63), displays VARCHAR(8191), env_options VARCHAR(8191), session_options VARCHAR(8191))";

constexpr const char* kFields[] = {"username", "password", "uid", "gid", "displays", "env_options", "session_options"};

void PrintUsage(FILE* out, const char* argv0) {
  std::fprintf(out,
               "usage:\n"
               " %1$s DB create\n"
               " %1$s DB list\n"
               " %1$s DB add USERNAME PASSWORD [UID GID DISPLAYS ENV_OPTIONS SESSION_OPTIONS]\n"
               " %1$s DB remove USERNAME [PASSWORD]\n"
               " %1$s DB authenticate USERNAME PASSWORD\n"
               "\n"
               "Manages the users table of the sqlite authentication module\n"
               "(--auth=sqlite,filename=DB); compatible with xpra's sqlite_auth.py.\n"
               "DISPLAYS: comma separated (\":100,tcp://host:14500/\"); ENV_OPTIONS and\n"
               "SESSION_OPTIONS: \"key=value;key=value\". UID/GID default to the current user's.\n"
               "Exit status: 0 on success, 1 on any failure.\n",
               argv0);
}

int Usage(const char* argv0, const std::string& msg) {
  std::fprintf(stderr, "%s\n", msg.c_str());
  PrintUsage(stderr, argv0);
  return 1;
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "xpra-relay-auth: %s\n", msg.c_str());
  return 1;
}

// Adds a hint when the table is missing.
std::string DbError(const std::string& db, const std::string& msg) {
  std::string out = db + ": " + msg;
  if (msg.find("no such table") != std::string::npos) {
    out += " (create it first: xpra-relay-auth " + db + " create)";
  }
  return out;
}

xr::Expected<SqliteDb> OpenExisting(const std::string& db) {
  if (access(db.c_str(), F_OK) != 0) {
    return xr::MakeError(xr::ErrorCode::kIo, "database file '" + db + "' does not exist");
  }
  return SqliteDb::Open(db, SQLITE_OPEN_READWRITE);
}

// Runs one statement with text parameters.
xr::Status Run(SqliteDb& db, std::string_view sql, const std::vector<std::string>& params) {
  xr::Expected<SqliteStatement> stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  for (size_t i = 0; i < params.size(); ++i) {
    if (xr::Status s = stmt->BindText(static_cast<int>(i + 1), params[i]); !s.ok()) return s;
  }
  while (true) {
    xr::Expected<bool> row = stmt->Step();
    if (!row.ok()) return row.error();
    if (!*row) return xr::Status::Ok();
  }
}

int Create(const std::string& path) {
  xr::Expected<SqliteDb> db = SqliteDb::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return Fail(db.error().message);
  if (xr::Status s = db->Exec(kCreateSql); !s.ok()) return Fail(DbError(path, s.error().message));
  return 0;
}

int Add(const std::string& path, const std::vector<std::string>& args) {
  std::vector<std::string> row = {args[0], args[1], std::to_string(getuid()), std::to_string(getgid()), "", "", ""};
  for (size_t i = 2; i < args.size(); ++i) row[i] = args[i];
  xr::Expected<SqliteDb> db = OpenExisting(path);
  if (!db.ok()) return Fail(db.error().message);
  const xr::Status s = Run(*db,
                           "INSERT INTO users(username, password, uid, gid, displays, env_options, session_options) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?)",
                           row);
  if (!s.ok()) return Fail(DbError(path, s.error().message));
  return 0;
}

int Remove(const std::string& path, const std::vector<std::string>& args) {
  xr::Expected<SqliteDb> db = OpenExisting(path);
  if (!db.ok()) return Fail(db.error().message);
  xr::Status s = (args.size() > 1 && !args[1].empty())
                     ? Run(*db, "DELETE FROM users WHERE username=? AND password=?", {args[0], args[1]})
                     : Run(*db, "DELETE FROM users WHERE username=?", {args[0]});
  if (!s.ok()) return Fail(DbError(path, s.error().message));
  if (db->changes() == 0) std::fprintf(stderr, "xpra-relay-auth: no matching user '%s'\n", args[0].c_str());
  return 0;
}

// Characters in a UTF-8 string (Python's len() of the decoded str).
size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string RightJustify(const std::string& s, size_t width) {
  const size_t len = CodePoints(s);
  return len >= width ? s : std::string(width - len, ' ') + s;
}

std::string FormatRow(const std::vector<std::string>& values, const std::vector<size_t>& sizes) {
  std::string line = "|";
  for (size_t i = 0; i < values.size(); ++i) line += RightJustify(values[i], sizes[i]) + "|";
  return line;
}

int List(const std::string& path) {
  xr::Expected<SqliteDb> db = OpenExisting(path);
  if (!db.ok()) return Fail(db.error().message);
  xr::Expected<SqliteStatement> stmt =
      db->Prepare("SELECT username, password, uid, gid, displays, env_options, session_options FROM users");
  if (!stmt.ok()) return Fail(DbError(path, stmt.error().message));
  std::vector<std::vector<std::string>> rows;
  while (true) {
    xr::Expected<bool> more = stmt->Step();
    if (!more.ok()) return Fail(DbError(path, more.error().message));
    if (!*more) break;
    std::vector<std::string> row;
    for (int i = 0; i < 7; ++i) row.push_back(stmt->ColumnText(i).value_or("None"));  // Python's str(None)
    rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    std::printf("no rows found\n");
    return 0;
  }
  std::printf("%zu rows found:\n", rows.size());
  std::vector<size_t> sizes;
  std::vector<std::string> header;
  for (const char* f : kFields) {
    sizes.push_back(std::string_view(f).size() + 1);
    std::string h = f;
    for (char& c : h) {
      if (c == '_') c = ' ';
    }
    header.push_back(h);
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) sizes[i] = std::max(sizes[i], CodePoints(row[i]) + 1);
  }
  size_t total = sizes.size() + 1;
  for (size_t s : sizes) total += s;
  const std::string rule(total, '-');
  std::printf("%s\n%s\n%s\n", rule.c_str(), FormatRow(header, sizes).c_str(), rule.c_str());
  for (const auto& row : rows) std::printf("%s\n", FormatRow(row, sizes).c_str());
  return 0;
}

// Python's repr() of a str.
std::string PyRepr(std::string_view s) {
  const char quote = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

std::string PyDict(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string out = "{";
  for (size_t i = 0; i < kv.size(); ++i) {
    if (i > 0) out += ", ";
    out += PyRepr(kv[i].first) + ": " + PyRepr(kv[i].second);
  }
  return out + "}";
}

int Authenticate(const std::string& path, const std::string& username, const std::string& password) {
  auto module = xr::auth::CreateSqliteAuth(xr::auth::ModuleOptions("sqlite", {{"filename", path}}));
  if (!module.ok()) return Fail(module.error().message);
  // Answer a fresh challenge the way a client would.
  std::random_device rd;
  std::string salt;
  for (int i = 0; i < 32; ++i) salt += "0123456789abcdef"[rd() % 16];
  const std::string digest = "hmac+sha256";
  // Like an xpra client, hash the latin-1 bytes of the text.
  std::optional<std::string> bytes = xr::auth::TextPasswordBytes(password);
  if (!bytes) return Fail("authentication failed: the password has characters outside latin-1");
  xr::Expected<std::string> response = xr::digest::ComputeResponse(digest, *bytes, salt);
  if (!response.ok()) return Fail(response.error().message);
  xr::auth::AuthRequest req{username, digest, salt, *response, "xpra-relay-auth"};
  xr::Expected<xr::auth::AuthResult> result = (*module)->Authenticate(req);
  if (!result.ok()) return Fail("authentication failed: " + result.error().message);
  if (result->sessions.empty()) return Fail("authentication failed: no sessions found for '" + username + "'");
  const xr::auth::SessionEntry& s = result->sessions.front();
  std::string displays = "[";
  for (size_t i = 0; i < s.displays.size(); ++i) displays += (i > 0 ? ", " : "") + PyRepr(s.displays[i]);
  displays += "]";
  std::vector<std::pair<std::string, std::string>> env;
  for (const std::string& e : s.env_options) {
    const size_t eq = e.find('=');
    env.emplace_back(e.substr(0, eq), eq == std::string::npos ? "" : e.substr(eq + 1));
  }
  std::printf("success, found sessions: (%lld, %lld, %s, %s, %s)\n", static_cast<long long>(s.uid),
              static_cast<long long>(s.gid), displays.c_str(), PyDict(env).c_str(),
              PyDict(s.session_options).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* argv0 = "xpra-relay-auth";
  // "--help" as the first argument, or in place of the command.
  for (int i = 1; i < argc && i <= 2; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h" || (i == 2 && a == "help")) {
      PrintUsage(stdout, argv0);
      return 0;
    }
  }
  if (argc < 3) return Usage(argv0, "invalid number of arguments");
  const std::string db = argv[1];
  const std::string cmd = argv[2];
  std::vector<std::string> args(argv + 3, argv + argc);
  if (cmd == "create") {
    if (!args.empty()) return Usage(argv0, "invalid number of arguments");
    return Create(db);
  }
  if (cmd == "add") {
    if (args.size() < 2 || args.size() > 7) return Usage(argv0, "invalid number of arguments");
    return Add(db, args);
  }
  if (cmd == "remove") {
    if (args.empty() || args.size() > 2) return Usage(argv0, "invalid number of arguments");
    return Remove(db, args);
  }
  if (cmd == "list") {
    if (!args.empty()) return Usage(argv0, "invalid number of arguments");
    return List(db);
  }
  if (cmd == "authenticate") {
    if (args.size() != 2) return Usage(argv0, "invalid number of arguments");
    return Authenticate(db, args[0], args[1]);
  }
  return Usage(argv0, "invalid command '" + cmd + "'");
}
