#include "auth/postgresql_auth.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <optional>
#include <vector>

#include "auth/module_base.h"
#include "auth/postgresql_db.h"

namespace xr::auth {
namespace {

constexpr char kPasswordStmt[] = "xr_password";
constexpr char kSessionsStmt[] = "xr_sessions";

std::string Column(const PgResult& r, int row, const char* name) {
  const int col = r.column(name);
  return col < 0 ? std::string() : r.Text(row, col).value_or(std::string());
}

class PostgresqlAuth final : public PasswordModuleBase {
 public:
  PostgresqlAuth(const ModuleOptions& options, std::string uri, std::string password_query, std::string sessions_query,
                 int connect_timeout_ms, int statement_timeout_ms)
      : PasswordModuleBase(options),
        uri_(std::move(uri)),
        target_(PgTargetName(uri_)),
        password_query_(std::move(password_query)),
        sessions_query_(std::move(sessions_query)),
        connect_timeout_ms_(connect_timeout_ms),
        statement_timeout_ms_(statement_timeout_ms) {}

  // Connects, prepares both queries and checks their parameter counts.
  Status Validate() {
    Expected<PgConn> conn = Open(PgNowMs() + connect_timeout_ms_ + statement_timeout_ms_);
    if (!conn.ok()) return conn.error();
    Release(std::move(*conn));
    return Status::Ok();
  }

  // Drops pooled connections and checks the database again.
  Status Reload() override {
    {
      std::lock_guard lock(pool_mu_);
      pool_.clear();
    }
    down_until_ms_.store(0);
    return Validate();
  }

 protected:
  bool reports_unavailable() const override { return true; }

  // Every non-NULL, non-empty password the password query returns, as the latin-1 bytes xpra
  // hashes; unknown user: kAuthFailed.
  Expected<std::vector<Credential>> GetCredentials(const std::string& username) override {
    Expected<PgResult> r = Query(kPasswordStmt, {username});
    if (!r.ok()) return r.error();
    if (r->rows() == 0) {
      return MakeError(ErrorCode::kAuthFailed, "username '" + username + "' not found in " + target_);
    }
    std::vector<Credential> passwords;
    for (int i = 0; i < r->rows() && r->columns() > 0; ++i) {
      std::optional<std::string> p = r->Text(i, 0);
      if (!p || p->empty()) continue;
      if (std::optional<std::string> bytes = TextPasswordBytes(*p)) passwords.push_back({std::move(*bytes), *p});
    }
    return passwords;
  }

  // The first row of the sessions query; no row means no sessions.
  Expected<std::vector<SessionEntry>> GetSessions(const std::string& username, const Credential& credential) override {
    Expected<PgResult> r = Query(kSessionsStmt, {username, credential.stored});
    if (!r.ok()) return r.error();
    if (r->rows() == 0) return std::vector<SessionEntry>{};
    return std::vector<SessionEntry>{MakeSessionEntry(Column(*r, 0, "uid"), Column(*r, 0, "gid"),
                                                      Column(*r, 0, "displays"), Column(*r, 0, "env_options"),
                                                      Column(*r, 0, "session_options"))};
  }

 private:
  // Runs a prepared statement on a pooled connection within one deadline. A pooled connection
  // that turns out dead is dropped and the query tried once more on a new one.
  Expected<PgResult> Query(const char* stmt, const PgParams& params) {
    const int64_t now = PgNowMs();
    if (now < down_until_ms_.load()) {
      return MakeError(ErrorCode::kIo, target_ + " was unreachable moments ago; not trying again yet");
    }
    const int64_t deadline = now + connect_timeout_ms_ + statement_timeout_ms_;
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool pooled = false;
      Expected<PgConn> conn = Acquire(deadline, &pooled);
      if (!conn.ok()) return conn.error();
      Expected<PgResult> r = conn->ExecPrepared(stmt, params, deadline);
      if (conn->usable()) {
        Release(std::move(*conn));
        return r;
      }
      if (!pooled || r.ok()) {
        if (!r.ok()) MarkDown();
        return r;
      }
      // A dead pooled connection (the server restarted): the others are dead too; try a fresh one.
      std::lock_guard lock(pool_mu_);
      pool_.clear();
    }
    return MakeError(ErrorCode::kIo, "lost the connection to " + target_);
  }

  Expected<PgConn> Acquire(int64_t deadline, bool* pooled) {
    {
      std::lock_guard lock(pool_mu_);
      if (!pool_.empty()) {
        PgConn c = std::move(pool_.back());
        pool_.pop_back();
        *pooled = true;
        return c;
      }
    }
    *pooled = false;
    return Open(deadline);
  }

  void Release(PgConn conn) {
    std::lock_guard lock(pool_mu_);
    if (pool_.size() < kMaxPooledPgConnections) pool_.push_back(std::move(conn));
  }

  void MarkDown() { down_until_ms_.store(PgNowMs() + kPgRetryDelayMs); }

  // A new connection with both statements prepared.
  Expected<PgConn> Open(int64_t deadline) {
    Expected<PgConn> conn =
        PgConn::Connect(uri_, std::min(deadline, PgNowMs() + connect_timeout_ms_), statement_timeout_ms_);
    if (!conn.ok()) {
      if (conn.error().code != ErrorCode::kMalformed) MarkDown();
      return conn.error();
    }
    struct Statement {
      const char* name;
      const char* option;
      const std::string& sql;
      int params;
    };
    for (const Statement& s : {Statement{kPasswordStmt, "password_query", password_query_, 1},
                               Statement{kSessionsStmt, "sessions_query", sessions_query_, 2}}) {
      Status prepared = conn->Prepare(s.name, s.sql, deadline);
      if (!prepared.ok()) {
        if (!conn->usable()) MarkDown();
        return MakeError(prepared.error().code, std::string(s.option) + ": " + prepared.error().message);
      }
      Expected<PgResult> d = conn->Describe(s.name, deadline);
      if (!d.ok()) return MakeError(d.error().code, std::string(s.option) + ": " + d.error().message);
      if (d->parameter_count() != s.params) {
        return MakeError(ErrorCode::kMalformed, std::string(s.option) + " must have exactly " +
                                                    std::to_string(s.params) + " parameter" + (s.params > 1 ? "s" : "") +
                                                    " (%s, ? or $n), found " + std::to_string(d->parameter_count()));
      }
    }
    return conn;
  }

  const std::string uri_;     // holds the password: never in a message
  const std::string target_;  // user@host:port/dbname
  const std::string password_query_;
  const std::string sessions_query_;
  const int connect_timeout_ms_;
  const int statement_timeout_ms_;
  std::mutex pool_mu_;
  std::vector<PgConn> pool_;
  std::atomic<int64_t> down_until_ms_{0};
};

Expected<int> TimeoutOption(const ModuleOptions& options, std::string_view key, int fallback) {
  std::optional<std::string> v = options.Get(key);
  if (!v) return fallback;
  int n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n < 50 || n > 60000) {
    return MakeError(ErrorCode::kMalformed, "postgresql authentication: " + std::string(key) +
                                                " must be a number of milliseconds from 50 to 60000");
  }
  return n;
}

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreatePostgresqlAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed(
          {"uri", "password_query", "sessions_query", "connect_timeout_ms", "statement_timeout_ms"});
      !s.ok()) {
    return s.error();
  }
  Expected<std::string> uri = options.GetNonEmpty("uri", std::nullopt);
  if (!uri.ok()) return uri.error();
  Expected<std::string> password_query = options.GetNonEmpty("password_query", std::string(kDefaultPgPasswordQuery));
  if (!password_query.ok()) return password_query.error();
  Expected<std::string> sessions_query = options.GetNonEmpty("sessions_query", std::string(kDefaultPgSessionsQuery));
  if (!sessions_query.ok()) return sessions_query.error();
  Expected<int> connect_ms = TimeoutOption(options, "connect_timeout_ms", kDefaultPgConnectTimeoutMs);
  if (!connect_ms.ok()) return connect_ms.error();
  Expected<int> statement_ms = TimeoutOption(options, "statement_timeout_ms", kDefaultPgStatementTimeoutMs);
  if (!statement_ms.ok()) return statement_ms.error();
  auto module = std::make_unique<PostgresqlAuth>(options, std::move(uri).value(),
                                                 ToPgPlaceholders(*password_query), ToPgPlaceholders(*sessions_query),
                                                 *connect_ms, *statement_ms);
  if (Status s = module->Validate(); !s.ok()) {
    return MakeError(s.error().code, "postgresql authentication: " + s.error().message);
  }
  return std::unique_ptr<AuthModule>(std::move(module));
}

}  // namespace xr::auth
