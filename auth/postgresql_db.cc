#include "auth/postgresql_db.h"

#include <poll.h>
#include <time.h>

#include <cerrno>
#include <cstdlib>

namespace xr::auth {
namespace {

// libpq's first line of explanation (the rest are hints such as "Is the server running...").
std::string FirstLine(const char* msg) {
  std::string s = msg != nullptr ? msg : "";
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s.empty() ? "unknown error" : s;
}

// Waits for `events` on `fd` until the deadline: 1 ready, 0 timed out, -1 error.
int WaitFd(int fd, short events, int64_t deadline_ms) {
  while (true) {
    const int64_t left = deadline_ms - PgNowMs();
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? -1 : (n == 0 ? 0 : 1);
  }
}

// libpq's (values, lengths, formats) for text parameters.
struct ParamArrays {
  std::vector<const char*> values;
  explicit ParamArrays(const PgParams& params) {
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  }
  int count() const { return static_cast<int>(values.size()); }
  const char* const* data() const { return values.empty() ? nullptr : values.data(); }
};

template <typename T>
std::string IntArray(const std::vector<T>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

}  // namespace

int64_t PgNowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

bool IsPostgresqlUri(std::string_view s) {
  return s.substr(0, 13) == "postgresql://" || s.substr(0, 11) == "postgres://";
}

std::string ToPgPlaceholders(std::string_view sql) {
  std::string out;
  int n = 0;
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      out += "$" + std::to_string(++n);
    } else if (c == '%' && i + 1 < sql.size() && sql[i + 1] == 's') {
      out += "$" + std::to_string(++n);
      ++i;
    } else {
      out += c;
    }
  }
  return out;
}

std::string PgResult::column_name(int col) const {
  const char* n = PQfname(res_, col);
  return n != nullptr ? n : "";
}

std::optional<std::string> PgResult::Text(int row, int col) const {
  if (row < 0 || row >= rows() || col < 0 || col >= columns() || PQgetisnull(res_, row, col)) return std::nullopt;
  return std::string(PQgetvalue(res_, row, col), static_cast<size_t>(PQgetlength(res_, row, col)));
}

int64_t PgResult::changes() const {
  const char* n = PQcmdTuples(res_);
  return (n != nullptr && *n != '\0') ? std::strtoll(n, nullptr, 10) : 0;
}

std::string PgTargetName(const std::string& uri) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(uri.c_str(), &err);
  PQfreemem(err);
  if (opts == nullptr) return "database";
  std::string user, host, port, db;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view k = o->keyword;
    if (k == "user") user = o->val;
    if (k == "host") host = o->val;
    if (k == "hostaddr" && host.empty()) host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
  }
  PQconninfoFree(opts);
  std::string name = user.empty() ? "" : user + "@";
  name += host.empty() ? "localhost" : host;
  if (!port.empty()) name += ":" + port;
  return name + "/" + (db.empty() ? user : db);
}

Expected<PgConn> PgConn::Connect(const std::string& uri, int64_t deadline_ms, int statement_timeout_ms) {
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(uri.c_str(), &err);
  if (parsed == nullptr) {
    // libpq's message quotes the faulty part, which may be the password: keep only its kind.
    PQfreemem(err);
    return MakeError(ErrorCode::kMalformed, "invalid PostgreSQL URI (see the libpq connection URI syntax)");
  }
  PQconninfoFree(parsed);
  std::string name = PgTargetName(uri);
  const std::string options = statement_timeout_ms > 0 ? "-c statement_timeout=" + std::to_string(statement_timeout_ms) : "";
  // Later keywords override what the URI says (encoding, statement_timeout); the rest (sslmode,
  // host, ...) stands.
  // application_name comes first so the URI's own one wins.
  const char* keys[] = {"application_name", "dbname", "client_encoding", statement_timeout_ms > 0 ? "options" : nullptr,
                        nullptr};
  const char* values[] = {"xpra-relay", uri.c_str(), "UTF8", options.c_str(), nullptr};
  PGconn* c = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) return MakeError(ErrorCode::kInternal, "out of memory connecting to " + name);
  PgConn conn(c, name);
  if (PQstatus(c) == CONNECTION_BAD) return conn.ConnError("cannot connect");
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) return conn.ConnError("cannot connect");
    const int ready = WaitFd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ms);
    if (ready == 0) return MakeError(ErrorCode::kTimeout, "connecting to " + name + " timed out");
    if (ready < 0) return MakeError(ErrorCode::kIo, "connecting to " + name + ": poll failed");
    st = PQconnectPoll(c);
  }
  return conn;
}

PgConn& PgConn::operator=(PgConn&& other) noexcept {
  if (this != &other) {
    PQfinish(conn_);
    conn_ = std::exchange(other.conn_, nullptr);
    name_ = std::move(other.name_);
    timed_out_ = other.timed_out_;
  }
  return *this;
}

Error PgConn::ConnError(std::string_view what) const {
  return MakeError(ErrorCode::kIo, std::string(what) + " to " + name_ + ": " + FirstLine(PQerrorMessage(conn_)));
}

Expected<PgResult> PgConn::Collect(int64_t deadline_ms) {
  std::optional<PgResult> last;
  while (true) {
    while (PQisBusy(conn_)) {
      const int ready = WaitFd(PQsocket(conn_), POLLIN, deadline_ms);
      if (ready <= 0) {
        timed_out_ = true;  // a reply may still come: this connection cannot be reused
        return MakeError(ready == 0 ? ErrorCode::kTimeout : ErrorCode::kIo,
                         "query on " + name_ + (ready == 0 ? " timed out" : ": poll failed"));
      }
      if (PQconsumeInput(conn_) == 0) return ConnError("lost the connection");
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    last.emplace(r);
    const ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) {
      std::string msg = FirstLine(PQresultErrorMessage(r));
      // Drain the rest so the connection can be reused.
      while (PGresult* more = PQgetResult(conn_)) PQclear(more);
      if (PQstatus(conn_) != CONNECTION_OK) return MakeError(ErrorCode::kIo, "lost the connection to " + name_ + ": " + msg);
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      // 57014: query_canceled (statement_timeout).
      const bool timeout = state != nullptr && std::string_view(state) == "57014";
      // Class 42: syntax error or access rule violation (bad SQL, unknown table or column).
      const bool bad_sql = state != nullptr && std::string_view(state).substr(0, 2) == "42";
      const ErrorCode code = timeout ? ErrorCode::kTimeout : (bad_sql ? ErrorCode::kMalformed : ErrorCode::kIo);
      return MakeError(code, name_ + ": " + msg);
    }
  }
  if (!last) return ConnError("no result");
  return std::move(*last);
}

Expected<PgResult> PgConn::Exec(std::string_view sql, const PgParams& params, int64_t deadline_ms) {
  const std::string q(sql);
  ParamArrays p(params);
  const int sent = params.empty() ? PQsendQuery(conn_, q.c_str())
                                  : PQsendQueryParams(conn_, q.c_str(), p.count(), nullptr, p.data(), nullptr, nullptr, 0);
  if (sent == 0) return ConnError("cannot send a query");
  return Collect(deadline_ms);
}

Status PgConn::Prepare(const char* name, std::string_view sql, int64_t deadline_ms) {
  const std::string q(sql);
  if (PQsendPrepare(conn_, name, q.c_str(), 0, nullptr) == 0) return ConnError("cannot send a query");
  Expected<PgResult> r = Collect(deadline_ms);
  if (!r.ok()) return r.error();
  return Status::Ok();
}

Expected<PgResult> PgConn::Describe(const char* name, int64_t deadline_ms) {
  if (PQsendDescribePrepared(conn_, name) == 0) return ConnError("cannot send a query");
  return Collect(deadline_ms);
}

Expected<PgResult> PgConn::ExecPrepared(const char* name, const PgParams& params, int64_t deadline_ms) {
  ParamArrays p(params);
  if (PQsendQueryPrepared(conn_, name, p.count(), p.data(), nullptr, nullptr, 0) == 0) {
    return ConnError("cannot send a query");
  }
  return Collect(deadline_ms);
}

Expected<std::vector<std::string>> PgConn::WaitNotifications(int64_t deadline_ms) {
  std::vector<std::string> payloads;
  auto take = [&] {
    while (PGnotify* n = PQnotifies(conn_)) {
      payloads.emplace_back(n->extra != nullptr ? n->extra : "");
      PQfreemem(n);
    }
  };
  take();  // already read with an earlier result
  if (!payloads.empty()) return payloads;
  const int ready = WaitFd(PQsocket(conn_), POLLIN, deadline_ms);
  if (ready < 0) return MakeError(ErrorCode::kIo, "waiting on " + name_ + ": poll failed");
  if (ready > 0 && (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK)) {
    return ConnError("lost the connection");
  }
  take();
  return payloads;
}

std::string PgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '\0') continue;
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string PgIntArray(const std::vector<uint64_t>& values) { return IntArray(values); }
std::string PgIntArray(const std::vector<int64_t>& values) { return IntArray(values); }

}  // namespace xr::auth
