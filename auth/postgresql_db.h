#pragma once
// Small RAII wrappers over libpq, shared by the postgresql module and xpra-relay-auth. Every call
// is bounded by a deadline (CLOCK_MONOTONIC milliseconds): connecting uses PQconnectStartParams /
// PQconnectPoll and queries PQsend* / PQconsumeInput under poll(), so a database that is down
// fails at once and one that hangs fails at the deadline, never later.
//
// Messages never hold the connection URI or its password: a connection is named by
// user@host:port/dbname only.

#include <postgresql/libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace xr::auth {

// Monotonic milliseconds (the clock of every deadline here).
int64_t PgNowMs();

// True for "postgresql://..." and "postgres://..." (libpq's URI schemes).
bool IsPostgresqlUri(std::string_view s);

// The query with each `%s` (xpra's / psycopg's placeholder) and `?` (sqlite's) outside quotes
// replaced by $1, $2, ... in order; `$n` placeholders are left as they are.
std::string ToPgPlaceholders(std::string_view sql);

using PgParams = std::vector<std::optional<std::string>>;  // nullopt: SQL NULL

// One query's result; cleared by the destructor.
class PgResult {
 public:
  explicit PgResult(PGresult* res) : res_(res) {}
  PgResult(PgResult&& other) noexcept : res_(std::exchange(other.res_, nullptr)) {}
  PgResult& operator=(PgResult&&) = delete;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult() { PQclear(res_); }

  int rows() const { return PQntuples(res_); }
  int columns() const { return PQnfields(res_); }
  // Column index of `name` (case-insensitive for unquoted names), -1 when absent.
  int column(const char* name) const { return PQfnumber(res_, name); }
  std::string column_name(int col) const;
  // The value as text; nullopt for NULL.
  std::optional<std::string> Text(int row, int col) const;
  // Rows an INSERT/UPDATE/DELETE changed.
  int64_t changes() const;
  // Parameters of a described prepared statement.
  int parameter_count() const { return PQnparams(res_); }

 private:
  PGresult* res_;
};

// One connection; closed by the destructor. Not to be shared between threads.
class PgConn {
 public:
  // Connects to `uri` (a postgresql:// URI or a conninfo string), client_encoding UTF8, with the
  // server-side statement_timeout set to `statement_timeout_ms` (0: the server's default).
  // kMalformed: the URI cannot be parsed; kTimeout: the deadline passed; kIo: anything else
  // (refused, authentication, TLS), with libpq's first line of explanation.
  static Expected<PgConn> Connect(const std::string& uri, int64_t deadline_ms, int statement_timeout_ms = 0);

  PgConn(PgConn&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)), name_(std::move(other.name_)) {}
  PgConn& operator=(PgConn&& other) noexcept;
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  ~PgConn() { PQfinish(conn_); }

  // Runs SQL with text parameters ($1, $2, ...); several statements when `params` is empty.
  Expected<PgResult> Exec(std::string_view sql, const PgParams& params, int64_t deadline_ms);
  // Prepares `sql` as statement `name`.
  Status Prepare(const char* name, std::string_view sql, int64_t deadline_ms);
  // The description of prepared statement `name` (parameter_count()).
  Expected<PgResult> Describe(const char* name, int64_t deadline_ms);
  // Runs prepared statement `name`.
  Expected<PgResult> ExecPrepared(const char* name, const PgParams& params, int64_t deadline_ms);

  // After LISTEN: waits until `deadline_ms` for notifications and returns their payloads (empty
  // when none came in time). kIo once the connection is lost.
  Expected<std::vector<std::string>> WaitNotifications(int64_t deadline_ms);

  // False once the connection is lost or a wait ran out (the connection must then be dropped).
  bool usable() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK && !timed_out_; }
  // "user@host:port/dbname", for messages.
  const std::string& name() const { return name_; }
  // The libpq connection, for LISTEN/NOTIFY (PQsocket, PQconsumeInput, PQnotifies: the
  // cluster thread, cluster/cluster_node.cc). Still owned here.
  PGconn* native() const { return conn_; }

 private:
  PgConn(PGconn* conn, std::string name) : conn_(conn), name_(std::move(name)) {}
  // Waits for the results of the query just sent and returns the last one.
  Expected<PgResult> Collect(int64_t deadline_ms);
  Error ConnError(std::string_view what) const;

  PGconn* conn_ = nullptr;
  std::string name_;
  bool timed_out_ = false;
};

// "user@host:port/dbname" of a URI (no password), "database" when it cannot be parsed.
std::string PgTargetName(const std::string& uri);

// A PostgreSQL array literal of text values ({"a","b\"c"}), for a text[] parameter: every element
// quoted, '"' and '\\' escaped, NUL bytes (which text cannot hold) dropped.
std::string PgTextArray(const std::vector<std::string>& values);
// {1,2,3}, for an integer[] or bigint[] parameter.
std::string PgIntArray(const std::vector<uint64_t>& values);
std::string PgIntArray(const std::vector<int64_t>& values);

}  // namespace xr::auth
