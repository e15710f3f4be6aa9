#pragma once
// What the postgresql module shares with the other relays of a cluster (option cluster=yes):
//  - the login back-off: failures per source and per user in table xr_login_failures, read with
//    the user's password in one statement and recorded with one (the same policy as the engine's
//    node-local Admission, engine/limits.h, on the database's clock);
//  - the number of sessions each user holds on each node (xr_user_sessions, rows of a node that
//    stopped its heartbeat in xr_policy_nodes no longer count), for max_sessions_per_user;
//  - a cache of user rows on each node, invalidated by LISTEN/NOTIFY: a trigger on xpra's users
//    table notifies channel xr_users with the user name; the node's listener thread (its own
//    connection) drops that entry. While that connection is down the cache is empty and unused.
// The schema is created idempotently at start (deploy/cluster/schema/010_login_policy.sql holds the
// same statements for a DBA who runs them by hand).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "auth/auth_module.h"
#include "auth/module_base.h"
#include "auth/postgresql_db.h"

namespace xr::auth {

// The schema, functions and users trigger (one transaction, under an advisory lock so nodes that
// start together do not race).
extern const char kPgClusterSchemaSql[];

inline constexpr size_t kPgUserCacheCapacity = 10000;
inline constexpr int64_t kPgHeartbeatMs = 2000;
inline constexpr int64_t kPgNodeTtlMs = 10000;  // a node's session rows count this long after its last heartbeat
inline constexpr size_t kPgMaxPendingSessionEnds = 10000;

// Names of the prepared statements the cluster mode adds, and their SQL.
inline constexpr char kPgWaitStmt[] = "xr_wait";
inline constexpr char kPgWaitSql[] = "SELECT xr_backoff_wait_ms($1, $2, $3::integer, $4::bigint, $5::bigint)";
inline constexpr char kPgLoginStmt[] = "xr_login";  // + the password query with $1, wait with $2..$6
inline constexpr char kPgFailedStmt[] = "xr_failed";
inline constexpr char kPgFailedSql[] = "SELECT xr_login_failed($1, $2, $3::bigint)";
inline constexpr char kPgBeginStmt[] = "xr_begin";
inline constexpr char kPgBeginSql[] = "SELECT xr_session_begin($1, $2, $3::integer, $4::bigint)";
// "SELECT w.xr_wait_ms, q.* FROM (wait) w LEFT JOIN (password_query) q ON true": the back-off
// state and the user's row in one round trip.
std::string PgLoginSql(const std::string& password_query);

// The user rows of one node; thread-safe. Every change (an invalidation, the listener's state)
// bumps an epoch: a row read from the database is stored only when the epoch has not moved since
// the read began, so a notification that arrives during a read is never lost.
class PgUserCache {
 public:
  uint64_t epoch();
  std::optional<std::vector<Credential>> credentials(const std::string& user);
  std::optional<std::vector<SessionEntry>> sessions(const std::string& user, const std::string& stored);
  void PutCredentials(const std::string& user, std::vector<Credential> credentials, uint64_t epoch);
  void PutSessions(const std::string& user, const std::string& stored, std::vector<SessionEntry> sessions,
                   uint64_t epoch);
  // A notification: drops `user` ("*": everything).
  void Drop(const std::string& user);
  // The listener connection is up (live) or lost: either way everything is dropped.
  void SetLive(bool live);
  bool live();
  size_t size();

 private:
  struct Entry {
    std::vector<Credential> credentials;
    std::vector<std::pair<std::string, std::vector<SessionEntry>>> sessions;  // by stored password
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  uint64_t epoch_ = 0;
  bool live_ = false;
};

// This node's sessions per user; thread-safe. Begin() runs on the auth workers, End() on the
// reactor (never blocks: the listener thread writes it to the database).
class PgSessionCounter {
 public:
  // After the database admitted one more session for `user`.
  void Began(const std::string& user);
  // A session of `user` ended: false when this node never counted one for it.
  bool End(const std::string& user);
  // The ends not yet written; `resync` tells that the node's rows must be rewritten whole.
  std::vector<std::string> TakeEnds(bool* resync);
  void NeedResync();
  std::vector<std::pair<std::string, int64_t>> snapshot();
  // Held shared by a worker across its begin round trip, exclusive by a resync.
  std::shared_mutex& begin_mu() { return begin_mu_; }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, int64_t> counts_;
  std::vector<std::string> ends_;
  bool resync_ = false;
  std::shared_mutex begin_mu_;
};

// The listener thread: LISTEN xr_users, heartbeat, and the session counts, on its own connection;
// reconnects every 500 ms while the database is down (the cache stays off meanwhile).
class PgClusterListener {
 public:
  PgClusterListener(std::string uri, std::string node, int connect_timeout_ms, PgUserCache* cache,
                    PgSessionCounter* sessions, bool use_cache);
  ~PgClusterListener();
  PgClusterListener(const PgClusterListener&) = delete;
  PgClusterListener& operator=(const PgClusterListener&) = delete;
  // Wakes the thread to write session ends now.
  void Poke();

 private:
  void Run();
  // One connection's life: returns when it is lost or on stop.
  void Serve(PgConn& conn);
  Status Sync(PgConn& conn);

  const std::string uri_;
  const std::string node_;
  const int connect_timeout_ms_;
  PgUserCache* const cache_;
  PgSessionCounter* const sessions_;
  const bool use_cache_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> poked_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::thread thread_;
};

}  // namespace xr::auth
