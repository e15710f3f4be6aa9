#include "auth/sqlite_auth.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "auth/module_base.h"

namespace xr::auth {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string Column(const SqliteStatement& row, std::string_view name) {
  for (int i = 0; i < row.column_count(); ++i) {
    if (EqualsIgnoreCase(row.column_name(i), name)) return row.ColumnText(i).value_or(std::string());
  }
  return {};
}

class SqliteAuth final : public PasswordModuleBase {
 public:
  SqliteAuth(const ModuleOptions& options, std::string filename, std::string password_query,
             std::string sessions_query)
      : PasswordModuleBase(options),
        filename_(std::move(filename)),
        password_query_(std::move(password_query)),
        sessions_query_(std::move(sessions_query)) {}

  // Opens the database and compiles both queries, checking their parameter counts.
  Status Validate() const {
    Expected<SqliteDb> db = OpenDb();
    if (!db.ok()) return db.error();
    struct Query {
      const char* option;
      const std::string& sql;
      int params;
    };
    for (const Query& q : {Query{"password_query", password_query_, 1}, Query{"sessions_query", sessions_query_, 2}}) {
      Expected<SqliteStatement> stmt = db->Prepare(q.sql);
      if (!stmt.ok()) return MakeError(stmt.error().code, std::string(q.option) + ": " + stmt.error().message);
      if (stmt->parameter_count() != q.params) {
        return MakeError(ErrorCode::kMalformed, std::string(q.option) + " must have exactly " +
                                                    std::to_string(q.params) + " '?' parameter" +
                                                    (q.params > 1 ? "s" : "") + ", found " +
                                                    std::to_string(stmt->parameter_count()));
      }
    }
    return Status::Ok();
  }

  // Re-checks that the database and the queries work, and drops pooled connections.
  Status Reload() override {
    {
      std::lock_guard lock(pool_mu_);
      pool_.clear();
    }
    return Validate();
  }

 protected:
  // Every non-NULL, non-empty password the password query returns for the user, as the latin-1
  // bytes xpra hashes (passwords with characters above U+00FF are left out); unknown user: error.
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    Lease db(this);
    if (!db.ok()) return db.error();
    Expected<SqliteStatement> stmt = db->Prepare(password_query_);
    if (!stmt.ok()) return stmt.error();
    if (Status s = stmt->BindText(1, username); !s.ok()) return s.error();
    std::vector<Credential> passwords;
    bool found = false;
    while (true) {
      Expected<bool> row = stmt->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      found = true;
      if (stmt->column_count() < 1) continue;
      std::optional<std::string> p = stmt->ColumnText(0);
      if (!p || p->empty()) continue;
      // The text as xpra hashes it (latin-1); the original text is what the sessions query needs.
      if (std::optional<std::string> bytes = TextPasswordBytes(*p)) passwords.push_back({std::move(*bytes), *p});
    }
    if (!found) {
      return MakeError(ErrorCode::kAuthFailed, "username '" + username + "' not found in '" + filename_ + "'");
    }
    return passwords;
  }

  // The first row of the sessions query; no row means no sessions.
  Expected<std::vector<SessionEntry>> GetSessions(const std::string& username, const Credential& credential) override {
    Lease db(this);
    if (!db.ok()) return db.error();
    Expected<SqliteStatement> stmt = db->Prepare(sessions_query_);
    if (!stmt.ok()) return stmt.error();
    if (Status s = stmt->BindText(1, username); !s.ok()) return s.error();
    if (Status s = stmt->BindText(2, credential.stored); !s.ok()) return s.error();
    Expected<bool> row = stmt->Step();
    if (!row.ok()) return row.error();
    if (!*row) return std::vector<SessionEntry>{};
    return std::vector<SessionEntry>{ParseSessionRow(*stmt)};
  }

 private:
  // A pooled read-only connection for one query (opening SQLite costs more than the query);
  // back to the pool when the lease ends. Statements must be destroyed before the lease.
  class Lease {
   public:
    explicit Lease(const SqliteAuth* owner) : owner_(owner), db_(owner->AcquireDb()) {}
    ~Lease() {
      if (db_.ok()) owner_->ReleaseDb(std::move(*db_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    bool ok() const { return db_.ok(); }
    const Error& error() const { return db_.error(); }
    SqliteDb* operator->() { return &*db_; }

   private:
    const SqliteAuth* owner_;
    Expected<SqliteDb> db_;
  };

  Expected<SqliteDb> AcquireDb() const {
    struct stat st;
    if (Status s = StatDb(&st); !s.ok()) return s.error();
    {
      std::lock_guard lock(pool_mu_);
      if (st.st_ino != pool_ino_ || st.st_dev != pool_dev_) {  // a new file at the path
        pool_.clear();
        pool_ino_ = st.st_ino;
        pool_dev_ = st.st_dev;
      }
      if (!pool_.empty()) {
        SqliteDb db = std::move(pool_.back());
        pool_.pop_back();
        return db;
      }
    }
    return SqliteDb::Open(filename_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  }

  void ReleaseDb(SqliteDb db) const {
    std::lock_guard lock(pool_mu_);
    if (pool_.size() < kMaxPooled) pool_.push_back(std::move(db));
  }

  static constexpr size_t kMaxPooled = 16;
  mutable std::mutex pool_mu_;
  mutable std::vector<SqliteDb> pool_;
  mutable ino_t pool_ino_ = 0;
  mutable dev_t pool_dev_ = 0;

  // The database file's identity; a readable error when it is missing (SQLite's own would not
  // name the file).
  Status StatDb(struct stat* st) const {
    if (stat(filename_.c_str(), st) != 0) {
      return MakeError(ErrorCode::kIo, "cannot find the database file '" + filename_ + "': " + std::strerror(errno));
    }
    return Status::Ok();
  }

  Expected<SqliteDb> OpenDb() const {
    struct stat st;
    if (Status s = StatDb(&st); !s.ok()) return s.error();
    return SqliteDb::Open(filename_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  }

  const std::string filename_;
  const std::string password_query_;
  const std::string sessions_query_;
};

}  // namespace

SessionEntry ParseSessionRow(const SqliteStatement& row) {
  return MakeSessionEntry(Column(row, "uid"), Column(row, "gid"), Column(row, "displays"), Column(row, "env_options"),
                          Column(row, "session_options"));
}

Expected<std::unique_ptr<AuthModule>> CreateSqliteAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"filename", "password_query", "sessions_query"}); !s.ok()) return s.error();
  Expected<std::string> filename = options.GetNonEmpty("filename", std::string(kDefaultSqliteFilename));
  if (!filename.ok()) return filename.error();
  Expected<std::string> password_query = options.GetNonEmpty("password_query", std::string(kDefaultPasswordQuery));
  if (!password_query.ok()) return password_query.error();
  Expected<std::string> sessions_query = options.GetNonEmpty("sessions_query", std::string(kDefaultSessionsQuery));
  if (!sessions_query.ok()) return sessions_query.error();
  auto module = std::make_unique<SqliteAuth>(options, AbsolutePath(*filename), std::move(password_query).value(),
                                             std::move(sessions_query).value());
  if (Status s = module->Validate(); !s.ok()) {
    return MakeError(s.error().code, "sqlite authentication: " + s.error().message);
  }
  return std::unique_ptr<AuthModule>(std::move(module));
}

}  // namespace xr::auth
