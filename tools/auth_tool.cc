// xpra-relay-auth: manages the user database of the "sqlite" authentication module (DB: a file)
// or of the "postgresql" module (DB: a postgresql:// URI). Same commands, arguments, schema and
// output as xpra 3.1.3's server/auth/sqlite_auth.py, so a database made by either tool works
// with the other.
//
//   xpra-relay-auth DB create
//   xpra-relay-auth DB list
//   xpra-relay-auth DB add USERNAME PASSWORD [UID GID DISPLAYS ENV_OPTIONS SESSION_OPTIONS]
//   xpra-relay-auth DB remove USERNAME [PASSWORD]
//   xpra-relay-auth DB authenticate USERNAME PASSWORD
//   xpra-relay-auth postgresql://... migrate SQLITE_FILE
//
// Exit status: 0 success, 1 failure (bad arguments, database error, authentication failed).

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <set>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_util.h"
#include "auth/postgresql_auth.h"
#include "auth/postgresql_db.h"
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
               " %1$s postgresql://USER:PASSWORD@HOST:PORT/DBNAME migrate SQLITE_FILE\n"
               "\n"
               "Manages the users table of the sqlite authentication module\n"
               "(--auth=sqlite,filename=DB); compatible with xpra's sqlite_auth.py.\n"
               "DB may be a postgresql:// URI instead (--auth=postgresql,uri=DB);\n"
               "migrate copies every user of a sqlite file into it, replacing users\n"
               "of the same name.\n"
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

using Row = std::vector<std::optional<std::string>>;  // nullopt: NULL
constexpr int64_t kPgTimeoutMs = 10000;                // one tool command's database calls

// The users table's home: a sqlite file or a PostgreSQL database. SQL is written with `?`.
class Store {
 public:
  virtual ~Store() = default;
  // Runs one statement; the rows it returns.
  virtual xr::Expected<std::vector<Row>> Run(std::string_view sql, const Row& params) = 0;
  // Rows the last INSERT/UPDATE/DELETE changed.
  virtual int64_t changes() const = 0;
  // How messages name the database (never a password).
  const std::string& name() const { return name_; }
  // name() and the message, with a hint when the table is missing.
  std::string Error(const std::string& msg) const {
    std::string out = name_ + ": " + msg;
    if (msg.find("no such table") != std::string::npos || msg.find("\"users\" does not exist") != std::string::npos) {
      out += " (create it first: xpra-relay-auth " + (pg_ ? std::string("postgresql://...") : name_) + " create)";
    }
    return out;
  }

 protected:
  Store(std::string name, bool pg) : name_(std::move(name)), pg_(pg) {}

 private:
  std::string name_;
  bool pg_;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path, SqliteDb db) : Store(path, false), db_(std::move(db)) {}
  xr::Expected<std::vector<Row>> Run(std::string_view sql, const Row& params) override {
    xr::Expected<SqliteStatement> stmt = db_.Prepare(sql);
    if (!stmt.ok()) return stmt.error();
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i]) continue;  // an unbound parameter is NULL
      if (xr::Status s = stmt->BindText(static_cast<int>(i + 1), *params[i]); !s.ok()) return s.error();
    }
    std::vector<Row> rows;
    while (true) {
      xr::Expected<bool> more = stmt->Step();
      if (!more.ok()) return more.error();
      if (!*more) return rows;
      Row row;
      for (int c = 0; c < stmt->column_count(); ++c) row.push_back(stmt->ColumnText(c));
      rows.push_back(std::move(row));
    }
  }
  int64_t changes() const override { return db_.changes(); }

 private:
  SqliteDb db_;
};

class PgStore final : public Store {
 public:
  explicit PgStore(xr::auth::PgConn conn) : Store(conn.name(), true), conn_(std::move(conn)) {}
  xr::Expected<std::vector<Row>> Run(std::string_view sql, const Row& params) override {
    xr::Expected<xr::auth::PgResult> r =
        conn_.Exec(xr::auth::ToPgPlaceholders(sql), params, xr::auth::PgNowMs() + kPgTimeoutMs);
    if (!r.ok()) return r.error();
    changes_ = r->changes();
    std::vector<Row> rows;
    for (int i = 0; i < r->rows(); ++i) {
      Row row;
      for (int c = 0; c < r->columns(); ++c) row.push_back(r->Text(i, c));
      rows.push_back(std::move(row));
    }
    return rows;
  }
  int64_t changes() const override { return changes_; }

 private:
  xr::auth::PgConn conn_;
  int64_t changes_ = 0;
};

// Opens DB: a postgresql:// URI, else a sqlite file (made when `create`, else it must exist).
xr::Expected<std::unique_ptr<Store>> OpenStore(const std::string& db, bool create) {
  if (xr::auth::IsPostgresqlUri(db)) {
    xr::Expected<xr::auth::PgConn> conn = xr::auth::PgConn::Connect(db, xr::auth::PgNowMs() + kPgTimeoutMs);
    if (!conn.ok()) return conn.error();
    return std::unique_ptr<Store>(std::make_unique<PgStore>(std::move(*conn)));
  }
  if (!create && access(db.c_str(), F_OK) != 0) {
    return xr::MakeError(xr::ErrorCode::kIo, "database file '" + db + "' does not exist");
  }
  xr::Expected<SqliteDb> sdb = SqliteDb::Open(db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0));
  if (!sdb.ok()) return sdb.error();
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(db, std::move(*sdb)));
}

int Create(const std::string& path) {
  xr::Expected<std::unique_ptr<Store>> db = OpenStore(path, true);
  if (!db.ok()) return Fail(db.error().message);
  if (auto r = (*db)->Run(kCreateSql, {}); !r.ok()) return Fail((*db)->Error(r.error().message));
  return 0;
}

constexpr char kInsertSql[] =
    "INSERT INTO users(username, password, uid, gid, displays, env_options, session_options) VALUES(?, ?, ?, ?, ?, ?, ?)";

int Add(const std::string& path, const std::vector<std::string>& args) {
  Row row = {args[0], args[1], std::to_string(getuid()), std::to_string(getgid()), "", "", ""};
  for (size_t i = 2; i < args.size(); ++i) row[i] = args[i];
  xr::Expected<std::unique_ptr<Store>> db = OpenStore(path, false);
  if (!db.ok()) return Fail(db.error().message);
  if (auto r = (*db)->Run(kInsertSql, row); !r.ok()) return Fail((*db)->Error(r.error().message));
  return 0;
}

int Remove(const std::string& path, const std::vector<std::string>& args) {
  xr::Expected<std::unique_ptr<Store>> db = OpenStore(path, false);
  if (!db.ok()) return Fail(db.error().message);
  auto r = (args.size() > 1 && !args[1].empty())
               ? (*db)->Run("DELETE FROM users WHERE username=? AND password=?", {args[0], args[1]})
               : (*db)->Run("DELETE FROM users WHERE username=?", {args[0]});
  if (!r.ok()) return Fail((*db)->Error(r.error().message));
  if ((*db)->changes() == 0) std::fprintf(stderr, "xpra-relay-auth: no matching user '%s'\n", args[0].c_str());
  return 0;
}

constexpr char kSelectSql[] = "SELECT username, password, uid, gid, displays, env_options, session_options FROM users";

// Copies every row of the sqlite file `from` into the PostgreSQL database `to` in one
// transaction; users already there under the same name are replaced.
int Migrate(const std::string& to, const std::string& from) {
  if (!xr::auth::IsPostgresqlUri(to)) return Fail("migrate copies a sqlite file into a postgresql:// database");
  if (access(from.c_str(), F_OK) != 0) return Fail("database file '" + from + "' does not exist");
  xr::Expected<SqliteDb> sdb = SqliteDb::Open(from, SQLITE_OPEN_READONLY);
  if (!sdb.ok()) return Fail(sdb.error().message);
  SqliteStore source(from, std::move(*sdb));
  xr::Expected<std::vector<Row>> rows = source.Run(kSelectSql, {});
  if (!rows.ok()) return Fail(source.Error(rows.error().message));
  xr::Expected<std::unique_ptr<Store>> db = OpenStore(to, false);
  if (!db.ok()) return Fail(db.error().message);
  Store& target = **db;
  std::set<std::string> users;
  for (const Row& row : *rows) users.insert(row[0].value_or(""));
  int64_t replaced = 0;
  auto step = [&](std::string_view sql, const Row& params) {
    xr::Expected<std::vector<Row>> r = target.Run(sql, params);
    if (!r.ok()) std::fprintf(stderr, "xpra-relay-auth: %s\n", target.Error(r.error().message).c_str());
    return r.ok();
  };
  bool ok = step("BEGIN", {});
  for (auto it = users.begin(); ok && it != users.end(); ++it) {
    ok = step("DELETE FROM users WHERE username=?", {*it});
    replaced += ok && target.changes() > 0;
  }
  for (auto it = rows->begin(); ok && it != rows->end(); ++it) ok = step(kInsertSql, *it);
  ok = ok && step("COMMIT", {});
  if (!ok) return Fail("migration from '" + from + "' rolled back, nothing copied");
  std::printf("copied %zu rows (%zu users, %lld replaced) from %s to %s\n", rows->size(), users.size(),
              static_cast<long long>(replaced), from.c_str(), target.name().c_str());
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
  xr::Expected<std::unique_ptr<Store>> db = OpenStore(path, false);
  if (!db.ok()) return Fail(db.error().message);
  xr::Expected<std::vector<Row>> found = (*db)->Run(kSelectSql, {});
  if (!found.ok()) return Fail((*db)->Error(found.error().message));
  std::vector<std::vector<std::string>> rows;
  for (const Row& r : *found) {
    std::vector<std::string> row;
    for (size_t i = 0; i < 7; ++i) row.push_back(i < r.size() ? r[i].value_or("None") : "None");  // Python's str(None)
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
  auto module = xr::auth::IsPostgresqlUri(path)
                    ? xr::auth::CreatePostgresqlAuth(xr::auth::ModuleOptions("postgresql", {{"uri", path}}))
                    : xr::auth::CreateSqliteAuth(xr::auth::ModuleOptions("sqlite", {{"filename", path}}));
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
  if (cmd == "migrate") {
    if (args.size() != 1) return Usage(argv0, "invalid number of arguments");
    return Migrate(db, args[0]);
  }
  return Usage(argv0, "invalid command '" + cmd + "'");
}
