#include "auth/postgresql_auth.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <unistd.h>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

#include "auth/module_base.h"
#include "auth/postgresql_cluster.h"
#include "auth/postgresql_db.h"

namespace xr::auth {
namespace {

constexpr char kPasswordStmt[] = "xr_password";
constexpr char kSessionsStmt[] = "xr_sessions";

std::string Column(const PgResult& r, int row, const char* name) {
  const int col = r.column(name);
  return col < 0 ? std::string() : r.Text(row, col).value_or(std::string());
}

// What cluster=yes adds (auth/postgresql_cluster.h).
struct ClusterOptions {
  bool enabled = false;
  bool cache = false;
  int64_t max_sessions_per_user = 0;  // 0: no limit
  std::string node;
};

class PostgresqlAuth final : public PasswordModuleBase {
 public:
  PostgresqlAuth(const ModuleOptions& options, std::string uri, std::string password_query, std::string sessions_query,
                 int connect_timeout_ms, int statement_timeout_ms, ClusterOptions cluster)
      : PasswordModuleBase(options),
        uri_(std::move(uri)),
        target_(PgTargetName(uri_)),
        password_query_(std::move(password_query)),
        sessions_query_(std::move(sessions_query)),
        connect_timeout_ms_(connect_timeout_ms),
        statement_timeout_ms_(statement_timeout_ms),
        cluster_(std::move(cluster)) {}

  // Connects, prepares both queries and checks their parameter counts; with cluster=yes creates
  // the shared tables (idempotently) and starts the listener thread.
  Status Validate() {
    const int64_t deadline = PgNowMs() + connect_timeout_ms_ + statement_timeout_ms_;
    if (cluster_.enabled) {
      Expected<PgConn> conn = PgConn::Connect(uri_, deadline);
      if (!conn.ok()) return conn.error();
      Expected<PgResult> made = conn->Exec(kPgClusterSchemaSql, {}, PgNowMs() + 10000);
      if (!made.ok()) {
        return MakeError(made.error().code, "cluster=yes: cannot create the shared login-policy tables "
                                            "(deploy/cluster/schema/010_login_policy.sql): " + made.error().message);
      }
    }
    Expected<PgConn> conn = Open(deadline);
    if (!conn.ok()) return conn.error();
    Release(std::move(*conn));
    if (cluster_.enabled && !listener_) {
      listener_ = std::make_unique<PgClusterListener>(uri_, cluster_.node, connect_timeout_ms_, &cache_, &sessions_,
                                                      cluster_.cache);
    }
    return Status::Ok();
  }

  // A session let in (counted for max_sessions_per_user) ended: written by the listener thread.
  void SessionEnded(const std::string& username) override {
    if (cluster_.max_sessions_per_user > 0 && sessions_.End(username) && listener_) listener_->Poke();
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
    return Passwords(*r, username, 0);
  }

  // cluster=yes: the shared back-off first (kLimited while it says wait), read with the user's
  // passwords in one statement, or alone when the passwords are cached.
  Expected<std::vector<Credential>> GetCredentialsFor(const std::string& username, const AuthRequest& req) override {
    if (!cluster_.enabled) return GetCredentials(username);
    const uint64_t epoch = cache_.epoch();
    const PgParams policy{req.source, req.backoff_user, std::to_string(req.free_failures),
                          std::to_string(req.failure_window_ms), std::to_string(req.max_backoff_ms)};
    if (std::optional<std::vector<Credential>> cached = cache_.credentials(username)) {
      Expected<PgResult> r = Query(kPgWaitStmt, policy);
      if (!r.ok() && Unreachable(r.error())) return r.error();
      if (r.ok()) {
        if (Error e = WaitError(*r); e.code == ErrorCode::kLimited) return e;
      }
      return std::move(*cached);
    }
    PgParams params{username};
    params.insert(params.end(), policy.begin(), policy.end());
    Expected<PgResult> r = Query(kPgLoginStmt, params);
    // The shared state broken (its tables or functions gone) with the database up: the user's row
    // alone, and the node-local back-off still applies.
    if (!r.ok() && !Unreachable(r.error())) return GetCredentials(username);
    if (!r.ok()) return r.error();
    if (Error e = WaitError(*r); e.code == ErrorCode::kLimited) return e;
    Expected<std::vector<Credential>> passwords = Passwords(*r, username, 1);
    if (passwords.ok() && cluster_.cache) cache_.PutCredentials(username, *passwords, epoch);
    return passwords;
  }

  // A failed login, recorded in the shared state (one statement). When the database cannot take
  // it, the node-local back-off still counts it.
  void Failed(const std::string& username, const AuthRequest& req) override {
    if (!cluster_.enabled) return;
    (void)Query(kPgFailedStmt, {req.source, req.backoff_user, std::to_string(req.failure_window_ms)});
  }

  // The first row of the sessions query; no row means no sessions. cluster=yes: from the cache
  // when it holds it, and max_sessions_per_user checked (and the session counted) on the database.
  Expected<std::vector<SessionEntry>> GetSessions(const std::string& username, const Credential& credential) override {
    const uint64_t epoch = cache_.epoch();
    std::optional<std::vector<SessionEntry>> sessions = cache_.sessions(username, credential.stored);
    if (!sessions) {
      Expected<PgResult> r = Query(kSessionsStmt, {username, credential.stored});
      if (!r.ok()) return r.error();
      sessions.emplace();
      if (r->rows() > 0) {
        sessions->push_back(MakeSessionEntry(Column(*r, 0, "uid"), Column(*r, 0, "gid"), Column(*r, 0, "displays"),
                                             Column(*r, 0, "env_options"), Column(*r, 0, "session_options")));
      }
      if (cluster_.cache) cache_.PutSessions(username, credential.stored, *sessions, epoch);
    }
    if (cluster_.max_sessions_per_user > 0) {
      std::shared_lock lock(sessions_.begin_mu());
      Expected<PgResult> r = Query(kPgBeginStmt, {cluster_.node, username, std::to_string(cluster_.max_sessions_per_user),
                                                  std::to_string(kPgNodeTtlMs)});
      if (!r.ok()) return r.error();
      const std::string held = r->rows() > 0 ? r->Text(0, 0).value_or("-1") : "-1";
      if (held != "-1") {
        return MakeError(ErrorCode::kLimited, "too many sessions: " + username + " has " + held +
                                                  " on the cluster already (the limit is " +
                                                  std::to_string(cluster_.max_sessions_per_user) + ")");
      }
      sessions_.Began(username);
    }
    return std::move(*sessions);
  }

 private:
  // The passwords in column `col` of `r` (the password query's first column); no row, or only
  // the login statement's row of NULLs: kAuthFailed (unknown user).
  Expected<std::vector<Credential>> Passwords(const PgResult& r, const std::string& username, int col) const {
    const bool unknown = r.rows() == 0 || (col > 0 && r.rows() == 1 && (r.columns() <= col || !r.Text(0, col)));
    if (unknown) return MakeError(ErrorCode::kAuthFailed, "username '" + username + "' not found in " + target_);
    std::vector<Credential> passwords;
    for (int i = 0; i < r.rows() && r.columns() > col; ++i) {
      std::optional<std::string> p = r.Text(i, col);
      if (!p || p->empty()) continue;
      if (std::optional<std::string> bytes = TextPasswordBytes(*p)) passwords.push_back({std::move(*bytes), *p});
    }
    return passwords;
  }

  static bool Unreachable(const Error& e) { return e.code == ErrorCode::kIo || e.code == ErrorCode::kTimeout; }

  // kLimited with the engine's words when column 0 of row 0 says to wait; else a kOk Error.
  static Error WaitError(const PgResult& r) {
    const std::string text = r.rows() > 0 ? r.Text(0, 0).value_or("0") : "0";
    int64_t wait = 0;
    std::from_chars(text.data(), text.data() + text.size(), wait);
    if (wait <= 0) return Error{ErrorCode::kOk, ""};
    return MakeError(ErrorCode::kLimited,
                     "too many failed logins, try again in " + std::to_string((wait + 999) / 1000) + " seconds");
  }

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
    std::vector<Statement> statements{Statement{kPasswordStmt, "password_query", password_query_, 1},
                                      Statement{kSessionsStmt, "sessions_query", sessions_query_, 2}};
    if (cluster_.enabled) {
      statements.push_back(Statement{kPgWaitStmt, "cluster=yes", wait_sql_, 5});
      statements.push_back(Statement{kPgLoginStmt, "password_query (cluster=yes)", login_sql_, 6});
      statements.push_back(Statement{kPgFailedStmt, "cluster=yes", failed_sql_, 3});
      statements.push_back(Statement{kPgBeginStmt, "cluster=yes", begin_sql_, 4});
    }
    for (const Statement& s : statements) {
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
  const ClusterOptions cluster_;
  const std::string wait_sql_ = kPgWaitSql;
  const std::string login_sql_ = PgLoginSql(password_query_);
  const std::string failed_sql_ = kPgFailedSql;
  const std::string begin_sql_ = kPgBeginSql;
  std::mutex pool_mu_;
  std::vector<PgConn> pool_;
  std::atomic<int64_t> down_until_ms_{0};
  PgUserCache cache_;
  PgSessionCounter sessions_;
  std::unique_ptr<PgClusterListener> listener_;  // last: stopped first
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

// cluster=yes|no (default no), cache=yes|no (default: yes with cluster=yes and the default
// queries, which read only the users table its trigger watches), max_sessions_per_user=N (needs
// cluster=yes), node=NAME (default host:pid).
Expected<ClusterOptions> GetClusterOptions(const ModuleOptions& options) {
  ClusterOptions c;
  Expected<bool> enabled = GetBoolOption(options, "cluster", false);
  if (!enabled.ok()) return enabled.error();
  c.enabled = *enabled;
  const bool default_queries = !options.Get("password_query") && !options.Get("sessions_query");
  Expected<bool> cache = GetBoolOption(options, "cache", c.enabled && default_queries);
  if (!cache.ok()) return cache.error();
  c.cache = *cache;
  if (std::optional<std::string> max = options.Get("max_sessions_per_user")) {
    auto [end, ec] = std::from_chars(max->data(), max->data() + max->size(), c.max_sessions_per_user);
    if (ec != std::errc() || end != max->data() + max->size() || c.max_sessions_per_user < 0 ||
        c.max_sessions_per_user > 1000000) {
      return MakeError(ErrorCode::kMalformed,
                       "postgresql authentication: max_sessions_per_user must be a number from 0 to 1000000");
    }
  }
  if ((c.cache || c.max_sessions_per_user > 0) && !c.enabled) {
    return MakeError(ErrorCode::kMalformed,
                     "postgresql authentication: cache= and max_sessions_per_user= need cluster=yes");
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  c.node = options.Get("node").value_or(std::string(host) + ":" + std::to_string(getpid()));
  if (c.node.empty() || c.node.size() > 200) {
    return MakeError(ErrorCode::kMalformed, "postgresql authentication: node= must be 1 to 200 characters");
  }
  return c;
}

}  // namespace

Expected<std::unique_ptr<AuthModule>> CreatePostgresqlAuth(const ModuleOptions& options) {
  if (Status s = options.CheckAllowed({"uri", "password_query", "sessions_query", "connect_timeout_ms",
                                       "statement_timeout_ms", "cluster", "cache", "max_sessions_per_user", "node"});
      !s.ok()) {
    return s.error();
  }
  Expected<ClusterOptions> cluster = GetClusterOptions(options);
  if (!cluster.ok()) return cluster.error();
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
                                                 *connect_ms, *statement_ms, std::move(cluster).value());
  if (Status s = module->Validate(); !s.ok()) {
    return MakeError(s.error().code, "postgresql authentication: " + s.error().message);
  }
  return std::unique_ptr<AuthModule>(std::move(module));
}

}  // namespace xr::auth
