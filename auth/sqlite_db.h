#pragma once
// Small RAII wrappers over the SQLite C API, shared by the sqlite module and xpra-relay-auth.

#include <sqlite3.h>

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace xr::auth {

class SqliteStatement;

// One database connection; closed by the destructor. Not to be shared between threads.
class SqliteDb {
 public:
  // Opens `path` with sqlite3_open_v2 `flags` (e.g. SQLITE_OPEN_READONLY) and a busy timeout.
  static Expected<SqliteDb> Open(const std::string& path, int flags, int busy_timeout_ms = 5000);

  SqliteDb(SqliteDb&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  SqliteDb& operator=(SqliteDb&& other) noexcept;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Compiles one statement; kMalformed with SQLite's message ("no such table: users") when the SQL
  // is invalid, kIo when the database cannot be read.
  Expected<SqliteStatement> Prepare(std::string_view sql);

  // Runs SQL that returns no rows.
  Status Exec(std::string_view sql);

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int changes() const;

  // The raw handle.
  sqlite3* get() const { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

// One prepared statement; finalized by the destructor.
class SqliteStatement {
 public:
  SqliteStatement(SqliteStatement&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  // Number of `?` parameters.
  int parameter_count() const;

  // Binds text to parameter `index` (1-based).
  Status BindText(int index, std::string_view text);

  // Advances: true when a row is available, false when done, Error on failure (e.g. busy).
  Expected<bool> Step();

  // Number of result columns.
  int column_count() const;

  // Name of result column `i` (0-based).
  std::string column_name(int i) const;

  // Column `i` of the current row as text (numbers converted); nullopt for NULL.
  std::optional<std::string> ColumnText(int i) const;

 private:
  friend class SqliteDb;
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace xr::auth
