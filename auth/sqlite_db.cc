#include "auth/sqlite_db.h"

namespace xr::auth {

Expected<SqliteDb> SqliteDb::Open(const std::string& path, int flags, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open database '" + path + "': " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return MakeError(ErrorCode::kIo, std::move(msg));
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  return SqliteDb(db);
}

SqliteDb& SqliteDb::operator=(SqliteDb&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    db_ = other.db_;
    other.db_ = nullptr;
  }
  return *this;
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

Expected<SqliteStatement> SqliteDb::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK || stmt == nullptr) {
    sqlite3_finalize(stmt);
    // SQLITE_ERROR: bad SQL or unknown table/column; anything else (busy, not a database, I/O) is kIo.
    const ErrorCode code = rc == SQLITE_ERROR ? ErrorCode::kMalformed : ErrorCode::kIo;
    return MakeError(code, sqlite3_errmsg(db_));
  }
  return SqliteStatement(stmt);
}

Status SqliteDb::Exec(std::string_view sql) {
  Expected<SqliteStatement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  while (true) {
    Expected<bool> row = stmt->Step();
    if (!row.ok()) return row.error();
    if (!*row) return Status::Ok();
  }
}

int SqliteDb::changes() const { return sqlite3_changes(db_); }

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

int SqliteStatement::parameter_count() const { return sqlite3_bind_parameter_count(stmt_); }

Status SqliteStatement::BindText(int index, std::string_view text) {
  const int rc = sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) {
    return MakeError(ErrorCode::kInternal, std::string("cannot bind parameter: ") + sqlite3_errstr(rc));
  }
  return Status::Ok();
}

Expected<bool> SqliteStatement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return MakeError(ErrorCode::kIo, std::string("database error: ") + sqlite3_errmsg(sqlite3_db_handle(stmt_)));
}

int SqliteStatement::column_count() const { return sqlite3_column_count(stmt_); }

std::string SqliteStatement::column_name(int i) const {
  const char* name = sqlite3_column_name(stmt_, i);
  return name != nullptr ? name : "";
}

std::optional<std::string> SqliteStatement::ColumnText(int i) const {
  if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) return std::nullopt;
  const unsigned char* text = sqlite3_column_text(stmt_, i);
  const int n = sqlite3_column_bytes(stmt_, i);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(n));
}

}  // namespace xr::auth
